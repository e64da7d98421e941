"""InterleavedConvTranspose2d (ptocr.models.interleaved_conv): a transposed conv with kernel ==
stride to one channel as a 1x1 conv and an interleave, the plain op under capture."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from ptocr.models.interleaved_conv import InterleavedConvTranspose2d
from ptocr.optimize import for_inference, interleaved_transposed_convs


def _pair(in_ch: int = 24, kernel=2, bias: bool = True) -> tuple[nn.ConvTranspose2d, InterleavedConvTranspose2d]:
    torch.manual_seed(0)
    plain = nn.ConvTranspose2d(in_ch, 1, kernel, stride=kernel, bias=bias).eval()
    other = nn.ConvTranspose2d(in_ch, 1, kernel, stride=kernel, bias=bias).eval()
    other.load_state_dict(plain.state_dict())
    return plain, InterleavedConvTranspose2d.take_over(other)


@pytest.mark.parametrize("kernel", [2, (2, 3), 4])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
def test_computes_what_the_transposed_conv_computes(kernel, bias, channels_last):
    plain, fast = _pair(kernel=kernel, bias=bias)
    x = torch.relu(torch.randn(2, 24, 13, 17))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert fast._interleaves(x)
        ref, got = plain(x), fast(x)
    assert got.shape == ref.shape
    # the same products summed: equal up to a kernel's order of accumulation
    assert (got - ref).abs().max() <= 1e-6 * ref.abs().max()


def test_follows_the_weight_and_keeps_its_names():
    plain, fast = _pair()
    assert set(fast.state_dict()) == set(plain.state_dict())
    x = torch.randn(1, 24, 8, 8)
    with torch.no_grad():
        plain.weight.mul_(-3)
        fast.weight.mul_(-3)
        assert (fast(x) - plain(x)).abs().max() <= 1e-6 * plain(x).abs().max()


def test_plain_op_under_capture_and_autograd():
    plain, fast = _pair()
    x = torch.randn(1, 24, 8, 8)
    with torch.no_grad():
        graph = str(torch.jit.trace(fast, x).inlined_graph)
    assert "aten::permute" not in graph and "aten::_convolution" in graph
    xg = x.clone().requires_grad_()
    assert not fast._interleaves(xg)
    fast(xg).sum().backward()
    assert xg.grad is not None and xg.grad.shape == x.shape


@pytest.mark.parametrize("conv", [
    nn.ConvTranspose2d(24, 2, 2, stride=2),  # more than one output channel: not where it pays
    nn.ConvTranspose2d(24, 1, 3, stride=2),  # overlapping blocks
    nn.ConvTranspose2d(24, 1, 2, stride=2, padding=1),
    nn.ConvTranspose2d(24, 1, 2, stride=2, output_padding=1, dilation=2),
    nn.Conv2d(24, 1, 2, stride=2),
])
def test_takes_only_non_overlapping_transposed_convs_to_one_channel(conv):
    assert not InterleavedConvTranspose2d.can_take(conv)
    with pytest.raises(ValueError, match="kernel == stride"):
        InterleavedConvTranspose2d.take_over(conv)


def test_the_db_head_last_layer_is_taken_over():
    """In a DB head (conv -> BN -> ReLU -> 2x2 transposed conv to 24 -> BN -> ReLU -> 2x2
    transposed conv to 1 -> sigmoid), only the last transposed conv is taken over."""
    from ptocr.models.heads.db_head import Head

    head = Head(96).eval()
    x = torch.randn(1, 96, 10, 12)
    fast = for_inference(head, x)
    assert type(fast.conv3) is InterleavedConvTranspose2d
    assert type(fast.conv2) is nn.ConvTranspose2d
    with torch.no_grad():
        ref = head(x)
        assert (fast(x) - ref).abs().max() <= 1e-5
    assert interleaved_transposed_convs(fast) == 0  # nothing left to take over
