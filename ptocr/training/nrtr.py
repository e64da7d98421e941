"""The NRTR branch PaddleOCR trains beside a recognizer's CTC head (MultiHead's ``NRTRHead``):
its decoder, its labels and its loss.

Facts from PaddleOCR's ``ppocr/modeling/heads/rec_nrtr_head.py`` (``Transformer`` as MultiHead
builds it: no encoder, the backbone's sequence is the memory), ``ppocr/modeling/backbones/
rec_svtrnet.py`` (``Mlp``), ``ppocr/losses/rec_nrtr_loss.py`` and ``ppocr/data/imaug/label_ops.py``
(``NRTRLabelEncode``). Module and parameter names are PaddleOCR's, so a Paddle state dict maps
by name (``ptocr.training.multihead``'s table); Paddle stores Linear weights as [in, out].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ptocr.errors import PtocrError
from ptocr.training.labels import TextLabels, as_dictionary

__all__ = ["NRTRDecoder", "NRTRLabelEncode", "NRTRLoss", "NRTR_SPECIAL_TOKENS"]

# NRTRLabelEncode's classes before the dictionary's: index 0 pads, 2 starts and 3 ends a label.
NRTR_SPECIAL_TOKENS = ("blank", "<unk>", "<s>", "</s>")
PAD, START, END = 0, 2, 3


# ---------------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------------
class _Attention(nn.Module):
    """Multi-head attention as NRTR's: self-attention projects q, k, v by one Linear ``qkv``,
    cross-attention the query by ``q`` and the memory by ``kv``; the mask is added to the scaled
    scores."""

    def __init__(self, dim: int, heads: int, self_attention: bool, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise PtocrError(f"NRTR attention: {dim} channels do not split into {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.scale = self.head_dim ** -0.5
        self.self_attention = self_attention
        if self_attention:
            self.qkv = nn.Linear(dim, 3 * dim)
        else:
            self.q = nn.Linear(dim, dim)
            self.kv = nn.Linear(dim, 2 * dim)
        self.attn_drop = nn.Dropout(dropout)
        self.out_proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor, parts: int) -> torch.Tensor:  # N x L x parts*C -> parts x N x H x L x D
        n, length, _ = x.shape
        return x.reshape(n, length, parts, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)

    def forward(self, query, memory=None, mask=None):
        if self.self_attention:
            q, k, v = self._split(self.qkv(query), 3)
        else:
            q = self._split(self.q(query), 1)[0]
            k, v = self._split(self.kv(memory), 2)
        scores = (q @ k.transpose(-2, -1)) * self.scale
        if mask is not None:
            scores = scores + mask
        attn = self.attn_drop(scores.softmax(-1))
        n, _, length, _ = q.shape
        return self.out_proj((attn @ v).transpose(1, 2).reshape(n, length, self.heads * self.head_dim))


class _Mlp(nn.Module):
    """SVTR's Mlp with ReLU: fc1, act, dropout, fc2, dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(F.relu(self.fc1(x)))))


class _DecoderLayer(nn.Module):
    """Post-norm block: self-attention, cross-attention on the memory, MLP, each added to its
    input then layer-normed (eps 1e-5)."""

    def __init__(self, dim: int, heads: int, hidden: int, attention_dropout: float, dropout: float):
        super().__init__()
        self.self_attn = _Attention(dim, heads, True, attention_dropout)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.dropout1 = nn.Dropout(dropout)
        self.cross_attn = _Attention(dim, heads, False, attention_dropout)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.dropout2 = nn.Dropout(dropout)
        self.mlp = _Mlp(dim, hidden, dropout)
        self.norm3 = nn.LayerNorm(dim, eps=1e-5)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt, memory, self_mask):
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(tgt, mask=self_mask)))
        tgt = self.norm2(tgt + self.dropout2(self.cross_attn(tgt, memory)))
        return self.norm3(tgt + self.dropout3(self.mlp(tgt)))


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """The transformer's sine (even channels) / cosine (odd) position table, L x dim, float32."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * rate)
    table[:, 1::2] = torch.cos(position * rate)
    return table


class _Embeddings(nn.Module):
    """Token embedding times sqrt(d_model). Paddle's embedding outputs zeros for the padding
    index whatever its weight row holds (and that row gets no gradient), so pads are zeroed
    here rather than trusting the loaded row."""

    def __init__(self, vocab: int, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim, padding_idx=PAD)
        self.factor = math.sqrt(dim)

    def forward(self, tokens):
        x = self.embedding(tokens).masked_fill((tokens == PAD).unsqueeze(-1), 0.0)
        return x * self.factor


class NRTRDecoder(nn.Module):
    """PaddleOCR's ``Transformer`` as MultiHead's NRTRHead builds it (``num_encoder_layers=-1``):
    a decoder over the memory N x S x d_model the backbone gives through ``before_gtc``.

    ``out_channels``: NRTRLabelDecode's class count (the CTC head's + 3); the output layer has
    one more, as PaddleOCR's. Training (``forward(memory, (label, length))``) is teacher-forced:
    the label (``NRTRLabelEncode``'s ``<s> text </s>`` padded with 0) cut to ``2 + max(length)``
    tokens, its last dropped, gives logits N x (1 + max(length)) x (out_channels + 1). In eval
    mode ``forward(memory)`` decodes greedily from ``<s>`` for ``max_len - 1`` steps at most, as
    PaddleOCR's ``forward_test``: ``(tokens N x L starting with <s>, their probabilities)``.
    """

    def __init__(self, d_model: int, nhead: int, num_decoder_layers: int, dim_feedforward: int,
                 out_channels: int, max_len: int = 25, attention_dropout_rate: float = 0.0,
                 residual_dropout_rate: float = 0.1):
        super().__init__()
        self.out_channels = out_channels + 1
        self.max_len = int(max_len)
        self.d_model = d_model
        self.embedding = _Embeddings(self.out_channels, d_model)
        self.pos_drop = nn.Dropout(residual_dropout_rate)  # PositionalEncoding's dropout
        self.register_buffer("pe", sinusoid_table(5000, d_model), persistent=False)
        self.decoder = nn.ModuleList(
            _DecoderLayer(d_model, nhead, dim_feedforward, attention_dropout_rate, residual_dropout_rate)
            for _ in range(num_decoder_layers))
        self.tgt_word_prj = nn.Linear(d_model, self.out_channels, bias=False)

    def _decode(self, tokens: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        x = self.pos_drop(self.embedding(tokens) + self.pe[:tokens.shape[1]])
        steps = tokens.shape[1]
        causal = torch.full((steps, steps), float("-inf"), device=x.device, dtype=x.dtype).triu(1)
        for layer in self.decoder:
            x = layer(x, memory, causal)
        return x

    def forward(self, memory: torch.Tensor, targets=None):
        if not self.training:
            return self.greedy(memory)
        if targets is None or len(targets) < 2:
            raise PtocrError("NRTRDecoder trains on targets (label_gtc N x L, length N)")
        label = torch.as_tensor(targets[0], device=memory.device).long()
        length = torch.as_tensor(targets[1], device=memory.device).long().reshape(-1)
        tokens = label[:, :2 + int(length.max())][:, :-1]
        return self.tgt_word_prj(self._decode(tokens, memory))

    @torch.no_grad()
    def greedy(self, memory: torch.Tensor):
        tokens = torch.full((memory.shape[0], 1), START, dtype=torch.long, device=memory.device)
        probs = torch.ones((memory.shape[0], 1), dtype=memory.dtype, device=memory.device)
        for _ in range(1, self.max_len):
            step = self.tgt_word_prj(self._decode(tokens, memory)[:, -1]).softmax(-1)
            best, index = step.max(-1)
            if bool((index == END).all()):
                break
            tokens = torch.cat([tokens, index[:, None]], 1)
            probs = torch.cat([probs, best[:, None]], 1)
        return tokens, probs


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------
class NRTRLabelEncode(TextLabels):
    """Text -> NRTR tokens, as PaddleOCR's ``NRTRLabelEncode``: classes ``blank, <unk>, <s>,
    </s>``, then the dictionary's characters (``use_space_char``: " " appended; a repeated
    character takes its last index); ``__call__(text)`` gives ``{"label": int64
    [max_text_length] = <s>, text, </s>, 0 padding, "length": int64}``, unknown characters
    dropped. PaddleOCR drops a sample (and draws another) whose text is empty, longer than
    ``max_text_length``, has no known character, or has ``max_text_length - 1`` known characters
    or more; here such a text raises ``PtocrError`` (:meth:`accepts` to filter).
    """

    tokens = 2  # <s> and </s>

    def __init__(self, dictionary, max_text_length: int = 25, use_space_char: bool = True):
        if int(max_text_length) < 3:
            raise PtocrError(f"NRTRLabelEncode: max_text_length must be >= 3, got {max_text_length}")
        self.dictionary = as_dictionary(dictionary, use_space_char)
        self.max_text_length = int(max_text_length)
        self.classes = [*NRTR_SPECIAL_TOKENS, *self.dictionary.classes[1:]]
        self.index = {c: i for i, c in enumerate(self.classes)}

    @property
    def num_classes(self) -> int:
        """NRTRLabelDecode's class count (the decoder's ``out_channels``)."""
        return len(self.classes)

    def __call__(self, text: str) -> dict[str, np.ndarray]:
        indices = self.encode(text)
        label = np.zeros(self.max_text_length, dtype=np.int64)
        label[:len(indices) + 2] = [START, *indices, END]
        return {"label": label, "length": np.array(len(indices), dtype=np.int64)}


# ---------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------
def _nrtr_targets(batch) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, Mapping):
        key = "label_gtc" if "label_gtc" in batch else "label"
        if key not in batch or "length" not in batch:
            raise PtocrError("NRTRLoss: the batch needs 'label_gtc' (or 'label') and 'length'")
        return batch[key], batch["length"]
    if isinstance(batch, Sequence) and len(batch) >= 3:
        return batch[1], batch[2]
    raise PtocrError("NRTRLoss: the batch must be a dict with label_gtc and length or PaddleOCR's list "
                     "[image, label_gtc, length, ...]")


class NRTRLoss(nn.Module):
    """PaddleOCR's NRTRLoss on the decoder's logits N x T x V: the label's tokens after ``<s>``
    (``1 : 2 + max(length)``) are the targets, padding (0) ignored. ``smoothing`` (PaddleOCR's
    default): cross-entropy against a one-hot smoothed by eps 0.1 spread over the other V - 1
    classes, the mean over the non-pad tokens; else plain cross-entropy ignoring 0.

    ``batch``: a dict with ``label_gtc`` (or ``label``) and ``length``, or PaddleOCR's list
    ``[image, label, length, ...]``. Returns ``{"loss": ...}``.
    """

    def __init__(self, smoothing: bool = True):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, pred: torch.Tensor, batch) -> dict[str, torch.Tensor]:
        label, length = _nrtr_targets(batch)
        label = torch.as_tensor(label, device=pred.device).long()
        length = torch.as_tensor(length, device=pred.device).long().reshape(-1)
        target = label[:, 1:2 + int(length.max())].reshape(-1)
        logits = pred.reshape(-1, pred.shape[-1])
        if logits.shape[0] != target.shape[0]:
            raise PtocrError(f"NRTRLoss: {logits.shape[0]} predicted tokens for {target.shape[0]} target tokens: "
                             "the predictions and the batch's labels / lengths differ")
        if int(target.max()) >= logits.shape[1]:
            raise PtocrError(f"NRTRLoss: a label index ({int(target.max())}) is outside the decoder's "
                             f"{logits.shape[1]} classes: the dictionary does not fit the head")
        if not self.smoothing:
            return {"loss": F.cross_entropy(logits, target, ignore_index=PAD)}
        eps, classes = 0.1, logits.shape[1]
        one_hot = F.one_hot(target, classes).to(logits.dtype)
        smoothed = one_hot * (1 - eps) + (1 - one_hot) * eps / (classes - 1)
        loss = -(smoothed * logits.log_softmax(1)).sum(1)
        return {"loss": loss[target != PAD].mean()}
