"""PP-LCNet (orientation classifiers): structure, Paddle quirks, registry entries."""

from __future__ import annotations

import pytest
import torch

from ptocr.architectures import canonical_name, get_architecture
from ptocr.errors import ArchitectureError
from ptocr.models.backbones.pplcnet import PPLCNet, DownscaleDropout
from ptocr.models.layers import make_divisible
from ptocr.models.build import build_model
from ptocr.transforms import cls_preprocess


@pytest.mark.parametrize("name,size,classes", [
    ("PP-LCNet_x0_25_textline_ori", (80, 160), 2),
    ("PP-LCNet_x1_0_textline_ori", (80, 160), 2),
    ("PP-LCNet_x1_0_doc_ori", (224, 224), 4),
])
def test_entries_build_and_run(name, size, classes):
    spec = get_architecture(name)
    assert spec["task"] == "cls" and cls_preprocess(spec["preprocess"]).image_shape == (3, *size)
    model = build_model(spec["model"]).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, *size))
    assert y.shape == (2, classes)
    torch.testing.assert_close(y.sum(1), torch.ones(2))
    assert len(spec["postprocess"]["labels"]) == classes


def test_channels_x0_25():
    net = PPLCNet(scale=0.25, stride_list=[2, [2, 1], [2, 1], [2, 1], [2, 1]])
    assert net.conv1.conv.out_channels == 8
    assert net.blocks6[-1].pw_conv.conv.out_channels == 128
    assert net.last_conv.weight.shape == (1280, 128, 1, 1) and net.last_conv.bias is None
    assert net.blocks6[0].se is not None and net.blocks5[0].se is None
    assert net.blocks6[0].dw_conv.conv.stride == (2, 1) and net.blocks5[1].dw_conv.conv.kernel_size == (5, 5)


def test_textline_keeps_width():
    net = PPLCNet(scale=0.25, stride_list=[2, [2, 1], [2, 1], [2, 1], [2, 1]]).eval()
    feats = {}
    net.blocks6.register_forward_hook(lambda m, a, o: feats.update(b6=o.shape))
    with torch.no_grad():
        net(torch.randn(1, 3, 80, 160))
    assert feats["b6"] == (1, 128, 3, 80)  # as the Paddle program's shapes say


def test_dropout_downscales_at_inference():
    d = DownscaleDropout(0.2).eval()
    x = torch.ones(3)
    torch.testing.assert_close(d(x), torch.full((3,), 0.8))
    with pytest.raises(ArchitectureError):
        DownscaleDropout(1.0)


def test_make_divisible():
    assert [make_divisible(v) for v in (4, 8, 16, 32 * 0.25, 512 * 0.25, 20)] == [8, 8, 16, 8, 128, 24]


def test_bad_stride_list():
    with pytest.raises(ArchitectureError):
        PPLCNet(stride_list=[2, 2, 2])
    with pytest.raises(ArchitectureError):
        PPLCNet(stride_list=[2, [2, 1, 1], 2, 2, 2])


def test_v5_mobile_aliases():
    assert canonical_name("PP-OCRv5_mobile_det") == "ch_PP-OCRv4_det"
    assert canonical_name("PP-OCRv5_mobile_rec") == "ch_PP-OCRv4_rec"
