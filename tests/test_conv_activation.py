"""ConvActivation2d (ptocr.models.conv_activation): a conv and the activation that alone reads it,
one oneDNN primitive in eager float32 on the CPU, the two plain ops everywhere else."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from ptocr.models.conv_activation import FUSED_MIN_ELEMENTS, ConvActivation2d, fused_kernel_available
from ptocr.optimize import for_inference, fused_conv_activations

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
    assert fused_conv_activations(model, torch.randn(1, 8, 8, 8)) == 1
    assert isinstance(model.conv, ConvActivation2d) and isinstance(model.act, nn.Identity)
    assert type(model.conv2) is nn.Conv2d and isinstance(model.act2, nn.ReLU)  # z is read twice
    assert set(model.state_dict()) == names


@needs_kernel
@pytest.mark.parametrize("act", [nn.ReLU, nn.Hardswish, nn.SiLU])
def test_fused_kernel_computes_the_same_function(act):
    plain = _Block(act).eval()
    x = _big_input().contiguous(memory_format=torch.channels_last)
    fused = for_inference(plain, x, channels_last=True)
    assert fused.conv._fused(x)
    with torch.no_grad():
        a, b = plain(x), fused(x)
    assert (a - b).abs().max() <= 1e-5 * a.abs().max()


@needs_kernel
def test_plain_ops_where_the_fused_kernel_does_not_apply():
    model = for_inference(_Block().eval(), torch.randn(1, 8, 8, 8))
    conv, x = model.conv, _big_input()
    assert conv._fused(x)
    assert not conv._fused(torch.randn(1, 8, 8, 8))  # small output: the plain ops are faster
    assert not conv._fused(x.double()) and not conv._fused(x.bfloat16())
    assert not conv._fused(x.to("meta"))
    assert not conv._fused(x.clone().requires_grad_())
    with torch.backends.mkldnn.flags(enabled=False):
        assert not conv._fused(x)
    # A trace records the plain ops, so exports and compiled graphs never see the private op.
    with torch.no_grad():
        graph = str(torch.jit.trace(model, x).inlined_graph)
    assert "_convolution_pointwise" not in graph and "aten::_convolution" in graph and "hardswish" in graph


def test_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="zero-padded"):
        ConvActivation2d.take_over(nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"), "relu")
    with pytest.raises(ValueError, match="gelu"):
        ConvActivation2d.take_over(nn.Conv2d(3, 3, 3), "gelu")
