"""The one build path: architecture description (data) -> OCRModel."""

from __future__ import annotations

import contextlib
import copy

import torch

from ptocr.errors import ArchitectureError
from ptocr.models.float64 import compute_in_float64
from ptocr.models.model import OCRModel
from ptocr.models.registry import get_component


def build_model(model_cfg: dict, *, device: str | torch.device | None = None) -> OCRModel:
    """Build backbone -> neck -> head from ``{"backbone": {...}, "neck": {...}|None, "head": {...}}``.

    Each part is ``{"name": registered name, **constructor args}``; the builder passes
    ``in_channels`` from the previous part's ``out_channels``. ``device="meta"`` builds
    without allocating weights (for shape checks). ``"float64_modules"``: module paths that
    compute in float64 (``ptocr.models.float64``).
    """
    cfg = copy.deepcopy(model_cfg)
    with torch.device(device) if device is not None else contextlib.nullcontext():
        backbone = _build("backbone", cfg["backbone"], None)
        neck = _build("neck", cfg.get("neck"), backbone.out_channels)
        head = _build("head", cfg["head"], (neck or backbone).out_channels)
    return compute_in_float64(OCRModel(backbone, neck, head), cfg.get("float64_modules"))


def _build(kind: str, part: dict | None, in_channels):
    if part is None:
        return None
    part = dict(part)
    name = part.pop("name", None)
    if name is None:
        raise ArchitectureError(f"the {kind} description has no 'name': {part}")
    if in_channels is not None:
        part["in_channels"] = in_channels
    cls = get_component(kind, name)
    try:
        return cls(**part)
    except TypeError as e:
        raise ArchitectureError(f"cannot build {kind} {name} with {part}: {e}") from None

