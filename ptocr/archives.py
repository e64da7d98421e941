"""Extracting an official Paddle model archive safely.

PaddleOCR's and PaddleX's releases are tar files holding one folder (``<name>_infer/``) with
the inference files. Only those files are extracted, each checked by hand before a byte is
written: no reliance on ``tarfile``'s extraction filters, which differ between Python versions.
An archive holding anything hostile (an absolute path, ``..``, a link, a device, a member over
the size cap) is refused whole, since such an archive is not what PaddlePaddle published.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from ptocr.errors import PtocrError, first_line

# Paddle 2 inference, Paddle 3 (PIR) inference: the files a converter reads.
MODEL_FILES = frozenset({"inference.pdmodel", "inference.pdiparams", "inference.pdiparams.info",
                         "inference.json", "inference.yml"})
# The largest official file (PP-OCRv5 server rec's weights) is ~80 MiB; 1 GiB leaves room
# for future models while stopping a "zip bomb" style member from filling the disk.
MAX_MEMBER_BYTES = 1 << 30

__all__ = ["ArchiveError", "MAX_MEMBER_BYTES", "MODEL_FILES", "extract_model"]


class ArchiveError(PtocrError):
    """A downloaded archive is unreadable, truncated or hostile."""


def extract_model(archive: str | os.PathLike, dst: str | os.PathLike, *,
                  max_member_bytes: int | None = None, label: str | None = None) -> Path:
    """Extract the inference files of the Paddle model archive ``archive`` into the new folder
    ``dst`` (flat: ``dst/inference.pdiparams`` ...). ``label`` names the archive in errors
    (its URL); ``max_member_bytes`` defaults to ``MAX_MEMBER_BYTES`` (read at the call). On
    any error ``dst`` is removed: ``ArchiveError`` says what is wrong with the archive; an
    ``OSError`` of writing here (a full disk) is raised as it is."""
    archive, dst = Path(archive), Path(dst)
    label = label or str(archive)
    dst.mkdir(parents=True, exist_ok=False)
    try:
        _extract(archive, dst, max_member_bytes or MAX_MEMBER_BYTES, label)
    except BaseException:
        _remove_tree(dst)
        raise
    return dst


def _extract(archive: Path, dst: Path, cap: int, label: str) -> None:
    def refuse(reason: str) -> ArchiveError:
        return ArchiveError(f"archive {label}: {reason}; refused, nothing extracted")

    try:
        tar = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as e:
        first = first_line(e) or type(e).__name__
        raise refuse(f"not a readable tar archive: {_head(archive)} ({first.rstrip(':')})") from None
    with tar:
        try:
            members = tar.getmembers()  # reads every header: a truncated archive fails here
        except (tarfile.TarError, OSError, EOFError) as e:
            raise refuse(f"truncated or corrupt ({e})") from None
        wanted: dict[str, tarfile.TarInfo] = {}
        for m in members:
            path = PurePosixPath(m.name)
            if m.name.startswith(("/", "\\")) or path.is_absolute() or (m.name[1:2] == ":"):
                raise refuse(f"member {m.name!r} has an absolute path")
            if ".." in path.parts:
                raise refuse(f"member {m.name!r} climbs out of the folder ('..')")
            if m.issym() or m.islnk():
                raise refuse(f"member {m.name!r} is a link (to {m.linkname!r})")
            if not (m.isfile() or m.isdir()):
                raise refuse(f"member {m.name!r} is a device, FIFO or other special file")
            if m.isfile() and m.size > cap:
                raise refuse(f"member {m.name!r} has {m.size} bytes, over the cap of {cap}")
            if m.isfile() and path.name in MODEL_FILES and len(path.parts) <= 2:
                if path.name in wanted:
                    raise refuse(f"{path.name} appears twice ({wanted[path.name].name!r}, {m.name!r})")
                wanted[path.name] = m
        if "inference.pdiparams" not in wanted:
            raise refuse("no inference.pdiparams in <folder>/ (not a Paddle inference model archive)")
        for name, m in sorted(wanted.items()):
            _copy_member(tar, m, dst / name, refuse)


def _copy_member(tar: tarfile.TarFile, m: tarfile.TarInfo, out: Path, refuse) -> None:
    """The member ``m`` into the new file ``out``. What reading the archive fails on is the
    archive's fault (``refuse``); an OSError of writing (a full disk here) is raised as it is,
    for the caller to name our folder, not the origin."""
    def read(call):
        try:
            return call()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise refuse(f"truncated or corrupt while reading {m.name!r} ({e})") from None

    src = read(lambda: tar.extractfile(m))
    if src is None:
        raise refuse(f"member {m.name!r} cannot be read")
    written = 0
    with src, open(out, "xb") as f:
        while chunk := read(lambda: src.read(1 << 20)):
            written += len(chunk)
            if written > m.size:
                raise refuse(f"member {m.name!r} holds more than its header's {m.size} bytes")
            f.write(chunk)
    if written != m.size:
        raise refuse(f"member {m.name!r} is truncated ({written} of {m.size} bytes)")


def _head(path: Path) -> str:
    """What the file starts with, for the error: an HTML error page is the usual culprit."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return "unreadable"
    if head.lstrip().lower().startswith((b"<!doctype html", b"<html", b"<?xml", b"<")):
        return "it is an HTML/XML page, e.g. a server's error page, not an archive"
    return f"{path.stat().st_size} bytes starting {head[:16]!r}"


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
