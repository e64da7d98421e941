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
from converter.readers.safetensors_file import read_safetensors

NAME_TABLE_KEY = "StructuredToParameterName@@"
_SUBMODEL = re.compile(r"[A-Z][A-Za-z0-9_]*\Z")  # Student, Student2, Teacher, ...
_MAX_SUBMODELS = 8


# Keys of optimizer state (Paddle names accumulators <param>_<kind>_<n>) and its extras.
_OPTIMIZER_NAME = re.compile(
    r".*_(moment\d?|beta\d_pow_acc|velocity|mean_square|mean_grad|squared|linear|inf_norm)_\d+\Z"
)
_OPTIMIZER_KEYS = frozenset(("LR_Scheduler", "master_weights"))
UNPACK_KEY = "UnpackBigParamInfor@@"


def read_pdparams(path: str | Path, data: bytes | bytearray | None = None) -> dict[str, np.ndarray]:
    """{key: array} exactly as saved (prefixes kept), the name table dropped; bfloat16 tensors
    (uint16 bits in the pickle) widened to float32. ``data``: the file's bytes when already read.
    A checkpoint dict wrapping one model's state dict (``{'model': ..., 'epoch': 3}``) gives that."""
    return read_checkpoint(path, data)[0]


def read_checkpoint(
    path: str | Path, data: bytes | bytearray | None = None, entry: str | None = None
) -> tuple[dict[str, np.ndarray], str | None]:
    """-> (tensors, the key of the wrapping dict they were found under, None for a state dict).

    ``entry``: that key, when the file is a dict wrapping several models (``{'model', 'ema'}``);
    ignored for a plain state dict."""
    path = Path(path)
    obj = safe_pickle.load(path) if data is None else safe_pickle.loads(data, path)
    if not isinstance(obj, dict):
        raise _not_a_dict(obj, path)
    if entry is not None and isinstance(obj.get(entry), dict) and not _holds_tensors(obj):
        return _state_dict(obj[entry], path, entry), entry
    if _holds_tensors(obj) or not any(isinstance(v, dict) for v in obj.values()):
        return _state_dict(obj, path, None), None
    key = _model_entry(obj, path)
    return _state_dict(obj[key], path, key), key


def _as_tensor(v) -> np.ndarray | None:
    """An array for what paddle.save writes for a tensor: an ndarray (in a state dict), a numpy
    scalar, or the tuple (name, ndarray) (a Tensor outside a state dict); None otherwise."""
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, np.generic):
        return np.asarray(v)
    if type(v) is tuple and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], np.ndarray):
        return v[1]
    return None


def _holds_tensors(d: dict) -> bool:
    return any(_as_tensor(v) is not None for k, v in d.items() if k != NAME_TABLE_KEY)


def _not_a_dict(obj, path: Path) -> FormatError:
    t = _as_tensor(obj)
    if t is not None:
        name = f" {obj[0]}" if type(obj) is tuple else ""
        return FormatError(
            f"{path}: expected a dict of tensors (a model's state dict), found one tensor{name} of shape "
            f"{list(t.shape)}; save the model with paddle.save(model.state_dict(), path)"
        )
    if isinstance(obj, (list, tuple)) and obj and all(_as_tensor(v) is not None for v in obj):
        return FormatError(
            f"{path}: expected a dict of tensors (a model's state dict), found a {type(obj).__name__} of "
            f"{len(obj)} tensors without layer names; save the model with paddle.save(model.state_dict(), path)"
        )
    return FormatError(f"{path}: expected a dict of tensors, found a pickled {type(obj).__name__}")


def _is_optimizer_state(key, d: dict) -> bool:
    names = [k for k in d if isinstance(k, str) and k not in _OPTIMIZER_KEYS]
    return (isinstance(key, str) and "opt" in key.lower()) or any(k in _OPTIMIZER_KEYS for k in d) or (
        bool(names) and all(_OPTIMIZER_NAME.match(k) for k in names)
    )


def _model_entry(obj: dict, path: Path) -> str:
    """The key of the one model state dict in a checkpoint dict (its other entries being
    optimizer state, epoch, metrics, ...); an error naming what was found otherwise."""
    holders = [k for k, v in obj.items() if isinstance(v, dict) and _holds_tensors(v)]
    models = [k for k in holders if not _is_optimizer_state(k, obj[k])]
    keys = ", ".join(repr(k) for k in list(obj)[:10])
    if len(models) == 1 and isinstance(models[0], str):
        return models[0]
    if not models:
        what = f"only optimizer state ({', '.join(map(repr, holders))})" if holders else "no tensors"
        raise FormatError(
            f"{path}: a checkpoint dict (keys {keys}) with {what}, no model state dict; give the "
            ".pdparams that paddle.save(model.state_dict(), path) wrote"
        )
    raise FormatError(
        f"{path}: a checkpoint dict holding several state dicts ({', '.join(map(repr, models))}); "
        "choose one with --submodel KEY (submodel=KEY)"
    )


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def _state_dict(obj: dict, path: Path, entry: str | None) -> dict[str, np.ndarray]:
    where = f"{path}" + (f" (entry {entry!r})" if entry is not None else "")
    if UNPACK_KEY in obj:
        raise FormatError(
            f"{where}: holds tensors split into slices (paddle.save with protocol 2 or 3 of tensors over "
            "1 GiB), which this reader does not support; save it again with protocol=4"
        )
    out: dict[str, np.ndarray] = {}
    for k, v in obj.items():
        if k == NAME_TABLE_KEY:
            continue
        if not isinstance(k, str):
            raise FormatError(f"{where}: expected tensor names as keys, found a {type(k).__name__} key")
        t = _as_tensor(v)
        if t is None:
            raise FormatError(f"{where}: entry {k!r} is {_a(type(v).__name__)}, not a tensor")
        if t.dtype == np.uint16:  # paddle.save writes a bfloat16 tensor as its bits (paddle.load reads them back so)
            t = (t.astype(np.uint32) << 16).view(np.float32)  # widened exactly, as the .pdiparams reader does
        out[k] = t
    if not out:
        raise FormatError(f"{where}: the checkpoint holds no tensors")
    return out


def read_safetensors_checkpoint(path: str | Path, data: bytes | bytearray) -> dict[str, np.ndarray]:
    """What ``paddle.save(..., safetensors=True)`` writes under the .pdparams name: {name: array},
    bfloat16 widened as in the pickles."""
    return _state_dict(read_safetensors(Path(path), data, widen_bfloat16=True), Path(path), None)


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
