"""The architecture registry: every convertible PP-OCR architecture, as data.

An entry says which registered components make the network (``model``: backbone, neck,
head with their constructor arguments; ``forms``: alternative argument sets a source may
be saved in), which mapping table translates Paddle names
(``family``, see ``converter.tables``), and the pre/post-processing PaddleOCR 2.x uses
with it (its ``tools/infer`` defaults for that generation). Recognizers also name
their default dictionary; the head's class count follows from the dictionary.

Entries live in one module per backbone family (``ptocr/architectures/<family>.py``,
each with an ``ARCHITECTURES`` dict and optionally ``ALIASES``: official names released
with an identical network); this module merges them into the one registry.

New weights for a known architecture (another language, a fine-tune) need no entry
here: the converter takes the class count and dictionary from the source, and the zoo
(``weights_manifest.json``) names which architecture and dictionary a model uses.
"""

from __future__ import annotations

import copy
import importlib
import pkgutil

from ptocr.errors import ArchitectureError, close_names

TASKS = ("det", "rec", "cls", "unwarp")

# Where each task's class count lives in the torch state dict (dim 0 of that tensor).
CLASS_COUNT_KEYS = {"rec": "head.fc.weight", "cls": "head.fc.weight"}

_NOT_FAMILIES = {"common"}


def _collect() -> tuple[dict[str, dict], dict[str, str]]:
    entries: dict[str, dict] = {}
    aliases: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_FAMILIES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, entry in getattr(module, "ARCHITECTURES", {}).items():
            if name in entries:
                raise RuntimeError(f"architecture {name!r} defined twice (again in {module.__name__})")
            entries[name] = entry
        for alias, target in getattr(module, "ALIASES", {}).items():
            if alias in aliases or alias in entries:
                raise RuntimeError(f"architecture alias {alias!r} defined twice")
            aliases[alias] = target
    for alias, target in aliases.items():
        if alias in entries or target not in entries:
            raise RuntimeError(f"alias {alias!r} -> {target!r}: names must be an alias of a defined entry")
    return entries, aliases


ARCHITECTURES, ALIASES = _collect()


def list_architectures(task: str | None = None) -> list[str]:
    """Canonical names (aliases excluded)."""
    return sorted(n for n, a in ARCHITECTURES.items() if task is None or a["task"] == task)


def canonical_name(name: str) -> str:
    """The registered name for ``name`` (itself, or what it is an alias of)."""
    if name in ARCHITECTURES:
        return name
    if name in ALIASES:
        return ALIASES[name]
    known = sorted([*ARCHITECTURES, *ALIASES])
    close = close_names(name, known)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ArchitectureError(f"unknown architecture {name!r}{hint} (known: {', '.join(known)})")


def aliases_of(name: str) -> list[str]:
    """Other official names released with exactly this network."""
    return sorted(a for a, t in ALIASES.items() if t == name)


def get_architecture(name: str) -> dict:
    """A deep copy of the entry for ``name`` or its alias (callers may edit it)."""
    return copy.deepcopy(ARCHITECTURES[canonical_name(name)])


def with_overrides(model_cfg: dict, *overrides: dict) -> dict:
    """A copy of a network description (``{"backbone": {...}, "neck": ..., "head": ...}``) with
    each override's parts' settings put over it, in order: a form's (``forms["rep"]``) or a zoo
    entry's ``arguments``."""
    cfg = copy.deepcopy(model_cfg)
    for override in overrides:
        for part, args in override.items():
            cfg[part].update(args)
    return cfg
