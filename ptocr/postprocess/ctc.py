"""Greedy CTC decoding, as PaddleOCR 2.10's ``CTCLabelDecode`` (rec_postprocess.py).

Per sequence: argmax class and its probability at every time step; keep a step when its
class differs from the previous step's and is not the blank (index 0); text = the kept
classes' characters; score = mean of the kept steps' max probabilities, 0.0 when nothing is
kept (PaddleOCR: ``conf_list = [0]``). The mean is numpy's, in the input's dtype (float32 for
model outputs), returned as a Python float, like PaddleOCR's ``np.mean(...).tolist()``.

Arabic-script recognizers read a line left to right, so their raw text is in visual order.
PaddleOCR 2.x reverses it (``reverse``, ``reverse_rtl``) for dictionaries whose path holds
"arabic"; PaddleOCR 3.x (PaddleX 3.7's text recognition predictor) instead runs python-bidi's
``get_display`` (``bidi``) over the texts of arabic_PP-OCRv3_mobile_rec and
arabic_PP-OCRv5_mobile_rec. The two give different strings for the same line.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
from bidi.algorithm import get_display

from ptocr.errors import DictionaryError

__all__ = ["CTCLabelDecode", "reverse_rtl"]

_LTR_RUN = re.compile("[a-zA-Z0-9 :*./%+-]")


def reverse_rtl(text: str) -> str:
    """PaddleOCR's ``pred_reverse`` for Arabic-script dictionaries: the model reads
    left-to-right, so reverse the sequence of characters, but keep runs of Latin letters,
    digits and ``' :*./%+-'`` in their order."""
    parts, run = [], ""
    for c in text:
        if _LTR_RUN.search(c):
            run += c
        else:
            if run:
                parts.append(run)
            parts.append(c)
            run = ""
    if run:
        parts.append(run)
    return "".join(parts[::-1])


class CTCLabelDecode:
    """``characters``: the full class list, blank included at index 0
    (``["blank"] + dictionary (+ [" "] if use_space_char)``).

    ``reverse``: apply ``reverse_rtl`` to each text; PaddleOCR turns it on when the dictionary
    path contains ``"arabic"`` (the arabic_dict.txt used for ar, fa, ug, ur).
    ``bidi``: apply python-bidi's ``get_display`` to each text, as PaddleOCR 3.x does for its
    Arabic recognizers. One or the other: each is its pipeline's whole answer to the order.
    """

    blank = 0

    def __init__(self, characters: Sequence[str], reverse: bool = False, bidi: bool = False):
        if reverse and bidi:
            raise ValueError("reverse (PaddleOCR 2.x) and bidi (PaddleOCR 3.x) are two answers to one question: "
                             "choose one")
        characters = list(characters)
        if len(characters) < 2:
            raise DictionaryError(
                f"character list has {len(characters)} entries; "
                "it needs the blank plus at least one character"
            )
        self.characters = characters
        self.reverse = bool(reverse)
        self.bidi = bool(bidi)

    @property
    def num_classes(self) -> int:
        return len(self.characters)

    def __call__(self, probs, return_positions: bool = False) -> list[tuple]:
        """``probs``: N x T x C. Returns ``[(text, score)]`` per sequence, or
        ``[(text, score, positions)]`` with the kept time steps when ``return_positions``."""
        probs = np.asarray(probs)
        if probs.ndim != 3:
            raise ValueError(f"expected N x T x C class probabilities, got shape {probs.shape}")
        if probs.shape[2] != self.num_classes:
            raise DictionaryError(
                f"the recognizer outputs {probs.shape[2]} classes but the character list has "
                f"{self.num_classes} (blank + dictionary + optional space); wrong dictionary "
                "or use_space_char setting"
            )
        indices = probs.argmax(axis=2)
        maxprob = probs.max(axis=2)
        return [self._decode_one(indices[n], maxprob[n], return_positions) for n in range(len(indices))]

    def decode_indices(self, indices, probs=None, return_positions: bool = False) -> list[tuple]:
        """Same rule on already arg-maxed N x T class indices (``probs``: N x T, optional;
        without it every kept step scores 1, as in PaddleOCR)."""
        indices = np.asarray(indices)
        if indices.ndim != 2:
            raise ValueError(f"expected N x T class indices, got shape {indices.shape}")
        bad = indices[(indices < 0) | (indices >= self.num_classes)]
        if bad.size:
            raise DictionaryError(f"class index {int(bad.flat[0])} outside the {self.num_classes}-entry character list")
        out = []
        for n in range(len(indices)):
            p = None if probs is None else np.asarray(probs)[n]
            out.append(self._decode_one(indices[n], p, return_positions))
        return out

    def _decode_one(self, idx: np.ndarray, prob, return_positions: bool):
        keep = np.ones(len(idx), dtype=bool)
        keep[1:] = idx[1:] != idx[:-1]
        keep &= idx != self.blank
        text = "".join(self.characters[i] for i in idx[keep])
        # Without probabilities PaddleOCR averages [1] * T (all steps): 1.0 even when empty.
        conf = prob[keep] if prob is not None else [1] * len(keep)
        if len(conf) == 0:
            conf = [0]
        score = float(np.mean(conf))
        if self.reverse:
            text = reverse_rtl(text)
        elif self.bidi:
            text = get_display(text)
        if return_positions:
            return text, score, np.nonzero(keep)[0]
        return text, score
