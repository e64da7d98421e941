"""Paddle 3 (PIR) programs: the reader (inference.json + .pdiparams + .yml) and graph alignment."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from converter.alignment import align, paddle_sequence
from converter.errors import FormatError, MappingError
from converter.readers import PADDLE3_PIR, read_source
from converter.readers.formats import detect_format
from ptocr.models.build import build_model

TEXTLINE = "PP-LCNet_x0_25_textline_ori_infer"


@pytest.fixture(scope="module")
def textline(shared_dir):
    d = shared_dir / "paddle_models" / TEXTLINE
    if not d.is_dir():
        pytest.skip(f"{d} not found")
    return d


@pytest.fixture(scope="module")
def source(textline):
    return read_source(textline)


def _copy(src, dst, **replace):
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("inference.json", "inference.pdiparams", "inference.yml"):
        if name in replace:
            (dst / name).write_bytes(replace[name])
        elif (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    return dst


def test_detects_pir_folder_and_files(textline):
    for p in (textline, textline / "inference.json", textline / "inference.pdiparams", textline / "inference"):
        fmt, files = detect_format(p)
        assert fmt == PADDLE3_PIR
        assert files["model"].name == "inference.json" and files["params"].name == "inference.pdiparams"
        assert files["config"].name == "inference.yml"


def test_reads_names_shapes_and_stream_order(source):
    program = source.program
    assert source.format == PADDLE3_PIR and not source.structured
    assert len(source.tensors) == len(program.params) == 146
    # the stream holds the parameters sorted by name; every one was read with its declared shape
    for p in program.params:
        assert source.tensors[p.name].shape == p.shape and source.tensors[p.name].dtype == np.float32
    assert [p.name for p in program.stream_order()] == sorted(p.name for p in program.params)
    ops = [op.type for op in program.ops]
    assert ops[0] == "data" and ops[-1] == "fetch" and ops.count("batch_norm_") == 27
    assert program.inputs == [("x", (-1, 3, 80, 160))]
    conv = next(op for op in program.ops if op.type == "conv2d")
    assert conv.struct_name == "/PPLCNet/ConvBNLayer/Conv2D/" and conv.layer == "Conv2D"
    assert conv.attrs["strides"] == [2, 2]
    assert source.config.model_name == "PP-LCNet_x0_25_textline_ori" and source.dictionary is None


def test_same_view_as_paddle(textline, source, tmp_path):
    """Paddle's own loader sees the same parameter names, shapes and values."""
    pytest.importorskip("paddle")
    script = (
        "import sys, numpy as np, paddle\n"
        "paddle.enable_static()\n"
        "exe = paddle.static.Executor(paddle.CPUPlace())\n"
        "prog, feeds, fetches = paddle.static.load_inference_model(sys.argv[1] + '/inference', exe)\n"
        "scope = paddle.static.global_scope()\n"
        "out = {}\n"
        "for op in prog.global_block().ops:\n"
        "    if op.name() == 'builtin.parameter':\n"
        "        n = op.attrs()['parameter_name']\n"
        "        out[n] = np.array(scope.find_var(n).get_tensor())\n"
        "np.savez(sys.argv[2], **out)\n"
    )
    out = tmp_path / "paddle.npz"
    done = subprocess.run([sys.executable, "-c", script, str(textline), str(out)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"paddle could not load the program: {done.stderr[-500:]}")
    with np.load(out) as theirs:
        names = [n for n in theirs.files if n in source.tensors]
        assert len(names) == len(source.tensors), sorted(set(source.tensors) - set(theirs.files))[:5]
        for n in names:
            np.testing.assert_array_equal(theirs[n], source.tensors[n])


def test_yml_dictionary(textline, tmp_path):
    yml = (textline / "inference.yml").read_text() + "  name: CTCLabelDecode\n  character_dict:\n  - a\n  - '1'\n  - 2\n"
    d = _copy(textline, tmp_path / "m", **{"inference.yml": yml.encode()})
    assert read_source(d).dictionary == ["a", "1", "2"]


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.99])
def test_truncated_json_refused(textline, tmp_path, cut):
    data = (textline / "inference.json").read_bytes()
    d = _copy(textline, tmp_path / "m", **{"inference.json": data[: int(len(data) * cut)]})
    with pytest.raises(FormatError, match="inference.json"):
        read_source(d)


def test_truncated_weights_refused(textline, tmp_path):
    data = (textline / "inference.pdiparams").read_bytes()
    d = _copy(textline, tmp_path / "m", **{"inference.pdiparams": data[:-100]})
    with pytest.raises(FormatError, match="inference.pdiparams"):
        read_source(d)


@pytest.mark.parametrize("seed", range(6))
def test_bit_flipped_json_never_crashes(textline, tmp_path, seed):
    data = bytearray((textline / "inference.json").read_bytes())
    rng = np.random.default_rng(seed)
    for pos in rng.integers(0, len(data), 20):
        data[pos] ^= 1 << int(rng.integers(0, 8))
    d = _copy(textline, tmp_path / "m", **{"inference.json": bytes(data)})
    try:
        read_source(d)  # a flip may land in a name or a value: then it still reads, or ...
    except FormatError as e:  # ... it is refused in plain words naming a file
        assert str(tmp_path) in str(e)


@pytest.mark.parametrize("doc", [
    b"[1, 2, 3]",
    b'{"base_code": {"magic": "xyz"}, "program": {}}',
    b'{"base_code": {"magic": "pir", "version": 1}, "program": {"regions": []}}',
    b'{"base_code": {"magic": "pir", "version": 1}, "program": {"regions": [{"blocks": [{"ops": [{"#": "p"}]}]}]}}',
    b'{"a": ' * 100000 + b"1" + b"}" * 100000,
    b"\xff\xfe{not json",
    b"<html>404</html>",
    b"",
])
def test_foreign_json_refused(textline, tmp_path, doc):
    d = _copy(textline, tmp_path / "m", **{"inference.json": doc})
    with pytest.raises(FormatError) as e:
        read_source(d)
    assert "inference.json" in str(e.value)


def test_bad_yml_refused(textline, tmp_path):
    d = _copy(textline, tmp_path / "m", **{"inference.yml": b"!!python/object/apply:os.system ['echo hi']\n"})
    with pytest.raises(FormatError, match="inference.yml"):
        read_source(d)


def test_weights_of_another_program_refused(textline, tmp_path):
    doc = json.loads((textline / "inference.json").read_text())
    ops = doc["program"]["regions"][0]["blocks"][0]["ops"]
    p = next(o for o in ops if o["#"] == "p" and o["O"]["TT"]["D"][1] == [1280, 2])
    p["O"]["TT"]["D"][1] = [1280, 4]  # the program now wants a 4-class head
    d = _copy(textline, tmp_path / "m", **{"inference.json": json.dumps(doc).encode()})
    with pytest.raises(FormatError, match="shape"):
        read_source(d)


def test_alignment_places_every_tensor(source):
    model = build_model({"backbone": {"name": "PPLCNet", "scale": 0.25, "stride_list": [2, [2, 1], [2, 1], [2, 1], [2, 1]]},
                         "neck": None, "head": {"name": "ClsHead", "num_classes": 2}})
    result = align(source.program, source.tensors, model, what="textline")
    assert len(result.entries) == len(source.tensors)
    by_target = {e.target: e for e in result.entries}
    # BN statistics by the op slot that reads them (Paddle names them w_1 / w_2)
    assert by_target["backbone.conv1.bn.running_mean"].source.startswith("batch_norm2d_0.w_1")
    assert by_target["backbone.conv1.bn.running_var"].source.startswith("batch_norm2d_0.w_2")
    assert by_target["head.fc.weight"].op == "linear_weight"
    np.testing.assert_array_equal(result.state_dict["head.fc.weight"], source.tensors[by_target["head.fc.weight"].source].T)


def test_alignment_refuses_shape_conflict(source):
    model = build_model({"backbone": {"name": "PPLCNet", "scale": 0.5, "stride_list": [2, [2, 1], [2, 1], [2, 1], [2, 1]]},
                         "neck": None, "head": {"name": "ClsHead", "num_classes": 2}})
    with pytest.raises(MappingError, match="shape"):
        align(source.program, source.tensors, model, what="textline")


def test_alignment_refuses_stride_conflict(source):
    model = build_model({"backbone": {"name": "PPLCNet", "scale": 0.25, "stride_list": [2, 2, 2, 2, 2]},
                         "neck": None, "head": {"name": "ClsHead", "num_classes": 2}})
    with pytest.raises(MappingError, match="strides"):
        align(source.program, source.tensors, model, what="textline")


def test_alignment_refuses_role_conflict(source):
    """A parameter read by another kind of op than the model's is refused by role, not shape."""
    program = source.program
    seq = paddle_sequence(program)
    assert [u.role for u in seq[:5]] == ["conv", "bn_mean", "bn_var", "bn_scale", "bn_shift"]
    bn = next(op for op in program.ops if op.type == "batch_norm_")
    program = copy.copy(program)
    program.ops = list(program.ops)
    # the same operands read by an op that is no batch norm: statistics become "other"
    program.ops[program.ops.index(bn)] = type(bn)("group_norm", bn.dialect, bn.inputs, bn.outputs, bn.output_shapes,
                                                  bn.attrs, bn.index)
    model = build_model({"backbone": {"name": "PPLCNet", "scale": 0.25, "stride_list": [2, [2, 1], [2, 1], [2, 1], [2, 1]]},
                         "neck": None, "head": {"name": "ClsHead", "num_classes": 2}})
    with pytest.raises(MappingError, match="role"):
        align(program, source.tensors, model, what="textline")


def test_convert_detects_architecture(textline):
    from converter.convert import convert

    conv = convert(textline)
    assert conv.arch_name == "PP-LCNet_x0_25_textline_ori"
    assert conv.config["model"]["head"]["num_classes"] == 2
    assert conv.config["source"]["format"] == PADDLE3_PIR


def test_convert_takes_preprocessing_from_the_yml(textline, tmp_path):
    from converter.convert import convert
    from ptocr.transforms import cls_preprocess

    yml = (textline / "inference.yml").read_text()
    assert "- 160\n      - 80\n" in yml
    pre = cls_preprocess(convert(_copy(textline, tmp_path / "a", **{"inference.yml": yml.replace(
        "- 160\n      - 80\n", "- 192\n      - 64\n").encode()})).config["preprocess"])
    assert pre.image_shape == (3, 64, 192)
    odd = yml.replace("  - ResizeImage:", "  - RandomFlip: null\n  - ResizeImage:")
    with pytest.raises(FormatError, match="inference.yml.*RandomFlip"):
        convert(_copy(textline, tmp_path / "b", **{"inference.yml": odd.encode()}))


def test_weights_without_their_program_name_the_json(textline, tmp_path):
    d = _copy(textline, tmp_path / "m")
    (d / "inference.json").unlink()
    with pytest.raises(FormatError, match=r"not their program \(inference.json is missing\)"):
        read_source(d)


def test_a_yml_dictionary_that_does_not_fit_is_named_beside_the_one_taken(shared_dir, tmp_path):
    from converter.convert import convert

    rec = shared_dir / "paddle_models" / "PP-OCRv5_mobile_rec_infer"
    yml = (rec / "inference.yml").read_text(encoding="utf-8")
    short = yml.replace("\n  - 一\n", "\n", 1)  # one character fewer than the head's classes
    assert short != yml
    conv = convert(_copy(rec, tmp_path / "PP-OCRv5_mobile_rec_infer", **{"inference.yml": short.encode()}))
    (note,) = [n for n in conv.source.notes if n.startswith("dictionary: ")]
    assert note.startswith("dictionary: ppocrv5_dict.txt (manifest)"), note
    assert "did not fit: inference.yml character_dict with space" in note
    assert conv.dictionary.characters[1] == "一"  # the manifest's, not the file's shortened list


# Bounded fuzzing of the whole Paddle 3 folder (program, weights, yml): cut or flipped
# anywhere, reading gives a valid source or FormatError naming the file, nothing else.
_FILES = ("inference.json", "inference.pdiparams", "inference.yml")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(_FILES), where=st.floats(0, 1), cut=st.booleans(), bit=st.integers(0, 7))
def test_fuzzed_pir_folder_reads_or_is_refused(textline, tmp_path_factory, which, where, cut, bit):
    data = bytearray((textline / which).read_bytes())
    pos = min(int(where * len(data)), len(data) - 1)
    if cut:
        data = data[:pos]
    else:
        data[pos] ^= 1 << bit
    d = _copy(textline, tmp_path_factory.mktemp("fuzz") / "m", **{which: bytes(data)})
    try:
        read_source(d)
    except FormatError as e:
        assert str(d) in str(e)
    finally:  # one folder per example: not kept to the session's end
        shutil.rmtree(d.parent)


# ---- float32 constants: the programs' numbers, as the converted models use them ----

def _f32(v: float) -> float:
    return float(np.float32(v))


def test_pplcnetv3_and_svtr_constants_are_the_float32_numbers_of_the_programs():
    from ptocr.models.layers import PADDLE_HARDSIGMOID_SLOPE as SE_SLOPE
    from ptocr.models.necks.svtr import Attention

    assert SE_SLOPE == _f32(0.1666667) == 0.16666670143604279
    assert Attention(120, 8).scale == _f32(15 ** -0.5) == 0.25819888710975647
    assert Attention(64, 8, qk_scale=0.1).scale == _f32(0.1)


def test_v5_mobile_rec_program_holds_the_constants_the_model_uses(shared_dir):
    from converter.readers.pir import read_pir_program
    from ptocr.models.layers import PADDLE_HARDSIGMOID_SLOPE as SE_SLOPE

    path = shared_dir / "paddle_graphs" / "PP-OCRv5_mobile_rec_infer" / "inference.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    program = read_pir_program(path)
    slopes = {op.attrs["slope"] for op in program.ops if op.type == "hardsigmoid"}
    assert slopes == {SE_SLOPE}
    producers = program.producers()
    scales = {producers[op.inputs[1]].attrs["value"] for op in program.ops
              if op.type == "scale" and "Attention" in op.struct_name}
    assert scales == {_f32(15 ** -0.5)}


# ---- PaddleX image-classification pre-processing (PP-LCNet orientation models) ----

def _paddlex_reference(bgr, size=None, resize_short=None, crop=None):
    """PaddleX ClasPredictor's steps, written out: RGB, cv2 resize, centre crop, per-channel
    float32 x * (1/255/std) + (-mean/std), CHW."""
    import cv2

    img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    if size:
        tw, th = size
    else:
        s = resize_short / min(h, w)
        tw, th = round(w * s), round(h * s)
    if (tw, th) != (w, h):
        img = cv2.resize(img, (tw, th), interpolation=cv2.INTER_LINEAR)
    if crop:
        x1, y1 = max(0, (tw - crop) // 2), max(0, (th - crop) // 2)
        img = img[y1:y1 + crop, x1:x1 + crop]
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    chans = list(cv2.split(img))
    for c in range(3):
        chans[c] = chans[c].astype(np.float32)
        chans[c] *= (1 / 255) / std[c]
        chans[c] += -mean[c] / std[c]
    return cv2.merge(chans).transpose(2, 0, 1)


@pytest.mark.parametrize("shape", [(48, 200), (80, 160), (31, 7), (300, 90)])
def test_image_cls_preprocess_matches_paddlex_steps(shape):
    from ptocr.transforms import ImageClsPreprocess

    img = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    line = ImageClsPreprocess(size=[160, 80])
    got = line(img)
    assert got.shape == (3, 80, 160) == line.image_shape and got.dtype == np.float32
    assert np.array_equal(got, _paddlex_reference(img, size=(160, 80)))
    doc = ImageClsPreprocess(resize_short=256, crop_size=224)
    assert doc.image_shape == (3, 224, 224)
    assert np.array_equal(doc(img), _paddlex_reference(img, resize_short=256, crop=224))
    assert doc.batch([img, img[::-1]]).shape == (2, 3, 224, 224)


def test_image_cls_preprocess_reads_the_yml_ops_and_refuses_others(shared_dir):
    from ptocr.transforms import ImageClsPreprocess

    from ptocr.architectures import get_architecture
    from ptocr.transforms import cls_preprocess

    expect = {"paddle_models/PP-LCNet_x0_25_textline_ori_infer": (3, 80, 160),
              "paddle_graphs/PP-LCNet_x1_0_textline_ori": (3, 80, 160),
              "paddle_graphs/PP-LCNet_x1_0_doc_ori": (3, 224, 224)}
    for folder, shape in expect.items():
        d = shared_dir / folder
        if not d.is_dir():
            pytest.skip(f"{d} not found")
        from converter.readers.pir import read_pir_config

        ops = read_pir_config(d / "inference.yml").data["PreProcess"]["transform_ops"]
        from_yml = ImageClsPreprocess.from_transform_ops(ops)
        assert from_yml.image_shape == shape
        # The architecture's settings (what a converted model's config carries) are the yml's.
        arch = folder.split("/")[1].removesuffix("_infer")
        assert repr(cls_preprocess(get_architecture(arch)["preprocess"])) == repr(from_yml)
    with pytest.raises(ValueError, match="unsupported pre-processing op"):
        ImageClsPreprocess.from_transform_ops([{"ResizeImage": {"size": [160, 80]}}, {"RandomFlip": None}])
    with pytest.raises(ValueError, match="bilinear"):
        ImageClsPreprocess.from_transform_ops([{"ResizeImage": {"size": [160, 80], "interpolation": "BICUBIC"}}])
    with pytest.raises(ValueError, match="crop_size"):
        ImageClsPreprocess(resize_short=256)
    with pytest.raises(ValueError, match="exactly one"):
        ImageClsPreprocess(size=[160, 80], resize_short=256)
