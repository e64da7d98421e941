"""ptocr.models.float64: the modules a model description names compute in float64, through
the build, the loaders, the casts and the inference rewrites; the v2.0 Russian recognizer, the
model that needs it, is converted with them."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
import torch.nn as nn

import ptocr
from converter.convert import convert
from converter.writer import write_converted
from ptocr.architectures import ARCHITECTURES
from ptocr.errors import ArchitectureError
from ptocr.models.build import build_model
from ptocr.models.float64 import Float64Compute, model_dtype
from ptocr.optimize import for_inference
from ptocr.precision import cast_model

STEM = ["backbone.conv1", "backbone.blocks.0"]


def _cfg(float64_modules=STEM) -> dict:
    cfg = copy.deepcopy(ARCHITECTURES["ch_ppocr_mobile_v2.0_rec"]["model"])
    cfg["head"]["num_classes"] = 37
    return {**cfg, "float64_modules": list(float64_modules)}


def _model(float64_modules=STEM) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(_cfg(float64_modules)).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # statistics that make the stem's rounding matter
                m.running_mean.uniform_(-2, 2)
                m.running_var.uniform_(0.01, 0.1)
    return model


def _block0_io(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    got = []
    handle = model.backbone.blocks[0].register_forward_hook(lambda _m, inp, out: got.append((inp[0], out)))
    with torch.inference_mode():
        model(x)
    handle.remove()
    return got[0]


def _dtypes(module: nn.Module) -> set[torch.dtype]:
    return {p.dtype for p in module.parameters()} | {b.dtype for b in module.buffers() if b.is_floating_point()}


def test_marked_modules_compute_in_float64_and_hand_back_float32():
    model = _model()
    assert _dtypes(model.backbone.conv1) == _dtypes(model.backbone.blocks[0]) == {torch.float64}
    assert _dtypes(model.backbone.blocks[1]) == _dtypes(model.head) == {torch.float32}
    assert model_dtype(model) == torch.float32
    x = torch.rand(2, 3, 32, 100) * 2 - 1
    with torch.inference_mode():
        assert model(x).dtype == torch.float32
    # Bit for bit what the block computes in float64, rounded once at its end.
    block_in, block_out = _block0_io(model, x)
    assert block_in.dtype == block_out.dtype == torch.float32
    with torch.inference_mode():
        exact = copy.deepcopy(model.backbone.blocks[0]).double()(block_in.double())
    assert exact.dtype == torch.float64 and torch.equal(block_out, exact.float())
    plain = _model([])
    with torch.inference_mode():
        assert not torch.equal(plain.backbone.blocks[0](block_in), block_out)  # float32: rounded at every layer


def test_an_unknown_module_path_is_an_architecture_error():
    with pytest.raises(ArchitectureError, match="no module 'backbone.nope'"):
        build_model(_cfg(["backbone.conv1", "backbone.nope"]))
    with pytest.raises(ArchitectureError, match="no weights"):
        build_model(_cfg(["backbone.conv1.act"]))


def test_cast_to_float32_keeps_them_and_narrow_types_take_them_along():
    model = cast_model(_model(), torch.float32)
    assert _dtypes(model.backbone.blocks[0]) == {torch.float64}
    narrow = cast_model(_model(), torch.bfloat16)
    conv_weights = {m.weight.dtype for m in narrow.backbone.modules() if isinstance(m, nn.Conv2d)}
    assert conv_weights == {torch.bfloat16}
    with torch.inference_mode():
        assert narrow(torch.rand(1, 3, 32, 100, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_inference_rewrites_keep_them_float64_and_nchw():
    model = _model()
    x = torch.rand(2, 3, 32, 100) * 2 - 1
    fast = for_inference(model, x[:1], channels_last=True)
    stem_convs = [m for m in fast.backbone.conv1.modules() if isinstance(m, nn.Conv2d)]
    assert isinstance(fast.backbone.conv1, Float64Compute) and stem_convs[0].bias is not None  # BN folded
    assert {c.weight.dtype for c in stem_convs} == {torch.float64}
    assert stem_convs[0].weight.is_contiguous()  # not channels-last: float64 convs are slow so
    assert fast.backbone.blocks[1].expand_conv.conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert torch.allclose(fast(x), model(x), atol=1e-5)


def test_a_converted_file_stores_float32_and_loads_them_back(tmp_path):
    model = _model()
    config = {"architecture": "ch_ppocr_mobile_v2.0_rec", "task": "rec", "model": _cfg(),
              "preprocess": {}, "postprocess": {}}
    text = "".join(chr(ord("a") + i) + "\n" for i in range(36))
    written = write_converted(model.state_dict(), config, text, tmp_path / "m.safetensors")
    loaded = ptocr.load(written.weights, optimize=False).model
    assert isinstance(loaded.backbone.blocks[0], Float64Compute)
    assert _dtypes(loaded.backbone.blocks[0]) == {torch.float64}
    x = torch.rand(1, 3, 32, 100)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))


def test_the_russian_recognizer_converts_with_its_float64_stem(shared_dir, tmp_path):
    folder = shared_dir / "paddle_models" / "ru_mobile_v2.0_rec_infer"
    if not folder.is_dir():
        pytest.skip("ru_mobile_v2.0_rec_infer is not among the shared Paddle models")
    conv = convert(folder)
    assert conv.config["model"]["float64_modules"] == STEM
    assert isinstance(conv.model.backbone.blocks[0], Float64Compute)
    # The file holds the weights as Paddle released them: float32 throughout.
    assert {t.dtype for t in conv.state_dict.values() if t.is_floating_point()} == {torch.float32}
    # Known by its weights, whatever the folder is called.
    renamed = tmp_path / "my_model"
    shutil.copytree(folder, renamed)
    assert convert(renamed, "ch_ppocr_mobile_v2.0_rec").config["model"]["float64_modules"] == STEM
    other = convert(shared_dir / "paddle_models" / "french_mobile_v2.0_rec_infer")
    assert "float64_modules" not in other.config["model"]  # only where its entry says so
