"""ptocr's exception types.

Every failure caused by the input (a file, a name, an argument) raises a subclass of
``PtocrError`` whose message names the file or key and what is wrong, so the CLIs can
print it without a traceback and exit with the bad-input code.
"""

import difflib


def close_names(name: str, known, n: int = 3, cutoff: float = 0.5) -> list[str]:
    """Known names close to ``name`` (case-insensitive), best first: the "did you mean" of
    every unknown-name message (models, architectures, languages, options)."""
    lowered = {k.lower(): k for k in known}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=cutoff)
    return [lowered[h] for h in hits]


def first_line(e: BaseException) -> str:
    """The first line of ``e``'s message for a one-line report; "" where it has no text
    (``TimeoutError()``), on which ``str(e).splitlines()[0]`` would raise."""
    lines = str(e).splitlines()
    return lines[0] if lines else ""


class PtocrError(Exception):
    """Base class: the input is unusable. Never raised for internal bugs."""


class ArchitectureError(PtocrError):
    """Unknown architecture, or one that cannot be determined or built as asked."""


class DictionaryError(PtocrError):
    """The character dictionary is missing, unreadable or does not fit the head."""


class ModelFileError(PtocrError):
    """A converted model file (safetensors + config) is corrupt, tampered or foreign."""


class ImageError(PtocrError):
    """An input image cannot be read or used."""
