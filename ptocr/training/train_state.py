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
  belongs with: a set is complete where a JSON's two files are found with those sums.

Saving over a checkpoint (``latest`` every epoch) replaces three files, which no single rename
can; a kill between them must leave a set a resume and ``ptocr eval`` can use, never a model
with another save's states. :func:`save_checkpoint` therefore writes the new set whole under the
staged names ``<prefix>.next.*`` (the model with its ``.config.json`` / ``.dict.txt``, then the
tensors, then the JSON, each written atomically), leaving the previous set untouched: the staged
JSON appearing is the commit point. It then renames the staged files into place, the JSON last.
A reader (:func:`committed`) takes the staged JSON's set where it is complete (its files found
by sha256 under the staged or the final names: the renames may have stopped anywhere), else the
final JSON's: a kill before the commit leaves the previous set, one after it the new set. The
next save first finishes such renames (or removes an uncommitted staging, and the temporary files
of a write a kill stopped) and so starts from a set under the final names.

A resume reads the set once (:func:`load_checkpoint`: its record, tensors and model file, each
hashed once); an evaluation picks the model once (:func:`resolve`: the set's model, else the final
one, which is enough to evaluate) with the metric of the record naming that file's sha256 (eval's
"metric in ckpt", :func:`saved_best`; the tensors file is not needed for it). The model is then
read expecting that sha256: a save running beside it may have renamed or replaced it meanwhile,
which the reader sees as a ``ModelFileError`` and answers by finding the set once more. A file
that goes while it is looked for (renamed by a save) counts as not there, never as an error.
"""

from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass, field
from glob import escape as glob_escape
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ptocr.atomic import give_output_permissions, temp_beside, write_atomically
from ptocr.checkpoint import META_KEY, file_sha256, sidecar_paths
from ptocr.errors import ModelFileError, PtocrError

__all__ = ["checkpoint_files", "save_checkpoint", "save_states", "committed", "load_states", "load_checkpoint",
           "model_file", "resolve", "CheckpointModel", "PaddleCheckpointError", "restore_rng", "saved_best"]

FORMAT = "ptocr-train-states/1"
STAGED = ".next"  # <prefix>.next.*: a save's new set before it is renamed into place


class PaddleCheckpointError(PtocrError):
    """``Global.checkpoints`` names a PaddleOCR checkpoint (``.pdparams``), not a ptocr train one:
    its model is to be given as ``Global.pretrained_model``."""


@dataclass(frozen=True)
class CheckpointModel:
    """The model file a reader of a checkpoint loads (:func:`resolve`): its ``path``, its
    ``sha256`` when it was chosen (load it expecting that sum: a save may replace it meanwhile)
    and the best metric recorded with that very file ({} without a record of it)."""

    path: Path
    sha256: str
    best: dict = field(default_factory=dict, compare=False)


def _stem(path: str | os.PathLike) -> str:
    """``path`` less a trailing ``.safetensors``: a checkpoint's prefix."""
    path = str(path)
    return path[: -len(".safetensors")] if path.endswith(".safetensors") else path


def checkpoint_files(prefix: str | os.PathLike) -> dict[str, Path]:
    """The three files of checkpoint ``prefix`` (a trailing ``.safetensors`` is taken off)."""
    prefix = _stem(prefix)
    return {"model": Path(prefix + ".safetensors"), "tensors": Path(prefix + ".states.safetensors"),
            "json": Path(prefix + ".states.json")}


def _staged(prefix) -> dict[str, Path]:
    """The staged names of checkpoint ``prefix``'s files (``<prefix>.next.*``)."""
    return checkpoint_files(_stem(prefix) + STAGED)


def _has_dictionary(model: Path) -> bool:
    """Whether a model file (``ptocr.save_model``'s) holds a dictionary, so has a ``.dict.txt``."""
    with safe_open(str(model), "pt") as f:
        meta = f.metadata() or {}
    try:
        return json.loads(meta.get(META_KEY, "{}")).get("dictionary") is not None
    except (ValueError, AttributeError):
        return False


def _move(src: Path, dst: Path) -> None:
    """One rename of a save (a step tests interrupt)."""
    os.replace(src, dst)


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
                model: str | os.PathLike | None = None) -> dict[Path, str]:
    """The ``.states.*`` pair of checkpoint ``prefix`` (``info``: epoch, global_step, best metric...;
    ``extra``: more tensors to keep, e.g. MultiHead's GTC branch as ``branch.<name>``), after its
    ``model`` file was written (its sha256 recorded). -> the sha256 of the tensors file and of the
    model file, by path."""
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
    sums = {files["tensors"]: sha}
    if model is not None:
        sums[Path(model)] = file_sha256(Path(model))
    record = {"format": FORMAT, "tensors_sha256": sha, "model_sha256": sums.get(Path(model)) if model else None,
              **_jsonable(info), "optimizer": groups, "scheduler": _jsonable(scheduler.state_dict()), "rng": rng}
    write_atomically(files["json"], json.dumps(record, indent=1) + "\n")
    return sums


def save_checkpoint(prefix, write_model, optimizer: torch.optim.Optimizer, scheduler, info: dict,
                    extra: dict | None = None) -> None:
    """Checkpoint ``prefix`` as a set (module docstring): ``write_model(path)`` writes the model
    file (``ptocr.save_model``) at the staged name, :func:`save_states` the rest beside it, the
    staged JSON last (the commit); then all are renamed into place, the JSON last, each file
    hashed once. A failure before the commit removes the staged files and leaves the previous
    set as it was."""
    _settle(prefix)
    staged = _staged(prefix)
    try:
        write_model(staged["model"])
        sums = save_states(_stem(staged["model"]), optimizer, scheduler, info, extra, model=staged["model"])
    except BaseException:
        if not staged["json"].is_file():  # not committed: the previous set stays the checkpoint
            _discard(staged)
        raise
    _settle(prefix, sums)  # the files just written are not hashed again


def _temporaries(path: Path) -> list[Path]:
    """What a writer (``ptocr.atomic.temp_beside``: ``.<name>.<random>.tmp``) killed while writing
    ``path`` left beside it; no other file's."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[A-Za-z0-9_]+\.tmp")
    return [p for p in path.parent.glob(f".{glob_escape(path.name)}.*.tmp") if pattern.fullmatch(p.name)]


def _discard(staged: dict[str, Path]) -> None:
    """An uncommitted staging's files (its JSON, if any, first), and the temporaries a writer
    killed midway (a real kill runs no cleanup) left of each."""
    for path in (staged["json"], staged["tensors"], staged["model"], *sidecar_paths(staged["model"])):
        path.unlink(missing_ok=True)
        for tmp in _temporaries(path):
            tmp.unlink(missing_ok=True)


def _settle(prefix, sums: dict[Path, str] | None = None) -> None:
    """Checkpoint ``prefix``'s files under the final names: a committed staged set renamed into
    place (what a save interrupted after its commit left), an uncommitted one removed (``sums``:
    the sha256 of files just written, by path)."""
    files, staged = checkpoint_files(prefix), _staged(prefix)
    found = _complete(staged["json"], files, staged, dict(sums or {})) if staged["json"].is_file() else None
    if isinstance(found, tuple):
        paths = found[1]
        if paths["tensors"] == staged["tensors"]:
            _move(staged["tensors"], files["tensors"])
        if paths["model"] == staged["model"]:
            for new, old in zip(sidecar_paths(staged["model"]), sidecar_paths(files["model"])):
                if new.is_file():
                    _move(new, old)
            if not _has_dictionary(staged["model"]):  # over a recognizer's files: not this model's dictionary
                sidecar_paths(files["model"])[1].unlink(missing_ok=True)
            _move(staged["model"], files["model"])
        _move(staged["json"], files["json"])
    _discard(staged)


def _read_record(path: Path) -> dict | str:
    """The JSON record at ``path``, or why it is none."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"{path}: not readable JSON ({e})"
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return f"{path}: not a ptocr train states file ({FORMAT})"
    return record


def _complete(json_path: Path, files: dict, staged: dict, sums: dict) -> tuple[dict, dict] | str:
    """(record, its files) where the JSON at ``json_path`` and the two files it names (by sha256,
    under the final or the staged names) are all there; else why not (``sums``: sha256 by path,
    filled in). A file that goes while it is looked at (a save renaming it) is not there."""
    record = _read_record(json_path)
    if isinstance(record, str):
        return record
    paths = {"json": json_path}
    for key in ("tensors", "model"):
        want = record.get(f"{key}_sha256")
        if want is None and key == "model":  # a record without the model's sum: the final file's
            if files["model"].is_file():
                paths["model"] = files["model"]
            continue
        for path in (staged[key], files[key]) if json_path == staged["json"] else (files[key], staged[key]):
            if path not in sums:
                try:
                    sums[path] = file_sha256(path)
                except OSError:  # not there (or renamed away meanwhile), unreadable
                    continue
            if sums[path] == want:
                paths[key] = path
                break
        if key not in paths:
            if not files[key].is_file():
                return f"{files[key]} is missing"
            return f"{files[key]}: does not belong with {json_path.name} (an interrupted save?)"
    if "model" not in paths:
        return f"{files['model']} is missing"
    return record, paths


def _committed(prefix, sums: dict) -> tuple[dict, dict[str, Path]]:
    """:func:`committed`, the sha256s it computed left in ``sums`` (by path)."""
    files, staged = checkpoint_files(prefix), _staged(prefix)
    if staged["json"].is_file():
        found = _complete(staged["json"], files, staged, sums)
        if isinstance(found, tuple):
            return found
    paddle = Path(_stem(prefix) + ".pdparams")
    if not files["json"].is_file() and paddle.is_file():
        raise PaddleCheckpointError(f"Global.checkpoints {prefix}: a PaddleOCR checkpoint ({paddle.name}); its "
                                    "optimizer state (.states, .pdopt) is pickled and not read: give it as "
                                    "Global.pretrained_model")
    for key in ("model", "json", "tensors"):
        if not files[key].is_file() and not (key != "json" and staged[key].is_file()):
            raise PtocrError(f"Global.checkpoints {prefix}: {files[key]} is missing (a ptocr train checkpoint is "
                             f"{files['model'].name} with its .states.json and .states.safetensors)")
    found = _complete(files["json"], files, staged, sums)
    if isinstance(found, str):
        raise PtocrError(found)
    return found


def committed(prefix) -> tuple[dict, dict[str, Path]]:
    """(the JSON record, the paths of its ``model``, ``tensors`` and ``json``) of checkpoint
    ``prefix``'s newest complete set (module docstring): the files a resume reads. A PaddleOCR
    checkpoint there is a :class:`PaddleCheckpointError`."""
    return _committed(prefix, {})


def _model_of(prefix, record: dict | None, paths: dict | None, sums: dict) -> CheckpointModel:
    """The :class:`CheckpointModel` of ``paths``' model (a complete set's, else None: the final
    model file), the best metric from the first record, the staged JSON's then the final one's
    (``record`` among them), that names that file's sha256."""
    files, staged = checkpoint_files(prefix), _staged(prefix)
    path = paths["model"] if paths is not None else files["model"]
    if path not in sums:
        if not path.is_file():
            raise ModelFileError(f"Global.checkpoints {prefix}: {path} is missing")
        try:
            sums[path] = file_sha256(path)
        except OSError as e:
            raise ModelFileError(f"Global.checkpoints {prefix}: cannot read {path}: {e.strerror or e}") from None
    sha = sums[path]
    candidates = [record] if record is not None else []
    candidates += [_read_record(staged["json"]), _read_record(files["json"])]
    for found in candidates:
        if isinstance(found, dict) and found.get("model_sha256") == sha:
            return CheckpointModel(path, sha, dict(found.get("best_model_dict") or {}))
    return CheckpointModel(path, sha)


def resolve(prefix) -> CheckpointModel:
    """The model ``ptocr eval`` loads for checkpoint ``prefix`` and the best metric it prints
    (``metric in ckpt``), from one look at the files: its newest complete set's model, else (no
    states beside it, or they do not fit) ``<prefix>.safetensors``, which is enough to evaluate;
    the metric of the first record (the staged JSON's, then the final one's) naming that file's
    sha256, the tensors file not needed. A missing model is a ``ModelFileError``, a PaddleOCR
    checkpoint a :class:`PaddleCheckpointError`."""
    sums: dict = {}
    try:
        record, paths = _committed(prefix, sums)
    except PaddleCheckpointError:
        raise
    except PtocrError:
        record, paths = None, None
    return _model_of(prefix, record, paths, sums)


def load_checkpoint(prefix) -> tuple[dict, dict, CheckpointModel]:
    """(the JSON record, the tensors, the model file) of checkpoint ``prefix``'s newest complete
    set (:func:`committed`), each file hashed once: what a resume reads."""
    sums: dict = {}
    record, paths = _committed(prefix, sums)
    return record, load_file(str(paths["tensors"])), _model_of(prefix, record, paths, sums)


def load_states(prefix) -> tuple[dict, dict]:
    """(the JSON record, the tensors) of checkpoint ``prefix``'s newest complete set
    (:func:`load_checkpoint` without its model)."""
    record, tensors, _ = load_checkpoint(prefix)
    return record, tensors


def model_file(prefix) -> Path:
    """The model file of checkpoint ``prefix`` (:func:`resolve`): its newest complete set's, else
    ``<prefix>.safetensors``. A PaddleOCR checkpoint is a :class:`PaddleCheckpointError`."""
    return resolve(prefix).path


def saved_best(prefix) -> dict:
    """The best metric recorded with the model file :func:`resolve` picks for checkpoint
    ``prefix`` (a record naming its sha256), {} without one: what tools/eval.py prints as
    ``metric in ckpt``, never the metric of another save's model."""
    try:
        return resolve(prefix).best
    except PtocrError:
        return {}


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
