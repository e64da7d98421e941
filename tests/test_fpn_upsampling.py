"""The FPN necks' upsampled sums and concatenation (``ptocr.models.layers.add_upsampled`` /
``cat_upsampled``): eagerly they read the coarse maps through broadcast views, which must give
the plain ``interpolate`` + ``add`` / ``cat`` bit for bit, in the layout those would give; graph
capture must record the plain ops; and the detectors that use them must read as before."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ptocr.models import layers
from ptocr.models.layers import add_upsampled, cat_upsampled


def _up(x, f):
    return x if f == 1 else F.interpolate(x, scale_factor=f, mode="nearest")


def _layout(x: torch.Tensor) -> str:
    return "channels_last" if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous() else (
        "contiguous" if x.is_contiguous() else "strided")


def _maps(layout, dtype=torch.float32, n=2, c=6, side=32):
    g = torch.Generator().manual_seed(0)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    return [torch.randn(n, c, side // f, side // f, generator=g, dtype=dtype).contiguous(memory_format=fmt)
            for f in (8, 4, 2, 1)]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("factor", [2, 4])
def test_add_upsampled_is_the_plain_sum_bit_for_bit(layout, dtype, factor):
    maps = _maps(layout, dtype)  # sides 4, 8, 16, 32
    fine, coarse = maps[3], maps[{2: 2, 4: 1}[factor]]
    plain = fine + _up(coarse, factor)
    with torch.inference_mode():
        fused = add_upsampled(fine, coarse, factor)
    assert torch.equal(fused, plain)
    assert _layout(fused) == _layout(plain) == layout


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_cat_upsampled_is_the_plain_concatenation_bit_for_bit(layout):
    p5, p4, p3, p2 = _maps(layout)
    plain = torch.cat([_up(p5, 8), _up(p4, 4), _up(p3, 2), p2], dim=1)
    with torch.inference_mode():
        fused = cat_upsampled([(p5, 8), (p4, 4), (p3, 2), (p2, 1)])
    assert torch.equal(fused, plain)
    assert _layout(fused) == _layout(plain) == layout


def test_sizes_the_views_cannot_split_take_the_plain_ops():
    # A 33-wide fine map: interpolate's x2 of a 16-wide one does not match it, and the sum fails
    # the same way with either path; a 3-wide coarse level upsampled by 2 is 6 wide, like p2.
    fine, coarse = torch.randn(1, 4, 6, 6), torch.randn(1, 4, 3, 3)
    assert torch.equal(add_upsampled(fine, coarse, 2), fine + _up(coarse, 2))
    with pytest.raises(RuntimeError):
        add_upsampled(torch.randn(1, 4, 8, 33), torch.randn(1, 4, 4, 16), 2)
    odd = [(torch.randn(1, 2, 3, 3), 2), (torch.randn(1, 2, 6, 6), 1)]
    assert torch.equal(cat_upsampled(odd), torch.cat([_up(odd[0][0], 2), odd[1][0]], dim=1))


def test_training_takes_the_plain_ops_and_their_gradients():
    p5, p4, p3, p2 = (t.requires_grad_() for t in _maps("contiguous", torch.float64))
    fused = cat_upsampled([(add_upsampled(p4, p5, 2), 4), (p3, 2), (p2, 1)])
    plain = torch.cat([_up(p4 + _up(p5, 2), 4), _up(p3, 2), p2], dim=1)
    weights = torch.randn_like(plain)
    got = torch.autograd.grad((fused * weights).sum(), (p5, p4, p3, p2))
    want = torch.autograd.grad((plain * weights).sum(), (p5, p4, p3, p2))
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_a_trace_records_the_plain_upsampling():
    p5, p4, p3, p2 = _maps("contiguous")

    def neck(p5, p4, p3, p2):
        return cat_upsampled([(add_upsampled(p4, p5, 2), 4), (p3, 2), (p2, 1)])

    with torch.no_grad():
        graph = torch.jit.trace(neck, (p5, p4, p3, p2)).graph
    kinds = {node.kind() for node in graph.nodes()}
    assert "aten::upsample_nearest2d" in kinds and "aten::cat" in kinds
    assert "aten::copy_" not in kinds


def test_real_detector_reads_the_same_map_with_either_path(shared_dir, monkeypatch):
    """The v4 mobile detector (RSEFPN) on a real scene: the optimized model's probability map is
    the same, bit for bit, whether its neck takes the views or the plain ops."""
    import ptocr
    from ptocr.transforms import DetPreprocess, load_image

    model = ptocr.load(shared_dir / "paddle_models" / "ch_PP-OCRv4_det_infer").model
    image = load_image(shared_dir / "images" / "scenes" / "00056221.jpg")
    x = torch.from_numpy(DetPreprocess(limit_side_len=320)(image)[0][None])
    with torch.inference_mode():
        fused = model(x)
        monkeypatch.setattr(layers, "capturing_graph", lambda: True)
        plain = model(x)
    assert torch.equal(fused, plain)
