"""Word boxes (PaddleOCR 3.x's return_word_box): the runs a line's text is cut into, their
boxes inside the line's quad, and how a result draws them. The comparison with paddleocr 3.7 on
the shared scenes is tests/test_pipeline.py::test_v5_word_boxes_match_paddleocr3."""

from __future__ import annotations

import numpy as np
import pytest

from ptocr.postprocess.word_boxes import line_word_boxes, word_groups
from ptocr.result import Line
from ptocr.result3 import OCR3Result


def test_word_groups_follow_paddlex_runs():
    text = "VGG-16 1.5x中文,"
    words, cols, kinds = word_groups(text, list(range(0, 2 * len(text), 2)))
    # "-" after a Latin run and "." between digits stay inside it; each other kind starts a run
    assert ["".join(w) for w in words] == ["VGG-16", " ", "1.5x", "中文", ","]
    assert kinds == ["en&num", "symbol", "en&num", "cn", "symbol"]
    assert cols[3] == [22, 24]
    assert word_groups("", []) == ([], [], [])
    with pytest.raises(ValueError, match="columns"):
        word_groups("ab", [0])


def test_line_word_boxes_split_the_quad_by_columns():
    quad = np.array([[100, 10], [300, 10], [300, 30], [100, 30]])
    words, cols, kinds = word_groups("ab 中文", [0, 1, 5, 10, 12])
    texts, boxes = line_word_boxes("ab 中文", quad, 20.0, words, cols, kinds)  # 10 px a column
    assert texts == ["ab", " ", "中", "文"]
    # runs span first to last column; each CJK character its run's pitch (30 px) around its column
    assert [b[0][0] for b in boxes] == [100, 150, 190, 210] and [b[1][0] for b in boxes] == [120, 160, 220, 240]
    assert all(b[0][1] == 10 and b[2][1] == 30 for b in boxes)
    tall = np.array([[0, 0], [20, 0], [20, 200], [0, 200]])  # more than 1.5 times as tall: top to bottom
    _, boxes = line_word_boxes("ab", tall, 10.0, *word_groups("ab", [2, 4]))
    assert boxes == [((0, 40), (0, 100), (20, 100), (20, 40))]


def test_word_boxes_are_outlined_in_the_visualization():
    image = np.full((20, 40, 3), 200, np.uint8)
    line = Line([[2, 2], [37, 2], [37, 17], [2, 17]], "ab", 0.9, None)
    plain = OCR3Result([line], image=image).visualize()
    quads = [((5, 5), (15, 5), (15, 14), (5, 14))]
    worded = OCR3Result([line], image=image, text_word=[["ab"]], text_word_region=[quads]).visualize()
    changed = np.argwhere((plain != worded).any(axis=2))
    assert len(changed) > 0 and changed[:, 1].max() < 40  # only the image half, along the word's outline
    ys, xs = changed[:, 0], changed[:, 1]
    assert ys.min() >= 4 and ys.max() <= 15 and xs.min() >= 4 and xs.max() <= 16
