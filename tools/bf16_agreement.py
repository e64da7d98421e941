"""Does the bfloat16 model read what the float32 model reads? On the real word crops.

    python tools/bf16_agreement.py [--shared ../shared] [--threads 2]

For every trained recognizer and direction classifier in <shared>/paddle_models that the zoo
manifest lists, both precisions run (CPU, ``ptocr.load(folder, dtype=...)``) on every crop of
the image folders the manifest names for its parity check (``"parity": {"images": ...}``), and
the text (rec) or label (cls) is compared. Prints a markdown table; ``rows()`` is what
tools/bench.py puts in doc/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import ptocr  # noqa: E402
from converter.parity_suite import default_shared  # noqa: E402
from ptocr.manifest import load_manifest  # noqa: E402

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _models(shared: Path) -> list[tuple[str, Path, list[Path]]]:
    """(zoo name, Paddle folder, crops) for each trained rec / cls folder the manifest lists."""
    manifest = load_manifest()
    out = []
    for folder in sorted((shared / "paddle_models").glob("*_infer")):
        name = folder.name.removesuffix("_infer")
        try:
            entry = manifest.model_entry(name)
        except Exception:  # a user's own model (custom_en_...): not in the zoo, no parity images
            continue
        if entry.task not in ("rec", "cls"):
            continue
        dirs = entry.data.get("parity", {}).get("images", [])
        crops = sorted(p for d in dirs for p in (shared / "images" / d).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        out.append((name, folder, crops))
    return out


def rows(shared: Path) -> list[dict]:
    results = []
    for name, folder, crops in _models(shared):
        p32 = ptocr.load(folder)
        p16 = ptocr.load(folder, dtype="bfloat16")
        a, b = p32(crops), p16(crops)
        same = sum(x[0] == y[0] for x, y in zip(a, b))
        results.append({
            "model": name, "task": p32.task, "images": len(crops), "same": same,
            "max_score_gap": max((abs(x[1] - y[1]) for x, y in zip(a, b)), default=0.0),
            "differences": [f"{c.parent.name}/{c.name}: {x[0]!r} vs {y[0]!r}" for c, x, y in zip(crops, a, b) if x[0] != y[0]],
        })
    return results


def markdown(results: list[dict]) -> str:
    lines = ["| model | task | crops | same text / label (bf16 vs fp32) | max score gap |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['task']} | {r['images']} | {r['same']}/{r['images']} "
                     f"({100 * r['same'] / max(r['images'], 1):.0f} %) | {r['max_score_gap']:.3f} |")
    total, same = sum(r["images"] for r in results), sum(r["same"] for r in results)
    lines.append(f"| all | | {total} | {same}/{total} ({100 * same / max(total, 1):.0f} %) | |")
    diffs = [d for r in results for d in r["differences"]]
    if diffs:
        lines += ["", "Differences: " + "; ".join(diffs)]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=default_shared())
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(markdown(rows(args.shared)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
