"""``ptocr train``'s checkpoints without pickle: what PaddleOCR's ``save_model`` writes, as files.

A checkpoint ``<dir>/<prefix>`` (``latest``, ``best_accuracy``, ``iter_epoch_N``) is:

* ``<prefix>.safetensors`` (+ ``.config.json``, ``.dict.txt``): the model, by ``ptocr.save_model``
  (``ptocr.load`` and ``create_model(arch, pretrained=...)`` read it);
* ``<prefix>.states.safetensors``: the optimizer's tensors (``state.<param index>.<name>``), the
  random generators' (torch's, numpy's), so a resumed run draws what the straight one would, and
  a MultiHead's training-only GTC branch (``branch.<name>``), which the model file leaves out;
* ``<prefix>.states.json``: everything else: the optimizer's param groups and scalar state, the
  LR scheduler's state, ``epoch``, ``global_step``, the best metric (PaddleOCR's ``.states``), the
  python ``random`` state, and the sha256 of the ``.states.safetensors`` and of the model file it
  belongs with. It is written last: a checkpoint is complete when it is there and both match.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ptocr.atomic import give_output_permissions, temp_beside, write_atomically
from ptocr.checkpoint import file_sha256
from ptocr.errors import PtocrError

__all__ = ["checkpoint_files", "save_states", "load_states", "restore_rng", "saved_best"]

FORMAT = "ptocr-train-states/1"


def checkpoint_files(prefix: str | os.PathLike) -> dict[str, Path]:
    """The three files of checkpoint ``prefix`` (a trailing ``.safetensors`` is taken off)."""
    prefix = str(prefix)
    if prefix.endswith(".safetensors"):
        prefix = prefix[: -len(".safetensors")]
    return {"model": Path(prefix + ".safetensors"), "tensors": Path(prefix + ".states.safetensors"),
            "json": Path(prefix + ".states.json")}


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (np.generic,)):
        return value.item()
    return value


def _split_optimizer(state: dict) -> tuple[dict, dict]:
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = _jsonable(value)
    return tensors, {"param_groups": _jsonable(state["param_groups"]), "scalars": scalars}


def _rng_state() -> tuple[dict, dict]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state(), "rng.numpy": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    version, internal, gauss_next = random.getstate()
    return tensors, {"numpy": [kind, int(pos), int(has_gauss), float(gauss)],
                     "python": [version, list(internal), gauss_next]}


def save_states(prefix, optimizer: torch.optim.Optimizer, scheduler, info: dict, extra: dict | None = None,
                model: str | os.PathLike | None = None) -> None:
    """The ``.states.*`` pair of checkpoint ``prefix`` (``info``: epoch, global_step, best metric...;
    ``extra``: more tensors to keep, e.g. MultiHead's GTC branch as ``branch.<name>``), after its
    ``model`` file was written (its sha256 recorded)."""
    files = checkpoint_files(prefix)
    tensors, groups = _split_optimizer(optimizer.state_dict())
    rng_tensors, rng = _rng_state()
    tmp = temp_beside(files["tensors"])
    try:
        extra = {k: v.detach().cpu().contiguous() for k, v in (extra or {}).items()}
        save_file({**tensors, **rng_tensors, **extra}, str(tmp), metadata={"format": FORMAT})
        give_output_permissions(tmp)  # save_file recreates the file as 0600
        sha = file_sha256(tmp)
        os.replace(tmp, files["tensors"])
    finally:
        tmp.unlink(missing_ok=True)
    model_sha = file_sha256(Path(model)) if model is not None else None
    record = {"format": FORMAT, "tensors_sha256": sha, "model_sha256": model_sha, **_jsonable(info), "optimizer": groups,
              "scheduler": _jsonable(scheduler.state_dict()), "rng": rng}
    write_atomically(files["json"], json.dumps(record, indent=1) + "\n")


def load_states(prefix) -> tuple[dict, dict]:
    """(the JSON record, the tensors) of checkpoint ``prefix``, checked to belong together."""
    files = checkpoint_files(prefix)
    paddle = Path(str(files["model"])[: -len(".safetensors")] + ".pdparams")
    if not files["json"].is_file() and paddle.is_file():
        raise PtocrError(f"Global.checkpoints {prefix}: a PaddleOCR checkpoint ({paddle.name}); its optimizer state "
                         "(.states, .pdopt) is pickled and not read: give it as Global.pretrained_model")
    for key in ("model", "json", "tensors"):
        if not files[key].is_file():
            raise PtocrError(f"Global.checkpoints {prefix}: {files[key]} is missing (a ptocr train checkpoint is "
                             f"{files['model'].name} with its .states.json and .states.safetensors)")
    try:
        record = json.loads(files["json"].read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PtocrError(f"{files['json']}: not readable JSON ({e})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise PtocrError(f"{files['json']}: not a ptocr train states file ({FORMAT})")
    for key in ("tensors", "model"):
        want = record.get(f"{key}_sha256")
        if (want is not None or key == "tensors") and file_sha256(files[key]) != want:
            raise PtocrError(f"{files[key]}: does not belong with {files['json'].name} (an interrupted save?)")
    return record, load_file(str(files["tensors"]))


def saved_best(prefix) -> dict:
    """The best metric recorded with checkpoint ``prefix`` (its ``.states.json``), {} without one:
    what tools/eval.py prints as ``metric in ckpt``; the model file alone is enough to evaluate."""
    try:
        record = json.loads(checkpoint_files(prefix)["json"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return dict(record.get("best_model_dict") or {}) if isinstance(record, dict) else {}


def optimizer_state(record: dict, tensors: dict) -> dict:
    """The optimizer ``state_dict`` rebuilt from a checkpoint's parts."""
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in record["optimizer"]["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": record["optimizer"]["param_groups"]}


def restore_rng(record: dict, tensors: dict) -> None:
    """torch's, numpy's and python's generators as the checkpoint saved them."""
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, gauss = record["rng"]["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = record["rng"]["python"]
    random.setstate((version, tuple(internal), gauss_next))
