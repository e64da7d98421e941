"""PaddleOCR 3.7's ``EncoderWithLightSVTR`` (``necks/rnn.py``, ``encoder_type="lightsvtr"``),
the recognition neck of PP-OCRv6 small and medium, behind ``SequenceEncoder``'s Im2Seq.

On the backbone's N x C x 1 x W map: ``skip_conv`` (1x1 conv-BN-Swish to ``dims``) is kept
aside; ``conv_reduce`` (the same shape) then a depthwise 1 x ``local_kernel`` conv-BN-Swish
``local_conv`` added to it; global-attention SVTR blocks on the W tokens; ``norm``; the skip
added back. Out: N x W x ``dims``. The blocks' layer norms use eps 1e-5 and the final one 1e-6
(both as the official program stores them).

Names are Paddle's under ``head.ctc_encoder.encoder`` (our ``neck.encoder``): ``conv_reduce`` /
``skip_conv`` are ``ConvBNLayer`` (``conv``, ``norm``), ``local_conv`` a ``Sequential``
(``0`` conv, ``1`` batch norm, Swish).
"""

from __future__ import annotations

import torch.nn as nn

from ptocr.models.layers import ConvBNAct, PaddleBatchNorm2d
from ptocr.models.necks.svtr import Block, Im2Seq
from ptocr.models.registry import register


class EncoderWithLightSVTR(nn.Module):
    def __init__(self, in_channels: int, dims: int = 64, depth: int = 2, num_heads: int = 8,
                 mlp_ratio: float = 2.0, local_kernel: int = 7, qkv_bias: bool = True,
                 drop_rate: float = 0.1, attn_drop_rate: float = 0.1, drop_path: float = 0.0):
        super().__init__()
        self.conv_reduce = ConvBNAct(in_channels, dims, 1, act="silu", bn_name="norm")
        self.local_conv = nn.Sequential(
            nn.Conv2d(dims, dims, (1, local_kernel), padding=(0, local_kernel // 2), groups=dims, bias=False),
            PaddleBatchNorm2d(dims), nn.SiLU())
        self.svtr_block = nn.ModuleList(
            Block(dims, num_heads, mlp_ratio, qkv_bias, None, drop_rate, attn_drop_rate, drop_path, eps=1e-5)
            for _ in range(depth))
        self.norm = nn.LayerNorm(dims, eps=1e-6)
        self.skip_conv = ConvBNAct(in_channels, dims, 1, act="silu", bn_name="norm")
        self.out_channels = dims

    def forward(self, x):
        skip = self.skip_conv(x)
        z = self.conv_reduce(x)
        z = z + self.local_conv(z)
        n, c, h, w = z.shape
        z = z.flatten(2).transpose(1, 2)
        for blk in self.svtr_block:
            z = blk(z)
        z = self.norm(z).reshape(n, h, w, c).permute(0, 3, 1, 2)
        return z + skip


@register("neck")
class LightSVTRSequenceEncoder(nn.Module):
    """``SequenceEncoder(encoder_type="lightsvtr")``: the encoder on the 2-D map, then Im2Seq.

    Args: in_channels (backbone channels) and ``EncoderWithLightSVTR``'s (dims, depth,
    num_heads, mlp_ratio, local_kernel, qkv_bias, drop_rate, attn_drop_rate, drop_path).
    """

    def __init__(self, in_channels: int, **kwargs):
        super().__init__()
        self.encoder = EncoderWithLightSVTR(in_channels, **kwargs)
        self.encoder_reshape = Im2Seq(self.encoder.out_channels)
        self.out_channels = self.encoder.out_channels

    def forward(self, x):
        return self.encoder_reshape(self.encoder(x))
