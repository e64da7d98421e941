"""What a PyTorch user does with ptocr's models and predictors: casts and their round trips,
pickles (torch.save, spawned workers), grad mode, raw calls at sizes the pre-processing never
makes, and options ``ptocr.load`` would otherwise ignore."""

from __future__ import annotations

import copy
import io
import os
import pickle

import pytest
import torch
import torch.nn as nn

import ptocr
import ptocr.loading
from converter.writer import write_converted
from ptocr.architectures import ARCHITECTURES
from ptocr.checkpoint import file_sha256
from ptocr.errors import PtocrError
from ptocr.models.build import build_model
from ptocr.models.float64 import Float64Compute
from ptocr.optimize import example_input, for_inference
from ptocr.precision import Float32Compute, cast_model

STEM = ["backbone.conv1", "backbone.blocks.0"]


def _cfg() -> dict:
    cfg = copy.deepcopy(ARCHITECTURES["ch_ppocr_mobile_v2.0_rec"]["model"])
    cfg["head"]["num_classes"] = 37
    return {**cfg, "float64_modules": STEM}


def _model() -> nn.Module:
    """A small recognizer whose stem computes in float64 (as ru_mobile_v2.0_rec's)."""
    torch.manual_seed(0)
    return build_model(_cfg()).eval()


def _dtypes(module: nn.Module) -> set[torch.dtype]:
    return {t.dtype for t in [*module.parameters(), *module.buffers()] if t.is_floating_point()}


@pytest.fixture
def rec_file(tmp_path):
    config = {"architecture": "ch_ppocr_mobile_v2.0_rec", "task": "rec", "model": _cfg(),
              "preprocess": {"image_shape": [3, 32, 320]}, "postprocess": {}}
    text = "".join(chr(ord("a") + i) + "\n" for i in range(36))
    return write_converted(_model().state_dict(), config, text, tmp_path / "rec.safetensors").weights


def test_float64_modules_compute_in_float64_again_after_a_narrow_round_trip(rec_file):
    model = cast_model(cast_model(_model(), torch.float16), torch.float32)
    assert _dtypes(model.backbone.blocks[0]) == {torch.float64}  # was float16: a float32 model computing it in half
    predictor = ptocr.load(rec_file).to(dtype="float16").to(dtype="float32")
    assert _dtypes(predictor.model.backbone.conv1) == {torch.float64}


def test_models_with_float64_modules_or_float32_islands_pickle():
    x = torch.rand(2, 3, 32, 100) * 2 - 1
    for model, dtype in ((_model(), torch.float32), (cast_model(_model(), torch.bfloat16), torch.bfloat16)):
        assert any(isinstance(m, (Float64Compute, Float32Compute)) for m in model.modules())
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        for back in (pickle.loads(pickle.dumps(model)), torch.load(buffer, weights_only=False)):
            assert [type(m).__name__ for m in back.modules()] == [type(m).__name__ for m in model.modules()]
            with torch.inference_mode():
                assert torch.equal(back(x.to(dtype)), model(x.to(dtype)))


def test_a_half_precision_predictor_pickles(rec_file):
    predictor = ptocr.load(rec_file, dtype="float16")
    crop = (torch.rand(32, 120, 3) * 255).to(torch.uint8).numpy()
    assert pickle.loads(pickle.dumps(predictor))(crop) == predictor(crop)


def test_a_frozen_optimized_model_computes_the_same_with_grad_mode_on():
    torch.manual_seed(0)
    model = ptocr.create_model("ch_PP-OCRv4_rec")
    with torch.no_grad():  # trained-like affines and statistics, so that the rounding paths differ
        for name, p in model.named_parameters():
            if name.endswith(("lab.scale", "lab.bias")):
                p.uniform_(0.5, 1.5)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    fast = for_inference(model, example_input({"task": "rec", "preprocess": {"image_shape": [3, 48, 320]}}),
                         channels_last=True)
    x = torch.rand(2, 3, 48, 96) * 2 - 1
    with torch.no_grad():
        want = fast(x)
    got = fast(x)  # no parameter requires grad: nothing for autograd to track
    assert not got.requires_grad and torch.equal(got, want)


def test_a_detector_called_at_a_size_its_strides_do_not_divide_says_why():
    model = ptocr.create_model("ch_ppocr_mobile_v2.0_det")
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 96)).shape == (1, 1, 64, 96)
        with pytest.raises(RuntimeError, match="multiples of 32"):
            model(torch.randn(1, 3, 100, 100))


def test_predictor_to_takes_a_dtype_first_and_a_refused_argument_changes_nothing(rec_file):
    predictor = ptocr.load(rec_file)
    assert predictor.to(torch.float16) is predictor  # as nn.Module.to(torch.float16)
    convs = [m for m in predictor.model.backbone.blocks[1].modules() if isinstance(m, nn.Conv2d)]
    assert predictor.dtype == torch.float16 and convs[0].weight.dtype == torch.float16
    with pytest.raises(PtocrError, match="dtype"):
        predictor.to("meta", "int8")
    assert predictor.device == torch.device("cpu") and predictor.dtype == torch.float16


def test_load_refuses_options_it_would_ignore(rec_file, monkeypatch):
    for kw in ({"optimize": False}, {"fuse": False}, {"compile": True}):
        with pytest.raises(PtocrError, match="shape_graphs"):
            ptocr.load(rec_file, shape_graphs=True, **kw)
    assert ptocr.load(rec_file, optimize=False, shape_graphs=False).model.shape_graphs is None
    with pytest.raises(PtocrError, match="arch"):
        ptocr.load(rec_file, arch="ch_PP-OCRv4_det")
    # a zoo name: the caller's sha256 is checked too, not replaced by the manifest's
    monkeypatch.setattr(ptocr.loading, "_named_model_file", lambda name: (rec_file, file_sha256(rec_file), "rec"))
    assert ptocr.load("my_zoo_rec", expected_sha256=file_sha256(rec_file)).task == "rec"
    with pytest.raises(PtocrError, match="expected 0000"):
        ptocr.load("my_zoo_rec", expected_sha256="0" * 64)
    with pytest.raises(PtocrError, match="fuse"):
        ptocr.load("ch_PP-OCRv4", fuse=False)  # a bundle: refused before anything loads


def test_expected_sha256_is_not_silently_skipped_for_a_paddle_source(shared_dir):
    with pytest.raises(PtocrError, match="expected_sha256"):
        ptocr.load(shared_dir / "paddle_models/ch_ppocr_mobile_v2.0_cls_infer", expected_sha256="0" * 64)


def test_device_0_is_the_first_gpu_not_the_cpu():
    from ptocr.predictors import as_device

    if torch.cuda.is_available():
        assert as_device(0) == torch.device("cuda", 0)
    else:  # was silently the CPU: `0 or "cpu"`
        with pytest.raises(PtocrError, match="invalid device 0"):
            as_device(0)
    assert as_device(None) == as_device(torch.device("cpu")) == torch.device("cpu")


def test_a_device_this_torch_cannot_use_is_refused_by_name():
    """``--device mps`` on a Linux build: a PtocrError naming it, not torch's error from deep in a cast."""
    from ptocr.predictors import as_device

    for name in ("mps", "xla"):
        backend = getattr(torch.backends, name, None)
        if backend is not None and getattr(backend, "is_available", lambda: False)():
            continue  # this machine has it
        with pytest.raises(PtocrError, match=f"device '{name}': this torch build has no usable {name} backend"):
            as_device(name)
    assert as_device("meta").type == "meta"  # shapes only: the float16 code paths are tested there


def test_create_model_refuses_a_class_count_that_is_no_count():
    for bad in (-1, 0, 1, "x", True, 1.5):  # was torch's RuntimeError, a ValueError, or a head of no class
        with pytest.raises(PtocrError, match="num_classes must be an integer of at least 2"):
            ptocr.create_model("ch_PP-OCRv4_rec", num_classes=bad)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc, a folder that takes no new files")
def test_save_model_where_no_file_can_be_made_names_the_output():
    from ptocr.atomic import OutputError

    with pytest.raises(OutputError, match=r"cannot write /proc/m\.safetensors: ") as e:
        ptocr.save_model(ptocr.create_model("ch_ppocr_mobile_v2.0_cls"), "/proc/m.safetensors")
    assert isinstance(e.value, OSError)  # code that caught the OS's error still catches it
