"""A Paddle 3 text detector made to give polygons, as the seal detectors do.

``../shared`` holds no seal detector (PP-OCRv4_*_seal_det): their networks are the v4 mobile /
server detectors', and what makes them seal detectors is their inference.yml's DBPostProcess
(``box_type: poly``; thresholds 0.2 / 0.6 / 0.5 come from the seal pipeline). A copy of a trained
detector whose inference.yml states ``box_type: poly`` runs paddlex's seal path (polygon boxes,
rectified crops) on real weights and real images, for ptocr and for paddlex alike.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def poly_detector_folder(src: str | Path, dst: str | Path) -> Path:
    """Copy the Paddle 3 detector folder ``src`` to ``dst`` with ``box_type: poly`` stated in its
    inference.yml's PostProcess (which must not state a box_type already)."""
    import yaml

    src, dst = Path(src), Path(dst)
    yml = (src / "inference.yml").read_text(encoding="utf-8")
    post = (yaml.safe_load(yml) or {}).get("PostProcess")
    head, sep, tail = yml.partition("\nPostProcess:\n")
    if not isinstance(post, dict) or post.get("name") != "DBPostProcess" or "box_type" in post or not sep:
        raise ValueError(f"{src / 'inference.yml'}: expected a DBPostProcess section without box_type")
    shutil.copytree(src, dst)
    (dst / "inference.yml").chmod(0o644)
    (dst / "inference.yml").write_text(f"{head}{sep}  box_type: poly\n{tail}", encoding="utf-8")
    return dst
