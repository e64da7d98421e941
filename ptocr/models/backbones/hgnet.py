"""PP-HGNet and PP-HGNetV2, PaddleOCR's server backbones, as one family.

* ``PPHGNet`` (PaddleOCR ``rec_hgnet.py``, ``PPHGNet_small``): the PP-OCRv4 server detector
  (``det=True``) and recognizer (``det=False``).
* ``PPHGNetV2`` (PaddleOCR ``rec_pphgnetv2.py``, ``PPHGNetV2_B4``): the PP-OCRv5 server
  detector (``det=True``) and recognizer (``text_rec=True``).

Both are a stem, then stages of HG blocks: an optional depthwise 3x3 conv-BN ``downsample``
(no activation; stride 2, or an (h, w) pair that keeps width resolution for recognition),
then ``blocks``. A block runs ``layer_num`` conv-BN-ReLU layers in a chain, concatenates its
input with every layer's output and aggregates the concatenation back to ``out`` channels;
every block after a stage's first adds its input. The versions differ where the arguments of
the shared classes say so (names are PaddleOCR's, so Paddle structured names map unchanged):

* stem: v1 ``stem.0..2`` three 3x3 conv-BN-ReLU (the first stride 2), followed in the
  detector by a 3x3 stride-2 max pool (padding 1); v2 ``StemBlock`` (see there).
* layers: v1 3x3 conv-BN-ReLU; v2 the stage's kernel, and in "light" stages a 1x1 conv-BN
  ``conv1`` then a depthwise conv-BN-ReLU ``conv2`` (``LightConvBNAct``).
* aggregation (``agg``): v1 ``"ese"``, a 1x1 conv-BN-ReLU ``aggregation_conv`` gated by
  effective squeeze-excitation ``att`` (global average pool, biased 1x1 conv, sigmoid,
  multiply); v2 ``"se"``, 1x1 conv-BN-ReLU squeeze to out/2 (``aggregation_squeeze_conv``)
  and expansion to out (``aggregation_excitation_conv``).
* ``use_lab`` (v2 B0-B3): every activated conv block ends with a learnable affine ``lab``
  (scalar scale and bias). B4 has none.
* outputs: det, the chosen stage outputs (1/4 .. 1/32 of the input) for the neck. Recognition
  (v1 ``det=False``, v2 ``text_rec=True``): a 3x2 average pool (stride 3x2, no padding) in
  eval, so a 48-high input ends at height 1 and width W/8; training pools adaptively to
  1 x 40 as PaddleOCR does (its inference programs hold the fixed pool). v2 with neither flag
  returns the last map unpooled.

Batch norms use Paddle's default epsilon 1e-5 (as the programs store it). PaddleOCR's
classification tails (``last_conv``, ``fc``) are never run by the OCR models and not built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ptocr.errors import ArchitectureError
from ptocr.models.layers import ConvBNAct, GlobalAvgPool
from ptocr.models.registry import register

# PPHGNet_small, per stage: in, mid, out channels, blocks, downsample, stride.
STAGES_SMALL_DET = (
    (128, 128, 256, 1, False, 2),
    (256, 160, 512, 1, True, 2),
    (512, 192, 768, 2, True, 2),
    (768, 224, 1024, 1, True, 2),
)
STAGES_SMALL_REC = (
    (128, 128, 256, 1, True, (2, 1)),
    (256, 160, 512, 1, True, (1, 2)),
    (512, 192, 768, 2, True, (2, 1)),
    (768, 224, 1024, 1, True, (2, 1)),
)
SMALL = {"stem_channels": (64, 64, 128), "layer_num": 6}

# PPHGNetV2_B4, per stage: in, mid, out channels, blocks, downsample, light block, kernel,
# layer_num, stride.
B4_DET = (
    (48, 48, 128, 1, False, False, 3, 6, 2),
    (128, 96, 512, 1, True, False, 3, 6, 2),
    (512, 192, 1024, 3, True, True, 5, 6, 2),
    (1024, 384, 2048, 1, True, True, 5, 6, 2),
)
B4_REC = (
    (48, 48, 128, 1, True, False, 3, 6, (2, 1)),
    (128, 96, 512, 1, True, False, 3, 6, (1, 2)),
    (512, 192, 1024, 3, True, True, 5, 6, (2, 1)),
    (1024, 384, 2048, 1, True, True, 5, 6, (2, 1)),
)
B4_STEM = (32, 48)  # mid, out


def _conv(in_channels, out_channels, kernel_size, stride=1, groups=1, act=True, use_lab=False,
          padding=None) -> ConvBNAct:
    """HGNet's ConvBNAct: bias-free conv -> BN -> ReLU (``act``) -> ``lab`` (``use_lab``, and
    only after an activation, as PaddleOCR builds it)."""
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, padding, groups,
                     act="relu" if act else None, lab=act and use_lab)


class ESEModule(nn.Module):
    """Effective squeeze-excitation (v1): one biased 1x1 conv on the pooled map, sigmoid gate."""

    def __init__(self, channels: int):
        super().__init__()
        self.pool = GlobalAvgPool()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.conv(self.pool(x)))


class LightConvBNAct(nn.Module):
    """v2 "light" layer: 1x1 conv-BN ``conv1``, then depthwise kxk conv-BN-ReLU ``conv2``."""

    def __init__(self, in_channels, out_channels, kernel_size, use_lab=False):
        super().__init__()
        self.conv1 = _conv(in_channels, out_channels, 1, act=False)
        self.conv2 = _conv(out_channels, out_channels, kernel_size, groups=out_channels, use_lab=use_lab)

    def forward(self, x):
        return self.conv2(self.conv1(x))


class StemBlock(nn.Module):
    """v2 stem: ``stem1`` 3x3 stride-2 conv-BN-ReLU; two branches on its output, ``stem2a`` ->
    ``stem2b`` (2x2 convs with Paddle's 'SAME' padding: 0 before, 1 after) and a 2x2 stride-1
    max pool (also 'SAME': one -inf row/column after), concatenated [pool, convs]; ``stem3``
    3x3 conv-BN-ReLU (stride 2, or 1 for text recognition) and ``stem4`` 1x1 conv-BN-ReLU."""

    def __init__(self, in_channels, mid_channels, out_channels, use_lab=False, text_rec=False):
        super().__init__()
        self.stem1 = _conv(in_channels, mid_channels, 3, stride=2, use_lab=use_lab)
        self.stem2a = _conv(mid_channels, mid_channels // 2, 2, use_lab=use_lab, padding="same")
        self.stem2b = _conv(mid_channels // 2, mid_channels, 2, use_lab=use_lab, padding="same")
        self.stem3 = _conv(mid_channels * 2, mid_channels, 3, stride=1 if text_rec else 2, use_lab=use_lab)
        self.stem4 = _conv(mid_channels, out_channels, 1, use_lab=use_lab)

    def forward(self, x):
        x = self.stem1(x)
        x2 = self.stem2b(self.stem2a(x))
        x1 = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 2, stride=1)
        return self.stem4(self.stem3(torch.cat([x1, x2], dim=1)))


class HGBlock(nn.Module):
    """``layer_num`` chained layers, input and every output concatenated, then aggregated
    (``agg`` "ese": v1, "se": v2; see the module docstring); ``identity`` adds the input."""

    def __init__(self, in_channels, mid_channels, out_channels, layer_num, kernel_size=3,
                 identity=False, light_block=False, use_lab=False, agg="ese"):
        super().__init__()
        if agg not in ("ese", "se"):
            raise ArchitectureError(f"HGBlock: agg must be 'ese' or 'se', got {agg!r}")
        self.identity, self.agg = identity, agg
        self.layers = nn.ModuleList(
            (LightConvBNAct(c, mid_channels, kernel_size, use_lab=use_lab) if light_block
             else _conv(c, mid_channels, kernel_size, use_lab=use_lab))
            for c in [in_channels] + [mid_channels] * (layer_num - 1)
        )
        total = in_channels + layer_num * mid_channels
        if agg == "ese":
            self.aggregation_conv = _conv(total, out_channels, 1, use_lab=use_lab)
            self.att = ESEModule(out_channels)
        else:
            self.aggregation_squeeze_conv = _conv(total, out_channels // 2, 1, use_lab=use_lab)
            self.aggregation_excitation_conv = _conv(out_channels // 2, out_channels, 1, use_lab=use_lab)

    def forward(self, x):
        feats = [x]
        y = x
        for layer in self.layers:
            y = layer(y)
            feats.append(y)
        y = torch.cat(feats, dim=1)
        if self.agg == "ese":
            y = self.att(self.aggregation_conv(y))
        else:
            y = self.aggregation_excitation_conv(self.aggregation_squeeze_conv(y))
        return y + x if self.identity else y


class HGStage(nn.Module):
    """Optional depthwise 3x3 conv-BN ``downsample`` (padding 1, no activation), then
    ``block_num`` HG blocks, all but the first residual."""

    def __init__(self, in_channels, mid_channels, out_channels, block_num, layer_num,
                 downsample=True, stride=2, light_block=False, kernel_size=3, use_lab=False, agg="ese"):
        super().__init__()
        self.downsample = (_conv(in_channels, in_channels, 3, _stride(stride), groups=in_channels, act=False)
                           if downsample else None)
        self.blocks = nn.Sequential(*[
            HGBlock(in_channels if i == 0 else out_channels, mid_channels, out_channels, layer_num,
                    kernel_size, identity=i > 0, light_block=light_block, use_lab=use_lab, agg=agg)
            for i in range(block_num)
        ])

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        return self.blocks(x)


def _stride(s):
    return tuple(s) if isinstance(s, (list, tuple)) else s


class _HGNet(nn.Module):
    """What both versions share after their stems: the stages and the outputs.

    ``stem_pool``: a 3x3 stride-2 max pool (padding 1) after the stem (v1 det).
    ``rec_pool``: end a non-det network with the recognizer's pool (module docstring)."""

    def __init__(self, stem: nn.Module, stages: list[HGStage], stage_outs: list[int], det: bool,
                 out_indices, stem_pool: bool, rec_pool: bool):
        super().__init__()
        self.out_indices = tuple(out_indices)
        if any(not 0 <= i < len(stages) for i in self.out_indices):
            raise ArchitectureError(f"{type(self).__name__}: out_indices {self.out_indices} outside "
                                    f"{len(stages)} stages")
        self.det, self.stem_pool, self.rec_pool = det, stem_pool, rec_pool
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.out_channels = [stage_outs[i] for i in self.out_indices] if det else stage_outs[-1]

    def forward(self, x):
        x = self.stem(x)
        if self.stem_pool:
            x = F.max_pool2d(x, 3, stride=2, padding=1)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if self.det and i in self.out_indices:
                outs.append(x)
        if self.det:
            return outs
        if not self.rec_pool:
            return x
        if self.training:
            return F.adaptive_avg_pool2d(x, (1, 40))
        # The stride spelled out: oneDNN Graph refuses a traced pool whose stride is left to
        # default ("could not set attribute to the op"). The same pool.
        return F.avg_pool2d(x, (3, 2), (3, 2))


@register("backbone")
class PPHGNet(_HGNet):
    """PP-HGNet (v1).

    Args:
        in_channels: image channels.
        det: detector layout (max-pool after the stem, stride-2 stages, four outputs)
            rather than the recognizer's.
        stem_channels, stage_config, layer_num: the network size; the defaults are
            PaddleOCR's ``PPHGNet_small`` (the only size its OCR configs use).
        out_indices: det only, which stages feed the neck.
    """

    def __init__(self, in_channels: int = 3, det: bool = False,
                 stem_channels=SMALL["stem_channels"], stage_config=None,
                 layer_num: int = SMALL["layer_num"], out_indices=(0, 1, 2, 3)):
        if stage_config is None:
            stage_config = STAGES_SMALL_DET if det else STAGES_SMALL_REC
        stage_config = [tuple(s) for s in stage_config]
        chans = (in_channels, *stem_channels)
        stem = nn.Sequential(*[
            _conv(chans[i], chans[i + 1], 3, stride=2 if i == 0 else 1) for i in range(len(stem_channels))
        ])
        stages = [HGStage(cin, cmid, cout, blocks, layer_num, down, stride, agg="ese")
                  for cin, cmid, cout, blocks, down, stride in stage_config]
        super().__init__(stem, stages, [s[2] for s in stage_config], det, out_indices,
                         stem_pool=det, rec_pool=not det)


@register("backbone")
class PPHGNetV2(_HGNet):
    """PP-HGNetV2.

    Args:
        in_channels: image channels.
        det: detector layout (four outputs).
        text_rec: recognizer layout (stride-1 ``stem3``, final 3x2 average pool).
        stem_channels: (mid, out) of the stem; stage_config: per stage (in, mid, out,
            blocks, downsample, light block, kernel, layer_num, stride). The defaults are
            PaddleOCR's ``PPHGNetV2_B4`` for the chosen layout.
        use_lab: learnable affine after every activation (B0-B3).
        out_indices: det only, which stages feed the neck.
    """

    def __init__(self, in_channels: int = 3, det: bool = False, text_rec: bool = False,
                 stem_channels=B4_STEM, stage_config=None, use_lab: bool = False,
                 out_indices=(0, 1, 2, 3)):
        if det and text_rec:
            raise ArchitectureError("PPHGNetV2: det and text_rec are exclusive")
        if stage_config is None:
            stage_config = B4_DET if det else B4_REC
        stage_config = [tuple(s) for s in stage_config]
        mid, out = stem_channels
        stem = StemBlock(in_channels, mid, out, use_lab=use_lab, text_rec=text_rec)
        stages = [HGStage(cin, cmid, cout, blocks, layers, down, stride, light, k, use_lab, agg="se")
                  for cin, cmid, cout, blocks, down, light, k, layers, stride in stage_config]
        super().__init__(stem, stages, [s[2] for s in stage_config], det, out_indices,
                         stem_pool=False, rec_pool=text_rec)
        self.text_rec = text_rec
