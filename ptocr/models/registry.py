"""One registry of network components (backbones, necks, heads), keyed by kind and name.

Architectures are described as data (``ptocr.architectures``) naming components
registered here; ``ptocr.models.build.build_model`` is the only place that builds them.
"""

from __future__ import annotations

from typing import Callable

import torch.nn as nn

from ptocr.errors import ArchitectureError

KINDS = ("backbone", "neck", "head")
_COMPONENTS: dict[str, dict[str, Callable[..., nn.Module]]] = {k: {} for k in KINDS}


def register(kind: str, name: str | None = None):
    """Class decorator: ``@register("backbone")`` registers under the class name."""
    if kind not in _COMPONENTS:
        raise ValueError(f"unknown component kind {kind!r}; expected one of {KINDS}")

    def decorator(cls):
        key = name or cls.__name__
        if key in _COMPONENTS[kind]:
            raise ValueError(f"{kind} {key!r} registered twice")
        _COMPONENTS[kind][key] = cls
        return cls

    return decorator


def get_component(kind: str, name: str) -> Callable[..., nn.Module]:
    _import_all()
    try:
        return _COMPONENTS[kind][name]
    except KeyError:
        known = ", ".join(sorted(_COMPONENTS.get(kind, {}))) or "none"
        raise ArchitectureError(f"no {kind} named {name!r} is registered (known: {known})") from None


def _import_all() -> None:
    # Component modules register themselves on import.
    from ptocr.models import backbones, heads, necks  # noqa: F401
