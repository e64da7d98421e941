"""The SAR branch PaddleOCR trains beside CTC in PP-OCRv3's ``MultiHead``: the head, its labels
and its loss. The head only shapes the backbone during training; inference keeps the CTC branch.

Facts from PaddleOCR ``ppocr/modeling/heads/rec_sar_head.py`` (``SARHead``: ``SAREncoder`` and
``ParallelSARDecoder``), ``ppocr/losses/rec_sar_loss.py`` (``SARLoss``), ``ppocr/data/imaug/
label_ops.py`` (``SARLabelEncode``) and ``tools/train.py`` (the head's ``out_channels`` and the
loss's ``ignore_index``). Checked against those classes in ``tests/test_training_sar.py``.

* :class:`SARHead` takes PaddleOCR's keyword arguments and defaults; ``forward(feat, targets)``
  with ``targets`` PaddleOCR's ``[label_sar, length, valid_ratio]`` (what MultiHead passes).
  Its parameter names are PaddleOCR's below ``head.sar_head.``: a PaddleOCR training
  checkpoint's head is read by ``MultiHeadTraining.load_paddle_branch``
  (``ptocr.training.gtc_weights``, whose ``GTC_RULES`` drop paddle's second name for each RNN
  weight; the converter's mapping engine transposes the Linear weights).
* :class:`SARLabelEncode` gives ``label_sar`` and ``length``; ``num_classes`` is the head's
  ``out_channels``, ``padding_idx`` the loss's ``ignore_index``.
* :class:`SARLoss` is the cross entropy of the teacher-forced predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ptocr.errors import PtocrError
from ptocr.training.labels import TextLabels, as_dictionary

__all__ = ["SARHead", "SARLabelEncode", "SARLoss"]

UNKNOWN, START_END, PADDING = "<UKN>", "<BOS/EOS>", "<PAD>"  # PaddleOCR's names, appended in this order


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------
class SARLabelEncode(TextLabels):
    """Text -> SAR class indices, as PaddleOCR's ``SARLabelEncode``.

    ``dictionary``: a ``ptocr.dictionary.Dictionary``, a dictionary file or a list of
    characters (with ``use_space_char``, " " appended). The classes are the characters (no
    blank: the first character is 0), then ``<UKN>`` (never produced: unknown characters are
    dropped), ``<BOS/EOS>`` (``start_idx == end_idx``) and ``<PAD>`` (``padding_idx``, the
    last). ``num_classes`` counts them all: the SARHead's ``out_channels``, which predicts all
    but the padding. ``__call__(text)`` gives ``{"label": int64 [max_text_length]: start, the
    text, end, then padding, "length": int64 (the text's known characters)}``.

    PaddleOCR drops (and redraws) a sample whose text is empty, longer than ``max_text_length``,
    has no known character, or keeps more than ``max_text_length - 2`` known characters (no room
    for start and end): such a text raises ``PtocrError``; filter with :meth:`accepts`. Under
    MultiHead a sample is kept only when the CTC labels accept it too.
    """

    tokens = 2  # <BOS/EOS> before and after the text

    def __init__(self, dictionary, max_text_length: int = 25, use_space_char: bool = True):
        if int(max_text_length) < 1:
            raise PtocrError(f"max_text_length must be >= 1, got {max_text_length}")
        self.dictionary = as_dictionary(dictionary, use_space_char)
        self.max_text_length = int(max_text_length)
        self.characters = [*self.dictionary.classes[1:], UNKNOWN, START_END, PADDING]
        self.unknown_idx = len(self.characters) - 3
        self.start_idx = self.end_idx = len(self.characters) - 2
        self.padding_idx = len(self.characters) - 1
        text_classes = len(self.characters) - 3
        self.index = {c: i for i, c in enumerate(self.characters[:text_classes])}  # repeats: last wins

    @property
    def num_classes(self) -> int:
        return len(self.characters)

    def __call__(self, text: str) -> dict[str, np.ndarray]:
        indices = self.encode(text)
        label = np.full(self.max_text_length, self.padding_idx, dtype=np.int64)
        label[:len(indices) + 2] = [self.start_idx, *indices, self.end_idx]
        return {"label": label, "length": np.array(len(indices), dtype=np.int64)}


# ---------------------------------------------------------------------------------------------
# Head
# ---------------------------------------------------------------------------------------------
def _valid_widths(valid_ratio: torch.Tensor, width: int) -> torch.Tensor:
    """PaddleOCR's ``min(width, ceil(ratio * width))`` per sample, in the ratio's own dtype
    (PaddleOCR's collate makes it float64: float32 would round 0.3 * 20 up to 7)."""
    return torch.clamp(torch.ceil(valid_ratio * width), max=width).long()


def _rnn(gru: bool, size_in: int, hidden: int, bidirectional: bool, dropout: float) -> nn.RNNBase:
    """Two layers, batch first: the RNN both halves use (paddle's names and gate order match)."""
    kind = nn.GRU if gru else nn.LSTM
    return kind(size_in, hidden, num_layers=2, batch_first=True, dropout=dropout, bidirectional=bidirectional)


class SAREncoder(nn.Module):
    """The holistic feature: the feature map's column maxima through an RNN, its state at the
    last valid column (``valid_ratio`` of the width), then a linear layer."""

    def __init__(self, in_channels: int, enc_dim: int, bidirectional: bool, gru: bool, dropout: float):
        super().__init__()
        self.rnn_encoder = _rnn(gru, in_channels, enc_dim, bidirectional, dropout)
        out = enc_dim * (2 if bidirectional else 1)
        self.linear = nn.Linear(out, out)

    def forward(self, feat: torch.Tensor, valid_ratio: torch.Tensor | None) -> torch.Tensor:
        # max_pool2d, not amax: on ties the gradient goes to one element, as paddle's pooling does.
        columns = F.max_pool2d(feat, kernel_size=(feat.shape[2], 1), stride=1).squeeze(2).transpose(1, 2)
        states = self.rnn_encoder(columns)[0]  # N x W x D
        if valid_ratio is None:
            last = states[:, -1]
        else:
            steps = _valid_widths(valid_ratio, states.shape[1]) - 1
            last = states[torch.arange(states.shape[0], device=states.device), steps]
        return self.linear(last)


class ParallelSARDecoder(nn.Module):
    """Teacher-forced decoding: the RNN runs over [holistic feature, label embeddings], each
    step attends over the feature map (2D attention, masked right of the valid width), and the
    prediction layer reads [RNN state, glimpse, holistic feature] (``pred_concat``) or the
    glimpse alone."""

    def __init__(self, num_classes: int, in_channels: int, enc_dim: int, enc_bi_rnn: bool, dec_bi_rnn: bool,
                 dec_gru: bool, dec_drop_rnn: float, d_k: int, pred_dropout: float, max_text_length: int,
                 pred_concat: bool):
        super().__init__()
        self.start_idx, self.padding_idx = num_classes - 2, num_classes - 1
        self.max_text_length, self.pred_concat = max_text_length, pred_concat
        enc_out = enc_dim * (2 if enc_bi_rnn else 1)
        dec_out = enc_out * (2 if dec_bi_rnn else 1)
        # PaddleOCR's names: the "conv1x1" layers are Linear layers on the channel axis.
        self.conv1x1_1 = nn.Linear(dec_out, d_k)
        self.conv3x3_1 = nn.Conv2d(in_channels, d_k, kernel_size=3, stride=1, padding=1)
        self.conv1x1_2 = nn.Linear(d_k, 1)
        self.rnn_decoder = _rnn(dec_gru, enc_out, enc_out, dec_bi_rnn, dec_drop_rnn)
        self.embedding = nn.Embedding(num_classes, enc_out, padding_idx=self.padding_idx)
        self.pred_dropout = nn.Dropout(pred_dropout)
        self.prediction = nn.Linear(dec_out + in_channels + enc_out if pred_concat else in_channels,
                                    num_classes - 1)

    def _embed(self, indices: torch.Tensor) -> torch.Tensor:
        # paddle's lookup gives zeros at padding_idx whatever that row of the weight holds.
        return self.embedding(indices).masked_fill((indices == self.padding_idx).unsqueeze(-1), 0.0)

    def _attend(self, inputs, feat, holistic, valid_ratio):
        states = self.rnn_decoder(inputs)[0]  # N x T x D
        query = self.conv1x1_1(states)[..., None, None]  # N x T x K x 1 x 1
        key = self.conv3x3_1(feat).unsqueeze(1)  # N x 1 x K x H x W
        scores = self.conv1x1_2(torch.tanh(key + query).permute(0, 1, 3, 4, 2)).squeeze(-1)  # N x T x H x W
        if valid_ratio is not None:
            width = scores.shape[-1]
            columns = torch.arange(width, device=scores.device)
            outside = columns >= _valid_widths(valid_ratio, width).to(scores.device).unsqueeze(1)  # N x W
            scores = scores.masked_fill(outside[:, None, None, :], float("-inf"))
        weights = F.softmax(scores.flatten(2), dim=-1).view_as(scores)
        glimpse = (feat.unsqueeze(1) * weights.unsqueeze(2)).sum((3, 4))  # N x T x C
        if self.pred_concat:
            held = holistic.expand(-1, states.shape[1], -1)
            logits = self.prediction(torch.cat((states, glimpse.to(states.dtype), held.to(states.dtype)), 2))
        else:
            logits = self.prediction(glimpse)
        return self.pred_dropout(logits)

    def forward_train(self, feat, holistic, label, valid_ratio):
        embedded = self._embed(label)
        holistic = holistic.unsqueeze(1).to(embedded.dtype)
        inputs = torch.cat((holistic, embedded), 1)
        return self._attend(inputs, feat, holistic, valid_ratio)[:, 1:]

    def forward_test(self, feat, holistic, valid_ratio):
        """Greedy decoding as PaddleOCR's: every step reruns the whole sequence with the argmax
        so far in place of the start tokens. Softmax probabilities, N x max_text_length x C-1."""
        batch, steps = feat.shape[0], self.max_text_length
        start = self._embed(torch.full((batch,), self.start_idx, dtype=torch.long, device=feat.device))
        holistic = holistic.unsqueeze(1)
        inputs = torch.cat((holistic, start.unsqueeze(1).expand(-1, steps, -1).to(holistic.dtype)), 1)
        probs = []
        for i in range(1, steps + 1):
            step = F.softmax(self._attend(inputs, feat, holistic, valid_ratio)[:, i], dim=-1)
            probs.append(step)
            if i < steps:  # a new tensor, not an in-place write: autograd keeps the old one
                chosen = self._embed(step.argmax(1)).unsqueeze(1).to(inputs.dtype)
                inputs = torch.cat((inputs[:, :i + 1], chosen, inputs[:, i + 2:]), 1)
        return torch.stack(probs, 1)


def _check_settings(enc_drop_rnn, dec_drop_rnn, pred_dropout, flags: dict) -> None:
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise PtocrError(f"SARHead's {name} must be True or False, got {value!r}")
    for name, value in (("enc_drop_rnn", enc_drop_rnn), ("dec_drop_rnn", dec_drop_rnn),
                        ("pred_dropout", pred_dropout)):
        if not 0 <= value < 1:
            raise PtocrError(f"SARHead's {name} must be in [0, 1), got {value}")


class SARHead(nn.Module):
    """PaddleOCR's ``SARHead`` (PP-OCRv3's configs: ``enc_dim: 512``, ``max_text_length: 25``,
    the rest default; ``out_channels`` is :attr:`SARLabelEncode.num_classes`, the CTC classes
    + 2). Extra keyword arguments are ignored, as PaddleOCR ignores them.

    ``forward(feat, targets)``: ``feat`` the backbone's N x in_channels x H x W output,
    ``targets`` ``[label_sar (N x L int), length, valid_ratio (N)]``. In training mode the
    targets are required and the result is the teacher-forced logits, N x L x (out_channels - 1)
    (step t predicts label[t + 1]). In eval mode it is the greedy decoding's softmax, N x
    max_text_length x (out_channels - 1); ``targets`` may then be None (no width masking).
    """

    def __init__(self, in_channels: int, out_channels: int, enc_dim: int = 512, max_text_length: int = 30,
                 enc_bi_rnn: bool = False, enc_drop_rnn: float = 0.1, enc_gru: bool = False,
                 dec_bi_rnn: bool = False, dec_drop_rnn: float = 0.0, dec_gru: bool = False, d_k: int = 512,
                 pred_dropout: float = 0.1, pred_concat: bool = True, **kwargs):
        super().__init__()
        _check_settings(enc_drop_rnn, dec_drop_rnn, pred_dropout,
                        dict(enc_bi_rnn=enc_bi_rnn, enc_gru=enc_gru, dec_bi_rnn=dec_bi_rnn, dec_gru=dec_gru,
                             pred_concat=pred_concat))
        if out_channels < 3:
            raise PtocrError(f"SARHead needs out_channels >= 3 (characters, <UKN>, <BOS/EOS>, <PAD>), got {out_channels}")
        self.encoder = SAREncoder(in_channels, enc_dim, enc_bi_rnn, enc_gru, enc_drop_rnn)
        self.decoder = ParallelSARDecoder(out_channels, in_channels, enc_dim, enc_bi_rnn, dec_bi_rnn, dec_gru,
                                          dec_drop_rnn, d_k, pred_dropout, max_text_length, pred_concat)

    def forward(self, feat: torch.Tensor, targets: Sequence | None = None) -> torch.Tensor:
        valid_ratio = None
        if targets is not None:
            if len(targets[0]) != feat.shape[0]:
                raise PtocrError(f"SARHead: {len(targets[0])} labels for a batch of {feat.shape[0]}")
            valid_ratio = targets[-1]
            if not isinstance(valid_ratio, torch.Tensor):
                valid_ratio = torch.as_tensor(np.asarray(valid_ratio, dtype=np.float64))
            valid_ratio = valid_ratio.to(feat.device)
        holistic = self.encoder(feat, valid_ratio)
        if not self.training:
            return self.decoder.forward_test(feat, holistic, valid_ratio)
        if targets is None:
            raise PtocrError("SARHead in training mode needs the targets [label_sar, length, valid_ratio]")
        label = torch.as_tensor(targets[0], device=feat.device).long()
        return self.decoder.forward_train(feat, holistic, label, valid_ratio)


# ---------------------------------------------------------------------------------------------
# Loss
# ---------------------------------------------------------------------------------------------
def _sar_label(batch) -> torch.Tensor:
    if isinstance(batch, Mapping):
        if "label_sar" not in batch:
            raise PtocrError(f"SARLoss: the batch has no 'label_sar' (keys: {sorted(batch)})")
        return batch["label_sar"]
    if isinstance(batch, Sequence) and len(batch) >= 2:
        return batch[1]
    raise PtocrError("SARLoss takes PaddleOCR's batch list [image, label_sar, ...] or a dict with 'label_sar'")


class SARLoss(nn.Module):
    """PaddleOCR's SARLoss: cross entropy, mean over the label positions that are not
    ``ignore_index``, of the logits without their last step against the labels without their
    first (the start token): step t predicts label[t + 1].

    ``ignore_index`` must be the padding index (:attr:`SARLabelEncode.padding_idx`), as
    PaddleOCR's ``tools/train.py`` sets it under MultiHead; the default 92 is the class's own,
    the padding of the original SAR's 90-character dictionary.

    ``forward(predicts, batch)``: ``predicts`` :class:`SARHead`'s training output N x L x C,
    ``batch`` PaddleOCR's list as MultiLoss passes it (``[image, label_sar, length,
    valid_ratio]``: the label is ``batch[1]``) or a dict with ``label_sar``. Returns
    ``{"loss": ...}`` (float32 at least).
    """

    def __init__(self, ignore_index: int = 92):
        super().__init__()
        self.ignore_index = int(ignore_index)

    def forward(self, predicts: torch.Tensor, batch) -> dict[str, torch.Tensor]:
        logits = predicts[:, :-1]
        logits = logits if logits.dtype == torch.float64 else logits.float()
        label = torch.as_tensor(_sar_label(batch), device=logits.device).long()[:, 1:]
        if label.shape != logits.shape[:2]:
            raise PtocrError(f"SARLoss: labels {tuple(label.shape)} (after the first) do not fit the "
                             f"predictions' {tuple(logits.shape[:2])} steps (after the last)")
        classes = logits.shape[-1]
        if bool(((label >= classes) & (label != self.ignore_index)).any()):
            raise PtocrError(f"SARLoss: a label is >= the {classes} predicted classes and is not "
                             f"ignore_index {self.ignore_index}: pass ignore_index=SARLabelEncode's padding_idx")
        loss = F.cross_entropy(logits.reshape(-1, classes), label.reshape(-1), ignore_index=self.ignore_index)
        return {"loss": loss}
