"""Reading a converted model file (.safetensors written by ``ptocr-convert``)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ptocr.architectures import ARCHITECTURES, TASKS
from ptocr.atomic import give_output_permissions, lookup_refusal, nearest_existing, temp_beside
from ptocr.dictionary import Dictionary, parse_dictionary
from ptocr.errors import ArchitectureError, DictionaryError, ModelFileError
from ptocr.models.build import build_model
from ptocr.models.float64 import compute_in_float64
from ptocr.models.model import OCRModel
from ptocr.optimize import INFERENCE_OPTIONS

# One metadata entry holding {"config": ..., "dictionary": ...} as JSON: safetensors
# stores metadata in a hash map whose order varies per process, so with one key the same
# conversion always gives the same bytes (and sha256).
META_KEY = "ptocr"


def encode_metadata(config: dict, dictionary_text: str | None) -> dict[str, str]:
    return {META_KEY: json.dumps({"config": config, "dictionary": dictionary_text}, sort_keys=True)}


def sidecar_paths(dst: Path) -> tuple[Path, Path]:
    """``<stem>.config.json`` and ``<stem>.dict.txt``: what is written beside a model file."""
    return dst.with_name(dst.stem + ".config.json"), dst.with_name(dst.stem + ".dict.txt")


def check_destination(dst: str | os.PathLike, *, force: bool = False, force_hint: str = "pass force=True"
                      ) -> list[Path]:
    """The files writing a model to ``dst`` writes or replaces (the weights, the config and the
    dictionary's place beside them, taken for a model without one too: see write_model_file),
    or a ModelFileError saying why they cannot be written."""
    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise ModelFileError(f"{dst}: the output must be a .safetensors file")
    try:
        if not dst.parent.is_dir():
            raise ModelFileError(_missing_folder(dst))
        targets = [dst, *sidecar_paths(dst)]
        for p in targets:  # force replaces files, never a folder: name the one in the way
            if p.is_dir():
                raise ModelFileError(f"{p} is a folder, not a file; it cannot be overwritten with the "
                                     f"{'model' if p == dst else 'file written beside ' + dst.name}")
        # lexists: a link to nothing is a file there too, which writing would replace
        existing = [p for p in targets if os.path.lexists(p)]
    except OSError as e:  # pathlib's checks raise on a name too long for the file system
        raise ModelFileError(f"cannot write {dst}: {e.strerror or e}") from None
    if existing and not force:
        raise ModelFileError(f"{existing[0]} already exists; {force_hint} to overwrite it")
    return targets


def _missing_folder(dst: Path) -> str:
    """Why ``dst``'s folder is not there: the nearest existing path above it is a file (or some
    other non-folder), or the folder does not exist."""
    above = nearest_existing(dst.parent)
    if os.path.lexists(above) and not above.is_dir():
        kind = "a file" if above.is_file() else "not a regular file"
        return f"{dst}: {above} is {kind}, not a folder"
    return f"{dst}: the folder {dst.parent} does not exist"


def write_model_file(state_dict: dict[str, torch.Tensor], config: dict, dictionary_text: str | None,
                     dst: str | os.PathLike) -> str:
    """Write ``dst`` (.safetensors: the model, its config and dictionary in the metadata, so it
    loads alone) and beside it ``<stem>.config.json`` and, for a recognizer, ``<stem>.dict.txt``
    (for people and hubs); -> the weights' sha256. Each file is written whole to a temporary file
    in the destination folder and renamed into place when all are complete, the weights last (a
    present .safetensors means a complete set); on any failure nothing new is left behind. The
    caller has checked the destination (check_destination)."""
    dst = Path(dst)
    config_path, dict_path = sidecar_paths(dst)
    tensors = {k: v.detach().contiguous() for k, v in state_dict.items()}
    config_text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    staged: list[tuple[Path, Path]] = []
    renamed: list[Path] = []
    try:
        staged.append((temp_beside(dst), dst))
        save_file(tensors, str(staged[0][0]), metadata=encode_metadata(config, dictionary_text))
        give_output_permissions(staged[0][0])  # save_file recreates the file as 0600
        for final, text in ((config_path, config_text), (dict_path, dictionary_text)):
            if text is not None:
                staged.append((temp_beside(final), final))
                staged[-1][0].write_text(text, encoding="utf-8")
        sha = file_sha256(staged[0][0])
        for tmp, final in staged[1:] + staged[:1]:
            os.replace(tmp, final)
            renamed.append(final)
        if dictionary_text is None:  # over a recognizer's files: its dictionary is not this model's
            dict_path.unlink(missing_ok=True)
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        if len(renamed) < len(staged):
            for final in renamed:
                final.unlink(missing_ok=True)
        raise
    return sha


@dataclass
class Converted:
    path: Path
    config: dict
    state_dict: dict[str, torch.Tensor]
    dictionary: Dictionary | None
    sha256: str


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_converted(path: str | os.PathLike, *, expected_sha256: str | None = None) -> Converted:
    path = Path(path)
    refusal = lookup_refusal(path)
    if refusal is not None:
        raise ModelFileError(f"{path}: {refusal}")
    if not path.is_file():
        if path.is_dir():
            raise ModelFileError(f"{path}: is a folder, not a .safetensors file")
        raise ModelFileError(f"{path}: " + ("not a regular file" if path.exists() else "no such file"))
    try:
        sha = file_sha256(path)
    except OSError as e:  # unreadable (permissions, an I/O error): the file is unusable, not a bug
        raise ModelFileError(f"{path}: cannot read it: {e.strerror or e}") from None
    if expected_sha256 is not None and sha != expected_sha256:
        raise ModelFileError(f"{path}: sha256 is {sha}, expected {expected_sha256}; the file is corrupt or tampered")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: not a readable safetensors file ({e})") from None
    if META_KEY not in meta:
        raise ModelFileError(f"{path}: a safetensors file without ptocr metadata (was it written by ptocr-convert?)")
    try:
        embedded = json.loads(meta[META_KEY])
        config = embedded["config"] if isinstance(embedded, dict) else None
        text = embedded.get("dictionary") if isinstance(embedded, dict) else None
        if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
            raise ValueError("no model description")
        if text is not None and not isinstance(text, str):
            raise ValueError("the dictionary is not text")
        check_config(config, text)
    except (ValueError, KeyError) as e:
        raise ModelFileError(f"{path}: the embedded config is invalid ({e})") from None
    dictionary = None
    if text is not None:
        d = config.get("dictionary") or {}
        if not isinstance(d, dict):
            raise ModelFileError(f"{path}: the embedded config is invalid (dictionary is not an object)")
        try:
            dictionary = parse_dictionary(text, bool(d.get("use_space_char")), f"{path} (embedded)")
        except DictionaryError as e:
            raise ModelFileError(f"{path}: {e}") from None
        if d.get("sha256") and d["sha256"] != dictionary.sha256():
            raise ModelFileError(f"{path}: the embedded dictionary does not match the config's sha256")
    return Converted(path, config, state, dictionary, sha)


def check_config(config: dict, dictionary_text: str | None) -> None:
    """The shape of a config the predictors rely on (ValueError says what is wrong), so a
    tampered file fails here with ModelFileError, not with a KeyError/TypeError later."""
    task = config.get("task")
    if task not in TASKS:
        raise ValueError(f"task is {task!r:.40}, expected one of {', '.join(TASKS)}")
    for section in ("preprocess", "postprocess", "inference"):
        if not isinstance(config.get(section, {}), dict):
            raise ValueError(f"{section} is not an object")
    for key, value in config.get("inference", {}).items():
        if key not in INFERENCE_OPTIONS:
            raise ValueError(f"inference has an unknown setting {key!r:.40}; known: {', '.join(INFERENCE_OPTIONS)}")
        if not isinstance(value, INFERENCE_OPTIONS[key]):
            raise ValueError(f"inference.{key} is {value!r:.40}, expected a {INFERENCE_OPTIONS[key].__name__}")
    model = config["model"]
    for part in ("backbone", "neck", "head"):
        value = model.get(part)
        if not (isinstance(value, dict) or (part == "neck" and value is None)):
            raise ValueError(f"model.{part} is not an object")
    paths = model.get("float64_modules", [])
    if not (isinstance(paths, list) and all(isinstance(p, str) for p in paths)):
        raise ValueError(f"model.float64_modules is {paths!r:.40}, expected a list of module paths")
    if task == "rec" and dictionary_text is None:
        raise ValueError("a recognizer without its dictionary")
    arch = config.get("architecture")
    if arch in ARCHITECTURES and ARCHITECTURES[arch]["task"] != task:
        raise ValueError(f"task is {task!r} but architecture {arch} is a {ARCHITECTURES[arch]['task']} model")


def model_from_state(model_cfg: dict, state_dict: dict[str, torch.Tensor], *, where: str = "") -> OCRModel:
    """Build the architecture the config describes and load the weights strictly."""
    try:
        model = build_model(model_cfg, device="meta")
    except ArchitectureError as e:
        raise ModelFileError(f"{where}: {e}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = [k for k in expected if k in state_dict and tuple(expected[k].shape) != tuple(state_dict[k].shape)]
    # Floating parameters take any float precision (the predictor casts); anything else
    # (int, bool, complex in place of float) would fail or be silently mangled later.
    bad_dtype = [k for k in expected if k in state_dict and not _dtype_fits(state_dict[k].dtype, expected[k].dtype)]
    if bad_dtype:
        k = bad_dtype[0]
        raise ModelFileError(
            f"{where}: tensor {k} is {state_dict[k].dtype}, the architecture needs {expected[k].dtype}"
            + (f" (+{len(bad_dtype) - 1} more)" if len(bad_dtype) > 1 else "")
        )
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
        if wrong:
            parts.append("shape mismatch " + ", ".join(
                f"{k} {list(state_dict[k].shape)} vs {list(expected[k].shape)}" for k in wrong[:8]))
        raise ModelFileError(f"{where}: weights do not fit the architecture: " + "; ".join(parts))
    # Built on the meta device and given the loaded tensors: no random init to pay for.
    model.load_state_dict({k: _aligned(v) for k, v in state_dict.items()}, strict=True, assign=True)
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        # A buffer the state dict does not carry (computed in __init__): build for real.
        model = build_model(model_cfg)
        model.load_state_dict(state_dict, strict=True)
    # Assigned tensors come in the file's type: the float64 modules take theirs again.
    return compute_in_float64(model, model_cfg.get("float64_modules")).eval()


# MKL and oneDNN pick code paths (and so summation orders) by the alignment of their operands,
# and MKL promises reproducible results only for 64-byte aligned arrays. Tensors read from a
# file or a Paddle buffer are views at any offset; PyTorch's CPU allocator aligns to 64.
_ALIGNMENT = 64


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """``t`` in storage of its own at a 64-byte boundary (a copy only where it is not already)."""
    if t.device.type == "cpu" and t.data_ptr() % _ALIGNMENT:
        return t.clone(memory_format=torch.contiguous_format)
    return t


def _dtype_fits(got: torch.dtype, want: torch.dtype) -> bool:
    if want.is_floating_point:
        return got.is_floating_point
    return got == want or (not got.is_floating_point and not got.is_complex and got != torch.bool
                           and want != torch.bool)
