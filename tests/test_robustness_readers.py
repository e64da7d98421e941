"""Issue 8, readers: every Paddle file kind and the dictionary, broken in every way, through
the public entry point (``read_source`` on a folder, ``read_dictionary``), must give
FormatError / DictionaryError naming the file, and nothing else.

test_readers.py already fuzzes the individual parsers on bytes and covers the stream's
absurd sizes; here the files lie on disk and go through detection + sniffing + parsing
together, every offset of every tiny file is cut and flipped, every file kind is replaced
by every foreign format, and the kept regression inputs are replayed.

PTOCR_FUZZ_EXAMPLES (default 60) sets the examples per fuzz test, for longer local runs.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import shutil
import struct
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converter.errors import FormatError
from converter.readers import read_source
from ptocr.dictionary import Dictionary, read_dictionary
from ptocr.errors import DictionaryError
from test_readers import fld, mutated, tiny_info, tiny_params, tiny_program, var_desc, write_tiny

FIXTURES = Path(__file__).parent / "fixtures" / "robustness"
EXAMPLES = int(os.environ.get("PTOCR_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])  # fmt: skip

INFER_FILES = ("inference.pdmodel", "inference.pdiparams", "inference.pdiparams.info")
TINY_CKPT = pickle.dumps({"backbone.w": np.arange(6, dtype=np.float32).reshape(2, 3),
                          "head.b": np.zeros(2, np.float32)}, protocol=2)  # fmt: skip


def _tiny_files() -> dict[str, bytes]:
    return {"inference.pdmodel": tiny_program(), "inference.pdiparams": tiny_params(),
            "inference.pdiparams.info": tiny_info()}  # fmt: skip


def outcome(folder: Path, **kw) -> str:
    """'ok' or 'error'; any exception other than FormatError fails the test, and the
    message must start with a path inside the model folder (it names the file)."""
    try:
        read_source(folder, **kw)
        return "ok"
    except FormatError as e:
        assert str(e).startswith(str(folder)), f"message does not name the file: {e}"
        return "error"


def _write(folder: Path, files: dict[str, bytes]) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def _files_for(name: str) -> dict[str, bytes]:
    """A tiny model folder's files, the one ``name`` belongs to (inference folder or checkpoint)."""
    return {"best_accuracy.pdparams": TINY_CKPT} if name.endswith(".pdparams") else _tiny_files()


# --- every offset: truncation and bit flips --------------------------------------------


@pytest.mark.parametrize("name", [*INFER_FILES, "best_accuracy.pdparams"])
def test_truncated_at_every_offset(tmp_path, name):
    files = _files_for(name)
    full = files[name]
    # Protobuf has no end marker: a program cut exactly between two top-level fields is a
    # valid shorter program, which the weights check then judges (here: only the trailing
    # version field can go unnoticed). Every other prefix of every file must be refused.
    version_field = fld(4, fld(1, 2004001))
    ok_cuts = {len(full) - len(version_field)} if name.endswith(".pdmodel") else set()
    assert not ok_cuts or full.endswith(version_field)
    for n in range(len(full)):
        folder = _write(tmp_path / "m", {**files, name: full[:n]})
        if outcome(folder) == "ok":
            assert n in ok_cuts, f"{name} cut at {n} of {len(full)} was accepted"


# --- zero bytes, foreign formats under Paddle names -------------------------------------


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        # A fixed timestamp: the same bytes at every collection (xdist workers compare test ids).
        z.writestr(zipfile.ZipInfo("archive/data.pkl", date_time=(1980, 1, 1, 0, 0, 0)), pickle.dumps({"w": 1}))
    return buf.getvalue()


def _png() -> bytes:
    import cv2

    return cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes()


FOREIGN = {
    "empty": b"",
    "zip (PyTorch .pth)": _zip(),
    "gzip (.tar.gz)": gzip.compress(b"x" * 100),
    "HTML error page": b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
    "Git LFS pointer": b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 5\n",
    "JSON (Paddle 3 program)": b'{"base_code": {"magic": "pir"}, "program": {}}',
    "safetensors": struct.pack("<Q", 2) + b"{}",
    "PNG image": _png(),
    "NUL bytes": b"\0" * 4096,
    "random binary": bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
    "other pickle (list)": pickle.dumps([1, 2, 3], protocol=4),
    "tensor stream": tiny_params(),
    "program protobuf": tiny_program(),
}


# Every (file, foreign content) pair but a file's own format, which is not foreign to it.
FOREIGN_CASES = [pytest.param(name, kind, id=f"{name}-{kind}")
                 for name in (*INFER_FILES, "best_accuracy.pdparams") for kind, data in FOREIGN.items()
                 if data != _files_for(name)[name]]


@pytest.mark.parametrize("name, kind", FOREIGN_CASES)
def test_foreign_format_under_the_expected_name(tmp_path, name, kind):
    files = _files_for(name)
    data = FOREIGN[kind]
    folder = _write(tmp_path / "m", {**files, name: data})
    with pytest.raises(FormatError) as ei:
        read_source(folder)
    assert str(ei.value).startswith(str(folder))
    # wrong format, empty or truncated is said about this very file, in plain words
    assert name in str(ei.value) or "inference.pdiparams" in str(ei.value), str(ei.value)


def test_empty_files_say_empty(tmp_path):
    for name in (*INFER_FILES, "best_accuracy.pdparams"):
        folder = _write(tmp_path / name, {**_files_for(name), name: b""})
        with pytest.raises(FormatError, match="empty") as ei:
            read_source(folder)
        assert str(folder / name) in str(ei.value)


# --- absurd declared sizes and unknown dtypes in the program -----------------------------


def _program_with(var: bytes) -> bytes:
    return fld(1, fld(1, 0) + fld(2, -1) + fld(3, var)) + fld(4, fld(1, 2004001))


@pytest.mark.parametrize(
    "program, match",
    [
        # a length-delimited field claiming 4 EiB: refused before any slicing/allocation
        (b"\x0a" + b"\xff" * 8 + b"\x3f" + b"\0" * 32, "claims"),
        # a variable of 2^80 elements: the weights cannot hold it, and nothing is allocated
        (_program_with(var_desc("w", 5, (1 << 40, 1 << 40))), "shape"),
        # an element type Paddle does not have
        (_program_with(var_desc("w", 99, (2,))), "unknown dtype code 99"),
        # FP8: known to Paddle, not supported here
        (_program_with(var_desc("w", 32, (2,))), "FP8_E4M3FN|FP32"),
        # a persistable variable kind that is not a dense tensor
        (_program_with(var_desc("w", 5, (2,), vtype=8)), "SELECTED_ROWS"),
        # a varint that never ends
        (b"\x0a" + b"\xff" * 20, "varint"),
    ],
)
def test_absurd_program_declarations(tmp_path, program, match):
    w = struct.pack("<IQIi", 0, 0, 0, 4) + fld(1, 5) + fld(2, 2) + b"\0" * 8  # one FP32 [2]
    info = pickle.dumps({"w": {"structured_name": "w"}}, protocol=2)
    folder = _write(tmp_path / "m", {"inference.pdmodel": program, "inference.pdiparams": w,
                                      "inference.pdiparams.info": info})  # fmt: skip
    t = time.perf_counter()
    with pytest.raises(FormatError, match=match) as ei:
        read_source(folder)
    assert time.perf_counter() - t < 1
    assert str(ei.value).startswith(str(folder))


def test_absurd_tensor_header_in_a_real_sized_stream_does_not_allocate(tmp_path):
    # the first tensor's dims rewritten to claim terabytes; the file itself stays small
    params = bytearray(tiny_params())
    big = struct.pack("<IQIi", 0, 0, 0, 0)
    desc = fld(1, 5) + fld(2, 1 << 20) + fld(2, 1 << 20) + fld(2, 1 << 20)
    params[: len(big)] = big[:-4] + struct.pack("<i", len(desc))
    folder = write_tiny(tmp_path / "m")
    (folder / "inference.pdiparams").write_bytes(bytes(params[:16]) + desc + bytes(params[16:]))
    t = time.perf_counter()
    with pytest.raises(FormatError, match="inference.pdiparams"):
        read_source(folder)
    assert time.perf_counter() - t < 1


# --- property-based: whole folders with mutated files -------------------------------------


@FUZZ
@given(st.data())
def test_fuzz_inference_folder(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz", numbered=True)
    files = _tiny_files()
    # mutate one or more of the three files
    for name in data.draw(st.sets(st.sampled_from(INFER_FILES), min_size=1)):
        files[name] = data.draw(mutated(files[name]), label=name)
    outcome(_write(folder / "m", files))


@FUZZ
@given(st.data())
def test_fuzz_checkpoint_file(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz", numbered=True)
    ckpt = data.draw(st.one_of(mutated(TINY_CKPT), st.binary(max_size=256)))
    outcome(_write(folder / "m", {"best_accuracy.pdparams": ckpt}))


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_dictionary(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("dict", numbered=True) / "dict.txt"
    path.write_bytes(data)
    for space in (False, True):
        try:
            d = read_dictionary(path, space)
        except DictionaryError as e:
            assert str(path) in str(e)
            continue
        assert isinstance(d, Dictionary) and d.num_classes == len(d.characters) + 1 + space


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty"),
        (b"\xe4\xb8", "not UTF-8"),  # a 3-byte character cut after 2 bytes
        ("a\nb\n".encode("utf-16"), "not UTF-8"),  # BOM ff fe
        (b"a\n\0\nb\n", "NUL"),
        (FOREIGN["PNG image"], "not UTF-8"),
        (FOREIGN["zip (PyTorch .pth)"], "not UTF-8|NUL"),
    ],
    ids=["empty", "cut character", "utf-16", "NUL", "png", "zip"],
)
def test_broken_dictionaries(tmp_path, data, match):
    path = tmp_path / "keys.txt"
    path.write_bytes(data)
    with pytest.raises(DictionaryError, match=match) as ei:
        read_dictionary(path, True)
    assert str(path) in str(ei.value)


def test_dictionary_that_is_a_folder(tmp_path):
    with pytest.raises(DictionaryError, match="cannot read"):
        read_dictionary(tmp_path, True)


# --- kept regression inputs ---------------------------------------------------------------


def _corpus() -> list[Path]:
    return sorted(FIXTURES.glob("*.bin")) if FIXTURES.is_dir() else []


@pytest.mark.parametrize("path", _corpus(), ids=lambda p: p.name)
def test_regression_corpus(tmp_path, path):
    """Inputs that once crashed or hung a reader, named ``<file name>__<what>.bin``: the
    file name says where in a tiny model folder it goes."""
    target = path.name.split("__")[0]
    files = {**_files_for(target), target: path.read_bytes()}
    t = time.perf_counter()
    outcome(_write(tmp_path / "m", files))
    assert time.perf_counter() - t < 2
