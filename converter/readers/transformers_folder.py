"""Read a Hugging Face transformers checkpoint folder of a PP-OCR model (``config.json`` +
``model.safetensors``, as PaddlePaddle publishes them in its ``*_safetensors`` Hub repos or as
``save_pretrained`` writes them), without transformers or torch.

The tensors come out under ptocr's names in the fused form, Linear weights in Paddle's
[in, out] layout like every reader's (``converter.transformers_checkpoint.to_ptocr``), so the
rest of the conversion (architecture detection, strict mapping, writing) is the Paddle one. A
recognizer's characters come from ``preprocessor_config.json``'s ``character_list`` (blank
first) when the folder has one.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from converter.errors import FormatError
from converter.readers.safetensors_file import read_safetensors

TRANSFORMERS = "transformers"
CONFIG, WEIGHTS, PREPROCESSOR = "config.json", "model.safetensors", "preprocessor_config.json"


def is_transformers_folder(path: Path) -> bool:
    """A folder holding transformers' ``config.json`` and ``model.safetensors``."""
    return path.is_dir() and (path / CONFIG).is_file() and (path / WEIGHTS).is_file()


def read_transformers_folder(path: Path) -> dict:
    """The folder as the fields of a ``PaddleSource`` of format "transformers"."""
    from converter.transformers_checkpoint import to_ptocr

    config = _json(path / CONFIG)
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str):
        raise FormatError(f"{path / CONFIG}: no model_type; not a transformers model config")
    data = (path / WEIGHTS).read_bytes()
    tensors = _safetensors(path / WEIGHTS, data)
    what = f"{path} ({model_type})"
    mapped = to_ptocr(tensors, model_type, what)
    characters = _characters(path / PREPROCESSOR)
    notes = [f"transformers checkpoint: model type {model_type}, {len(tensors)} tensors, "
             f"read as ptocr's fused form ({len(mapped)} tensors)"]
    if characters is not None:
        notes.append(f"{PREPROCESSOR}: {len(characters)} characters")
    return dict(path=path, format=TRANSFORMERS, tensors=mapped, weights_file=path / WEIGHTS,
                weights_sha256=hashlib.sha256(data).hexdigest(), notes=notes, dictionary=characters)


def _json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"{path}: not readable JSON ({e})") from None


def _safetensors(path: Path, data: bytes) -> dict[str, np.ndarray]:
    tensors = read_safetensors(path, data, widen_bfloat16=False)
    odd = sorted(k for k, v in tensors.items() if v.dtype.kind == "f" and v.dtype != np.float32)
    if odd:
        raise FormatError(f"{path}: {odd[0]} is {tensors[odd[0]].dtype}; ptocr reads float32 checkpoints")
    return tensors


def _characters(path: Path) -> list[str] | None:
    """``character_list`` without its blank (and without the trailing space the head adds)."""
    if not path.is_file():
        return None
    obj = _json(path)
    if not isinstance(obj, dict):
        raise FormatError(f"{path}: expected a JSON object, found {type(obj).__name__}")
    listed = obj.get("character_list")
    if not listed:
        return None
    if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
        raise FormatError(f"{path}: character_list is not a list of strings")
    chars = listed[1:]  # class 0 is the CTC blank
    return chars[:-1] if chars and chars[-1] == " " else chars
