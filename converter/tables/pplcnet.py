"""PP-LCNet families (PP-OCR orientation classifiers).

Their official releases are Paddle 3 (PIR) programs without structured names, placed by
graph alignment (``converter.alignment``), so the table is empty: names, where a source
has them (a training checkpoint), are PaddleClas's own, which our modules do not claim
to reproduce.
"""

from __future__ import annotations

from converter.mapping import Rule

TABLES: dict[str, tuple[Rule, ...]] = {
    "pplcnet_cls": (),
}
