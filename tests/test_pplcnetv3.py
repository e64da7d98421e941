"""PP-LCNetV3 (+ RSEFPN + DBHead): shapes, rep-layer fusion, and parameter names against the
real PP-OCRv4 ``.pdiparams.info`` files."""

from __future__ import annotations

import copy

import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from ptocr.models.backbones.pplcnetv3 import FoldedRepLayer, LCNetV3Block, LearnableRepLayer, PPLCNetV3
from ptocr.models.heads.db_head import DBHead
from ptocr.models.model import OCRModel
from ptocr.models.necks.rsefpn import RSEFPN
from ptocr.models.reparam import (HasInferenceForm, Reparameterizable, fuse_reparameterizable,
                                  install_inference_forms)

SHARED = Path(os.environ.get("PTOCR_SHARED", Path(__file__).resolve().parents[2] / "shared"))
MODELS = SHARED / "paddle_models"


def det_model(reparam: bool, with_thresh: bool = True) -> OCRModel:
    bb = PPLCNetV3(scale=0.75, det=True, reparam=reparam)
    neck = RSEFPN(bb.out_channels, out_channels=96, shortcut=True)
    return OCRModel(bb, neck, DBHead(neck.out_channels, k=50, with_thresh=with_thresh))


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affines, so that every fused term matters, scaled so
    activations stay O(1) through ~30 layers (conv weights keep torch's default init)."""
    g = torch.Generator().manual_seed(seed)

    def rand(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(rand(t.shape, 0.5, 1.5))
            elif name.endswith(("running_mean", "bn.bias", "identity.bias", "lab.bias")):
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
            elif name.endswith(("bn.weight", "identity.weight")):
                t.copy_(rand(t.shape, 0.2, 0.6))
            elif name.endswith("lab.scale"):
                t.copy_(rand(t.shape, 0.8, 1.2))


def paddle_names(model: torch.nn.Module) -> set[str]:
    """The model's keys spelled as Paddle spells them."""
    out = set()
    for k in model.state_dict():
        if k.endswith("num_batches_tracked"):
            continue
        out.add(k.replace(".running_mean", "._mean").replace(".running_var", "._variance"))
    return out


# ---------------------------------------------------------------- shapes


def test_det_shapes_and_channels():
    m = det_model(reparam=False).eval()
    assert m.backbone.out_channels == [12, 18, 42, 360]
    x = torch.randn(2, 3, 96, 160)
    with torch.no_grad():
        feats = m.backbone(x)
        assert [tuple(f.shape) for f in feats] == [
            (2, 12, 24, 40), (2, 18, 12, 20), (2, 42, 6, 10), (2, 360, 3, 5)]
        fused = m.neck(feats)
        assert fused.shape == (2, 96, 24, 40)
        prob = m.head(fused)
    assert prob.shape == (2, 1, 96, 160)
    assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0


def test_rec_shapes_and_channels():
    m = PPLCNetV3(scale=0.95).eval()
    assert m.out_channels == 480
    x = torch.randn(2, 3, 48, 320)
    with torch.no_grad():
        assert m(x).shape == (2, 480, 1, 40)  # eval: 3x2 average pool
    m.train()
    assert m(torch.randn(2, 3, 48, 160)).shape == (2, 480, 1, 40)  # train: adaptive to 1x40


def test_db_head_training_output():
    head = DBHead(96, k=50).train()
    out = head(torch.randn(2, 96, 8, 8))
    assert isinstance(out, dict) and out["maps"].shape == (2, 3, 32, 32)
    shrink, thresh, binary = out["maps"].unbind(1)
    expected = torch.reciprocal(1 + torch.exp(-50 * (shrink - thresh)))
    torch.testing.assert_close(binary, expected)


def test_db_head_without_thresh():
    head = DBHead(96, with_thresh=False)
    assert not any(k.startswith("thresh.") for k in head.state_dict())
    assert head.eval()(torch.randn(1, 96, 4, 4)).shape == (1, 1, 16, 16)
    from ptocr.errors import ArchitectureError

    with pytest.raises(ArchitectureError):
        head.train()(torch.randn(1, 96, 4, 4))


def test_rsefpn_rejects_wrong_levels():
    from ptocr.errors import ArchitectureError

    with pytest.raises(ArchitectureError):
        RSEFPN([12, 18, 42], 96)


# ---------------------------------------------------------------- fusion


@pytest.mark.parametrize("det", [True, False])
def test_rep_keeps_outputs(det):
    torch.manual_seed(0)
    if det:
        m = det_model(reparam=False)
        x = torch.randn(2, 3, 128, 96)
    else:
        m = PPLCNetV3(scale=0.95)
        x = torch.randn(2, 3, 48, 160)
    randomize(m)
    m.eval()
    bb = m.backbone if det else m
    with torch.no_grad():
        before, feats_before = m(x), bb(x)
        fuse_reparameterizable(m)
        after, feats_after = m(x), bb(x)
    reps = [l for l in m.modules() if isinstance(l, LearnableRepLayer)]
    assert reps and all(l.is_repped for l in reps)
    branch = re.compile(r"\.(conv_kxk|conv_1x1|identity|lab|act)\.")
    assert not any(branch.search(k) for k in m.state_dict())
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)
    torch.testing.assert_close(feats_after, feats_before, rtol=0, atol=1e-5)
    assert float((before - before.mean()).abs().max()) > 1e-2  # the check is not vacuous


def test_rep_layer_each_branch_kind():
    """dw with identity, strided dw (no identity, no act), rec tuple stride, pointwise."""
    cases = [
        dict(in_channels=8, out_channels=8, kernel_size=3, stride=1, groups=8),
        dict(in_channels=8, out_channels=8, kernel_size=5, stride=2, groups=8),
        dict(in_channels=8, out_channels=8, kernel_size=3, stride=(2, 1), groups=8),
        dict(in_channels=8, out_channels=8, kernel_size=1, stride=1),
        dict(in_channels=8, out_channels=16, kernel_size=1, stride=1),
    ]
    for i, kw in enumerate(cases):
        layer = LearnableRepLayer(num_conv_branches=3, **kw)
        randomize(layer, seed=i)
        layer.eval()
        x = torch.randn(2, kw["in_channels"], 11, 14)
        with torch.no_grad():
            before = layer(x)
            layer.reparameterize()
            layer.reparameterize()  # idempotent
            after = layer(x)
        torch.testing.assert_close(after, before, rtol=0, atol=1e-5, msg=str(kw))
        assert hasattr(layer, "activation") == (kw["stride"] != 2)


def test_rep_gives_the_reparam_layout():
    fused = det_model(reparam=False)
    fuse_reparameterizable(fused)
    built = det_model(reparam=True)
    assert set(fused.state_dict()) == set(built.state_dict())
    for k, v in built.state_dict().items():
        assert fused.state_dict()[k].shape == v.shape, k


def test_backbone_rep_method_returns_self():
    m = PPLCNetV3(scale=0.5)
    assert not m.is_repped
    assert m.rep() is m and m.is_repped


def test_rep_layer_follows_the_reparam_protocol():
    """The generic passes find the layer by its methods: fused, then replaced by its folded
    inference form, the same function to float32 rounding."""
    m = PPLCNetV3(scale=0.5)
    randomize(m)
    m.eval()
    layer = m.blocks3[0].dw_conv
    assert isinstance(layer, Reparameterizable) and isinstance(layer, HasInferenceForm)
    assert not isinstance(m, Reparameterizable)  # the backbone's rep() calls the generic pass
    assert layer.inference_form() is None  # nothing to fold before fusing
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        before = m(x)
        n = install_inference_forms(fuse_reparameterizable(m))
        after = m(x)
    # Each block is installed whole (its two rep layers folded, the affine between them moved
    # into the pointwise conv where no SE sits there): one replacement per block.
    blocks = sum(isinstance(l, LCNetV3Block) for l in m.modules())
    assert n == blocks > 0 and sum(isinstance(l, FoldedRepLayer) for l in m.modules()) == 2 * blocks
    assert not any(isinstance(l, LearnableRepLayer) for l in m.modules())
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)


def test_folded_affine_is_one_pass_eager_and_two_ops_in_a_trace():
    """Eager (no autograd, CPU) the folded layer's ``scale * x + bias`` is one in-place add;
    a trace records the product and the sum, which oneDNN Graph fuses into the conv. Same
    values to float32 rounding either way."""
    m = PPLCNetV3(scale=0.5)
    randomize(m)
    m.eval()
    install_inference_forms(fuse_reparameterizable(m))
    layer = next(l for l in m.modules() if isinstance(l, FoldedRepLayer) and l.act_scale is not None)
    x = torch.randn(1, layer.conv.in_channels, 12, 16)
    with torch.no_grad():
        two_ops = torch.nn.functional.hardswish(layer.conv(x)).mul_(layer.act_scale).add_(layer.act_bias)
        torch.testing.assert_close(layer(x), two_ops, rtol=0, atol=1e-6)
        graph = str(torch.jit.trace(layer, x).inlined_graph)
    assert "aten::mul_" in graph and "aten::add_" in graph and "aten::add(" not in graph
    # bfloat16 keeps the two roundings its agreement with float32 was measured with
    half, xh = copy.deepcopy(layer).bfloat16(), x.bfloat16()
    with torch.no_grad():
        two = torch.nn.functional.hardswish(half.conv(xh)).mul_(half.act_scale).add_(half.act_bias)
        assert torch.equal(half(xh), two)


# ---------------------------------------------------------------- names vs Paddle


def _info_names(folder: str) -> set[str]:
    path = MODELS / folder / "inference.pdiparams.info"
    if not path.is_file():
        pytest.skip(f"{path} not found (set PTOCR_SHARED to the shared/ folder)")
    with open(path, "rb") as f:
        return {v["structured_name"] for v in pickle.load(f).values()}


# Tensors the .info lists but the inference program does not hold (see pplcnetv3.py).
_DROPPED_ALWAYS = re.compile(
    r"\.id_tensor$|^backbone\.conv1\.hardswish\.|^backbone\.(last_conv|hardswish|fc)\.")
# Det rep layers with an int stride of 2 skip their activation; the DB threshold branch is
# training-only.
_DET_ONLY = re.compile(
    r"^backbone\.(blocks3\.0|blocks4\.0|blocks5\.0|blocks6\.0)\.dw_conv\.activation\.|^head\.thresh\.")


def _dropped(name: str, det: bool) -> bool:
    return bool(_DROPPED_ALWAYS.search(name) or (det and _DET_ONLY.search(name)))


def test_det_names_equal_paddle_info():
    info = _info_names("ch_PP-OCRv4_det_infer")
    assert paddle_names(det_model(reparam=True, with_thresh=False)) == {
        n for n in info if not _dropped(n, det=True)}
    # Training form: the threshold branch too, as the .info (from the training model) lists it.
    assert {n for n in paddle_names(det_model(reparam=True)) if n.startswith("head.")} == {
        n for n in info if n.startswith("head.")}


def test_rec_backbone_names_equal_paddle_info():
    info = _info_names("ch_PP-OCRv4_rec_infer")
    expected = {n[len("backbone."):] for n in info
                if n.startswith("backbone.") and not _dropped(n, det=False)}
    assert paddle_names(PPLCNetV3(scale=0.95, reparam=True)) == expected


def test_unfused_names_equal_paddleocr_training_names():
    """en_PP-OCRv4_rec's .info still lists the training branches (PaddleOCR's own names)."""
    path = SHARED / "paddle_graphs" / "en_PP-OCRv4_rec_infer" / "inference.pdiparams.info"
    if not path.is_file():
        pytest.skip(f"{path} not found (set PTOCR_SHARED to the shared/ folder)")
    with open(path, "rb") as f:
        info = {v["structured_name"] for v in pickle.load(f).values()}
    expected = {n[len("backbone."):] for n in info if n.startswith("backbone.")
                and ".reparam_conv." not in n and not n.endswith(".id_tensor")}
    assert paddle_names(PPLCNetV3(scale=0.95)) == expected


@pytest.mark.parametrize("folder,det", [("ch_PP-OCRv4_det_infer", True),
                                        ("ch_PP-OCRv4_rec_infer", False)])
def test_dropped_names_are_exactly_what_the_program_lacks(folder, det):
    """Cross-check the drop rules above against the program's persistable variables (the rec
    check covers the backbone only, the part built here)."""
    framework_pb2 = pytest.importorskip("paddle.base.proto.framework_pb2")
    model_file = MODELS / folder / "inference.pdmodel"
    if not model_file.is_file():
        pytest.skip(f"{model_file} not found (set PTOCR_SHARED to the shared/ folder)")
    with open(MODELS / folder / "inference.pdiparams.info", "rb") as f:
        info = pickle.load(f)
    desc = framework_pb2.ProgramDesc()
    desc.ParseFromString(model_file.read_bytes())
    held = {info[v.name]["structured_name"] for v in desc.blocks[0].vars
            if v.persistable and v.name in info}
    names = {v["structured_name"] for v in info.values()}
    if not det:
        names = {n for n in names if n.startswith("backbone.")}
    assert names - held == {n for n in names if _dropped(n, det)}
