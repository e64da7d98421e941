"""Load Paddle model files into numpy, without importing paddle.

``read_source(path)`` takes a model folder or file and returns every tensor under its
structured (layer) name, plus the parsed program for inference models. Paddle 3 (PIR)
programs have no structured names: their tensors keep the program's parameter names and
``converter.alignment`` places them by the graph instead of a mapping table. Bad input of
any kind raises ``FormatError`` (``UnsafePickleError`` for hostile pickles).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from converter.errors import FormatError, UnsafePickleError
from converter.readers.formats import ONNX, PADDLE2_INFERENCE, PADDLE3_PIR, PADDLE_TRAIN, check_lookup, detect_format, unread_models
from converter.readers.onnx import OnnxProgram, read_onnx_program
from converter.readers.pdiparams import read_file_bytes, read_pdiparams
from converter.readers.pdparams import (
    find_submodels,
    read_checkpoint,
    read_info,
    read_pdparams,
    read_safetensors_checkpoint,
    select_submodel,
)
from converter.readers.pir import PirConfig, PirOp, PirParam, PirProgram, read_pir_config, read_pir_program
from converter.readers.safetensors_file import looks_like_safetensors
from converter.readers.transformers_folder import (
    PREPROCESSOR,
    TRANSFORMERS,
    is_transformers_folder,
    read_transformers_folder,
)
from converter.readers.program import (
    DENSE_TENSOR,
    VAR_TYPE_NAMES,
    OpInfo,
    Program,
    VarInfo,
    parse_program,
    read_program,
)

__all__ = [
    "FormatError",
    "ONNX",
    "OnnxProgram",
    "OpInfo",
    "PADDLE3_PIR",
    "PaddleSource",
    "PirConfig",
    "PirOp",
    "PirParam",
    "PirProgram",
    "Program",
    "UnsafePickleError",
    "VarInfo",
    "detect_format",
    "find_submodels",
    "parse_program",
    "read_info",
    "read_pdiparams",
    "read_pdparams",
    "read_pir_config",
    "read_pir_program",
    "read_program",
    "read_source",
]


@dataclass
class PaddleSource:
    path: Path  # what the user gave (folder or file)
    format: str  # "paddle2_inference" | "paddle3_pir" | "paddle_train" | "onnx"
    # structured name -> array (train: prefix already stripped; PIR: program parameter names;
    # ONNX: the graph's names of its parameters)
    tensors: dict[str, np.ndarray]
    weights_file: Path  # the .pdiparams / .pdparams read
    weights_sha256: str  # hex sha256 of weights_file
    program_names: dict[str, str] = field(default_factory=dict)  # structured -> program var name
    submodels: list[str] = field(default_factory=list)  # distillation prefixes found ([] if none)
    submodel: str | None = None  # the one chosen
    program: Program | PirProgram | OnnxProgram | None = None  # parsed program (inference only)
    notes: list[str] = field(default_factory=list)  # human-readable facts
    config: PirConfig | None = None  # PIR: inference.yml, when present
    # The recognizer's characters as the model itself states them (PIR: inference.yml's
    # PostProcess.character_dict; ONNX: the ``character`` metadata), None when it does not.
    dictionary: list[str] | None = None

    @property
    def structured(self) -> bool:
        """Whether ``tensors`` are keyed by layer names (False: PIR and ONNX, align by the graph)."""
        return self.format not in (PADDLE3_PIR, ONNX)

    @property
    def dictionary_origin(self) -> tuple[str, str]:
        """Where ``dictionary`` came from: (for messages, the dictionary's source path)."""
        name = Path(self.path).name
        if self.format == ONNX:
            return "ONNX metadata 'character'", f"{name}:character"
        if self.format == TRANSFORMERS:
            return f"{PREPROCESSOR} character_list", f"{name}/{PREPROCESSOR}"
        return "inference.yml character_dict", f"{name}/inference.yml"


def _listed(names: list[str], n: int = 5) -> str:
    return ", ".join(names[:n]) + (f", ... (+{len(names) - n})" if len(names) > n else "")


def read_source(path: str | os.PathLike, *, submodel: str | None = None) -> PaddleSource:
    """Read a Paddle 2 or 3 inference model, a training checkpoint (folder or file) or a
    transformers checkpoint folder."""
    p = Path(path)
    check_lookup(p)
    if is_transformers_folder(p):
        if submodel is not None:
            raise FormatError(f"{p}: a transformers checkpoint holds one model; --submodel does not apply")
        return PaddleSource(**read_transformers_folder(p))
    fmt, files = detect_format(p)
    if fmt == PADDLE_TRAIN:
        source = _read_train(p, files["params"], submodel)
    elif fmt == PADDLE3_PIR:
        source = _read_pir(p, files, submodel)
    elif fmt == ONNX:
        source = _read_onnx(files["model"], submodel)
    else:
        assert fmt == PADDLE2_INFERENCE
        source = _read_inference(p, files, submodel)
    if p.is_dir():  # a folder picks one of the models it holds: say which others it left
        unread = unread_models(p, files)
        if unread:
            source.notes.append(f"not read: {_listed(unread)} in the same folder (give a file to convert that one)")
    return source


def _read_train(path: Path, params: Path, submodel: str | None) -> PaddleSource:
    data = read_file_bytes(params)
    if looks_like_safetensors(bytes(data[:10])):
        raw, entry = read_safetensors_checkpoint(params, data), None
    else:
        raw, entry = read_checkpoint(params, data, entry=submodel)
    notes = [f"training checkpoint with {len(raw)} tensors"]
    if entry is not None:
        notes[0] += f" under its key {entry!r} (the file is a dict wrapping the model's state dict)"
        submodel = None if submodel == entry else submodel
    tensors, subs, chosen = select_submodel(raw, submodel, params)
    if subs:
        notes.append(
            f"distillation checkpoint with sub-models {', '.join(subs)}; read {chosen} "
            f"({len(tensors)} tensors, prefix '{chosen}.' stripped)"
        )
    return PaddleSource(
        path=path, format=PADDLE_TRAIN, tensors=tensors, weights_file=params,
        weights_sha256=hashlib.sha256(data).hexdigest(), submodels=subs, submodel=chosen,
        notes=notes,
    )  # fmt: skip


def _read_inference(path: Path, files: dict[str, Path], submodel: str | None) -> PaddleSource:
    params = files["params"]
    info_file = files.get("info")
    if info_file is None:
        raise FormatError(
            f"{params.with_name(params.name + '.info')}: missing. It maps the program's variable "
            "names (conv2d_0.w_0, ...) to the layer names (backbone.conv1._conv.weight, ...) the "
            "converter needs; copy it from where the model came from (Paddle writes it beside "
            f"{params.name})"
        )
    program = read_program(files["model"])
    odd = [v for v in program.vars if v.persistable and v.var_type != DENSE_TENSOR]
    if odd:
        raise FormatError(
            f"{files['model']}: persistable variable {odd[0].name} is a "
            f"{VAR_TYPE_NAMES.get(odd[0].var_type, odd[0].var_type)}, which this reader does not support"
        )
    wanted = program.parameters()
    data = read_file_bytes(params)
    arrays = read_pdiparams(params, [(v.name, v.dtype_code, v.shape) for v in wanted], data=data)
    info = read_info(info_file)

    notes = [
        f"Paddle 2 inference model: {len(program.ops)} ops, {len(wanted)} tensors, "
        f"program version {program.version}"
    ]
    by_struct: dict[str, np.ndarray] = {}
    struct_to_prog: dict[str, str] = {}
    unnamed = [n for n in arrays if n not in info]
    # .info order follows the layers' definition order: friendlier than sorted program names
    for prog_name in [n for n in info if n in arrays] + unnamed:
        arr = arrays[prog_name]
        s = info.get(prog_name, prog_name)
        if s in struct_to_prog:
            raise FormatError(
                f"{info_file}: variables {struct_to_prog[s]} and {prog_name} both map to {s}"
            )
        struct_to_prog[s] = prog_name
        by_struct[s] = arr
    if unnamed:
        notes.append(
            f"{len(unnamed)} program tensors have no entry in {info_file.name} and keep their "
            f"program names: {_listed(unnamed)}"
        )
    ignored = sorted(set(info) - set(arrays))
    if ignored:
        notes.append(
            f"{len(ignored)} {info_file.name} entries not held by the program were ignored "
            f"(e.g. training-only layers): {_listed([info[n] for n in ignored])}"
        )
    tensors, subs, chosen = select_submodel(by_struct, submodel, info_file)
    prefix = f"{chosen}." if chosen else ""
    program_names = {k: struct_to_prog[prefix + k] for k in tensors}
    if subs:
        notes.append(f"names carry sub-model prefixes {', '.join(subs)}; read {chosen}")
    return PaddleSource(
        path=path, format=PADDLE2_INFERENCE, tensors=tensors, weights_file=params,
        weights_sha256=hashlib.sha256(data).hexdigest(), program_names=program_names,
        submodels=subs, submodel=chosen, program=program, notes=notes,
    )  # fmt: skip


def _read_pir(path: Path, files: dict[str, Path], submodel: str | None) -> PaddleSource:
    params = files["params"]
    program = read_pir_program(files["model"])
    if submodel is not None:
        raise FormatError(f"{files['model']}: a Paddle 3 inference program holds one model; --submodel does not apply")
    order = program.stream_order()
    data = read_file_bytes(params)
    arrays = read_pdiparams(params, [(v.name, v.dtype_code, v.shape) for v in order], data=data)
    config = read_pir_config(files["config"]) if "config" in files else None
    notes = [
        f"Paddle 3 PIR inference model: {len(program.ops)} ops, {len(order)} parameters, "
        f"program version {program.version}; no structured names (placed by graph alignment)"
    ]
    if config is not None:
        notes.append(f"{config.path.name}: model {config.model_name or '(unnamed)'}"
                     + (f", {len(config.character_dict)} characters" if config.character_dict else ""))
    # tensors in program order (the order ops declare them), the friendliest to read
    tensors = {v.name: arrays[v.name] for v in program.params if v.name in arrays}
    return PaddleSource(
        path=path, format=PADDLE3_PIR, tensors=tensors, weights_file=params,
        weights_sha256=hashlib.sha256(data).hexdigest(), program_names={k: k for k in tensors},
        program=program, notes=notes, config=config,
        dictionary=list(config.character_dict) if config and config.character_dict else None,
    )  # fmt: skip


def _read_onnx(path: Path, submodel: str | None) -> PaddleSource:
    if submodel is not None:
        raise FormatError(f"{path}: an ONNX export holds one model; --submodel does not apply")
    data = read_file_bytes(path)
    program = read_onnx_program(path)
    m = program.model
    opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(m.opsets.items()))
    notes = [
        f"ONNX model: {len(m.nodes)} nodes, {len(program.reads)} parameters, IR {m.ir_version}, opset {opsets}, "
        f"producer {m.producer or '(unnamed)'} {m.producer_version}".rstrip()
        + "; placed by graph alignment"
    ]
    if m.external_files:  # the recorded sha256 is the .onnx file's alone
        notes.append(f"tensor data read from external file(s) {_listed([f.name for f in m.external_files])}")
    chars = program.character
    if chars:
        notes.append(f"metadata 'character': {len(chars)} characters")
    return PaddleSource(
        path=path, format=ONNX, tensors=dict(program.tensors), weights_file=path,
        weights_sha256=hashlib.sha256(data).hexdigest(), program_names={k: k for k in program.tensors},
        program=program, notes=notes, dictionary=chars,
    )  # fmt: skip
