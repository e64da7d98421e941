"""float16 / bfloat16 models: the cast keeps batch-norm statistics in range, and the real models
read what float32 reads. On CPU, float16 runs the float16 number format (range and rounding,
not CUDA's kernels); the CUDA test runs where a GPU is present."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

import ptocr
from ptocr.precision import cast_model
from tools.precision_agreement import binary_maps, flipped_share

# Largest share of detection-map pixels on the other side of the binarization threshold,
# float32 vs 16 bits. Measured on these scenes: float16 0.06 %, bfloat16 0.52 % (optimize=False,
# the mobile v2.0 detector). Before batch norms kept float32, float16 flipped 5-17 % of every
# map (all probabilities 0, no box found).
MAX_FLIPPED = 0.01
DETECTORS = ("ch_ppocr_mobile_v2.0_det_infer", "ch_PP-OCRv4_det_infer")


def _conv_bn() -> nn.Module:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    model[1].running_var.fill_(9e6)  # as the DB heads' first batch norm: past float16's 65504
    return model


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_cast_keeps_batch_norm_statistics_float32(dtype):
    model = _conv_bn()
    cast = cast_model(copy.deepcopy(model), dtype)
    assert cast[0].weight.dtype == dtype
    for key in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(cast[1], key), getattr(model[1], key)), key
    with torch.inference_mode():
        y = cast(torch.randn(1, 3, 8, 8, dtype=dtype))
    assert y.dtype == dtype and torch.isfinite(y).all()


def test_wide_cast_moves_batch_norms_too():
    cast = cast_model(_conv_bn(), torch.float64)
    assert cast[0].weight.dtype == cast[1].running_var.dtype == torch.float64


def _flipped(p32, p16, scenes) -> float:
    return flipped_share(binary_maps(p32, scenes), binary_maps(p16, scenes))


@pytest.fixture(scope="module")
def scenes(shared_dir):
    return sorted((shared_dir / "images" / "scenes").glob("*.jpg"))[:2]


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "plain"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", DETECTORS)
def test_16_bit_detector_maps_match_float32(shared_dir, scenes, name, dtype, optimize):
    folder = shared_dir / "paddle_models" / name
    p32, p16 = ptocr.load(folder), ptocr.load(folder, dtype=dtype, optimize=optimize)
    assert _flipped(p32, p16, scenes) < MAX_FLIPPED


def test_optimized_predictor_cast_later_to_float16_keeps_its_maps(shared_dir, scenes):
    folder = shared_dir / "paddle_models" / DETECTORS[0]
    p32, p16 = ptocr.load(folder), ptocr.load(folder).to(dtype="float16")
    assert _flipped(p32, p16, scenes) < MAX_FLIPPED


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["ch_PP-OCRv4_rec_infer", "ch_ppocr_mobile_v2.0_cls_infer"])
def test_16_bit_crop_models_read_what_float32_reads(shared_dir, name, dtype):
    folder = shared_dir / "paddle_models" / name
    crops = sorted((shared_dir / "images" / "words" / "ch").glob("*.jpg"))
    want = [r[0] for r in ptocr.load(folder)(crops)]
    assert [r[0] for r in ptocr.load(folder, dtype=dtype)(crops)] == want


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_float16_on_cuda_reads_what_float32_on_cpu_reads(shared_dir, scenes):
    models = shared_dir / "paddle_models"
    det32, det16 = ptocr.load(models / DETECTORS[1]), ptocr.load(models / DETECTORS[1], device="cuda", dtype="float16")
    assert _flipped(det32, det16, scenes) < MAX_FLIPPED
    crops = sorted((shared_dir / "images" / "words" / "ch").glob("*.jpg"))
    for name in ("ch_PP-OCRv4_rec_infer", "ch_ppocr_mobile_v2.0_cls_infer"):
        cpu, gpu = ptocr.load(models / name), ptocr.load(models / name, device="cuda", dtype="float16")
        a, b = cpu(crops), gpu(crops)
        assert [r[0] for r in b] == [r[0] for r in a]
        assert np.isfinite([r[1] for r in b]).all()


@pytest.mark.parametrize("name", ["ch_ppocr_mobile_v2.0_det_infer", "ch_PP-OCRv3_det_infer", "ch_PP-OCRv4_det_infer",
                                  "ch_PP-OCRv4_rec_infer", "en_number_mobile_v2.0_rec_infer",
                                  "ch_ppocr_mobile_v2.0_cls_infer", "PP-LCNet_x0_25_textline_ori_infer"])
@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "plain"])
def test_float16_load_and_forward_keep_to_the_device(shared_dir, name, optimize):
    """What ``ptocr.load(..., device="cuda", dtype="float16")`` asks of this code, checked without a
    GPU on PyTorch's meta device (shapes and types, no values): loading, folding for inference,
    the cast and the forward must make no tensor on the CPU, which fails the op that meets it
    there as on CUDA. (Meta kernels do not check float types; the CPU float16 tests above do.)"""
    from ptocr.optimize import example_input

    predictor = ptocr.load(shared_dir / "paddle_models" / name, device="meta", dtype="float16", optimize=optimize)
    x = example_input(predictor.config)
    tensors = [*predictor.model.parameters(), *predictor.model.buffers()]
    assert {t.device.type for t in tensors} == {"meta"}
    assert torch.float16 in {t.dtype for t in tensors}
    with torch.inference_mode():
        got = predictor.model(x.to("meta", torch.float16))
    assert got.device.type == "meta" and got.dtype == torch.float16 and got.shape[0] == x.shape[0]
