"""SVTRv2, the backbone of PaddleX's ``ch_SVTRv2_rec`` (PaddleOCR's ``rec_svtrv2.py``, configured
by ``configs/rec/SVTRv2/ch_SVTRv2_rec.yml``).

A patch embedding (two stride-2 conv + BN + GELU: 1/4 of the image) feeds three stages of
blocks, each block one of two kinds:

* "Conv" (``ConvBlock``) on the N x C x H x W map: a 5 x 5 grouped conv (``num_heads`` groups,
  with bias) added to its input, then on the flattened tokens LayerNorm ``norm1``, an MLP added
  back and LayerNorm ``norm2``; back to the map.
* "Global" (``Block``) on the N x T x C tokens: multi-head self-attention over all tokens, added
  to its input then normalized (``norm1``), an MLP added then normalized (``norm2``): the norms
  come after the residual sums (post-norm), the attention scale multiplies ``q k^T``.

Between stages a stride (2, 1) 3 x 3 conv with a LayerNorm (eps 1e-5; the blocks' are 1e-6)
halves the height (``downsample``: on the map after a Conv stage, on the tokens after a stage
ending in Global ones). A stage that changes from Conv to Global blocks flattens the map in
between (a parameterless module at that index of ``blocks``, as in Paddle, so the indices of
the following blocks, and so the state-dict keys, are Paddle's). The output is PaddleOCR's
``OutPool``: the token map averaged over its whole height and pairs of columns, N x C x 1 x W/8
(``use_pool: True``); the MultiHead's CTC branch (SVTR neck, CTC head) follows.

PaddleOCR's settings that change nothing here: ``local_k`` (the Conv mixer is 5 x 5 whatever it
says), ``sub_k`` of the last stage (it has no downsample), and ``drop_rate`` / ``attn_drop_rate``
(``SVTRStage`` receives them under other names, so its blocks never drop). Stochastic depth
(``drop_path_rate``, linear over all blocks) acts in training only. Not carried over:
``use_pos_embed``, ``last_stage`` and ``feat2d`` (no released model uses them).

Module names are Paddle's structured names (``pope.patch_embed.0.conv``,
``stages.1.blocks.3.mixer.qkv``, ``stages.0.downsample.norm``).
"""

from __future__ import annotations

import numpy as np
import torch.nn as nn
import torch.nn.functional as F

from ptocr.errors import ArchitectureError
from ptocr.models.layers import ConvBNAct, DropPath, as_float32
from ptocr.models.registry import register

MIXERS = ("Conv", "Global")


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # Paddle's nn.GELU: the exact (erf) form
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Global multi-head self-attention; the scale (a float32 constant in the program)
    multiplies the product q k^T, not q."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, qk_scale: float | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = as_float32(qk_scale or self.head_dim**-0.5)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = F.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(n, t, c))


class GlobalBlock(nn.Module):
    """Paddle's ``Block``: x = norm1(x + attention(x)); x = norm2(x + mlp(x)), on N x T x C."""

    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias, qk_scale, drop_path, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mixer = Attention(dim, num_heads, qkv_bias, qk_scale)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = self.norm1(x + self.drop_path(self.mixer(x)))
        return self.norm2(x + self.drop_path(self.mlp(x)))


class ConvBlock(nn.Module):
    """Paddle's ``ConvBlock`` on N x C x H x W: the conv mixer's residual on the map, then the
    norms and the MLP on the flattened tokens, as ``GlobalBlock`` (``norm1`` without a sum)."""

    def __init__(self, dim, num_heads, mlp_ratio, drop_path, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mixer = nn.Conv2d(dim, dim, 5, 1, 2, groups=num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        n, c, h, w = x.shape
        x = x + self.drop_path(self.mixer(x))
        x = self.norm1(x.flatten(2).transpose(1, 2))
        x = self.norm2(x + self.drop_path(self.mlp(x)))
        return x.transpose(1, 2).reshape(n, c, h, w)


class FlattenTranspose(nn.Module):
    """N x C x H x W -> N x HW x C (where a stage turns from Conv to Global blocks)."""

    def forward(self, x):
        return x.flatten(2).transpose(1, 2)


class SubSample(nn.Module):
    """Stride ``stride`` 3 x 3 conv (with bias) + LayerNorm (eps 1e-5) over the channels.
    ``tokens_in``: the input is N x T x C (Paddle's SubSample1D, which also returns tokens);
    else a map, returned as a map (SubSample2D)."""

    def __init__(self, in_channels, out_channels, stride, tokens_in: bool):
        super().__init__()
        self.tokens_in = tokens_in
        self.conv = nn.Conv2d(in_channels, out_channels, 3, tuple(stride), 1)
        self.norm = nn.LayerNorm(out_channels, eps=1e-5)

    def forward(self, x, hw):
        if self.tokens_in:
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)
        x = self.conv(x)
        n, c, h, w = x.shape
        x = self.norm(x.flatten(2).transpose(1, 2))
        if not self.tokens_in:
            x = x.transpose(1, 2).reshape(n, c, h, w)
        return x, (h, w)


class SVTRStage(nn.Module):
    def __init__(self, dim, out_dim, depth, mixer, sub_k, num_heads, mlp_ratio, qkv_bias, qk_scale,
                 drop_path, eps, downsample: bool):
        super().__init__()
        convs = sum(m == "Conv" for m in mixer)
        blocks = []
        for i in range(depth):
            if mixer[i] == "Conv":
                blocks.append(ConvBlock(dim, num_heads, mlp_ratio, drop_path[i], eps))
            else:
                blocks.append(GlobalBlock(dim, num_heads, mlp_ratio, qkv_bias, qk_scale, drop_path[i], eps))
            if i == convs - 1 and mixer[-1] != "Conv":
                blocks.append(FlattenTranspose())
        self.blocks = nn.Sequential(*blocks)
        self.downsample = SubSample(dim, out_dim, sub_k, tokens_in=mixer[-1] != "Conv") if downsample else None

    def forward(self, x, hw):
        x = self.blocks(x)
        if self.downsample is None:
            return x, hw
        return self.downsample(x, hw)


@register("backbone")
class SVTRv2(nn.Module):
    """Args:
        in_channels: image channels (3).
        dims, depths, num_heads: per stage.
        mixer: per stage, each block's "Conv" or "Global"; in a stage, Conv blocks come first.
        sub_k: per stage, the downsample's stride (every stage but the last).
        mlp_ratio, qkv_bias, qk_scale, eps: of the blocks (PaddleOCR's defaults 4, True, None, 1e-6).
        drop_path_rate: stochastic depth of the last block (training only).

    Output: N x dims[-1] x 1 x W' (W' = W/8 for a width divisible by 8).
    """

    def __init__(self, in_channels: int = 3, dims=(64, 128, 256), depths=(3, 6, 3), num_heads=(2, 4, 8),
                 mixer=(("Conv",) * 3, ("Conv",) * 3 + ("Global",) * 3, ("Global",) * 3),
                 sub_k=((1, 1), (2, 1), (1, 1)), mlp_ratio: float = 4, qkv_bias: bool = True,
                 qk_scale: float | None = None, eps: float = 1e-6, drop_path_rate: float = 0.1):
        super().__init__()
        stages = len(depths)
        if not (len(dims) == len(num_heads) == len(mixer) == stages) or len(sub_k) < stages - 1:
            raise ArchitectureError(f"SVTRv2: dims {dims}, depths {depths}, num_heads {num_heads}, mixer {mixer}, "
                                    f"sub_k {sub_k}: one entry per stage")
        for i, (kinds, depth) in enumerate(zip(mixer, depths)):
            kinds = list(kinds)
            if len(kinds) != depth or any(k not in MIXERS for k in kinds):
                raise ArchitectureError(f"SVTRv2: stage {i}'s mixer {kinds} must name {depth} of {MIXERS}")
            if any(a == "Global" and b == "Conv" for a, b in zip(kinds, kinds[1:])):
                raise ArchitectureError(f"SVTRv2: stage {i}'s mixer {kinds}: Conv blocks must come first")
        if mixer[0][0] != "Conv" or mixer[-1][-1] != "Global":
            raise ArchitectureError("SVTRv2: the first block must be a Conv block (the patch embedding gives a map) "
                                    "and the last a Global one (the output pooling reads tokens)")
        conv = dict(stride=2, padding=1, bias=True, act=None, bn_name="norm")
        first = ConvBNAct(in_channels, dims[0] // 2, 3, **conv)
        first.add_module("act", nn.GELU())
        second = ConvBNAct(dims[0] // 2, dims[0], 3, **conv)
        second.add_module("act", nn.GELU())
        self.pope = nn.Module()
        self.pope.patch_embed = nn.Sequential(first, second)
        rates = np.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList(
            SVTRStage(dims[i], dims[i + 1] if i < stages - 1 else 0, depths[i], list(mixer[i]),
                      sub_k[i] if i < stages - 1 else None, num_heads[i], mlp_ratio, qkv_bias, qk_scale,
                      rates[sum(depths[:i]):sum(depths[:i + 1])], eps, downsample=i < stages - 1)
            for i in range(stages)
        )
        self.out_channels = dims[-1]

    def forward(self, x):
        x = self.pope.patch_embed(x)
        hw = tuple(x.shape[2:])
        for stage in self.stages:
            x, hw = stage(x, hw)
        # OutPool: the tokens back to the map, averaged over the height and column pairs.
        x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *hw)
        return F.avg_pool2d(x, (hw[0], 2), (hw[0], 2))  # the stride spelled out: traced pools keep it
