"""The converter's exception types (all are ``ptocr.errors.PtocrError``)."""

from ptocr.errors import ArchitectureError, DictionaryError, PtocrError

__all__ = [
    "ArchitectureError",
    "ConversionError",
    "DictionaryError",
    "FormatError",
    "MappingError",
    "UnsafePickleError",
]


class ConversionError(PtocrError):
    """The Paddle source cannot be converted."""


class FormatError(ConversionError):
    """A file is not what its name says (foreign, truncated, corrupt, unsupported).

    The message always starts with the offending file's path.
    """


class UnsafePickleError(FormatError):
    """A pickle asks for something other than plain data and numpy arrays."""


class MappingError(ConversionError):
    """Source tensors and the target architecture do not correspond.

    ``mismatches``: how many keys did not fit (None when unknown), to rank near misses.
    """

    mismatches: int | None = None
