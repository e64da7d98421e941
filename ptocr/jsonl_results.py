"""Results as JSON lines, one per image, appended as they come; a rerun resumes.

A line is ``{"image": NAME, "lines": [{box, text, score, angle}, ...]}`` or
``{"image": NAME, "error": MESSAGE}`` for an input that could not be read. Each line is written
with one ``write`` of its bytes and flushed to the OS at once, so what a killed run leaves is
complete lines and at most one partial last line without its newline. A line counts as done
only with its newline: reopening the file drops a partial tail, and ``done`` holds the images of
the complete lines, which a rerun skips. An input that failed is done too (its error line is the
result); delete the line to try it again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ptocr.errors import PtocrError

__all__ = ["JsonlResults", "encode", "record"]


def record(name: str, result) -> dict:
    """The JSON line of one image: an ``OCRResult`` or a ``ptocr.bulk.FailedImage``."""
    if hasattr(result, "error"):
        return {"image": name, "error": result.error}
    return {"image": name, "lines": result.to_dict()}


def encode(rec: dict) -> str:
    """One record as its line (without the newline): the same text wherever it is made."""
    return json.dumps(rec, ensure_ascii=False)


class JsonlResults:
    """Append-only results file ``path`` (created when absent). ``done``: the images already in it.

    Use as a context manager, or ``close()``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.done: set[str] = set()
        if self.path.is_dir():
            raise PtocrError(f"{self.path}: is a directory, not a results file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._resume()
        except BaseException:
            os.close(self._fd)
            raise

    def _resume(self) -> None:
        with open(self._fd, "rb", closefd=False) as f:
            data = f.read()
        end = data.rfind(b"\n") + 1  # past the last complete line; the rest is a killed write
        for number, raw in enumerate(data[:end].splitlines(), 1):
            try:
                name = json.loads(raw)["image"]
            except (ValueError, KeyError, TypeError):
                raise PtocrError(f"{self.path}:{number}: not a results line of ptocr; "
                                 "give another --out or remove the file") from None
            if not isinstance(name, str):
                raise PtocrError(f"{self.path}:{number}: \"image\" is not a string")
            self.done.add(name)
        if end < len(data):
            os.ftruncate(self._fd, end)
        os.lseek(self._fd, end, os.SEEK_SET)

    def write(self, rec: dict) -> None:
        """Append one line (``record``'s) and hand it to the OS before returning."""
        self.write_line(encode(rec))
        self.done.add(rec["image"])

    def write_line(self, line: str) -> None:
        """Append an already serialized line (no newline inside)."""
        data = (line + "\n").encode("utf-8")
        while data:  # os.write may write less than asked (signals); finish the line
            data = data[os.write(self._fd, data):]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> JsonlResults:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
