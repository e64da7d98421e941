"""MobileNetV3 (rec/cls and det layouts), ClsHead, SequenceEncoder and CTCHead.

Key-name tests compare against the real PaddleOCR ``.pdiparams.info`` files in the shared
folder (``PTOCR_SHARED``, default ``<repo>/../shared``) and skip when it is absent.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from ptocr.errors import ArchitectureError
from ptocr.models.backbones.mobilenetv3 import MobileNetV3
from ptocr.models.layers import make_divisible
from ptocr.models.layers import SEModule
from ptocr.models.heads.cls_head import ClsHead
from ptocr.models.heads.ctc_head import CTCHead
from ptocr.models.model import OCRModel
from ptocr.models.necks.svtr import SequenceEncoder, _BiLSTM
from ptocr.models.registry import get_component

SHARED = Path(os.environ.get("PTOCR_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
MODELS = SHARED / "paddle_models"


def paddle_names(model: str) -> set[str]:
    info = MODELS / model / "inference.pdiparams.info"
    if not info.is_file():
        pytest.skip(f"shared Paddle model not found: {info} (set PTOCR_SHARED)")
    with open(info, "rb") as f:
        return {v["structured_name"] for v in pickle.load(f).values()}


def torch_names(model: nn.Module) -> set[str]:
    """State-dict keys in Paddle spelling (BN buffers renamed, the step counter dropped)."""
    return {
        k.replace("running_mean", "_mean").replace("running_var", "_variance")
        for k in model.state_dict()
        if not k.endswith("num_batches_tracked")
    }


def cls_model() -> OCRModel:
    bb = MobileNetV3(model_name="small", scale=0.35)
    return OCRModel(bb, None, ClsHead(bb.out_channels, num_classes=2))


def v4_neck_head() -> tuple[SequenceEncoder, CTCHead]:
    neck = SequenceEncoder(480, "svtr", dims=120, depth=2, hidden_dims=120,
                           kernel_size=[1, 3], use_guide=True)
    return neck, CTCHead(neck.out_channels, num_classes=6625)


# ---------------------------------------------------------------- registry and construction


@pytest.mark.parametrize("kind,name", [("backbone", "MobileNetV3"), ("neck", "SequenceEncoder"),
                                       ("head", "ClsHead"), ("head", "CTCHead")])
def test_registered(kind, name):
    assert get_component(kind, name).__name__ == name


def test_make_divisible_scale_035():
    # The x0.35 channels Paddle's cls program has (stem 8, first SE block 8, last conv 200).
    chans = [make_divisible(0.35 * c) for c in (16, 72, 88, 96, 240, 576)]
    assert chans == [8, 24, 32, 32, 88, 200]


def test_cls_backbone_shape():
    bb = MobileNetV3(model_name="small", scale=0.35).eval()
    assert bb.out_channels == 200
    # conv1 /2, four (2, 1) blocks, 2x2 max-pool: 48 -> 1 row, 192 -> 48 columns
    assert bb(torch.zeros(2, 3, 48, 192)).shape == (2, 200, 1, 48)


def test_rec_backbone_strides_and_shortcut_quirk():
    bb = MobileNetV3(model_name="small", scale=0.5, small_stride=[1, 2, 2, 2]).eval()
    assert bb(torch.zeros(1, 3, 32, 320)).shape == (1, 288, 1, 80)
    # Paddle compares the tuple stride (1, 1) with 1: no shortcut although 8 -> 8 channels.
    assert bb.blocks[0].bottleneck_conv.conv.stride == (1, 1)
    assert not bb.blocks[0].if_shortcut
    assert bb.blocks[2].if_shortcut


def test_det_backbone_four_maps():
    bb = MobileNetV3(model_name="large", scale=0.5, det=True, disable_se=True).eval()
    assert bb.out_channels == [16, 24, 56, 480]
    outs = bb(torch.zeros(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [
        (1, 16, 16, 24), (1, 24, 8, 12), (1, 56, 4, 6), (1, 480, 2, 3)]
    small = MobileNetV3(model_name="small", scale=0.5, det=True)
    assert len(small.out_channels) == 4


def test_backbone_bad_args():
    with pytest.raises(ArchitectureError):
        MobileNetV3(model_name="medium")
    with pytest.raises(ArchitectureError):
        MobileNetV3(scale=0.4)
    with pytest.raises(ArchitectureError):
        MobileNetV3(det=True, small_stride=[1, 2, 2, 2])


def test_se_uses_paddle_hardsigmoid():
    se = SEModule(8)
    for p in se.parameters():
        nn.init.zeros_(p)
    with torch.no_grad():
        se.conv2.bias.fill_(1.0)
    # Paddle: clip(0.2 * 1 + 0.5, 0, 1) = 0.7; torch's hardsigmoid would give 1/6 + 0.5.
    out = se(torch.ones(1, 8, 3, 3))
    torch.testing.assert_close(out, torch.full_like(out, 0.7))


# ---------------------------------------------------------------- heads


def test_cls_head_eval_probabilities_train_logits():
    head = ClsHead(200, num_classes=2)
    x = torch.randn(4, 200, 1, 48)
    logits = head.train()(x)
    probs = head.eval()(x)
    assert probs.shape == (4, 2) and head.out_channels == 2
    torch.testing.assert_close(probs.sum(1), torch.ones(4))
    torch.testing.assert_close(probs, logits.softmax(1))
    assert not torch.allclose(logits.sum(1), torch.ones(4))


@pytest.mark.parametrize("mid", [None, 96])
def test_ctc_head(mid):
    head = CTCHead(120, num_classes=37, mid_channels=mid)
    keys = set(head.state_dict())
    assert keys == ({"fc.weight", "fc.bias"} if mid is None
                    else {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"})
    x = torch.randn(2, 40, 120)
    probs = head.eval()(x)
    assert probs.shape == (2, 40, 37) and head.out_channels == 37
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 40))
    torch.testing.assert_close(probs, head.train()(x).softmax(-1))


# ---------------------------------------------------------------- neck


def test_svtr_neck_shapes_and_guide():
    neck, head = v4_neck_head()
    assert neck.out_channels == 120
    x = torch.randn(2, 480, 1, 40, requires_grad=True)
    out = head.eval()(neck.eval()(x))
    assert out.shape == (2, 40, 6625)
    torch.testing.assert_close(out.sum(-1), torch.ones(2, 40))
    # use_guide is recorded, but without Paddle's GTC branch the gradient reaches the backbone
    assert neck.encoder.use_guide
    neck(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # PaddleOCR's stop, on request (the shortcut included)
    x.grad = None
    neck.encoder.detach_input = True
    neck(x).sum().backward()
    assert x.grad is None


def test_svtr_layer_norm_eps():
    neck, _ = v4_neck_head()
    enc = neck.encoder
    assert enc.norm.eps == 1e-6
    assert all(b.norm1.eps == 1e-5 and b.norm2.eps == 1e-5 for b in enc.svtr_block)
    assert enc.svtr_block[0].mixer.scale == pytest.approx(15**-0.5)  # 120 dims / 8 heads


@pytest.mark.parametrize("kind,hidden,out", [("reshape", 48, 288), ("fc", 96, 96), ("rnn", 48, 96)])
def test_sequence_encoder_other_types(kind, hidden, out):
    neck = SequenceEncoder(288, kind, hidden_size=hidden).eval()
    assert neck.out_channels == out
    assert neck(torch.randn(3, 288, 1, 25)).shape == (3, 25, out)


def test_sequence_encoder_errors():
    with pytest.raises(ArchitectureError):
        SequenceEncoder(288, "transformer")
    with pytest.raises(ArchitectureError):
        SequenceEncoder(288, "rnn", dims=64)
    with pytest.raises(ArchitectureError):
        SequenceEncoder(288, "svtr", no_such_arg=1)
    with pytest.raises(ValueError):
        SequenceEncoder(288, "reshape")(torch.randn(1, 288, 2, 25))


def test_bilstm_equals_torch_lstm():
    ours = _BiLSTM(16, 8, num_layers=2).eval()
    ref = nn.LSTM(16, 8, num_layers=2, bidirectional=True, batch_first=True).eval()
    with torch.no_grad():
        for i, layer in enumerate(ours):
            for cell, sfx in ((layer.cell_fw, ""), (layer.cell_bw, "_reverse")):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(cell, name).copy_(getattr(ref, f"{name}_l{i}{sfx}"))
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(ours(x), ref(x)[0])


# ---------------------------------------------------------------- names vs the real models


def test_cls_keys_equal_paddle():
    assert torch_names(cls_model()) == paddle_names("ch_ppocr_mobile_v2.0_cls_infer")


def test_v4_svtr_ctc_keys_equal_paddle():
    names = paddle_names("ch_PP-OCRv4_rec_infer")
    neck, head = v4_neck_head()
    pre_neck, pre_head = "head.ctc_encoder.", "head.ctc_head."
    expected_neck = {n[len(pre_neck):] for n in names if n.startswith(pre_neck)}
    expected_head = {n[len(pre_head):] for n in names if n.startswith(pre_head)}
    assert torch_names(neck) == expected_neck  # encoder.<rest>
    assert torch_names(head) == expected_head


def test_crnn_keys_equal_paddle():
    # v2.0 multilingual CRNN: MobileNetV3 small x0.5 (rec strides) + BiLSTM + CTC.
    names = paddle_names("ru_mobile_v2.0_rec_infer")
    bb = MobileNetV3(model_name="small", scale=0.5, small_stride=[1, 2, 2, 2])
    neck = SequenceEncoder(bb.out_channels, "rnn", hidden_size=48)
    model = OCRModel(bb, neck, CTCHead(neck.out_channels, num_classes=128))
    assert torch_names(model) == names


def test_det_backbone_keys_equal_paddle():
    names = paddle_names("ch_ppocr_mobile_v2.0_det_infer")
    bb = MobileNetV3(model_name="large", scale=0.5, det=True, disable_se=True)
    expected = {n for n in names if n.startswith("backbone.")}
    assert {f"backbone.{k}" for k in torch_names(bb)} == expected
