"""ConvActivation2d (ptocr.models.conv_activation): a conv and the activation that alone reads it,
one oneDNN primitive in eager float32 on the CPU (small maps with the weight packed once), the
two plain ops everywhere else."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn as nn

from ptocr.models.conv_activation import (FUSED_MIN_ELEMENTS, NO_ACTIVATION, ConvActivation2d, _PackedWeight,
                                          _same_bytes, fused_kernel_available, pack_for)
from ptocr.optimize import for_inference, onednn_convs

needs_kernel = pytest.mark.skipif(not fused_kernel_available(), reason="this PyTorch build has no oneDNN fused conv")


class _Block(nn.Module):
    """conv -> act (fusable); conv2 -> act2 with the conv output read again (not fusable)."""

    def __init__(self, act: type[nn.Module] = nn.Hardswish):
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1)
        self.act = act()
        self.conv2 = nn.Conv2d(16, 16, 1)
        self.act2 = nn.ReLU()

    def forward(self, x):
        y = self.act(self.conv(x))
        z = self.conv2(y)
        return self.act2(z) + z


def _big_input() -> torch.Tensor:
    # conv's output (16 channels) at or past the fused kernel's size threshold
    side = int((FUSED_MIN_ELEMENTS / 16) ** 0.5) + 1
    return torch.randn(1, 8, side, side)


@pytest.mark.parametrize("act", [nn.ReLU, nn.Hardswish, nn.SiLU])
def test_fuses_the_sole_reader_and_keeps_the_names(act):
    model = _Block(act).eval()
    names = set(model.state_dict())
    assert onednn_convs(model, torch.randn(1, 8, 8, 8)) == 1
    assert isinstance(model.conv, ConvActivation2d) and isinstance(model.act, nn.Identity)
    # z is read twice: conv2 keeps no activation, act2 stays a module
    assert isinstance(model.conv2, ConvActivation2d) and model.conv2.activation == NO_ACTIVATION
    assert isinstance(model.act2, nn.ReLU)
    assert set(model.state_dict()) == names


@needs_kernel
@pytest.mark.parametrize("act", [nn.ReLU, nn.Hardswish, nn.SiLU])
def test_fused_kernel_computes_the_same_function(act):
    plain = _Block(act).eval()
    x = _big_input().contiguous(memory_format=torch.channels_last)
    fused = for_inference(plain, x, channels_last=True)
    assert fused.conv._kernel(x) == "plain"
    with torch.no_grad():
        a, b = plain(x), fused(x)
    assert (a - b).abs().max() <= 1e-5 * a.abs().max()


def _small_cl_input() -> torch.Tensor:
    return torch.randn(2, 8, 12, 12).contiguous(memory_format=torch.channels_last)


@needs_kernel
def test_which_kernel_runs():
    model = for_inference(_Block().eval(), torch.randn(1, 8, 8, 8), channels_last=True)
    conv, x = model.conv, _big_input()
    assert conv._kernel(x) == "plain"  # a large output: plain weights, the activation fused
    assert conv._kernel(x.contiguous(memory_format=torch.channels_last)) == "plain"
    assert conv._kernel(_small_cl_input()) == "packed"  # small, channels-last: the packed weight
    assert conv._kernel(_small_cl_input().contiguous()) is None  # small NCHW: the plain ops
    # one small image and a 3x3 dense kernel: oneDNN too (ATen would take its slower im2col path)
    assert conv._kernel(torch.randn(1, 8, 6, 6).contiguous(memory_format=torch.channels_last)) == "packed"
    # a 1x1 conv on a small channels-last map: a matrix product; on a large one the fused kernel
    pointwise, y = model.conv2, torch.randn(1, 16, 6, 6).contiguous(memory_format=torch.channels_last)
    assert pointwise._kernel(y) == "matrix" and pointwise._kernel(y.contiguous()) is None
    big = torch.randn(1, 16, *_big_input().shape[2:]).contiguous(memory_format=torch.channels_last)
    assert pointwise._kernel(big) is None  # no activation of its own: the plain conv
    x = _small_cl_input()
    assert conv._kernel(x.double()) is None and conv._kernel(x.bfloat16()) is None
    assert conv._kernel(x.to("meta")) is None
    assert conv._kernel(x.clone().requires_grad_()) is None
    with torch.backends.mkldnn.flags(enabled=False):
        assert conv._kernel(x) is None
    # A trace records the plain ops, so exports and compiled graphs never see the private op.
    with torch.no_grad():
        graph = str(torch.jit.trace(model, x).inlined_graph)
    assert "_convolution_pointwise" not in graph and "aten::_convolution" in graph and "hardswish" in graph


@needs_kernel
def test_packed_weight_computes_the_same_and_follows_the_weight():
    plain = _Block().eval()
    x = _small_cl_input()
    model = for_inference(plain, x, channels_last=True)
    with torch.no_grad():
        a, b = plain(x), model(x)
        assert model.conv._packed.entry is not None  # conv2, a 1x1, is a matrix product
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()
        # a weight changed in place is packed again; so is one replaced
        model.conv.weight.mul_(2)
        plain.conv.weight.mul_(2)
        assert (plain(x) - model(x)).abs().max() <= 1e-5 * plain(x).abs().max()
        model.conv.weight = nn.Parameter(torch.zeros_like(model.conv.weight), requires_grad=False)
        expected = torch.nn.functional.hardswish(model.conv.bias).reshape(1, -1, 1, 1).expand(2, -1, 12, 12)
        assert (model.conv(x) - expected).abs().max() <= 1e-6  # the zero weight, not the packed old one


@needs_kernel
def test_the_weight_is_packed_for_each_input_shape():
    """oneDNN picks the packed layout from the whole problem (the v4 recognizer's 960 -> 60 neck
    conv: 32-channel blocks at batch 1, 24 at batch 6 on AVX2): a weight packed at one shape and
    handed to a call of another was converted at every call. Each shape gets what oneDNN asks for
    at that shape, and shapes whose packed weights are the same bytes share one tensor."""
    conv = nn.Conv2d(960, 60, (1, 3), padding=(0, 1)).eval()
    model = for_inference(nn.Sequential(conv), torch.randn(1, 960, 1, 40), channels_last=True)[0]
    shapes = [(1, 960, 1, 40), (6, 960, 1, 40), (1, 960, 1, 41)]
    with torch.no_grad():
        for shape in shapes:
            x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
            assert model._kernel(x) == "packed"
            ref = torch.conv2d(x, conv.weight, conv.bias, padding=(0, 1))
            assert (model(x) - ref).abs().max() <= 1e-5 * ref.abs().max()
    cached = model._packed.entry[1]
    assert set(cached) == {torch.Size(s) for s in shapes}
    fresh = {s: pack_for(model, s) for s in shapes}  # outside any cache
    for s in shapes:
        assert _same_bytes(cached[torch.Size(s)], fresh[s])
    for a in shapes:
        for b in shapes:
            assert (cached[torch.Size(a)] is cached[torch.Size(b)]) == _same_bytes(fresh[a], fresh[b])


@needs_kernel
def test_same_bytes_tells_layouts_apart():
    conv = nn.Conv2d(32, 64, 3, padding=1)
    w = conv.weight.detach()
    packed, again = pack_for(conv, (1, 32, 16, 16)), pack_for(conv, (1, 32, 16, 16))
    assert _same_bytes(packed, again)
    assert not _same_bytes(packed, w.to_mkldnn())  # the plain (OIHW) layout: same size, other order
    assert not _same_bytes(packed, (w * 2).to_mkldnn())


@needs_kernel
def test_the_packed_weights_per_shape_are_bounded_oldest_first():
    model = for_inference(nn.Sequential(nn.Conv2d(8, 16, 3, padding=1)), _small_cl_input(), channels_last=True)[0]
    widths = range(4, 4 + _PackedWeight.MAX_SHAPES + 3)
    with torch.no_grad():
        for w in widths:
            model(torch.randn(2, 8, 4, w).contiguous(memory_format=torch.channels_last))
    cached = model._packed.entry[1]
    assert [s[3] for s in cached] == list(widths)[-_PackedWeight.MAX_SHAPES:]


@needs_kernel
def test_copies_and_pickles_start_without_the_packed_weight():
    model = for_inference(_Block().eval(), _small_cl_input(), channels_last=True)
    x = _small_cl_input()
    with torch.no_grad():
        ref = model(x)
        assert model.conv._packed.entry is not None
        for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert other.conv._packed.entry is None
            assert torch.equal(other(x), ref)


@needs_kernel
@pytest.mark.parametrize("act", [nn.ReLU, nn.Hardswish, nn.SiLU, None])
@pytest.mark.parametrize("bias", [True, False])
def test_a_1x1_conv_as_a_matrix_product_computes_the_same_function(act, bias):
    """The matrix form reads a channels-last map as rows and writes a channels-last output:
    same values as the conv, for any batch, with or without bias and activation, and it follows
    the weight when it is changed in place (nothing of it is cached)."""
    conv = nn.Conv2d(24, 40, 1, bias=bias)
    plain = nn.Sequential(conv, act()) if act else nn.Sequential(conv)
    x = torch.randn(3, 24, 5, 7).contiguous(memory_format=torch.channels_last)
    model = for_inference(plain.eval(), x, channels_last=True)
    fused = model[0]
    assert fused._kernel(x) == "matrix"
    with torch.no_grad():
        a, b = plain(x), model(x)
        assert b.shape == a.shape and b.is_contiguous(memory_format=torch.channels_last)
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()
        fused.weight.mul_(-2)
        conv.weight.mul_(-2)
        assert (plain(x) - model(x)).abs().max() <= 1e-5 * plain(x).abs().max()


def test_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="zero-padded"):
        ConvActivation2d.take_over(nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"), "relu")
    with pytest.raises(ValueError, match="gelu"):
        ConvActivation2d.take_over(nn.Conv2d(3, 3, 3), "gelu")


@needs_kernel
def test_weights_made_under_inference_mode_go_unpacked():
    """A model optimized under torch.inference_mode has inference-tensor weights, which have no
    version counter: the fused kernel takes them as they are, and computes the same."""
    plain = _Block().eval()
    x = _small_cl_input()
    with torch.inference_mode():
        model = for_inference(plain, x, channels_last=True)
        assert model.conv.weight.is_inference() and model.conv._kernel(x) == "plain"
        a, b = plain(x), model(x)
    assert model.conv._packed.entry is None
    assert (a - b).abs().max() <= 1e-5 * a.abs().max()
