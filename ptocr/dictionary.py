"""Character dictionaries of CTC recognizers: reading them and checking they fit a head."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ptocr.errors import DictionaryError

BLANK = "blank"  # PaddleOCR's name for CTC class 0; never emitted as text


@dataclass(frozen=True)
class Dictionary:
    """The characters of a recognizer, in file order, and whether " " is appended.

    ``classes`` is what the head predicts: blank, the characters, then " " when
    ``use_space_char`` (PaddleOCR's CTCLabelDecode order).
    """

    characters: tuple[str, ...]
    use_space_char: bool
    source: str = ""

    @property
    def classes(self) -> list[str]:
        return [BLANK, *self.characters, *([" "] if self.use_space_char else [])]

    @property
    def num_classes(self) -> int:
        return len(self.characters) + 1 + int(self.use_space_char)

    def text(self) -> str:
        """The dictionary file's content (one character per line)."""
        return "".join(c + "\n" for c in self.characters)

    def sha256(self) -> str:
        return hashlib.sha256(self.text().encode("utf-8")).hexdigest()

    def check_fits(self, num_classes: int, what: str = "the model's head") -> None:
        if num_classes != self.num_classes:
            space = " + space" if self.use_space_char else ""
            hint = ""
            if num_classes == len(self.characters) + 2 and not self.use_space_char:
                hint = " (it would fit with use_space_char=True)"
            elif num_classes == len(self.characters) + 1 and self.use_space_char:
                hint = " (it would fit with use_space_char=False)"
            raise DictionaryError(
                f"dictionary {self.source or '<text>'} does not fit {what}: "
                f"{len(self.characters)} characters + blank{space} = {self.num_classes} classes, "
                f"but {what} has {num_classes} classes{hint}"
            )


def parse_dictionary(text: str, use_space_char: bool, source: str = "") -> Dictionary:
    # Read as PaddleOCR's CTCLabelDecode does: every line is a class, stripped of
    # CR/LF only, so a line holding a single space is a character.
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline ends the last line, it starts none
    chars = tuple(line.strip("\r\n") for line in lines)
    if not chars:
        raise DictionaryError(f"dictionary {source or '<text>'} is empty")
    if not any(chars):  # every class would decode to nothing
        raise DictionaryError(f"dictionary {source or '<text>'} has no characters: its {len(chars)} lines are empty")
    return Dictionary(chars, use_space_char, source)


def read_dictionary(path: str | Path, use_space_char: bool) -> Dictionary:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DictionaryError(f"cannot read dictionary {path}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DictionaryError(f"dictionary {path} is not UTF-8 text (byte {e.start})") from None
    if "\x00" in text:
        raise DictionaryError(f"dictionary {path} is not a text file (it holds NUL bytes)")
    if text.startswith("\ufeff"):  # kept, as PaddleOCR keeps it: a model trained on it decodes it so
        warnings.warn(f"dictionary {path} begins with a UTF-8 byte order mark: it stays part of its first "
                      f"character ({text[:2]!r}), as in PaddleOCR; remove it unless the model was trained with it",
                      stacklevel=2)
    return parse_dictionary(text, use_space_char, str(path))


def builtin_dictionary(name: str, use_space_char: bool) -> Dictionary:
    """A dictionary shipped in ``ptocr/dicts`` (see its README for provenance)."""
    ref = resources.files("ptocr") / "dicts" / name
    if not ref.is_file():
        raise DictionaryError(f"no built-in dictionary named {name!r}")
    return parse_dictionary(ref.read_text("utf-8"), use_space_char, f"ptocr/dicts/{name}")
