"""Word boxes of a recognized line, as PaddleOCR 3.x computes them (``return_word_box=True``):
paddlex 3.7's ``BaseRecLabelDecode.get_word_info`` and ``cal_ocr_word_box``.

The CTC decoding says at which time step (column of the recognizer's output) each character was
read. ``word_groups`` cuts the text into runs: CJK ideographs ("cn"), Latin letters and digits
("en&num", a "." between digits and a "-" after them staying inside), anything else ("symbol",
spaces included). ``line_word_boxes`` turns the runs into boxes inside the line's detected quad,
whose corners 0, 1 and 2 give the x and y span: a column is ``span / columns`` wide, where
``columns`` is the output length scaled to the part of the padded input the crop fills. A Latin
or symbol run spans its first to last column; each CJK character gets a box of the run's mean
character pitch around its column. A quad more than 1.5 times as tall as wide is read top to
bottom instead. The boxes are then ordered in rows (centers within 12 px), left to right.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["word_groups", "line_word_boxes", "recognized_columns"]

_LATIN_OR_DIGIT = re.compile("[a-zA-Z0-9]")
_DIGIT = re.compile("[0-9]")
ROW_TOLERANCE_PX = 12  # paddlex's sort_boxes(y_thresh=12)


def _kind(char: str) -> str:
    if "\u4e00" <= char <= "\u9fff":
        return "cn"
    return "en&num" if _LATIN_OR_DIGIT.search(char) else "symbol"


def word_groups(text: str, columns: Sequence[int]) -> tuple[list[list[str]], list[list[int]], list[str]]:
    """(words as character lists, each character's output column, each word's kind) of ``text``,
    whose i-th character was read at ``columns[i]``."""
    if len(columns) != len(text):
        raise ValueError(f"{len(text)} characters but {len(columns)} columns")
    words, cols, kinds = [], [], []
    word, word_cols, state = [], [], None
    for i, char in enumerate(text):
        kind = _kind(char)
        # "1.5" and "VGG-16" stay one run
        if char == "." and state == "en&num" and i + 1 < len(text) and _DIGIT.search(text[i + 1]):
            kind = "en&num"
        if char == "-" and state == "en&num":
            kind = "en&num"
        if state is None:
            state = kind
        if kind != state:
            if word:
                words.append(word)
                cols.append(word_cols)
                kinds.append(state)
                word, word_cols = [], []
            state = kind
        word.append(char)
        word_cols.append(int(columns[i]))
    if word:
        words.append(word)
        cols.append(word_cols)
        kinds.append(state)
    return words, cols, kinds


def recognized_columns(steps: int, ratio: float, batch_ratio: float) -> float:
    """The output columns that cover a crop of width / height ``ratio`` in a batch padded to
    ``batch_ratio`` (the batch's widest ratio, at least the recognizer's own input ratio)."""
    return steps * (ratio / batch_ratio)


def _sorted_in_rows(boxes: list) -> list:
    centers = [np.mean(box, axis=0) for box in boxes]
    items = sorted(zip(boxes, centers), key=lambda item: item[1][1])
    rows, row, last_y = [], [], None
    for box, center in items:
        if last_y is None or abs(center[1] - last_y) < ROW_TOLERANCE_PX:
            row.append((box, center))
        else:
            rows.append(row)
            row = [(box, center)]
        last_y = center[1]
    if row:
        rows.append(row)
    return [box for row in rows for box, _ in sorted(row, key=lambda item: item[1][0])]


def line_word_boxes(text: str, quad, columns: float, words, cols, kinds) -> tuple[list[str], list]:
    """(word texts, word quads) of a line: ``quad`` its detected 4 corners, ``columns`` the
    output columns the crop fills (``recognized_columns``), ``words`` / ``cols`` / ``kinds`` from
    ``word_groups``. Each CJK character is a word of its own; its boxes come after the others'
    before the rows are ordered, as in paddlex."""
    quad = np.asarray(quad)
    width = quad[:, 0].max() - quad[:, 0].min()
    height = quad[:, 1].max() - quad[:, 1].min()
    with np.errstate(divide="ignore", invalid="ignore"):
        vertical = bool(height / width > 1.5)
    (x0, y0), (x1, _), (_, y2) = quad.tolist()[:3]
    if vertical:
        size, start = y2 - y0, y0

        def box(a, b):
            return (x0, a), (x0, b), (x1, b), (x1, a)
    else:
        size, start = x1 - x0, x0

        def box(a, b):
            return (a, y0), (b, y0), (b, y2), (a, y2)
    cell = size / columns
    texts, boxes, cn_pitches, cn_cols = [], [], [], []
    for word, word_cols, kind in zip(words, cols, kinds):
        if kind == "cn":
            if len(word_cols) != 1:
                cn_pitches.append((word_cols[-1] - word_cols[0] + 1) * cell / (len(word_cols) - 1))
            cn_cols += word_cols
            texts += word
        else:
            boxes.append(box(start + int(word_cols[0] * cell), start + int((word_cols[-1] + 1) * cell)))
            texts.append("".join(word))
    if cn_cols:
        pitch = np.mean(cn_pitches) if cn_pitches else size / len(text)
        for col in cn_cols:
            center = (col + 0.5) * cell
            boxes.append(box(max(int(center - pitch / 2), 0) + start, min(int(center + pitch / 2), size) + start))
    return texts, _sorted_in_rows(boxes)
