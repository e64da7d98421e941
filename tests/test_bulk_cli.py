"""``ptocr ocr DIR --out results.jsonl``: one line per image, a progress bar on stderr, and a
rerun after a kill midway that gives each image exactly once, read as ``OCR.read`` reads it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import converted_folders, intra_op_threads

from ptocr.bulk_cli import expand_inputs
from ptocr.errors import ImageError, PtocrError
from ptocr.jsonl_results import encode, record
from ptocr.pipeline import OCR

REPO = Path(__file__).resolve().parents[1]
MODELS = {"det": "ch_PP-OCRv4_det_infer", "rec": "ch_PP-OCRv4_rec_infer", "cls": "ch_ppocr_mobile_v2.0_cls_infer"}
SCENES = ("ger_1.jpg", "japan_1.jpg", "00018069.jpg", "00009282.jpg", "ger_2.jpg")


@pytest.fixture(scope="module")
def model_args(shared_dir, tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("bulk_cli_models")
    args = ["--pipeline", "ch_PP-OCRv4"]  # PaddleOCR 2.x's rules: the batched engine (ptocr.bulk)
    for task, path in converted_folders(shared_dir, out, MODELS).items():
        args += [f"--{task}", str(path)]
    return args


@pytest.fixture(scope="module")
def folder(shared_dir, tmp_path_factory) -> Path:
    """The scenes in a folder tree, an unreadable file among them."""
    d = tmp_path_factory.mktemp("bulk_cli_images")
    (d / "sub").mkdir()
    for k, name in enumerate(SCENES):
        shutil.copy(shared_dir / "images" / "scenes" / name, d / ("sub" if k % 2 else ".") / name)
    # Sorted last: the kill after the first line must leave it unread (a failed input is instant).
    (d / "z_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but nothing after")
    (d / "notes.md").write_text("not an image suffix: skipped")
    return d


def _cli(*args, env_extra=None) -> subprocess.Popen:
    # One intra-op thread in the child as in this process: the same float32 rounding.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               OMP_NUM_THREADS="1", **(env_extra or {}))
    # SIGINT as a terminal's foreground command has it: a test run started in the background
    # (nohup ... &) ignores it, and a Python child then keeps ignoring Ctrl-C.
    return subprocess.Popen([sys.executable, "-m", "ptocr.cli", "ocr", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _signal_after_the_first_line(run: subprocess.Popen, out: Path, sig: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        if out.is_file() and out.read_bytes().count(b"\n") >= 1:
            run.send_signal(sig)
            return
        time.sleep(0.02)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_expand_inputs(folder, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# scenes\n{folder / 'ger_1.jpg'}\n\ns3://bucket/page.png\n", encoding="utf-8")
    names = expand_inputs([str(folder), str(listing), str(folder / "ger_1.jpg")])
    expected = sorted(str(p) for p in folder.rglob("*") if p.suffix in (".jpg", ".png"))
    assert names == [*expected, "s3://bucket/page.png"]  # each once, folders recursive and sorted


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_folder_leaves_out_a_fifo(tmp_path):
    # A FIFO named *.jpg in a folder was listed, and reading it blocked the run forever.
    (tmp_path / "a.png").write_bytes(b"listed, not read")
    os.mkfifo(tmp_path / "b.jpg")
    (tmp_path / "c.jpg").symlink_to(tmp_path / "gone.jpg")  # a dangling link stays: reading it says so
    assert expand_inputs([str(tmp_path)]) == [str(tmp_path / "a.png"), str(tmp_path / "c.jpg")]


def test_a_folder_in_a_list_reads_as_its_files(model_files_ocr, shared_dir, tmp_path, monkeypatch):
    # A folder named in a .txt list stayed one name: without --out the pipeline's call read it into
    # a list of results (AttributeError in writing the JSON), with --out it was an "is a directory" line.
    from ptocr import cli

    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    image = str(shutil.copy(shared_dir / "images" / "scenes" / "ger_1.jpg", scans / "sub" / "ger_1.jpg"))
    listing = tmp_path / "list.txt"
    listing.write_text(f"{scans}\n", encoding="utf-8")
    assert expand_inputs([str(listing)]) == [image]

    monkeypatch.setattr(cli, "_build_ocr", lambda *a, **kw: model_files_ocr)
    want = [line.text for line in model_files_ocr.read(image)]
    assert want
    out = tmp_path / "out.json"
    run = _invoke_bulk(str(listing), "--json", str(out))
    assert run.exit_code == 0 and "Traceback" not in run.output, run.output
    assert {k: [line["text"] for line in v] for k, v in json.loads(out.read_text(encoding="utf-8")).items()} == {image: want}
    results = tmp_path / "r.jsonl"
    run = _invoke_bulk(str(listing), "--out", str(results))
    assert run.exit_code == 0, run.output
    assert [(r["image"], [line["text"] for line in r["lines"]]) for r in _records(results)] == [(image, want)]


def test_a_dotdot_after_a_link_is_another_file(model_files_ocr, shared_dir, tmp_path, monkeypatch):
    # link -> real/sub, so link/../x.jpg is real/x.jpg, not ./x.jpg: both are read.
    from ptocr import bulk_cli

    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    shutil.copy(shared_dir / "images" / "scenes" / "ger_1.jpg", tmp_path / "real" / "x.jpg")
    shutil.copy(shared_dir / "images" / "scenes" / "japan_1.jpg", tmp_path / "x.jpg")
    monkeypatch.chdir(tmp_path)
    assert bulk_cli.run(["link/../x.jpg", "x.jpg"], lambda: model_files_ocr, bulk_out="r.jsonl") == 0
    got = {r["image"]: [x["text"] for x in r["lines"]] for r in _records(tmp_path / "r.jsonl")}
    assert got == {name: [x.text for x in model_files_ocr.read(name)] for name in ("link/../x.jpg", "x.jpg")}
    assert got["link/../x.jpg"] != got["x.jpg"]


def test_a_file_is_read_once_whatever_spelling_or_folder_names_it(model_files_ocr, shared_dir, tmp_path, monkeypatch):
    # Results were keyed by the name as given: a.jpg and /abs/a.jpg in one run, or a rerun from
    # another working folder, read the same file again (two lines for it).
    from ptocr import bulk_cli

    image = tmp_path / "scans" / "a.jpg"
    image.parent.mkdir()
    shutil.copy(shared_dir / "images" / "scenes" / "ger_1.jpg", image)
    monkeypatch.chdir(tmp_path)
    build = lambda: model_files_ocr  # noqa: E731
    assert bulk_cli.run(["scans/a.jpg", str(image), "./scans//a.jpg"], build, bulk_out="r.jsonl") == 0
    (line,) = _records(tmp_path / "r.jsonl")
    assert line["image"] == "scans/a.jpg" and line["path"] == str(image)  # as given, and the key
    assert [x["text"] for x in line["lines"]] == [x.text for x in model_files_ocr.read(image)]
    # --ray's lines, made on the actors without "path", get it on the driver: the same line.
    ray_line = encode(record("scans/a.jpg", model_files_ocr.read("scans/a.jpg")))
    assert bulk_cli._with_path(ray_line, "scans/a.jpg") + "\n" == (tmp_path / "r.jsonl").read_text(encoding="utf-8")
    monkeypatch.chdir(image.parent)
    assert bulk_cli.run(["a.jpg", str(tmp_path / "scans")], _no_models, bulk_out="../r.jsonl") == 0
    assert len(_records(tmp_path / "r.jsonl")) == 1

    # A file written before "path": its relative names are taken from the working folder, as then.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "old.jsonl").write_text('{"image": "scans/a.jpg", "lines": []}\n', encoding="utf-8")
    assert bulk_cli.run([str(image)], _no_models, bulk_out="old.jsonl") == 0
    assert len(_records(tmp_path / "old.jsonl")) == 1


def test_dotdot_spellings_and_linked_folders_of_one_file_read_it_once(model_files_ocr, shared_dir, tmp_path,
                                                                      monkeypatch):
    # Keys kept "..": imgs/../imgs/a.jpg, a rerun naming ../imgs from another folder, and a linked
    # folder each read the file again. A link to the file itself is another name (a Hugging Face
    # cache's snapshot names, linked to one blob, are different inputs): its own line.
    from ptocr import bulk_cli

    image = tmp_path / "imgs" / "a.jpg"
    image.parent.mkdir()
    (tmp_path / "other").mkdir()
    shutil.copy(shared_dir / "images" / "scenes" / "ger_1.jpg", image)
    (tmp_path / "link.jpg").symlink_to(image)
    (tmp_path / "imgslink").symlink_to(image.parent)
    monkeypatch.chdir(tmp_path)
    assert bulk_cli.run(["imgs/a.jpg", "imgs/../imgs/a.jpg", "link.jpg", "imgslink/a.jpg"], lambda: model_files_ocr,
                        bulk_out="r.jsonl") == 0
    lines = _records(tmp_path / "r.jsonl")
    assert [(r["image"], r["path"]) for r in lines] == [("imgs/a.jpg", os.path.realpath(image)),
                                                      ("link.jpg", str(tmp_path / "link.jpg"))]
    assert lines[0]["lines"] == lines[1]["lines"]
    monkeypatch.chdir(tmp_path / "other")
    assert bulk_cli.run(["../imgs", "../link.jpg"], _no_models, bulk_out="../r.jsonl") == 0
    assert len(_records(tmp_path / "r.jsonl")) == 2


def test_a_run_ends_with_what_it_read_failed_and_found_done(model_files_ocr, shared_dir, tmp_path, monkeypatch,
                                                            capsys):
    from ptocr import bulk_cli

    shutil.copy(shared_dir / "images" / "scenes" / "ger_1.jpg", tmp_path / "a.jpg")
    (tmp_path / "b.jpg").write_bytes(b"not an image")
    monkeypatch.chdir(tmp_path)
    assert bulk_cli.run(["a.jpg", "b.jpg"], lambda: model_files_ocr, bulk_out="r.jsonl") == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last == "ptocr: 2 inputs read into r.jsonl, 1 of them could not be read (their lines hold the errors)"
    shutil.copy(tmp_path / "a.jpg", tmp_path / "c.jpg")
    assert bulk_cli.run(["a.jpg", "b.jpg", "c.jpg"], lambda: model_files_ocr, bulk_out="r.jsonl") == 0
    assert capsys.readouterr().err.splitlines()[-1] == "ptocr: 1 input read into r.jsonl; 2 read before"
    assert bulk_cli.run(["a.jpg", "b.jpg", "c.jpg"], _no_models, bulk_out="r.jsonl") == 0
    assert capsys.readouterr().err.splitlines()[-1] == \
        "ptocr: nothing left to read: r.jsonl has a line for every input asked for"


def test_a_command_line_name_that_is_nothing_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    # A typo was read as an image that failed: its error line counted as done for every rerun.
    from ptocr import bulk_cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "imgs").mkdir()
    with pytest.raises(PtocrError, match="no such file or folder: scnas/, lsit.txt; nothing read or written"):
        bulk_cli.run(["imgs", "scnas/", "lsit.txt"], _no_models, bulk_out="r.jsonl")
    assert not (tmp_path / "r.jsonl").exists()


def test_killed_run_resumes_each_image_once(folder, model_args, tmp_path, model_files_ocr):
    out = tmp_path / "results.jsonl"
    names = expand_inputs([str(folder)])
    first = _cli(str(folder), "--out", str(out), "--batch-size", "1", *model_args)
    _signal_after_the_first_line(first, out, signal.SIGKILL)
    _, first_stderr = first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL, f"the first run ended before it could be killed midway: {first_stderr[-3000:]}"
    done_before = _records(out)
    assert 1 <= len(done_before) < len(names)
    reading = (tmp_path / "results.jsonl.reading.json").read_bytes()  # written before the first line
    with out.open("ab") as f:  # as if killed inside a write: a partial line, no newline
        f.write(b'{"image": "' + names[-1].encode() + b'", "lines": [{"box": [[')

    second = _cli(str(folder), "--out", str(out), "--batch-size", "2", *model_args)
    _, stderr = second.communicate(timeout=600)
    assert second.returncode == 2, stderr  # the broken file: bad input, the rest read
    assert "images/s" in stderr and "ETA" in stderr and f"({len(done_before)} done before)" in stderr
    assert "z_broken.png" in stderr and "Traceback" not in stderr

    got = _records(out)
    assert sorted(r["image"] for r in got) == sorted(names)  # each exactly once
    assert got[:len(done_before)] == done_before
    assert (tmp_path / "results.jsonl.reading.json").read_bytes() == reading  # --batch-size is not a choice
    ocr = model_files_ocr
    for line, rec in zip(out.read_text(encoding="utf-8").splitlines(), got):
        try:
            want = encode(record(rec["image"], ocr.read(rec["image"])))
        except ImageError as e:
            assert rec == {"image": rec["image"], "error": str(e)}
            continue
        assert line == want

    again = _cli(str(folder), "--out", str(out), *model_args)
    _, stderr = again.communicate(timeout=300)
    assert again.returncode == 0 and out.read_text(encoding="utf-8").count("\n") == len(names), stderr


@pytest.fixture(scope="module")
def model_files_ocr(model_args):
    files = dict(zip(model_args[2::2], model_args[3::2]))
    with intra_op_threads(1):
        yield OCR(files["--det"], files["--rec"], files["--cls"])


def test_no_images_is_bad_input(tmp_path, model_args):
    run = _cli(str(tmp_path), "--out", str(tmp_path / "r.jsonl"), *model_args)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 2 and "no images found" in stderr and "Traceback" not in stderr


def test_out_refuses_json_and_vis(tmp_path):
    from click.testing import CliRunner

    from ptocr.cli import main

    run = CliRunner().invoke(main, ["ocr", str(tmp_path), "--out", str(tmp_path / "r.jsonl"), "--json", "-"])
    assert run.exit_code == 2 and "--json and --vis" in run.stderr and not (tmp_path / "r.jsonl").exists()


def _invoke_bulk(*args):
    from click.testing import CliRunner

    from ptocr.cli import main

    return CliRunner().invoke(main, ["ocr", *args])


def _no_models(*a, **k):
    raise AssertionError("the pipeline was built")


def test_out_unwritable_is_bad_input(tmp_path, monkeypatch):
    """An --out that cannot be opened: one line naming it, exit 2, before any model is built."""
    import errno

    from ptocr import cli, jsonl_results

    monkeypatch.setattr(cli, "_build_ocr", _no_models)
    image = tmp_path / "a.jpg"
    image.write_bytes(b"not read")
    (tmp_path / "afile").write_text("mine")
    run = _invoke_bulk(str(image), "--out", str(tmp_path / "afile" / "r.jsonl"))
    assert run.exit_code == 2 and "afile is not a folder" in run.stderr and "Traceback" not in run.output
    assert (tmp_path / "afile").read_text() == "mine"

    real_open = os.open

    def denied(path, *a, **k):
        if os.fspath(path).endswith("r.jsonl"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(jsonl_results.os, "open", denied)
    run = _invoke_bulk(str(image), "--out", str(tmp_path / "ro" / "r.jsonl"))
    assert run.exit_code == 2, run.output
    assert f"cannot open the results file {tmp_path / 'ro' / 'r.jsonl'}: Permission denied" in run.stderr


def test_out_dash_and_models_that_cannot_be_built_leave_no_file(tmp_path, model_args, monkeypatch):
    # --out - wrote a file named "-"; a --device the models refuse left an empty results file behind.
    image = tmp_path / "a.jpg"
    image.write_bytes(b"not read")
    monkeypatch.chdir(tmp_path)
    run = _invoke_bulk(str(image), "--out", "-")
    assert run.exit_code == 2 and "--out -: the results go to a file" in run.stderr and "--json -" in run.stderr
    out = tmp_path / "r.jsonl"
    run = _invoke_bulk(str(image), "--out", str(out), "--device", "bogus", *model_args)
    assert run.exit_code == 2 and "invalid device 'bogus'" in run.stderr, run.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]


def test_out_refuses_an_unrelated_file_unchanged(tmp_path, monkeypatch):
    from ptocr import cli

    monkeypatch.setattr(cli, "_build_ocr", _no_models)
    image = tmp_path / "a.jpg"
    image.write_bytes(b"not read")
    settings = tmp_path / "r7.json"
    settings.write_bytes(b'{"my": "settings"}')
    run = _invoke_bulk(str(image), "--out", str(settings))
    assert run.exit_code == 2 and "r7.json:1: not a results line of ptocr" in run.stderr
    assert settings.read_bytes() == b'{"my": "settings"}'


def test_a_list_that_is_not_utf8_is_named(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xff\xfe a.jpg\n")
    run = _invoke_bulk(str(listing), "--out", str(tmp_path / "r.jsonl"))
    assert run.exit_code == 2 and f"{listing}: a list of images must be UTF-8 text" in run.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_with_one_line_and_the_rerun_goes_on(folder, model_args, tmp_path, signum):
    # Ctrl-C printed click's "Aborted!" (exit 1), then the reader's threads, left running while the
    # interpreter shut down, ended the process with "terminate called without an active exception".
    # SIGTERM (a scheduler preempting the job) killed it where it stood (ptocr.interrupts).
    out = tmp_path / "results.jsonl"
    names = expand_inputs([str(folder)])
    first = _cli(str(folder), "--out", str(out), "--batch-size", "1", *model_args)
    _signal_after_the_first_line(first, out, signum)
    _, stderr = first.communicate(timeout=120)
    assert first.returncode == 128 + signum, stderr[-3000:]
    assert "interrupted" in stderr and "run the same command again" in stderr
    assert "terminate called" not in stderr and "Traceback" not in stderr and "Aborted" not in stderr
    done_before = _records(out)  # whole lines only
    assert 1 <= len(done_before) < len(names)
    if signum != signal.SIGINT:
        return  # the rerun is the same after either
    second = _cli(str(folder), "--out", str(out), *model_args)
    _, stderr = second.communicate(timeout=600)
    assert second.returncode == 2, stderr  # the broken file
    assert sorted(r["image"] for r in _records(out)) == sorted(names)


def _counting_build(monkeypatch, ocr) -> list:
    """``ptocr ocr``'s models replaced by ``ocr``; the list grows by one per build."""
    from ptocr import cli

    builds: list = []
    monkeypatch.setattr(cli, "_build_ocr", lambda *a, **kw: builds.append(kw) or ocr)
    return builds


def test_a_rerun_with_other_models_or_settings_is_refused(model_files_ocr, model_args, shared_dir, tmp_path,
                                                          monkeypatch):
    # A rerun with another --set or --rec appended a second reading to the same file, unsaid.
    builds = _counting_build(monkeypatch, model_files_ocr)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scans").mkdir()
    shutil.copy(shared_dir / "images" / "scenes" / "ger_1.jpg", tmp_path / "scans" / "a.jpg")
    files = dict(zip(model_args[2::2], model_args[3::2]))
    relative = [*model_args[:2], "--det", files["--det"], "--rec", os.path.relpath(files["--rec"]),
                "--cls", files["--cls"]]
    run = _invoke_bulk("scans", "--out", "r.jsonl", *relative, "--set", "drop_score=0.5")
    assert run.exit_code == 0 and len(builds) == 1, run.output
    record = tmp_path / "r.jsonl.reading.json"
    choices = json.loads(record.read_text(encoding="utf-8"))["choices"]
    assert choices == {"pipeline": "ch_PP-OCRv4", "det": files["--det"], "rec": files["--rec"], "cls": files["--cls"],
                       "doc_ori": None, "doc_unwarp": None, "lang": None, "settings": {"drop_score": 0.5},
                       "dtype": "float32"}  # the path absolute, no --dtype: float32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "r.jsonl.reading.json", "scans"]  # no temp file
    before = {p.name: p.read_bytes() for p in (tmp_path / "r.jsonl", record)}

    # The same choices, spelled otherwise (the absolute --rec, --dtype fp32), and what does not
    # change a page's reading (--batch-size, --device): resumed, nothing left to read, nothing built.
    run = _invoke_bulk("scans", "--out", "r.jsonl", *model_args, "--set", "drop_score=0.5", "--dtype", "fp32",
                       "--batch-size", "3", "--device", "cpu")
    assert run.exit_code == 0 and len(builds) == 1, run.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "r.jsonl", record)} == before

    # Another --set value; another --rec, --word-boxes and --dtype: refused, each named, nothing built or written.
    shutil.copy(shared_dir / "images" / "scenes" / "japan_1.jpg", tmp_path / "scans" / "b.jpg")
    run = _invoke_bulk("scans", "--out", "r.jsonl", *model_args, "--set", "drop_score=0.6")
    assert run.exit_code == 2 and len(builds) == 1 and "Traceback" not in run.output, run.output
    assert "--set drop_score: 0.5 -> 0.6" in run.stderr
    assert "give another --out, or remove r.jsonl.reading.json" in run.stderr
    other = [*model_args[:4], "--rec", "ch_PP-OCRv4_rec", *model_args[6:]]
    run = _invoke_bulk("scans", "--out", "r.jsonl", *other, "--set", "drop_score=0.5", "--word-boxes",
                       "--dtype", "float16")
    assert run.exit_code == 2 and len(builds) == 1, run.output
    for said in (f"--rec: {files['--rec']} -> ch_PP-OCRv4_rec", "--dtype: float32 -> float16",
                 "--word-boxes (return_word_box): (not set) -> true"):
        assert said in run.stderr
    assert "drop_score" not in run.stderr  # only what differs
    assert {p.name: p.read_bytes() for p in (tmp_path / "r.jsonl", record)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "r.jsonl.reading.json", "scans"]

    # The record removed (as a file of an older ptocr has none): this run's recorded, the rest read.
    record.unlink()
    run = _invoke_bulk("scans", "--out", "r.jsonl", *model_args, "--set", "drop_score=0.6")
    assert run.exit_code == 0 and len(builds) == 2, run.output
    assert "r.jsonl has no record of the models and settings that read it" in run.stderr
    assert json.loads(record.read_text(encoding="utf-8"))["choices"]["settings"] == {"drop_score": 0.6}
    got = (tmp_path / "r.jsonl").read_bytes()
    assert got.startswith(before["r.jsonl"]) and [r["image"] for r in _records(tmp_path / "r.jsonl")] == [
        "scans/a.jpg", "scans/b.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "r.jsonl.reading.json", "scans"]

    # A record left without results (the file removed) is another file's: replaced.
    (tmp_path / "r.jsonl").unlink()
    run = _invoke_bulk("scans/a.jpg", "--out", "r.jsonl", *model_args)
    assert run.exit_code == 0 and len(builds) == 3, run.output
    assert json.loads(record.read_text(encoding="utf-8"))["choices"]["settings"] == {}


def test_the_reading_record_is_written_whole_or_not_at_all(model_files_ocr, model_args, shared_dir, tmp_path,
                                                           monkeypatch):
    from ptocr import atomic

    builds = _counting_build(monkeypatch, model_files_ocr)
    image = shutil.copy(shared_dir / "images" / "scenes" / "ger_1.jpg", tmp_path / "a.jpg")
    out = tmp_path / "r.jsonl"
    (tmp_path / "r.jsonl.reading.json").write_text("{}")  # a stale record without results, to be replaced

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    run = _invoke_bulk(str(image), "--out", str(out), *model_args)
    assert run.exit_code == 2 and "No space left on device" in run.stderr and "Traceback" not in run.output
    assert len(builds) == 1
    # Nothing of the run: the record as it was, no temp file, no results line written without its record.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "r.jsonl.reading.json"]
    assert (tmp_path / "r.jsonl.reading.json").read_text() == "{}"


def test_ray_runs_record_and_check_the_reading_as_one_machine(tmp_path, monkeypatch, model_args):
    # --ray goes through bulk_cli.run: the same record, the same refusal before the cluster starts.
    import ptocr.ray_data

    started = []

    def fake_run_on_ray(names, build, **kw):  # the driver's side only: a line per image, as the actors give
        started.append(names)
        for name in names:
            yield name, encode({"image": name, "lines": []}), None

    monkeypatch.setattr(ptocr.ray_data, "run_on_ray", fake_run_on_ray)
    monkeypatch.chdir(tmp_path)
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(b"not read here")
    run = _invoke_bulk("a.jpg", "--out", "r.jsonl", *model_args, "--ray")
    assert run.exit_code == 0 and started == [["a.jpg"]], run.output
    record = tmp_path / "r.jsonl.reading.json"
    assert json.loads(record.read_text(encoding="utf-8"))["choices"]["pipeline"] == "ch_PP-OCRv4"
    before = record.read_bytes(), (tmp_path / "r.jsonl").read_bytes()
    run = _invoke_bulk("a.jpg", "b.jpg", "--out", "r.jsonl", *model_args, "--set", "drop_score=0.9", "--ray")
    assert run.exit_code == 2 and "--set drop_score: (not set) -> 0.9" in run.stderr and len(started) == 1
    assert (record.read_bytes(), (tmp_path / "r.jsonl").read_bytes()) == before
    run = _invoke_bulk("a.jpg", "b.jpg", "--out", "r.jsonl", *model_args, "--actors", "2", "--ray")  # --actors: not a choice
    assert run.exit_code == 0 and started[1:] == [["b.jpg"]], run.output
    assert record.read_bytes() == before[0]
