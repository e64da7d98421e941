"""PP-HGNet families (PP-OCRv4 server det; the server rec uses ``svtr_lcnet_multihead``,
its MultiHead names being those of the mobile recognizer)."""

from __future__ import annotations

from converter.mapping import Rule

TABLES: dict[str, tuple[Rule, ...]] = {
    # PP-OCRv4 server det: PPHGNet_small + LKPAN (IntraCL) + PFHeadLocal, names as in
    # PaddleOCR. The threshold branch (head.thresh) is in training checkpoints only; the
    # architecture's "training head" form holds it.
    "pphgnet_db": (),
}
