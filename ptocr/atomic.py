"""Outputs written whole or not at all: a temporary file beside the output, renamed into place.

A reader (or a rerun after a crash, a kill or a full disk) then finds the complete new file or
what was there before, never a part; the temporary name is unique, so no other file is touched.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from ptocr.errors import first_line

__all__ = ["temp_beside", "temp_folder_beside", "give_output_permissions", "write_atomically", "nearest_existing", "failure_reason"]


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


def write_atomically(path: str | os.PathLike, data: bytes | str) -> None:
    """``data`` (text as UTF-8) into ``path``: the whole of it, or on any failure ``path`` as it was."""
    tmp = temp_beside(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` itself where it exists (a dangling link counts), else its nearest existing
    ancestor: what decides whether the folders up to ``path`` can be made."""
    path = Path(path)
    while not os.path.lexists(path) and path.parent != path:
        path = path.parent
    return path


def failure_reason(e: BaseException) -> str:
    """Why a write failed, in a few words: an OSError's own; safetensors reports the OS error
    inside its SafetensorError text ('IoError(Os { code: 28, ..., message: "No space ..." })')."""
    if isinstance(e, OSError):
        return e.strerror or str(e)
    found = re.search(r'message: "([^"]+)"', str(e))
    return found.group(1) if found else first_line(e) or type(e).__name__
