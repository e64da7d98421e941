"""Per-family mapping tables: Paddle structured names -> ptocr state-dict keys.

ptocr's modules use PaddleOCR's attribute names, so most names pass unchanged and a
table holds only what differs: where PaddleOCR nests a part elsewhere than our
backbone -> neck -> head, and the training-only branches an inference model never
runs. The shared rules (batch-norm statistics, Linear layout) are in
``converter.mapping`` and apply after these.

One module per backbone family (``converter/tables/<family>.py``, a ``TABLES`` dict
keyed by the ``family`` an architecture entry names); merged here.
"""

from __future__ import annotations

import importlib
import pkgutil

from converter.errors import ArchitectureError
from converter.mapping import Rule


def _collect() -> dict[str, tuple[Rule, ...]]:
    tables: dict[str, tuple[Rule, ...]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for family, rules in module.TABLES.items():
            if family in tables:
                raise RuntimeError(f"mapping table {family!r} defined twice (again in {module.__name__})")
            tables[family] = tuple(rules)
    return tables


TABLES = _collect()


def get_table(family: str) -> tuple[Rule, ...]:
    try:
        return TABLES[family]
    except KeyError:
        raise ArchitectureError(f"no mapping table for family {family!r}") from None
