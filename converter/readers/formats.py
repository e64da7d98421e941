"""Find which Paddle format a folder or file holds, and tell foreign files apart.

Detection is by file names first (what Paddle writes), then each chosen file's first
bytes are checked so that a renamed zip, an HTML error page or a Git LFS pointer is
reported as such instead of failing deep inside a parser.
"""

from __future__ import annotations

import io
import os
import pickletools
import struct
from pathlib import Path

from converter.errors import FormatError
from converter.readers.safetensors_file import looks_like_safetensors
from ptocr.atomic import lookup_refusal

PADDLE2_INFERENCE = "paddle2_inference"
PADDLE_TRAIN = "paddle_train"
PADDLE3_PIR = "paddle3_pir"
ONNX = "onnx"  # an ONNX file exported from a PP-OCR Paddle program (paddle2onnx)

_EXPECTED = (
    "expected a Paddle 2 inference model (inference.pdmodel + inference.pdiparams "
    "+ inference.pdiparams.info), a Paddle 3 inference model (inference.json + "
    "inference.pdiparams [+ inference.yml]), a training checkpoint (*.pdparams), an ONNX "
    "export of a PP-OCR program (*.onnx) or a transformers checkpoint folder (config.json + "
    "model.safetensors)"
)


def describe_bytes(head: bytes, size: int | None = None) -> str:
    """A short guess at what a file is, from its first bytes (for error messages)."""
    if size == 0 or not head:
        return "an empty file"
    if head.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer (the real file was never downloaded)"
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (e.g. a PyTorch .pt/.pth checkpoint)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip file (e.g. a .tar.gz archive)"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "a tar archive"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (e.g. a Keras model)"
    if head[0] == 0x80 and len(head) > 1 and head[1] <= 5:
        return f"a Python pickle (protocol {head[1]})"
    if len(head) >= 10 and head[8:10] == b'{"':
        return "a safetensors file"
    if looks_like_text_pickle(head):
        return "a protocol-0 (text) pickle, which Paddle never writes"
    stripped = head.lstrip()
    if stripped[:1] == b"{":
        return "JSON text (an object)"
    if stripped[:1] == b"[":
        return "JSON text (an array)"
    if stripped[:1] == b"<":
        return "HTML/XML text (a failed download?)"
    if looks_like_tensor_stream(head):
        return "a Paddle tensor stream (.pdiparams)"
    if looks_like_onnx(head):
        return "an ONNX model (protobuf)"
    if head[0] == 0x0A:
        return "a protobuf message (e.g. a Paddle program)"
    sample = head[:64]
    text = _utf8_start(head[:256])
    if text and all(ch.isprintable() or ch in "\t\r\n" for ch in text[:64]):
        return f"text starting with {text[:40]!r}"
    return "binary data starting with " + sample[:16].hex(" ")


def _utf8_start(head: bytes) -> str | None:
    """``head`` as UTF-8 text, a character cut at its end left out; None where it is not UTF-8."""
    for cut in range(4):  # a UTF-8 character is at most 4 bytes
        try:
            return head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def looks_like_text_pickle(head: bytes) -> bool:
    """A protocol-0 (text) pickle: it starts as one of a container or an object does (MARK or
    GLOBAL), and every opcode in ``head`` is a protocol-0 one. The opcodes are only decoded
    (``pickletools.genops``), never run."""
    if head[:1] not in (b"(", b"c"):
        return False
    seen = 0
    try:
        for op, _, _ in pickletools.genops(io.BytesIO(head)):
            if op.proto != 0:
                return False
            seen += 1
            if op.name == "STOP":
                break
    except Exception:  # truncated at the end of ``head``, or not a pickle at all from here on
        pass
    return seen >= 2


def looks_like_tensor_stream(head: bytes) -> bool:
    """uint32 LoDTensor version 0, uint64 lod_level (small), then uint32 tensor version 0."""
    if len(head) < 16:
        return False
    ver, lod_level = struct.unpack_from("<IQ", head, 0)
    if ver != 0 or lod_level > 8:
        return False
    if lod_level == 0:
        return struct.unpack_from("<I", head, 12)[0] == 0
    return True


def looks_like_onnx(head: bytes) -> bool:
    """A ModelProto starts with a field paddle2onnx and torch write first: ir_version (1,
    varint), producer_name (2), or graph (7) when nothing precedes it."""
    return len(head) >= 2 and (head[0] == 0x08 and 3 <= head[1] < 0x40 or head[0] in (0x12, 0x3A))


def _onnx(model: Path) -> tuple[str, dict[str, Path]]:
    sniff(model, "onnx")
    return ONNX, {"model": model, "params": model}


def _head(path: Path, n: int = 512) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as f:
            return f.read(n), os.fstat(f.fileno()).st_size
    except OSError as e:
        raise FormatError(f"{path}: cannot read: {e.strerror or e}") from None


def sniff(path: Path, kind: str) -> None:
    """Raise FormatError if ``path``'s first bytes cannot start a file of ``kind``
    ('pickle', 'program' or 'tensor_stream')."""
    head, size = _head(path)
    if kind == "pickle":
        if looks_like_text_pickle(head):  # refused unread: paddle.save writes binary pickles
            raise FormatError(
                f"{path}: a protocol-0 (text) pickle, which Paddle never writes; expected a binary "
                "Python pickle as paddle.save writes"
            )
        ok = bool(head) and (
            (head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5) or head[:1] in (b"(", b"}", b"]")
        )
        what = "a Python pickle"
    elif kind == "program":
        ok = head[:1] in (b"\x0a", b"\x1a", b"\x22", b"\x2a")  # ProgramDesc fields 1, 3, 4, 5
        what = "a Paddle ProgramDesc protobuf"
    elif kind == "json":
        ok = head.lstrip()[:1] == b"{"
        what = "a Paddle 3 PIR program (JSON)"
    elif kind == "onnx":
        ok = looks_like_onnx(head)
        what = "an ONNX model (ModelProto protobuf)"
    elif kind == "tensor_stream":
        ok = size == 0 or looks_like_tensor_stream(head)
        what = "a Paddle tensor stream (LoDTensor header)"
    else:  # pragma: no cover - programming error
        raise ValueError(kind)
    if not ok:
        raise FormatError(f"{path}: expected {what}, but it looks like {describe_bytes(head, size)}")


def _pir(model: Path, params: Path) -> tuple[str, dict[str, Path]]:
    """Paddle 3: inference.json + inference.pdiparams (+ inference.yml beside them)."""
    if not params.is_file():
        raise FormatError(f"{model}: the weights file {params.name} is missing beside the program")
    files = {"model": model, "params": params}
    config = model.with_suffix(".yml")
    if config.is_file():
        files["config"] = config
    sniff(model, "json")
    sniff(params, "tensor_stream")
    return PADDLE3_PIR, files


def _inference(model: Path, params: Path) -> tuple[str, dict[str, Path]]:
    files = {"model": model, "params": params}
    info = params.with_name(params.name + ".info")
    if info.is_file():
        files["info"] = info
    sniff(model, "program")
    sniff(params, "tensor_stream")
    if "info" in files:
        sniff(info, "pickle")
    return PADDLE2_INFERENCE, files


def _train(params: Path) -> tuple[str, dict[str, Path]]:
    head, _ = _head(params)
    if looks_like_tensor_stream(head):
        raise FormatError(
            f"{params}: a Paddle tensor stream with no tensor names (a renamed .pdiparams, or paddle.save(..., "
            "use_binary_format=True)), not a checkpoint; give the inference folder, or save the model with "
            "paddle.save(model.state_dict(), path)"
        )
    if not looks_like_safetensors(head):  # paddle.save(..., safetensors=True) writes that
        sniff(params, "pickle")
    files = {"params": params}
    config = params.with_name("config.yml")
    if config.is_file():
        files["config"] = config
    return PADDLE_TRAIN, files


def _listing(names: list[str], limit: int = 20) -> str:
    if not names:
        return "it is empty"
    shown = ", ".join(names[:limit])
    return f"found: {shown}" + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


_MODEL_SUFFIXES = frozenset((".pdmodel", ".pdiparams", ".pdparams", ".onnx"))


def _looks_like_model_folder(d: Path) -> bool:
    """``d`` holds a file Paddle (or paddle2onnx) writes for a model; its contents are not read."""
    try:
        return any(os.path.splitext(e.name)[1] in _MODEL_SUFFIXES and e.is_file() for e in d.iterdir())
    except OSError:
        return False


def _no_model_in(d: Path, names: list[str]) -> FormatError:
    """No model in ``d`` (its files: ``names``): what it holds instead, and its sub-folders that
    look like models (a parent folder given for a model folder)."""
    try:
        folders = sorted(e.name for e in d.iterdir() if e.is_dir())
    except OSError:
        folders = []
    models = [f for f in folders if _looks_like_model_folder(d / f)]
    if models:
        shown = ", ".join(models[:5]) + (f" (+{len(models) - 5} more)" if len(models) > 5 else "")
        itself = "no model files itself" if not names else f"no model itself ({_listing(names, 5)})"
        return FormatError(f"{d}: holds {itself} but has sub-folders; it holds folders: {shown}; give one of them")
    if folders and not names:
        return FormatError(f"{d}: no Paddle model found (it holds no files, only folders: "
                           f"{', '.join(folders[:5])}{', ...' if len(folders) > 5 else ''}); {_EXPECTED}")
    return FormatError(f"{d}: no Paddle model found ({_listing(names)}); {_EXPECTED}")


def check_lookup(path: str | os.PathLike) -> None:
    """A FormatError naming why the file system refuses to look ``path`` up (``lookup_refusal``)."""
    refusal = lookup_refusal(path)
    if refusal is not None:
        raise FormatError(f"{os.fspath(path)}: {refusal}")


def detect_format(path: str | os.PathLike) -> tuple[str, dict[str, Path]]:
    """("paddle2_inference", {"model", "params"[, "info"]}), ("paddle3_pir", {"model", "params"[,
    "config"]}), ("paddle_train", {"params"[, "config"]}) or ("onnx", {"model", "params"}: the
    same .onnx file).

    ``path`` is a model folder, one of its files, or Paddle's path prefix (``dir/inference``).
    """
    p = Path(path)
    if p.is_dir():
        return _detect_dir(p)
    if p.is_file():
        return _detect_file(p)
    if p.with_name(p.name + ".pdmodel").is_file():  # Paddle's "path prefix" convention
        return _detect_file(p.with_name(p.name + ".pdmodel"))
    if p.with_name(p.name + ".json").is_file():
        return _detect_file(p.with_name(p.name + ".json"))
    if p.exists():  # a device, a FIFO, a socket: never read as a model
        raise FormatError(f"{p}: not a regular file or folder")
    raise FormatError(f"{p}: no such file or folder")


def _detect_file(p: Path) -> tuple[str, dict[str, Path]]:
    name = p.name
    if name.endswith(".pdiparams.info"):
        p = p.with_name(name[: -len(".info")])
        name = p.name
    stem, suffix = os.path.splitext(name)
    if suffix == ".pdparams":
        return _train(p)
    if suffix == ".pdmodel":
        params = p.with_suffix(".pdiparams")
        if not params.is_file():
            raise FormatError(f"{p}: the weights file {params.name} is missing beside the program")
        return _inference(p, params)
    if suffix == ".pdiparams":
        if not p.is_file():  # reached from a .info path
            raise FormatError(f"{p}: the weights file is missing beside its .info")
        model = p.with_suffix(".pdmodel")
        if model.is_file():
            return _inference(model, p)
        if p.with_suffix(".json").is_file():
            return _pir(p.with_suffix(".json"), p)
        raise FormatError(f"{p}: the program file {model.name} is missing beside the weights")
    if suffix == ".onnx":
        return _onnx(p)
    if suffix in (".pdopt", ".states"):  # PaddleOCR writes them beside the .pdparams
        what = "optimizer state" if suffix == ".pdopt" else "training progress (epoch, metrics)"
        raise FormatError(f"{p}: holds a checkpoint's {what}, not its weights; give {stem}.pdparams")
    if suffix == ".json" and p.with_suffix(".pdiparams").is_file():
        return _pir(p, p.with_suffix(".pdiparams"))
    if suffix == ".yml" and p.with_suffix(".json").is_file():
        return _detect_file(p.with_suffix(".json"))
    head, size = _head(p)
    raise FormatError(f"{p}: not a Paddle model file ({describe_bytes(head, size)}); {_EXPECTED}")


# A model file or program on its own (the weights of a .pdiparams are a program's), and a
# Paddle 3 program, which is a .json beside a .pdiparams of its name.
_PROGRAM_SUFFIXES = _MODEL_SUFFIXES - {".pdiparams"}


def unread_models(folder: Path, read: dict[str, Path]) -> list[str]:
    """The model and program files in ``folder`` other than the ``read`` ones (``detect_format``'s
    files): a Paddle 3 program beside the Paddle 2 model read, an ONNX export beside either.
    A ``.json`` counts only beside a ``.pdiparams`` of its name (a config.json is no program)."""
    taken = {f.name for f in read.values()}
    found = []
    for entry in sorted(folder.iterdir()):
        stem, suffix = os.path.splitext(entry.name)
        program = suffix in _PROGRAM_SUFFIXES or (suffix == ".json" and (folder / f"{stem}.pdiparams").is_file())
        if not program or entry.name in taken or not entry.is_file():
            continue
        found.append(entry.name)
    return found


def _detect_dir(d: Path) -> tuple[str, dict[str, Path]]:
    names = sorted(e.name for e in d.iterdir() if e.is_file())
    by_suffix: dict[str, list[str]] = {}
    for n in names:
        by_suffix.setdefault(os.path.splitext(n)[1], []).append(n)
    stems = lambda sfx: {os.path.splitext(n)[0] for n in by_suffix.get(sfx, [])}  # noqa: E731
    pairs = sorted(stems(".pdmodel") & stems(".pdiparams"))
    pir = sorted(stems(".json") & stems(".pdiparams"))
    train = by_suffix.get(".pdparams", [])

    if pairs and train:
        raise FormatError(
            f"{d}: holds both an inference model ({pairs[0]}.pdmodel) and a training "
            f"checkpoint ({', '.join(train)}); pass the file to convert instead of the folder"
        )
    if len(pairs) > 1:
        raise FormatError(
            f"{d}: holds several inference models ({', '.join(s + '.pdmodel' for s in pairs)}); "
            "pass the .pdmodel to convert instead of the folder"
        )
    if pairs:
        return _inference(d / f"{pairs[0]}.pdmodel", d / f"{pairs[0]}.pdiparams")
    if train:
        if len(train) == 1:
            return _train(d / train[0])
        if "best_accuracy.pdparams" in train:
            return _train(d / "best_accuracy.pdparams")
        pretrained = [n for n in train if n.endswith("_pretrained.pdparams")]
        if len(pretrained) == 1:
            return _train(d / pretrained[0])
        raise FormatError(
            f"{d}: holds several checkpoints ({', '.join(train)}) and none is best_accuracy.pdparams; "
            "pass the .pdparams to convert instead of the folder"
        )
    if len(pir) > 1:
        raise FormatError(
            f"{d}: holds several Paddle 3 programs ({', '.join(s + '.json' for s in pir)}); "
            "pass the .json to convert instead of the folder"
        )
    if pir:
        return _pir(d / f"{pir[0]}.json", d / f"{pir[0]}.pdiparams")
    onnx = by_suffix.get(".onnx", [])
    if len(onnx) == 1:
        return _onnx(d / onnx[0])
    if onnx:
        raise FormatError(f"{d}: holds several ONNX models ({', '.join(onnx)}); pass the .onnx to convert instead of the folder")
    if "inference.json" in names:
        raise FormatError(
            f"{d}: holds a Paddle 3 program (inference.json) but no weights beside it "
            f"(inference.pdiparams is missing); {_EXPECTED}"
        )
    if by_suffix.get(".pdmodel"):
        raise FormatError(
            f"{d}: holds a program ({by_suffix['.pdmodel'][0]}) but no weights beside it "
            f"(its .pdiparams is missing); {_EXPECTED}"
        )
    if by_suffix.get(".pdiparams"):
        weights = by_suffix[".pdiparams"][0]
        # A .yml without a .pdiparams.info is a Paddle 3 export: its program is the .json
        paddle3 = by_suffix.get(".yml") and not by_suffix.get(".info")
        program = os.path.splitext(weights)[0] + (".json" if paddle3 else ".pdmodel")
        raise FormatError(f"{d}: holds weights ({weights}) but not their program ({program} is missing); {_EXPECTED}")
    raise _no_model_in(d, names)
