"""The JSON-lines results file: complete lines count, a killed write's partial tail is dropped."""

from __future__ import annotations

import json

import pytest

from ptocr.bulk import FailedImage
from ptocr.errors import PtocrError
from ptocr.jsonl_results import JsonlResults, encode, record
from ptocr.result import Line, OCRResult
from ptocr.result3 import OCR3Result


def _result(text: str) -> OCRResult:
    return OCRResult([Line([[0, 0], [9, 0], [9, 5], [0, 5]], text, 0.9, 0)])


def test_records():
    assert record("a.jpg", _result("言葉")) == {
        "image": "a.jpg", "lines": [{"box": [[0.0, 0.0], [9.0, 0.0], [9.0, 5.0], [0.0, 5.0]], "text": "言葉",
                                     "score": 0.9, "angle": 0}]}
    assert record("b.jpg", FailedImage("b.jpg", "not an image")) == {"image": "b.jpg", "error": "not an image"}
    assert "言葉" in encode(record("a.jpg", _result("言葉")))  # UTF-8 text, not \u escapes


def test_a_seal_results_line_says_its_boxes_are_polygons():
    polygon = [[0, 0], [4, -1], [9, 0], [9, 5], [0, 5]]
    seal = OCR3Result([Line(polygon, "印", 0.9)], text_type="seal")
    assert record("s.jpg", seal) == {"image": "s.jpg", "lines": [{"box": [[float(x), float(y)] for x, y in polygon],
                                                                  "text": "印", "score": 0.9}], "text_type": "seal"}
    assert "text_type" not in record("g.jpg", OCR3Result([Line(polygon[:4], "x", 0.9)]))


def test_a_line_is_keyed_by_its_path_where_it_has_one(tmp_path):
    # "image" is the name as given; "path", written where it differs, is what a rerun goes by.
    assert record("a.jpg", _result("x"), path="/in/a.jpg") == {"image": "a.jpg", "path": "/in/a.jpg",
                                                               **record("a.jpg", _result("x"))}
    assert record("/in/b.jpg", _result("x"), path="/in/b.jpg") == record("/in/b.jpg", _result("x"))
    path = tmp_path / "r.jsonl"
    with JsonlResults(path) as results:
        results.write(record("a.jpg", FailedImage("a.jpg", "bad"), path="/in/a.jpg"))
    path.write_text(path.read_text(encoding="utf-8") + '{"image": "old.jpg", "page": 2, "lines": []}\n',
                    encoding="utf-8")  # a line from before "path": keyed by its image
    with JsonlResults(path) as results:
        assert results.done == {("/in/a.jpg", None), ("old.jpg", 2)}
    path.write_text('{"image": "a.jpg", "path": 7, "lines": []}\n', encoding="utf-8")
    with pytest.raises(PtocrError, match='r.jsonl:1: "path" is not a string'):
        JsonlResults(path)


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



@pytest.mark.parametrize("content", [b'{"my": "settings"}', b'{"image": "a.jpg", "lines": []}\n{"my": "sett',
                                     b'\x89PNG\r\n\x1a\n\0\0', b'{"my": "settings"}\n'],
                         ids=["a JSON file", "a foreign tail", "binary", "a foreign line"])
def test_an_unrelated_file_is_refused_and_left_as_it_was(tmp_path, content):
    path = tmp_path / "r7.json"
    path.write_bytes(content)
    with pytest.raises(PtocrError, match=r"r7.json:\d+: not a results line of ptocr"):
        JsonlResults(path)
    assert path.read_bytes() == content


@pytest.mark.parametrize("tail", [b"{", b'{"ima', b'{"image": "c.jpg", "li'])
def test_any_start_of_a_line_is_a_partial_tail(tmp_path, tail):
    path = tmp_path / "r.jsonl"
    whole = (encode(record("a.jpg", _result("one"))) + "\n").encode()
    path.write_bytes(whole + tail)
    with JsonlResults(path) as results:
        assert results.done == {("a.jpg", None)}
    assert path.read_bytes() == whole


def test_a_line_too_deep_for_json_is_a_foreign_line(tmp_path):
    path = tmp_path / "r5.jsonl"
    path.write_text("[" * 200000 + "\n", encoding="utf-8")
    with pytest.raises(PtocrError, match=r"r5.jsonl:1: not a results line of ptocr"):
        JsonlResults(path)
    assert path.stat().st_size == 200001


def test_a_file_for_a_folder_is_refused(tmp_path):
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(PtocrError, match=r"afile/r.jsonl: .*afile is not a folder"):
        JsonlResults(tmp_path / "afile" / "r.jsonl")
    assert (tmp_path / "afile").read_text() == "mine"


def test_an_unwritable_file_is_a_ptocr_error(tmp_path, monkeypatch):
    import errno
    import os

    from ptocr import jsonl_results

    def denied(path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(jsonl_results.os, "open", denied)
    with pytest.raises(PtocrError, match=r"cannot open the results file .*r.jsonl: Permission denied"):
        JsonlResults(tmp_path / "r.jsonl")
    monkeypatch.undo()
    assert not os.path.exists(tmp_path / "r.jsonl")


def test_a_full_disk_midway_leaves_complete_lines_and_resumes(tmp_path, monkeypatch):
    import errno
    import os

    from ptocr import jsonl_results

    path = tmp_path / "r.jsonl"
    real_write = os.write
    with JsonlResults(path) as results:
        results.write(record("a.jpg", _result("one")))
        whole = path.read_bytes()

        def full_disk(fd, data):
            if len(data) > 20:
                return real_write(fd, data[:20])  # part of the line, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(jsonl_results.os, "write", full_disk)
        with pytest.raises(PtocrError, match=r"cannot write the results file .*r.jsonl: No space left on device; "
                                             r"the lines written before are complete and a rerun resumes"):
            results.write(record("b.jpg", _result("two")))
        monkeypatch.undo()
        assert path.read_bytes() == whole
        assert results.done == {("a.jpg", None)}
    with JsonlResults(path) as results:
        assert results.done == {("a.jpg", None)}
        results.write(record("b.jpg", _result("two")))
    assert [json.loads(s)["image"] for s in path.read_text(encoding="utf-8").splitlines()] == ["a.jpg", "b.jpg"]


def test_a_second_run_on_the_same_file_is_refused_while_the_first_writes(tmp_path):
    # Two runs appending at their own offsets wrote over each other's lines.
    path = tmp_path / "r.jsonl"
    with JsonlResults(path) as first:
        first.write(record("a.jpg", _result("x")))
        with pytest.raises(PtocrError, match="another run is writing it"):
            JsonlResults(path)
        first.write(record("b.jpg", _result("y")))
    with JsonlResults(path) as again:  # the first ended: the file is free
        assert again.done == {("a.jpg", None), ("b.jpg", None)}


def test_resuming_reads_the_file_line_by_line(tmp_path):
    # A file of millions of results was read whole, then copied and split: about 2.5x its size.
    import tracemalloc

    path = tmp_path / "r.jsonl"
    with JsonlResults(path) as results:
        for i in range(1500):
            results.write(record(f"{i}.jpg", _result("x" * 10_000)))
    size = path.stat().st_size
    assert size > 15_000_000
    tracemalloc.start()
    try:
        with JsonlResults(path) as again:
            assert len(again.done) == 1500
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size / 10, (peak, size)


def test_an_empty_file_is_removed_only_by_the_run_that_made_it_and_holds_it(tmp_path):
    # The command removed an empty results file it thought it had made after the lock refused it,
    # deleting the file of the run that held it (still empty while its models loaded).
    path = tmp_path / "r.jsonl"
    holder = JsonlResults(path)
    with pytest.raises(PtocrError, match="another run is writing it"):
        JsonlResults(path)
    assert path.exists()
    holder.close()
    assert not path.exists()  # made by it and left empty: no file behind
    path.write_text("", encoding="utf-8")
    JsonlResults(path).close()
    assert path.exists()  # an empty file it did not make stays


def test_a_file_system_without_locks_runs_unlocked_with_a_warning(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="cannot be locked \\(No locks available\\)"):
        with JsonlResults(tmp_path / "r.jsonl") as results:
            results.write(record("a.jpg", _result("x")))
    with pytest.warns(UserWarning), JsonlResults(tmp_path / "r.jsonl") as again:
        assert again.done == {("a.jpg", None)}


def test_a_file_removed_or_replaced_under_a_run_is_not_written_blind_or_removed(tmp_path):
    # A run that locked a file the holder had just removed wrote into a file with no name; a
    # replacement put at the path was removed by the run that had made the first file.
    path = tmp_path / "r.jsonl"
    first = JsonlResults(path)
    path.unlink()
    path.write_text("", encoding="utf-8")  # another file at the path now
    first.close()
    assert path.exists()  # not the file it made: not removed
    with JsonlResults(path) as results:
        results.write(record("a.jpg", _result("x")))
    assert path.read_text(encoding="utf-8").count("\n") == 1


def test_a_run_that_locks_a_file_removed_meanwhile_opens_the_one_at_the_path(tmp_path, monkeypatch):
    # The holder removed its empty file and let the lock go as this run took it: without a check,
    # this run wrote its results into a file with no name.
    path = tmp_path / "r.jsonl"
    path.write_text("", encoding="utf-8")
    lock, calls = JsonlResults._lock, []

    def removed_as_it_locks(self):
        if not calls:
            path.unlink()
            path.write_text("", encoding="utf-8")  # and another run made it anew
        calls.append(1)
        return lock(self)

    monkeypatch.setattr(JsonlResults, "_lock", removed_as_it_locks)
    with JsonlResults(path) as results:
        results.write(record("a.jpg", _result("x")))
    assert len(calls) == 2 and path.read_text(encoding="utf-8").count("\n") == 1


def test_a_dangling_link_as_the_results_file_makes_its_target(tmp_path):
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "target.jsonl")
    with JsonlResults(tmp_path / "link.jsonl") as results:
        results.write(record("a.jpg", _result("x")))
    assert (tmp_path / "target.jsonl").read_text(encoding="utf-8").count("\n") == 1
