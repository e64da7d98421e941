"""PaddleOCR's recognition neck ``SequenceEncoder`` (ppocr/modeling/necks/rnn.py).

It turns the backbone's N x C x 1 x W map into the N x W x C' sequence the CTC head reads:

* "reshape": only ``Im2Seq`` (squeeze H, W becomes time).
* "fc":      Im2Seq, then ``encoder.fc`` (Linear C -> hidden_size).
* "rnn":     Im2Seq, then a 2-layer bidirectional LSTM ``encoder.lstm`` (CRNN, v2.0 mobile rec).
* "svtr":    ``EncoderWithSVTR`` on the 2-D map first (PP-OCRv3/v4 CTC branch), then Im2Seq.

Submodule names follow Paddle's structured parameter names (``encoder.svtr_block.0.mixer.qkv``,
``encoder.lstm.0.cell_fw.weight_ih``, ...).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ptocr.errors import ArchitectureError
from ptocr.models.layers import ConvBNAct, DropPath, as_float32
from ptocr.models.registry import register


class Im2Seq(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.out_channels = in_channels

    def forward(self, x):
        if x.shape[2] != 1:
            raise ValueError(f"Im2Seq needs a feature map of height 1, got shape {tuple(x.shape)}")
        return x.squeeze(2).transpose(1, 2)  # N x C x W -> N x W x C


# ---- SVTR pieces (ppocr/modeling/backbones/rec_svtrnet.py), only what EncoderWithSVTR uses ----


def _conv_bn_swish(in_channels, out_channels, kernel_size, padding=0) -> ConvBNAct:
    """rec_svtrnet's ConvBNLayer: conv (no bias) -> BN (named ``norm``) -> Swish
    (EncoderWithSVTR passes act=nn.Swish everywhere)."""
    return ConvBNAct(in_channels, out_channels, kernel_size, padding=padding, act="silu", bn_name="norm")


class Attention(nn.Module):
    """Global multi-head self-attention (SVTR mixer "Global")."""

    def __init__(self, dim, num_heads=8, qkv_bias=True, qk_scale=None, attn_drop=0.0,
                 proj_drop=0.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        # Paddle multiplies by a float32 constant (a `scale` attribute in Paddle 2, a float32
        # `full` in PIR): head_dim**-0.5 rounded to float32 (1e-8 off in float64 otherwise).
        self.scale = as_float32(qk_scale or self.head_dim**-0.5)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]  # scale q before the product, as Paddle
        attn = self.attn_drop(F.softmax(q @ k.transpose(-2, -1), dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(n, t, c)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.SiLU()  # act_layer=nn.Swish in EncoderWithSVTR
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """SVTR block as EncoderWithSVTR builds it (``prenorm=False``, i.e. norm before each
    branch): x + mixer(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim, num_heads, mlp_ratio=2.0, qkv_bias=True, qk_scale=None, drop=0.0,
                 attn_drop=0.0, drop_path=0.0, eps=1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.mixer = Attention(dim, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x):
        x = x + self.drop_path(self.mixer(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class EncoderWithSVTR(nn.Module):
    """conv1/conv2 reduce the map, global-attention blocks on the flattened H*W tokens, then
    conv3 restores the channels, the input is concatenated back (shortcut) and conv4/conv1x1
    bring it to ``dims`` channels. Shape N x C x H x W -> N x dims x H x W."""

    def __init__(self, in_channels, dims=64, depth=2, hidden_dims=120, use_guide=False,
                 num_heads=8, qkv_bias=True, mlp_ratio=2.0, drop_rate=0.1, attn_drop_rate=0.1,
                 drop_path=0.0, kernel_size=(3, 3), qk_scale=None):
        super().__init__()
        kernel_size = tuple(kernel_size)
        pad = (kernel_size[0] // 2, kernel_size[1] // 2)
        self.use_guide = use_guide  # as the config has it
        # PaddleOCR's use_guide stops the CTC loss's gradient at the backbone, because the GTC
        # (NRTR / SAR) branch trained beside it trains the backbone. Without that branch the stop
        # would leave a CTC fine-tune's backbone silently frozen, so the gradient flows unless this
        # is set: ptocr.training.MultiHeadTraining, which adds the branch, sets it. Same value.
        self.detach_input = False
        self.conv1 = _conv_bn_swish(in_channels, in_channels // 8, kernel_size, pad)
        self.conv2 = _conv_bn_swish(in_channels // 8, hidden_dims, 1)
        self.svtr_block = nn.ModuleList(
            Block(hidden_dims, num_heads, mlp_ratio, qkv_bias, qk_scale, drop_rate,
                  attn_drop_rate, drop_path, eps=1e-5)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(hidden_dims, eps=1e-6)  # the final norm is 1e-6, blocks 1e-5
        self.conv3 = _conv_bn_swish(hidden_dims, in_channels, 1)
        self.conv4 = _conv_bn_swish(2 * in_channels, in_channels // 8, kernel_size, pad)
        self.conv1x1 = _conv_bn_swish(in_channels // 8, dims, 1)
        self.out_channels = dims

    def forward(self, x):
        h = x.detach() if self.detach_input else x  # the shortcut below too, as in Paddle
        z = self.conv2(self.conv1(h))
        n, c, hh, ww = z.shape
        z = z.flatten(2).transpose(1, 2)
        for blk in self.svtr_block:
            z = blk(z)
        z = self.norm(z)
        z = z.reshape(n, hh, ww, c).permute(0, 3, 1, 2)
        z = torch.cat((h, self.conv3(z)), dim=1)
        return self.conv1x1(self.conv4(z))


# ---- RNN / FC encoders ----


class _BiLSTMLayer(nn.Module):
    """One bidirectional LSTM layer stored as Paddle stores it: ``cell_fw`` / ``cell_bw`` with
    ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``. Paddle's gate order (i, f, g, o) and
    weight layout ([4H, in]) equal torch's, so torch's fused LSTM kernel runs them as is."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.cell_fw = nn.LSTMCell(input_size, hidden_size)
        self.cell_bw = nn.LSTMCell(input_size, hidden_size)

    def forward(self, x):  # N x T x C
        fw, bw = self.cell_fw, self.cell_bw
        h0 = x.new_zeros(2, x.shape[0], fw.hidden_size)
        weights = [fw.weight_ih, fw.weight_hh, fw.bias_ih, fw.bias_hh,
                   bw.weight_ih, bw.weight_hh, bw.bias_ih, bw.bias_hh]
        out, _, _ = torch.lstm(x, (h0, h0), weights, True, 1, 0.0, self.training, True, True)
        return out


class _BiLSTM(nn.ModuleList):
    """Paddle ``nn.LSTM(direction="bidirectional", num_layers=n)``; keys ``<i>.cell_fw.*``."""

    def __init__(self, input_size, hidden_size, num_layers):
        super().__init__(
            _BiLSTMLayer(input_size if i == 0 else 2 * hidden_size, hidden_size)
            for i in range(num_layers)
        )

    def forward(self, x):
        for layer in self:
            x = layer(x)
        return x


class EncoderWithRNN(nn.Module):
    def __init__(self, in_channels, hidden_size):
        super().__init__()
        self.lstm = _BiLSTM(in_channels, hidden_size, num_layers=2)
        self.out_channels = 2 * hidden_size

    def forward(self, x):
        return self.lstm(x)


class EncoderWithFC(nn.Module):
    def __init__(self, in_channels, hidden_size):
        super().__init__()
        self.fc = nn.Linear(in_channels, hidden_size)
        self.out_channels = hidden_size

    def forward(self, x):
        return self.fc(x)


@register("neck")
class SequenceEncoder(nn.Module):
    """Args:
        in_channels: channels of the backbone's map (its height must be 1 at Im2Seq).
        encoder_type: "reshape", "fc", "rnn" or "svtr".
        hidden_size: fc / rnn width (Paddle default 48).
        **kwargs: EncoderWithSVTR arguments (dims, depth, hidden_dims, use_guide, num_heads,
            qkv_bias, mlp_ratio, drop_rate, attn_drop_rate, drop_path, kernel_size, qk_scale).
    """

    _ENCODERS = {"fc": EncoderWithFC, "rnn": EncoderWithRNN, "svtr": EncoderWithSVTR}

    def __init__(self, in_channels: int, encoder_type: str, hidden_size: int = 48, **kwargs):
        super().__init__()
        if encoder_type != "reshape" and encoder_type not in self._ENCODERS:
            known = ", ".join(["reshape", *self._ENCODERS])
            raise ArchitectureError(
                f"SequenceEncoder: unknown encoder_type {encoder_type!r} (known: {known})"
            )
        if kwargs and encoder_type != "svtr":
            raise ArchitectureError(
                f"SequenceEncoder({encoder_type!r}): unexpected arguments {sorted(kwargs)}"
            )
        self.encoder_type = encoder_type
        self.encoder_reshape = Im2Seq(in_channels)
        if encoder_type == "reshape":
            self.encoder = None
            self.out_channels = in_channels
            return
        if encoder_type == "svtr":
            try:
                self.encoder = EncoderWithSVTR(in_channels, **kwargs)
            except TypeError as e:
                raise ArchitectureError(f"SequenceEncoder('svtr'): {e}") from None
        else:
            self.encoder = self._ENCODERS[encoder_type](in_channels, hidden_size)
        self.out_channels = self.encoder.out_channels

    def forward(self, x):
        if self.encoder_type == "svtr":  # SVTR works on the 2-D map, then flattens
            return self.encoder_reshape(self.encoder(x))
        x = self.encoder_reshape(x)
        return x if self.encoder is None else self.encoder(x)
