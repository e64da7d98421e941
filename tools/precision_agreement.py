"""Do the bfloat16 and float16 models read what the float32 model reads? On the real images, on CPU.

    python -m tools.precision_agreement [--shared ../shared] [--threads 2]

For every trained model in <shared>/paddle_models that the zoo manifest lists, each precision
runs (``ptocr.load(folder, dtype=...)``, CPU) next to float32:

* recognizers and direction classifiers on every crop of the image folders the manifest names
  for their parity check (``"parity": {"images": ...}``): same text / label, largest score gap;
* detectors on every scene of <shared>/images/scenes: same number of boxes, and the share of
  probability-map pixels on the other side of the binarization threshold.

float16 on CPU runs the float16 number format (its range and rounding), not CUDA's kernels: it
is what tells whether a model's weights and activations fit float16 at all. Prints markdown
tables; ``rows()`` is what ``tools.bench`` puts in doc/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import ptocr
from ptocr.manifest import load_manifest
from ptocr.transforms import load_image
from verification.shared import default_shared

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
DTYPES = ("bfloat16", "float16")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _models(shared: Path) -> list[tuple[str, str, Path, list[Path]]]:
    """(zoo name, task, Paddle folder, images) for each trained folder the manifest lists."""
    manifest = load_manifest()
    out = []
    for folder in sorted((shared / "paddle_models").glob("*_infer")):
        name = folder.name.removesuffix("_infer")
        try:
            entry = manifest.model_entry(name)
        except Exception:  # a user's own model (custom_en_...): not in the zoo, no parity images
            continue
        if entry.task == "det":
            images = _images(shared / "images" / "scenes")
        else:
            images = [p for d in entry.parity.get("images", []) for p in _images(shared / "images" / d)]
        out.append((name, entry.task, folder, images))
    return out


def binary_maps(p, images: list[Path]) -> list:
    """A detector's probability map of each scene, binarized at its post-processing threshold."""
    maps = []
    for path in images:
        x, _ = p.pre(load_image(path))
        maps.append(p.forward(x[None]) > p.post.thresh)
    return maps


def flipped_share(maps_a: list, maps_b: list) -> float:
    """The largest share of pixels on the other side of the threshold, over the scenes."""
    return max((float((a != b).mean()) for a, b in zip(maps_a, maps_b)), default=0.0)


def _readings(p, task: str, images: list[Path]):
    """What the model reads: (binary maps, box counts) for det, (text or label, score) per crop else."""
    if task == "det":
        return binary_maps(p, images), [len(p(path).boxes) for path in images]
    return p(images)


def _compare(task: str, ref, got, images: list[Path]) -> dict:
    if task == "det":
        (maps32, n32), (maps16, n16) = ref, got
        return {"same": sum(a == b for a, b in zip(n32, n16)), "gap": flipped_share(maps32, maps16),
                "differences": [f"{c.name}: {a} vs {b} boxes" for c, a, b in zip(images, n32, n16) if a != b]}
    return {"same": sum(x[0] == y[0] for x, y in zip(ref, got)),
            "gap": max((abs(x[1] - y[1]) for x, y in zip(ref, got)), default=0.0),
            "differences": [f"{c.parent.name}/{c.name}: {x[0]!r} vs {y[0]!r}" for c, x, y in zip(images, ref, got) if x[0] != y[0]]}


def rows(shared: Path) -> list[dict]:
    results = []
    for name, task, folder, images in _models(shared):
        ref = _readings(ptocr.load(folder), task, images)  # float32, once for both comparisons
        row = {"model": name, "task": task, "images": len(images)}
        for dtype in DTYPES:
            row[dtype] = _compare(task, ref, _readings(ptocr.load(folder, dtype=dtype), task, images), images)
        results.append(row)
    return results


def markdown(results: list[dict]) -> str:
    """Two tables: detectors (scenes), then recognizers and classifiers (crops)."""
    out = []
    for tasks, head, unit, gap in ((("det",), "scenes", "same box count", "max share of map pixels flipped"),
                                   (("rec", "cls"), "crops", "same text / label", "max score gap")):
        lines = [f"| model | task | {head} | " + " | ".join(f"{unit} ({d} vs float32) | {gap} ({d})" for d in DTYPES) + " |",
                 "|---|---|---|" + "---|---|" * len(DTYPES)]
        chosen = [r for r in results if r["task"] in tasks]
        for r in chosen:
            cells = [f"{r[d]['same']}/{r['images']} ({100 * r[d]['same'] / max(r['images'], 1):.0f} %) | {r[d]['gap']:.4f}" for d in DTYPES]
            lines.append(f"| {r['model']} | {r['task']} | {r['images']} | " + " | ".join(cells) + " |")
        total = sum(r["images"] for r in chosen)
        cells = [f"{sum(r[d]['same'] for r in chosen)}/{total} ({100 * sum(r[d]['same'] for r in chosen) / max(total, 1):.0f} %) | "
                 for d in DTYPES]
        lines.append(f"| all | | {total} | " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
        for d in DTYPES:
            diffs = [f"{r['model']} {x}" for r in chosen for x in r[d]["differences"]]
            if diffs:
                out.append(f"Differences ({d}): " + "; ".join(diffs))
    return "\n\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.precision_agreement", description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=default_shared())
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(markdown(rows(args.shared)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
