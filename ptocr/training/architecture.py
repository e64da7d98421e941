"""Which ptocr architecture a PaddleOCR config's ``Architecture:`` section describes.

The registry (:mod:`ptocr.architectures`) holds each network as PaddleOCR's component names and
constructor arguments; a config's Backbone / Neck / Head are compared with them as data:

* names: PaddleOCR's own, a few renamed here (``COMPONENT_NAMES``: ``PPHGNet_small`` is ptocr's
  ``PPHGNet``, the rec ``ResNet`` its ``ResNet_vd_rec``); ``MultiHead``'s ``CTCHead`` entry is the
  network (its ``Neck`` a ``SequenceEncoder`` of that ``encoder_type``), its other entry the
  training-only GTC branch (returned as ``gtc_head``);
* every argument the config gives must equal the entry's (or, where the entry leaves it out, the
  component's default); an argument the entry gives and the config leaves out must be the
  component's default, except what ``model_type`` implies (``det: True`` of a det backbone);
* ``TRAINING_ONLY`` arguments (learning-rate and L2 settings, read by ``create_optimizer``, and
  DBHead's ``fix_nan``, applied by the trainer), ``INFERENCE_ONLY`` ones (PFHeadLocal's
  ``output``) and the class count (the dictionary's, or ClsHead's ``class_dim``) are not compared.

No match is refused, naming the architectures of that backbone and the first difference of each.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from ptocr.architectures import ARCHITECTURES
from ptocr.errors import ArchitectureError, close_names
from ptocr.models.registry import get_component

__all__ = ["ConfigArchitecture", "architecture_for", "ALGORITHMS", "COMPONENT_NAMES"]

# tools/train.py's algorithm names per model_type, for the networks ptocr has.
ALGORITHMS = {"det": ("DB",), "rec": ("CRNN", "SVTR_LCNet", "SVTR_HGNet", "SVTR"), "cls": ("CLS",)}
# (model_type, PaddleOCR component name) -> ptocr's registered name, where they differ.
COMPONENT_NAMES = {
    ("det", "PPHGNet_small"): "PPHGNet", ("rec", "PPHGNet_small"): "PPHGNet",
    ("det", "PPHGNetV2_B4"): "PPHGNetV2", ("rec", "PPHGNetV2_B4"): "PPHGNetV2",
    ("rec", "ResNet"): "ResNet_vd_rec",
}
# Arguments that set training, not the network (create_optimizer reads the first three; fix_nan,
# DBHead's training-time NaN guard, the trainer applies: components.guard_nan).
TRAINING_ONLY = {"fc_decay", "lr_mult_list", "lab_lr", "num_classes", "out_channels", "class_dim", "fix_nan"}
# Arguments choosing what ptocr's eval returns (PFHeadLocal's ``output``: the map its inference
# program gives), not the network: the trainer evaluates on PaddleOCR's ``maps`` (Trainer.evaluate).
INFERENCE_ONLY = {"output"}
# What model_type implies for a backbone that takes it (PaddleOCR picks det_mobilenet_v3.py etc.).
IMPLIED = {"det": {"backbone": {"det": True}}}
_PARTS = (("backbone", "Backbone"), ("neck", "Neck"), ("head", "Head"))


@dataclass(frozen=True)
class ConfigArchitecture:
    """The matched architecture: its task, ptocr name, the ClsHead's class count (``class_dim``),
    a MultiHead's GTC branch entry (``{"NRTRHead": {...}}``) or None, and the head's ``fix_nan``."""

    task: str
    name: str
    class_dim: int | None = None
    gtc_head: dict | None = None
    fix_nan: bool = False


def _multihead(head: dict) -> tuple[dict | None, dict, dict | None]:
    """MultiHead -> (neck, CTCHead, the other entry)."""
    ctc, gtc = None, None
    for entry in head.get("head_list") or []:
        (name, spec), = dict(entry).items()
        if name == "CTCHead":
            ctc = spec or {}
        else:
            gtc = {name: spec or {}}
    if ctc is None:
        raise ArchitectureError("Architecture.Head: a MultiHead without a CTCHead entry is not a PP-OCR recognizer")
    extra = set(head) - {"name", "head_list", "out_channels_list"}
    if extra:
        raise ArchitectureError(f"Architecture.Head (MultiHead): unknown keys {sorted(extra)}")
    neck = dict(ctc.get("Neck") or {})
    if neck:
        neck = {"name": "SequenceEncoder", "encoder_type": neck.pop("name"), **neck}
    return neck or None, {"name": "CTCHead", **(ctc.get("Head") or {})}, gtc


def _parts(section: dict, task: str) -> tuple[dict, dict | None]:
    parts = {part: (dict(section.get(key)) if section.get(key) else None) for part, key in _PARTS}
    gtc = None
    if parts["head"] and parts["head"].get("name") == "MultiHead":
        if parts["neck"]:
            raise ArchitectureError("Architecture: a MultiHead takes its Neck inside its CTCHead entry, not beside it")
        parts["neck"], parts["head"], gtc = _multihead(parts["head"])
    for part, spec in parts.items():
        if spec is not None:
            spec["name"] = COMPONENT_NAMES.get((task, spec.get("name")), spec.get("name"))
    return parts, gtc


def _default(kind: str, name: str, key: str):
    """The component's constructor default for ``key``; ``inspect.Parameter.empty`` when none."""
    param = inspect.signature(get_component(kind, name)).parameters.get(key)
    return inspect.Parameter.empty if param is None else param.default


def _plain(value):
    """Tuples as lists: YAML gives lists where the registry may hold tuples."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _same(a, b) -> bool:
    return _plain(a) == _plain(b)


def _difference(task: str, part: str, want: dict | None, have: dict | None) -> str | None:
    """The first way the config's ``have`` differs from the entry's ``want``; None: the same."""
    if want is None or have is None:
        if want is None and have is None:
            return None
        return f"{part}: {'none' if have is None else have.get('name')} here, the entry has " \
               f"{'none' if want is None else want.get('name')}"
    if want["name"] != have["name"]:
        return f"{part}.name: {have['name']} here, {want['name']} in the entry"
    implied = IMPLIED.get(task, {}).get(part, {})
    for key, value in have.items():
        if key == "name" or key in TRAINING_ONLY or key in INFERENCE_ONLY:
            continue
        expected = want[key] if key in want else _default(part, want["name"], key)
        if expected is inspect.Parameter.empty or not _same(value, expected):
            return f"{part}.{key}: {value!r} here, {'unknown' if expected is inspect.Parameter.empty else repr(expected)}" \
                   " in the entry"
    for key, value in want.items():
        if key == "name" or key in have or key in TRAINING_ONLY or key in INFERENCE_ONLY:
            continue
        if key in implied and _same(implied[key], value):
            continue
        if not _same(_default(part, want["name"], key), value):
            return f"{part}.{key}: not given here, {value!r} in the entry"
    return None


def _check_section(section: dict) -> str:
    task, algorithm = section.get("model_type"), section.get("algorithm")
    if task not in ALGORITHMS:
        raise ArchitectureError(f"Architecture.model_type {task!r} is not supported; ptocr train trains "
                                f"{', '.join(ALGORITHMS)}")
    if algorithm not in ALGORITHMS[task]:
        close = close_names(str(algorithm), ALGORITHMS[task])
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ArchitectureError(f"Architecture.algorithm {algorithm!r} is not supported for model_type {task}{hint}; "
                                f"supported: {', '.join(ALGORITHMS[task])}")
    if section.get("Transform"):
        raise ArchitectureError("Architecture.Transform (a rectification network) is not supported; it must be null")
    extra = set(section) - {"model_type", "algorithm", "Transform", "Backbone", "Neck", "Head"}
    if extra:
        raise ArchitectureError(f"Architecture: unknown keys {sorted(extra)} (ptocr train reads model_type, algorithm, "
                                "Transform, Backbone, Neck, Head)")
    if not section.get("Backbone") or not section.get("Head"):
        raise ArchitectureError("Architecture: Backbone and Head are needed")
    return task


def architecture_for(section: dict) -> ConfigArchitecture:
    """The registered architecture that ``section`` (a config's ``Architecture:``) describes."""
    if not isinstance(section, dict):
        raise ArchitectureError("the config's Architecture section must be a mapping")
    task = _check_section(section)
    parts, gtc = _parts(section, task)
    misses = {}
    for name, entry in ARCHITECTURES.items():
        if entry["task"] != task:
            continue
        diffs = [d for part, _ in _PARTS
                 if (d := _difference(task, part, entry["model"].get(part), parts[part])) is not None]
        if not diffs:
            class_dim = parts["head"].get("class_dim") if task == "cls" else None
            return ConfigArchitecture(task, name, None if class_dim is None else int(class_dim), gtc,
                                      bool(parts["head"].get("fix_nan", False)))
        misses[name] = diffs[0]
    backbone = parts["backbone"].get("name")
    near = {n: d for n, d in misses.items() if ARCHITECTURES[n]["model"]["backbone"]["name"] == backbone}
    if near:
        detail = "; ".join(f"{n} ({d})" for n, d in sorted(near.items()))
        raise ArchitectureError(f"Architecture (model_type {task}, Backbone {backbone}) matches no ptocr architecture; "
                                f"closest: {detail}")
    names = sorted({ARCHITECTURES[n]["model"]["backbone"]["name"] for n in misses})
    close = close_names(str(backbone), names)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ArchitectureError(f"Architecture.Backbone.name {backbone!r} is no {task} backbone ptocr has{hint}; "
                            f"{task} backbones: {', '.join(names)}")
