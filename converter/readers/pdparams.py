"""Training checkpoints (``*.pdparams``) and the ``.pdiparams.info`` name table.

Both are pickles (paddle.save): a checkpoint is {structured name: ndarray} plus a
``StructuredToParameterName@@`` table we do not need; the .info is
{program variable name: {'structured_name': str, 'stop_gradient': bool, 'trainable': bool}}.
Distillation checkpoints nest whole models under capitalised prefixes
(``Student.``, ``Student2.``, ``Teacher.``); the inference model is the Student.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from converter.errors import FormatError
from converter.readers import safe_pickle

NAME_TABLE_KEY = "StructuredToParameterName@@"
_SUBMODEL = re.compile(r"[A-Z][A-Za-z0-9_]*\Z")  # Student, Student2, Teacher, ...
_MAX_SUBMODELS = 8


def read_pdparams(path: str | Path, data: bytes | bytearray | None = None) -> dict[str, np.ndarray]:
    """{key: array} exactly as saved (prefixes kept), the name table dropped; bfloat16 tensors
    (uint16 bits in the pickle) widened to float32. ``data``: the file's bytes when already read."""
    path = Path(path)
    obj = safe_pickle.load(path) if data is None else safe_pickle.loads(data, path)
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: expected a dict of tensors, found a pickled {type(obj).__name__}")
    out: dict[str, np.ndarray] = {}
    for k, v in obj.items():
        if k == NAME_TABLE_KEY:
            continue
        if not isinstance(k, str):
            raise FormatError(f"{path}: expected tensor names as keys, found a {type(k).__name__} key")
        if isinstance(v, np.generic):
            v = np.asarray(v)
        if not isinstance(v, np.ndarray):
            raise FormatError(f"{path}: entry {k!r} is a {type(v).__name__}, not a tensor")
        if v.dtype == np.uint16:  # paddle.save writes a bfloat16 tensor as its bits (paddle.load reads them back so)
            v = (v.astype(np.uint32) << 16).view(np.float32)  # widened exactly, as the .pdiparams reader does
        out[k] = v
    if not out:
        raise FormatError(f"{path}: the checkpoint holds no tensors")
    return out


def find_submodels(names: Iterable[str]) -> list[str]:
    """Distillation prefixes, in first-seen order, or [] if the names are one plain model.

    A prefix counts only when EVERY name has a capitalised first dotted component and
    there are few of them: plain models' top-level layers are lower case (backbone, head).
    """
    seen: dict[str, None] = {}
    for n in names:
        head, dot, rest = n.partition(".")
        if not dot or not rest or not _SUBMODEL.match(head):
            return []
        seen[head] = None
        if len(seen) > _MAX_SUBMODELS:
            return []
    return list(seen)


def select_submodel(
    tensors: dict[str, np.ndarray], submodel: str | None, where: str | Path
) -> tuple[dict[str, np.ndarray], list[str], str | None]:
    """-> (tensors of the chosen sub-model with its prefix stripped, all prefixes, chosen)."""
    subs = find_submodels(tensors)
    if not subs:
        if submodel is not None:
            tops = sorted({k.split(".", 1)[0] for k in tensors})
            raise FormatError(
                f"{where}: sub-model {submodel!r} asked for, but this is not a distillation "
                f"checkpoint (top-level names: {', '.join(tops[:10])})"
            )
        return tensors, [], None
    if submodel is None:
        if "Student" in subs:
            submodel = "Student"
        elif len(subs) == 1:
            submodel = subs[0]
        else:
            raise FormatError(
                f"{where}: distillation checkpoint with sub-models {', '.join(subs)} and no "
                "Student; choose one with submodel=..."
            )
    elif submodel not in subs:
        raise FormatError(
            f"{where}: no sub-model {submodel!r} in this distillation checkpoint "
            f"(it holds {', '.join(subs)})"
        )
    prefix = submodel + "."
    chosen = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return chosen, subs, submodel


def read_info(path: str | Path, data: bytes | bytearray | None = None) -> dict[str, str]:
    """``.pdiparams.info`` -> {program variable name: structured name}."""
    path = Path(path)
    obj = safe_pickle.load(path) if data is None else safe_pickle.loads(data, path)
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: expected a dict of parameter names, found a pickled {type(obj).__name__}")
    out: dict[str, str] = {}
    for k, v in obj.items():
        name = v.get("structured_name") if isinstance(v, dict) else v
        if not isinstance(k, str) or not isinstance(name, str) or not name:
            raise FormatError(
                f"{path}: entry {k!r:.80} does not map a variable name to a structured name"
            )
        out[k] = name
    return out
