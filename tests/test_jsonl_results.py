"""The JSON-lines results file: complete lines count, a killed write's partial tail is dropped."""

from __future__ import annotations

import json

import pytest

from ptocr.bulk import FailedImage
from ptocr.errors import PtocrError
from ptocr.jsonl_results import JsonlResults, encode, record
from ptocr.result import Line, OCRResult


def _result(text: str) -> OCRResult:
    return OCRResult([Line([[0, 0], [9, 0], [9, 5], [0, 5]], text, 0.9, 0)])


def test_records():
    assert record("a.jpg", _result("言葉")) == {
        "image": "a.jpg", "lines": [{"box": [[0.0, 0.0], [9.0, 0.0], [9.0, 5.0], [0.0, 5.0]], "text": "言葉",
                                     "score": 0.9, "angle": 0}]}
    assert record("b.jpg", FailedImage("b.jpg", "not an image")) == {"image": "b.jpg", "error": "not an image"}
    assert "言葉" in encode(record("a.jpg", _result("言葉")))  # UTF-8 text, not \u escapes


def test_records_keep_word_boxes():
    from ptocr.result3 import OCR3Result

    quads = [((0, 0), (4, 0), (4, 5), (0, 5)), ((5, 0), (9, 0), (9, 5), (5, 5))]
    result = OCR3Result([Line([[0, 0], [9, 0], [9, 5], [0, 5]], "言葉", 0.9, None)],
                        text_word=[["言", "葉"]], text_word_region=[quads])
    (line,) = record("a.jpg", result)["lines"]
    assert line["words"] == ["言", "葉"] and line["word_boxes"] == [[0, 0, 4, 5], [5, 0, 9, 5]]
    assert "words" not in record("a.jpg", OCR3Result(result.lines))["lines"][0]


def test_resume_drops_a_partial_last_line(tmp_path):
    path = tmp_path / "out" / "results.jsonl"
    with JsonlResults(path) as results:
        assert results.done == set()
        results.write(record("a.jpg", _result("one")))
        results.write(record("b.jpg", FailedImage("b.jpg", "unreadable")))
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"image": "c.jpg", "lines": [{"bo')  # a write cut by a kill
    with JsonlResults(path) as results:
        assert results.done == {("a.jpg", None), ("b.jpg", None)}  # (image, page): no page for an image
        assert path.read_bytes() == whole
        results.write(record("c.jpg", _result("three")))
    lines = [json.loads(s) for s in path.read_text(encoding="utf-8").splitlines()]
    assert [d["image"] for d in lines] == ["a.jpg", "b.jpg", "c.jpg"]


def test_a_line_without_its_newline_is_not_done(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"image": "a.jpg", "lines": []}', encoding="utf-8")  # valid JSON, newline not written
    with JsonlResults(path) as results:
        assert results.done == set()
    assert path.read_bytes() == b""


def test_foreign_files_are_refused(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text('{"image": "a.jpg", "lines": []}\nsome notes\n', encoding="utf-8")
    with pytest.raises(PtocrError, match=r"notes.jsonl:2: not a results line"):
        JsonlResults(path)
    assert path.read_text(encoding="utf-8").endswith("some notes\n")  # left as it was
    with pytest.raises(PtocrError, match="is a directory"):
        JsonlResults(tmp_path)

