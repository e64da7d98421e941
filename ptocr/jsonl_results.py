"""Results as JSON lines, one per image or PDF page, appended as they come; a rerun resumes.

A line is ``{"image": NAME, "lines": [{box, text, score, angle}, ...]}`` (with word boxes, each
line also has ``words`` and ``word_boxes``: ``[x_min, y_min, x_max, y_max]`` per word) or
``{"image": NAME, "error": MESSAGE}`` for an input that could not be read; a PDF's lines also
have ``"page"`` (1-based; a PDF that cannot be opened at all is one error line without it). Where
PaddleOCR 3.x's document steps ran, ``"doc_preprocessor"`` says which (and the page's turn): the
boxes are on the page they made.

One run writes a file at a time (the others are refused: the file is locked while it is open).
Each line is written with one ``write`` of its bytes and flushed to the OS at once, so what a
killed run leaves is complete lines and at most one partial last line without its newline. A line
counts as done only with its newline: reopening the file drops a partial tail (only one that
begins as a line of ours begins: any other file is refused, left as it is), and ``done`` holds
the keys of the complete lines (``key_of``: ``(path or image, page)``, page None for images),
which a rerun skips. An
input that failed is done too (its error line is the result); delete the line to try it again.

``"image"`` is the name as it was given (``scans/a.jpg``). Where that is not the file's absolute
path (its folder's links resolved), the line also has ``"path"`` (``/home/me/scans/a.jpg``), and the key is that path:
``ptocr ocr`` then knows a file done whatever spelling or working folder a rerun names it by.
Lines without ``"path"`` (absolute names, URIs, files written before it existed) are keyed by
``"image"``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from ptocr.atomic import names_open_file, nearest_existing
from ptocr.errors import PtocrError

__all__ = ["JsonlResults", "encode", "key_of", "record"]

try:
    import fcntl  # flock: one run writes a results file at a time
except ImportError:  # Windows: no locks, an unlocked file is normal there
    fcntl = None


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass  # gone already, or not ours to remove: left as it is


def record(name: str, result, page_index: int | None = None, path: str | None = None) -> dict:
    """The JSON line of one image or PDF page (``page_index``, 0-based): an ``OCRResult`` or a
    ``ptocr.bulk.FailedImage``. ``path``: the key of ``name`` (its normalized absolute path),
    written where it differs from ``name``."""
    rec: dict = {"image": name}
    if path is not None and path != name:
        rec["path"] = path
    if page_index is not None:
        rec["page"] = page_index + 1
    if hasattr(result, "error"):
        rec["error"] = result.error
    else:
        rec["lines"] = result.to_dict()
        if getattr(result, "text_type", "general") != "general":  # seal text: each "box" is a polygon
            rec["text_type"] = result.text_type
        if getattr(result, "text_word", None) is not None:  # word boxes (PaddleOCR 3.x's return_word_box)
            for line, words, boxes in zip(rec["lines"], result.text_word, result.text_word_boxes):
                line["words"], line["word_boxes"] = list(words), boxes
        if getattr(result, "doc_preprocessor", None) is not None:  # the boxes are on the turned / unwarped page
            rec["doc_preprocessor"] = result.doc_preprocessor
    return rec


def key_of(rec: dict) -> tuple[str, int | None]:
    """What a line stands for: (its "path", else its "image"; 1-based page or None)."""
    return rec.get("path", rec["image"]), rec.get("page")


# How each line that ``encode`` makes begins (``record`` puts "image" first).
_LINE_START = b'{"image": "'


def _reason(e: OSError, path: Path) -> str:
    """An OSError's reason, with the file it is about where that is not ``path``."""
    reason = e.strerror or str(e)
    where = e.filename
    return reason if where is None or os.fspath(where) == os.fspath(path) else f"{reason}: {where}"


def encode(rec) -> str:
    """One record (or any JSON value) as its line (without the newline): the same text wherever
    it is made, always writable as UTF-8."""
    line = json.dumps(rec, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        # A file name that is not UTF-8 (os.fsdecode's lone surrogates) cannot be written as UTF-8:
        # \u escapes instead, which json.loads reads back to the same name (so a rerun skips it).
        line = json.dumps(rec)
    return line


class JsonlResults:
    """Append-only results file ``path`` (created when absent). ``done``: the keys (``key_of``) of
    the images and pages already in it.

    Use as a context manager, or ``close()``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.done: set[tuple[str, int | None]] = set()
        if self.path.is_dir():
            raise PtocrError(f"{self.path}: is a directory, not a results file")
        folder = nearest_existing(self.path.parent)
        if not folder.is_dir():
            raise PtocrError(f"cannot open the results file {self.path}: {folder} is not a folder")
        self.created = self.locked = False  # this run made the file; it holds the file's lock
        self._fd = -1
        for _ in range(3):  # a file removed by the run that held it, as this one locked it: open the new one
            self._open()
            try:
                self.locked = self._lock()
                if not self.locked or names_open_file(self.path, self._fd):
                    self._resume()
                    return
            except OSError as e:  # closed as any run's end: a file it made and holds, still empty, goes
                self.close()
                raise PtocrError(f"cannot read the results file {self.path}: {_reason(e, self.path)}") from None
            except BaseException:
                self.close()
                raise
            os.close(self._fd)
        raise PtocrError(f"{self.path}: removed as this run opened it, three times; is another run deleting it?")

    def _open(self) -> None:
        """Open the path, knowing whether this run made the file (``created``)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                self.created = True
            except FileExistsError:
                if self.path.is_symlink() and not self.path.exists():  # a link to a file still to make
                    self._fd, self.created = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), True
                else:
                    self._fd, self.created = os.open(self.path, os.O_RDWR), False
        except OSError as e:
            raise PtocrError(f"cannot open the results file {self.path}: {_reason(e, self.path)}") from None

    def _lock(self) -> bool:
        """Hold the file for this run: two runs appending to one file would write over each
        other's lines. An advisory lock (flock), released when the process ends however it ends.
        Where the system or the file system has none (Windows; NFS without a lock daemon, some FUSE
        mounts), the run goes on unlocked, with a warning. True where the lock is held."""
        if fcntl is None:
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PtocrError(f"{self.path}: another run is writing it; wait for that run to end (a rerun then "
                             "resumes after its lines) or give another --out") from None
        except OSError as e:  # ENOLCK, EOPNOTSUPP, ENOSYS: no locks there
            warnings.warn(f"{self.path}: cannot be locked ({e.strerror or e}); a second run on it at the same "
                          "time would not be refused", stacklevel=3)
            return False
        return True

    def _resume(self) -> None:
        """Read the keys of the complete lines, line by line (a file of millions of results is
        never held whole), drop a partial tail a killed write left, and stand after the last line."""
        end = number = 0
        tail = b""
        with open(self._fd, "rb", closefd=False) as f:
            for raw in f:
                if not raw.endswith(b"\n"):  # past the last complete line: a killed write
                    tail = raw
                    break
                number += 1
                self.done.add(self._key_of_line(raw, number))
                end += len(raw)
        # Only what a killed write_line can leave is dropped: the start of one of our lines.
        if tail and not (_LINE_START.startswith(tail) or tail.startswith(_LINE_START)):
            raise PtocrError(f"{self.path}:{number + 1}: not a results line of ptocr (and no newline); "
                             "give another --out or remove the file")
        if tail:
            os.ftruncate(self._fd, end)
        os.lseek(self._fd, end, os.SEEK_SET)

    def _key_of_line(self, raw: bytes, number: int) -> tuple[str, int | None]:
        """The key of the complete line ``raw`` (line ``number``); PtocrError where it is not ours."""
        try:
            rec = json.loads(raw)
            name, page = key_of(rec)
            if not ("lines" in rec or "error" in rec):
                raise KeyError("lines")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise PtocrError(f"{self.path}:{number}: not a results line of ptocr; "
                             "give another --out or remove the file") from None
        for field in ("image", "path"):
            if field in rec and not isinstance(rec[field], str):
                raise PtocrError(f"{self.path}:{number}: \"{field}\" is not a string")
        if page is not None and (not isinstance(page, int) or isinstance(page, bool) or page < 1):
            raise PtocrError(f"{self.path}:{number}: \"page\" is not a page number")
        return name, page

    def write(self, rec: dict) -> None:
        """Append one line (``record``'s) and hand it to the OS before returning."""
        self.write_line(encode(rec))
        self.done.add(key_of(rec))

    def write_line(self, line: str) -> None:
        """Append an already serialized line (no newline inside)."""
        data = (line + "\n").encode("utf-8")
        start = os.lseek(self._fd, 0, os.SEEK_CUR)
        try:
            while data:  # os.write may write less than asked (signals); finish the line
                data = data[os.write(self._fd, data):]
        except OSError as e:  # a full disk, say: take the part written back, the lines before stay whole
            try:
                os.ftruncate(self._fd, start)
                os.lseek(self._fd, start, os.SEEK_SET)
            except OSError:
                pass  # what is left is a partial last line, which a rerun drops
            raise PtocrError(f"cannot write the results file {self.path}: {_reason(e, self.path)}; the lines "
                             "written before are complete and a rerun resumes after them") from None

    def close(self) -> None:
        """Close the file; one this run created and left empty (nothing read: the models could not
        be built, say) is removed first, while the lock still keeps other runs out of it."""
        if self._fd < 0:
            return
        try:
            empty_and_ours = (self.created and (self.locked or fcntl is None)
                              and os.fstat(self._fd).st_size == 0 and names_open_file(self.path, self._fd))
        except OSError:
            empty_and_ours = False
        if empty_and_ours and self.locked:  # removed before the lock goes with the descriptor
            _unlink_quietly(self.path)
        os.close(self._fd)
        self._fd = -1
        if empty_and_ours and not self.locked:  # Windows: an open file cannot be removed
            _unlink_quietly(self.path)

    def __enter__(self) -> JsonlResults:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
