"""Half precision for bulk OCR: the float32 islands of ptocr.precision (the heads) are applied
when a model is cast to float16 / bfloat16, computed in float32 and handed on as the policy says.
The agreement figure the policy is for (>= 99.5 % of float32's lines) is a CUDA test."""

from __future__ import annotations

import glob

import pytest
import torch
import torch.nn as nn

import ptocr
import ptocr.precision as precision
from ptocr.pipeline import OCR
from ptocr.precision import Float32Compute, float32_members

DET, REC = "ch_PP-OCRv4_det_infer", "ch_PP-OCRv4_rec_infer"
CUDA_MIN_AGREEMENT = 0.995


def _features(model, x):
    """The head's input: what backbone (and neck) make of ``x``."""
    f = model.backbone(x)
    return model.neck(f) if model.neck is not None else f


@pytest.mark.parametrize("name", [DET, REC])
def test_bfloat16_heads_compute_in_float32(shared_dir, name):
    from ptocr.optimize import example_input

    folder = shared_dir / "paddle_models" / name
    p32, p16 = ptocr.load(folder), ptocr.load(folder, dtype="bfloat16")
    model = p16.model
    assert isinstance(model.head, Float32Compute) and float32_members(model) == set(model.head.modules())
    assert {p.dtype for p in model.head.parameters()} == {torch.float32}
    assert {p.dtype for p in model.backbone.parameters()} == {torch.bfloat16}
    assert not isinstance(p32.model.head, Float32Compute)  # float32 models are left as they are
    x = example_input(p16.config, dtype=torch.bfloat16)
    with torch.inference_mode():
        f = _features(model, x)
        got = model.head(f)
        want = p32.model.head(f.float())  # the float32 model's head (folded alike) on the same features
        out = model(x)
    assert f.dtype == got.dtype == out.dtype == torch.bfloat16  # a narrow model returns its type
    assert want.dtype == torch.float32 and torch.equal(got, want.to(torch.bfloat16))


def test_islands_are_data(shared_dir, monkeypatch):
    """FLOAT32_MODULES names the islands; one inside the network (an FPN neck, which takes a list)
    hands on the input's type to the layers after it."""
    monkeypatch.setattr(precision, "FLOAT32_MODULES", ("neck", "head"))
    model = ptocr.load(shared_dir / "paddle_models" / DET, dtype="bfloat16", optimize=False).model
    assert isinstance(model.neck, Float32Compute) and {p.dtype for p in model.neck.parameters()} == {torch.float32}
    x = torch.zeros(1, 3, 64, 64, dtype=torch.bfloat16).uniform_(-1, 1)
    with torch.inference_mode():
        assert model.neck(model.backbone(x)).dtype == torch.bfloat16 and model(x).dtype == torch.bfloat16
    monkeypatch.setattr(precision, "FLOAT32_MODULES", ())
    plain = ptocr.load(shared_dir / "paddle_models" / DET, dtype="bfloat16", optimize=False).model
    convs = [m for m in plain.head.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert not float32_members(plain) and {m.weight.dtype for m in convs} == {torch.bfloat16}


def test_float16_islands_on_the_meta_device(shared_dir):
    """What a CUDA float16 load asks of the islands, without a GPU: float32 head weights on the
    device, the model's output in float16."""
    p = ptocr.load(shared_dir / "paddle_models" / REC, device="meta", dtype="float16")
    assert {(t.device.type, t.dtype) for t in p.model.head.parameters()} == {("meta", torch.float32)}
    with torch.inference_mode():
        out = p.model(torch.zeros(2, 3, 48, 320, device="meta", dtype=torch.float16))
    assert out.device.type == "meta" and out.dtype == torch.float16 and out.shape[0] == 2


def _identical_lines(ref, got) -> tuple[int, int]:
    same = total = 0
    for a, b in zip(ref, got):
        la = [(tuple(map(tuple, line.box)), line.text) for line in a]
        lb = {(tuple(map(tuple, line.box)), line.text) for line in b}
        total += len(la)
        same += sum(x in lb for x in la)
    return same, total


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_on_cuda_reads_what_float32_reads(shared_dir, dtype):
    models = shared_dir / "paddle_models"
    folders = (models / DET, models / REC, models / "ch_ppocr_mobile_v2.0_cls_infer")
    scenes = sorted(glob.glob(str(shared_dir / "images" / "scenes" / "*.jpg")))
    ref = OCR(*folders, device="cuda").read_many(scenes)
    got = OCR(*folders, device="cuda", dtype=dtype).read_many(scenes)
    same, total = _identical_lines(ref, got)
    assert same >= CUDA_MIN_AGREEMENT * total, f"{dtype}: {same}/{total} lines identical to float32's"
