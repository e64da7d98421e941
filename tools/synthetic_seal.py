"""Write tests/fixtures/seal/seal_arc.png: a synthetic round seal (text along two arcs between two
red rings, a year in the middle), the curved text ../shared's scenes lack.

    python -m tools.synthetic_seal [--out tests/fixtures/seal/seal_arc.png]

Deterministic (OpenCV's Hershey font, no randomness); the seal pipeline's reference is recorded on
it (``python -m tools.make_pipeline_reference --paddleocr3 --seal --inputs ...``).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIZE, RADIUS, RED = 560, 200, (40, 40, 200)
CELL = 60  # each character is drawn in a square cell, turned along the arc, then laid on the page


def _arc_text(page: np.ndarray, text: str, start: float, end: float, outward: bool) -> None:
    """``text`` along the circle of RADIUS from angle ``start`` to ``end`` (degrees, clockwise
    from 3 o'clock), letters upright away from the centre (``outward``) or towards it."""
    centre = SIZE // 2
    for i, ch in enumerate(text):
        angle = math.radians(start + (end - start) * (i + 0.5) / len(text))
        x, y = centre + RADIUS * math.cos(angle), centre + RADIUS * math.sin(angle)
        cell = np.full((CELL, CELL, 3), 255, np.uint8)
        (w, h), _ = cv2.getTextSize(ch, cv2.FONT_HERSHEY_DUPLEX, 1.4, 3)
        cv2.putText(cell, ch, ((CELL - w) // 2, (CELL + h) // 2), cv2.FONT_HERSHEY_DUPLEX, 1.4, RED, 3, cv2.LINE_AA)
        turn = math.degrees(angle) + (90 if outward else -90)
        cell = cv2.warpAffine(cell, cv2.getRotationMatrix2D((CELL / 2, CELL / 2), -turn, 1.0), (CELL, CELL),
                              borderValue=(255, 255, 255))
        x0, y0 = int(round(x - CELL / 2)), int(round(y - CELL / 2))
        region = page[y0:y0 + CELL, x0:x0 + CELL]
        np.minimum(region, cell, out=region)


def seal_image() -> np.ndarray:
    page = np.full((SIZE, SIZE, 3), 255, np.uint8)
    cv2.circle(page, (SIZE // 2, SIZE // 2), RADIUS + 50, RED, 6)
    cv2.circle(page, (SIZE // 2, SIZE // 2), RADIUS - 50, RED, 3)
    _arc_text(page, "OPEN SOURCE OCR", 200, 340, outward=True)
    _arc_text(page, "PYTORCH", 130, 50, outward=False)
    cv2.putText(page, "2026", (SIZE // 2 - 62, SIZE // 2 + 18), cv2.FONT_HERSHEY_DUPLEX, 1.6, RED, 3, cv2.LINE_AA)
    return page


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.synthetic_seal", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "seal" / "seal_arc.png")
    args = p.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(args.out), seal_image()):
        raise SystemExit(f"could not write {args.out}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
