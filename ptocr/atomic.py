"""Outputs written whole or not at all: a temporary file beside the output, renamed into place.

A reader (or a rerun after a crash, a kill or a full disk) then finds the complete new file or
what was there before, never a part; the temporary name is unique, so no other file is touched.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from ptocr.errors import PtocrError, first_line
from ptocr.transforms.image import is_special_file

__all__ = ["temp_beside", "temp_folder_beside", "give_output_permissions", "write_atomically", "nearest_existing",
           "failure_reason", "replace_folder", "OutputError", "OutputFormatError", "output_path", "blocked_output",
           "write_outputs", "written_path"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def give_output_permissions(path: str | os.PathLike) -> None:
    """The permissions a new file gets (0666 less the umask): mkstemp and some writers make 0600."""
    os.chmod(path, 0o666 & ~_umask())


def temp_beside(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """A new empty file in ``path``'s folder (same file system, so a rename replaces ``path``
    in one step), named after it; ``suffix`` where a writer goes by the name's ending."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        give_output_permissions(name)
    except BaseException:  # not yet known to the caller: removed here
        os.unlink(name)
        raise
    return Path(name)


def temp_folder_beside(path: str | os.PathLike) -> Path:
    """A new empty folder beside ``path``, named after it, with the permissions a new folder
    gets (0777 less the umask; mkdtemp makes 0700): renamed into place, it is ``path``."""
    path = Path(path)
    name = tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(name, 0o777 & ~_umask())
    except BaseException:
        os.rmdir(name)
        raise
    return Path(name)


def replace_folder(staged: str | os.PathLike, final: str | os.PathLike) -> Path:
    """The folder ``staged`` renamed to ``final``. An existing ``final`` is first renamed away
    (``.NAME.old-PID`` beside it, a leftover of that name removed), put back if the rename of
    ``staged`` fails, and removed once ``staged`` is in place: ``final`` is missing only between
    two renames."""
    staged, final = Path(staged), Path(final)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    try:
        os.replace(staged, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def written_path(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` replaces: a symbolic link's target (the link stays a link,
    as with a shell's ``>``), else ``path`` itself."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)


def write_atomically(path: str | os.PathLike, data: bytes | str) -> None:
    """``data`` (text as UTF-8) into ``path`` (a link's target): the whole of it, or on any
    failure ``path`` as it was. OutputError where a folder or a device stands there."""
    path = written_path(path)
    why = blocked_output(path)
    if why is not None:
        raise OutputError(path, why)
    tmp = temp_beside(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def names_open_file(path: str | os.PathLike, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed or replaced since): what a
    lock taken on that file is worth."""
    try:
        here, there = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` itself where it exists (a dangling link counts), else its nearest existing
    ancestor: what decides whether the folders up to ``path`` can be made."""
    path = Path(path)
    while not os.path.lexists(path) and path.parent != path:
        path = path.parent
    return path


def lookup_refusal(path: str | os.PathLike) -> str | None:
    """Why the file system refuses to look ``path`` up (a name too long for it, a file where a
    folder should be, a folder it may not enter), or None; a missing path is None too, for the
    caller to say what it wanted there. pathlib's ``is_file`` and friends raise these on Python
    3.11 instead of answering False."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return e.strerror or str(e)
    return None


def failure_reason(e: BaseException) -> str:
    """Why a write failed, in a few words: an OSError's own; safetensors reports the OS error
    inside its SafetensorError text ('IoError(Os { code: 28, ..., message: "No space ..." })')."""
    if isinstance(e, OSError):
        return e.strerror or str(e)
    found = re.search(r'message: "([^"]+)"', str(e))
    return found.group(1) if found else first_line(e) or type(e).__name__


class OutputError(PtocrError, OSError):
    """An output cannot be written where it was asked (a folder or a file in the way, a folder
    that takes no files, a full disk): the message names the output and why. Also an OSError,
    with the reason as ``strerror``, so code that caught the OS's own error still catches it."""

    def __init__(self, path, reason: str, errno: int | None = None):
        self.path, self.reason = path, reason
        shown = os.fspath(path) if isinstance(path, (str, os.PathLike)) else repr(path)
        if not isinstance(shown, str) or not shown.isprintable():  # bytes, a NUL, a newline: one line
            shown = repr(shown)
        super().__init__(f"cannot write {shown}: {reason}")
        self.strerror = reason
        self.errno = errno  # the OS's (ENOSPC for a full disk), for callers that test it

    def __str__(self) -> str:  # the message, not OSError's "[Errno N] strerror" once errno is set
        return self.args[0]

    def __reduce__(self):
        return type(self), (self.path, self.reason, self.errno)


class OutputFormatError(OutputError, ValueError):
    """An output's name asks for an image format its writer cannot write (a ValueError too)."""


def output_path(path) -> Path:
    """``path`` (a str or os.PathLike) as a Path; OutputError for what cannot name a file."""
    if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
        raise OutputError(path, f"a save path is a str or os.PathLike, not {type(path).__name__}")
    if "\0" in os.fspath(path):
        raise OutputError(path, "a file name cannot hold a NUL character")
    return Path(path)


def blocked_output(path: str | os.PathLike) -> str | None:
    """Why the file ``path`` cannot be written, as far as what exists tells (it is a folder, or a
    file stands where one of its folders would be made); None where nothing is in the way."""
    path = Path(path)
    if path.is_dir():
        return "it is a folder"
    if is_special_file(path):  # renaming a file over it would replace the node
        return "it is not a regular file (a device, a FIFO or a socket)"
    above = nearest_existing(path.parent)
    if not above.is_dir():
        return f"{above} is {'a file' if above.is_file() else 'not a folder'}, not a folder"
    return None


def write_outputs(outputs: list[tuple[str | os.PathLike, bytes]]) -> None:
    """Each ``(path, data)``: the folders made, ``data`` written whole to a temporary file beside
    ``path``, then all renamed into place. A failure before the renames leaves no new file (an
    existing output stays as it was); a rename that fails after another succeeded leaves that one
    new (each file whole). OutputError names the output and the reason, with the OS's errno."""
    outputs = [(written_path(path), data) for path, data in outputs]
    paths = [path for path, _ in outputs]
    for path in paths:
        why = blocked_output(path)
        if why is not None:
            raise OutputError(path, why)
        inside = next((other for other in paths if path in other.parents), None)
        if inside is not None:  # save_all("x.json"): the JSON file x.json, the pictures in a folder x.json
            raise OutputError(path, f"it would have to be a folder for {inside}")
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in outputs:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                folder = os.fsdecode(e.filename) if e.filename is not None else path.parent
                raise OutputError(path, f"cannot make the folder {folder}: {failure_reason(e)}", e.errno) from e
            try:
                staged.append((temp_beside(path), path))
            except OSError as e:
                raise OutputError(path, f"cannot create a file in {path.parent}: {failure_reason(e)}", e.errno) from e
            try:
                with open(staged[-1][0], "wb") as f:
                    f.write(data)
            except OSError as e:
                raise OutputError(path, failure_reason(e), e.errno) from e
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as e:
                why = blocked_output(path) or failure_reason(e)
                raise OutputError(path, why, e.errno) from e
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
