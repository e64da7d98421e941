"""Issue 8, loader and predictors: a corrupted or tampered converted file is refused with
ModelFileError (never another exception), and the predictors survive odd images.

test_load.py covers a hash mismatch, a header length beyond the file, an unknown backbone,
a wrong class count and a foreign safetensors; this adds truncation at many offsets, bit
flips in the header JSON (property-based), tensor data shorter than declared, every way
the embedded config/dictionary can be wrong, tensors of the wrong dtype, and images at the
edges (1x1, extreme aspect ratios, blank) through real det/rec/cls predictors.
"""

from __future__ import annotations

import copy
import json
import os
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

import ptocr
from converter.convert import convert
from converter.writer import write_converted
from ptocr.checkpoint import META_KEY
from ptocr.errors import ModelFileError, PtocrError
from ptocr.transforms.rec import RecPreprocess

EXAMPLES = int(os.environ.get("PTOCR_FUZZ_EXAMPLES", "60"))
MODELS = {"cls": "ch_ppocr_mobile_v2.0_cls_infer", "det": "ch_PP-OCRv4_det_infer",
          "rec": "ch_PP-OCRv4_rec_infer"}  # fmt: skip


@pytest.fixture(scope="module")
def converted(shared_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("robust_converted")
    files = {}
    for task, folder in MODELS.items():
        conv = convert(shared_dir / "paddle_models" / folder)
        dic = conv.dictionary.text() if conv.dictionary is not None else None
        files[task] = write_converted(conv.state_dict, conv.config, dic, out / f"{task}.safetensors").weights
    return files


@pytest.fixture(scope="module")
def predictors(converted):
    return {task: ptocr.load(path) for task, path in converted.items()}


def _parts(path):
    data = path.read_bytes()
    (n,) = struct.unpack_from("<Q", data)
    return data, n


def _refused(path) -> ModelFileError:
    """ptocr.load must raise ModelFileError naming the file; anything else fails."""
    with pytest.raises(ModelFileError) as ei:
        ptocr.load(path)
    assert str(path) in str(ei.value)
    return ei.value


# --- the file itself ------------------------------------------------------------------------


def test_truncated_at_many_offsets(converted, tmp_path):
    data, n = _parts(converted["cls"])
    cuts = {0, 1, 7, 8, 9, 8 + n // 2, 8 + n - 1, 8 + n, 8 + n + 1, len(data) - 1}
    cuts |= {int(x) for x in np.linspace(8 + n, len(data) - 1, 20)}  # inside tensor data
    bad = tmp_path / "cut.safetensors"
    for cut in sorted(cuts):
        bad.write_bytes(data[:cut])
        _refused(bad)


def test_tensor_data_shorter_than_declared(converted, tmp_path):
    # the header's last data offset moved 4 bytes beyond the buffer, file size unchanged
    data, n = _parts(converted["cls"])
    header = json.loads(data[8 : 8 + n])
    last = max((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][1])
    begin, end = header[last]["data_offsets"]
    header[last]["data_offsets"] = [begin, end + 4]
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    bad = tmp_path / "short.safetensors"
    bad.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n :])
    _refused(bad)


def test_header_length_larger_than_the_file_does_not_allocate(converted, tmp_path):
    data, n = _parts(converted["cls"])
    bad = tmp_path / "huge.safetensors"
    bad.write_bytes(struct.pack("<Q", (1 << 63) - 1) + data[8:])
    _refused(bad)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(st.data())
def test_fuzz_bit_flips_in_the_header_json(converted, tmp_path_factory, data):
    raw, n = _parts(converted["cls"])
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(8, 8 + n - 1))
        buf[i] ^= 1 << data.draw(st.integers(0, 7))
    bad = tmp_path_factory.mktemp("flip", numbered=True) / "flip.safetensors"
    bad.write_bytes(bytes(buf))
    try:
        ptocr.load(bad)  # a flip inside a free-text field (a source name) can stay valid
    except ModelFileError as e:
        assert str(bad) in str(e)


def test_hash_mismatch_after_one_flipped_data_bit(converted, tmp_path):
    # a flip in tensor data is a valid file with other weights: only the hash catches it
    data, n = _parts(converted["cls"])
    buf = bytearray(data)
    buf[-1] ^= 1
    bad = tmp_path / "flip.safetensors"
    bad.write_bytes(bytes(buf))
    sha = ptocr.checkpoint.file_sha256(converted["cls"])
    ptocr.load(bad)
    with pytest.raises(ModelFileError, match="corrupt or tampered"):
        ptocr.load(bad, expected_sha256=sha)


# --- the embedded config and dictionary ---------------------------------------------------------


def _rewrite(src, dst, *, config_edit=None, raw=None, dictionary=..., tensor_edit=None):
    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    embedded = json.loads(meta[META_KEY])
    if config_edit is not None:
        config = copy.deepcopy(embedded["config"])
        config_edit(config)
        embedded["config"] = config
    if dictionary is not ...:
        embedded["dictionary"] = dictionary
    if tensor_edit is not None:
        tensor_edit(tensors)
    meta[META_KEY] = raw if raw is not None else json.dumps(embedded)
    save_file(tensors, str(dst), metadata=meta)
    return dst


def _pop(key):
    return lambda c: c.pop(key)


def _set(key, value):
    return lambda c: c.__setitem__(key, value)


CONFIG_CASES = {
    "metadata not JSON": dict(raw="{not json"),
    "metadata a list": dict(raw="[1, 2]"),
    "config not an object": dict(raw=json.dumps({"config": "cls", "dictionary": None})),
    "config null": dict(raw=json.dumps({"config": None})),
    "no config key": dict(raw=json.dumps({"dictionary": None})),
    "model missing": dict(config_edit=_pop("model")),
    "model a list": dict(config_edit=_set("model", [])),
    "task missing": dict(config_edit=_pop("task")),
    "task unknown": dict(config_edit=_set("task", "segmentation")),
    "task a list": dict(config_edit=_set("task", ["cls"])),
    "task rec without dictionary": dict(config_edit=_set("task", "rec")),
    "preprocess a list": dict(config_edit=_set("preprocess", [3, 48, 192])),
    "postprocess null": dict(config_edit=_set("postprocess", None)),
    "inference a list": dict(config_edit=_set("inference", ["fold_batch_norms"])),
    "inference unknown setting": dict(config_edit=_set("inference", {"compile": True})),
    "inference setting a string": dict(config_edit=_set("inference", {"fold_batch_norms": "no"})),
    "backbone missing": dict(config_edit=lambda c: c["model"].pop("backbone")),
    "backbone a string": dict(config_edit=lambda c: c["model"].__setitem__("backbone", "MobileNetV3")),
    "head null": dict(config_edit=lambda c: c["model"].__setitem__("head", None)),
    "backbone unknown": dict(config_edit=lambda c: c["model"]["backbone"].update(name="AlienNet")),
    "backbone bad scale": dict(config_edit=lambda c: c["model"]["backbone"].update(scale="big")),
    "head unknown argument": dict(config_edit=lambda c: c["model"]["head"].update(dropout=0.5)),
    "head num_classes a string": dict(config_edit=lambda c: c["model"]["head"].update(num_classes="2")),
    "head num_classes 10^12": dict(config_edit=lambda c: c["model"]["head"].update(num_classes=10**12)),
    "neck unknown": dict(config_edit=lambda c: c["model"].__setitem__("neck", {"name": "X"})),
    "dictionary a number": dict(dictionary=5),
    "dictionary empty on cls": dict(dictionary=""),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_broken_config_is_refused(converted, tmp_path, case):
    _refused(_rewrite(converted["cls"], tmp_path / "bad.safetensors", **CONFIG_CASES[case]))


# Predictor settings reach the transforms' constructors through ptocr/predictors.py,
# which turns their TypeError/ValueError into ModelFileError; a task that contradicts
# the registered architecture is refused when the config is read.
PREDICTOR_SETTING_CASES = {
    "preprocess unknown key": lambda c: c["preprocess"].update(foo=1),
    "preprocess negative shape": lambda c: c["preprocess"].update(image_shape=[3, -48, 192]),
    "postprocess no labels": lambda c: c["postprocess"].update(labels=[]),
    "task det on a classifier": lambda c: c.update(task="det"),
}


@pytest.mark.parametrize("case", PREDICTOR_SETTING_CASES)
def test_broken_predictor_settings_are_refused(converted, tmp_path, case):
    _refused(_rewrite(converted["cls"], tmp_path / "bad.safetensors", config_edit=PREDICTOR_SETTING_CASES[case]))


def test_dictionary_disagreeing_with_config_sha256(converted, tmp_path):
    with safe_open(str(converted["rec"]), "pt") as f:
        text = json.loads(f.metadata()[META_KEY])["dictionary"]
    lines = text.split("\n")
    lines[0], lines[1] = lines[1], lines[0]  # same size, same count: only the hash tells
    bad = _rewrite(converted["rec"], tmp_path / "swap.safetensors", dictionary="\n".join(lines))
    assert "sha256" in str(_refused(bad))
    bad = _rewrite(converted["rec"], tmp_path / "empty.safetensors", dictionary="")
    _refused(bad)


@pytest.mark.parametrize("dtype", [torch.int32, torch.bool, torch.complex64, torch.uint8])
def test_tensor_of_the_wrong_dtype(converted, tmp_path, dtype):
    def edit(t):
        t["head.fc.weight"] = t["head.fc.weight"].to(dtype)

    bad = _rewrite(converted["cls"], tmp_path / "dtype.safetensors", tensor_edit=edit)
    assert "head.fc.weight" in str(_refused(bad))


def test_float_precision_of_weights_is_accepted(converted, tmp_path):
    # float64/float16 weights are a precision choice, not corruption: the predictor casts
    def edit(t):
        t["head.fc.weight"] = t["head.fc.weight"].double()

    ok = _rewrite(converted["cls"], tmp_path / "f64.safetensors", tensor_edit=edit)
    assert ptocr.load(ok)(np.zeros((48, 100, 3), np.uint8))[0] in ("0", "180")


def test_wrong_suffix_and_folders(tmp_path):
    (tmp_path / "m.pth").write_bytes(b"PK\x03\x04")
    with pytest.raises(PtocrError, match="expected a .safetensors"):
        ptocr.load(tmp_path / "m.pth")
    with pytest.raises(ModelFileError, match="no such file"):
        ptocr.load(tmp_path / "missing.safetensors")
    with pytest.raises(PtocrError, match="no Paddle model found"):
        ptocr.load(tmp_path)  # a folder without a model
    (tmp_path / "x.safetensors").mkdir()
    with pytest.raises(ModelFileError):
        ptocr.load(tmp_path / "x.safetensors")


# --- images at the edges through the real predictors ----------------------------------------------

EDGE_SHAPES = [(1, 1), (1, 2), (2, 1), (3, 3), (5000, 1), (1, 5000), (32, 32)]


@pytest.mark.parametrize("shape", EDGE_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_det_edge_images_return_empty_results(predictors, shape):
    res = predictors["det"](np.full((*shape, 3), 255, np.uint8))
    assert res.boxes.shape == (0, 4, 2) and res.scores.shape == (0,)


def test_det_on_an_image_without_text_is_empty_not_an_error(predictors):
    rng = np.random.default_rng(0)
    for img in (np.zeros((480, 640, 3), np.uint8), np.full((480, 640, 3), 255, np.uint8),
                np.full((200, 300), 128, np.uint8)):  # fmt: skip
        res = predictors["det"](img)
        assert len(res.boxes) == 0, img.shape
    # smooth noise: no text either; the result must be well-formed whatever it holds
    noise = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    res = predictors["det"](np.kron(noise, np.ones((8, 8, 1), np.uint8)))
    assert res.boxes.ndim == 3 and res.boxes.shape[1:] == (4, 2) and len(res.scores) == len(res.boxes)


@pytest.mark.parametrize("task", ["rec", "cls"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 1), (5000, 1), (48, 1)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_rec_cls_edge_crops(predictors, task, shape):
    text, score = predictors[task](np.full((*shape, 3), 255, np.uint8))
    assert isinstance(text, str) and 0.0 <= score <= 1.0


@pytest.mark.parametrize("task", ["det", "rec", "cls"])
def test_predictors_refuse_bad_images_with_image_error(predictors, task, tmp_path):
    from ptocr.errors import ImageError

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    for item in (bad, tmp_path / "missing.png", np.zeros((0, 5, 3), np.uint8), np.zeros((4, 4, 3), np.float32), b""):
        with pytest.raises(ImageError):
            predictors[task](item)


def test_rec_width_is_bounded_for_extreme_aspect_ratios():
    # A 1x5000 crop would become a 48 x 240000 input; the SVTR neck's attention is quadratic
    # in width, so 1x2000 already needs ~9 GB and a minute on CPU. Capped as PaddleX does (3200).
    pre = RecPreprocess()
    (_, batch), = list(pre.batches([np.full((1, 5000, 3), 255, np.uint8)]))
    assert batch.shape[-1] <= 3200


def test_an_empty_name_is_refused_as_such(tmp_path, monkeypatch):
    # Path("") is the current folder: without the check a folder of images reads as "no Paddle model".
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PtocrError, match="^empty model name"):
        ptocr.load("")
