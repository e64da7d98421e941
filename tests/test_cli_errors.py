"""Bad input and outputs that cannot be written, in the CLIs: one line naming the problem and the
file, exit 2, no traceback; nothing half-written; an unrelated file never destroyed. The pipelines
and the converter are stood in for where the models would only cost time: each check happens
before them, or is about what is written."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner
from safetensors import SafetensorError

import ptocr.checkpoint as model_file  # the converter's writer writes through it
import ptocr.atomic
import ptocr.result
from ptocr import checkpoint
from ptocr import cli as ptocr_cli
from ptocr.errors import ModelFileError
from ptocr.result import Line, OCRResult


def _enospc(filename=None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), *([filename] if filename else []))


def _no_models(*a, **k):
    raise AssertionError("the pipeline was built before the arguments were checked")


def _clean(run, code: int = 2) -> None:
    assert run.exit_code == code, (run.output, run.exception)
    assert "Traceback" not in run.output and not isinstance(run.exception, (AssertionError, TypeError))


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "scene.jpg"
    path.write_bytes(b"not read: the pipeline is stood in for")
    return str(path)


def _fake_pipeline(*a, **k):
    result = OCRResult([Line([[0, 0], [9, 0], [9, 5], [0, 5]], "text", 0.9, 0)])
    return SimpleNamespace(read=lambda image: result)


# ptocr-convert


@pytest.mark.parametrize("error", [SafetensorError("Error while serializing: I/O error: No space left on device "
                                                   "(os error 28)"), _enospc()], ids=["SafetensorError", "OSError"])
def test_convert_full_disk_is_a_clean_error_and_leaves_nothing(tmp_path, monkeypatch, error):
    import converter.convert
    from converter.cli import main

    conv = SimpleNamespace(state_dict={"w": torch.zeros(4)}, config={"task": "cls"}, dictionary=None,
                           mapping=SimpleNamespace(dropped=[]), form=None, arch_name="x")
    monkeypatch.setattr(converter.convert, "convert", lambda *a, **k: conv)

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"\0" * 100)  # part of the file, then the disk is full
        raise error

    monkeypatch.setattr(model_file, "save_file", full_disk)
    out = tmp_path / "out"
    out.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    run = CliRunner().invoke(main, ["--src", str(src), "--arch", "x", "--dst", str(out / "x.safetensors")])
    _clean(run)
    assert f"cannot write {out / 'x.safetensors'}: " in run.stderr and "No space left on device" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert list(out.iterdir()) == []


# ptocr ocr --json / --vis


def test_json_into_a_missing_folder_fails_before_any_ocr(image, tmp_path, monkeypatch):
    monkeypatch.setattr(ptocr_cli, "_build_ocr", _no_models)
    dst = tmp_path / "nodir" / "x.json"
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", image, "--pipeline", "ch_PP-OCRv4", "--json", str(dst)])
    _clean(run)
    assert f"--json {dst}: the folder {dst.parent} does not exist" in run.stderr
    (tmp_path / "afile").write_text("mine")
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", image, "--json", str(tmp_path / "afile" / "x.json")])
    _clean(run)
    assert "is not a folder" in run.stderr and (tmp_path / "afile").read_text() == "mine"


def test_json_unwritable_folder_and_vis_fail_before_any_ocr(image, tmp_path, monkeypatch):
    monkeypatch.setattr(ptocr_cli, "_build_ocr", _no_models)
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(ptocr_cli.os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode))
    for option, dst in (("--json", ro / "x.json"), ("--vis", ro / "vis"), ("--vis", ro / "a" / "b")):
        run = CliRunner().invoke(ptocr_cli.main, ["ocr", image, option, str(dst)])
        _clean(run)
        assert f"{option} {dst}: cannot write in the folder {ro}" in run.stderr
    assert list(ro.iterdir()) == []


def test_json_is_written_whole_or_not_at_all(image, tmp_path, monkeypatch):
    monkeypatch.setattr(ptocr_cli, "_build_ocr", _fake_pipeline)
    dst = tmp_path / "x.json"
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", image, "--json", str(dst)])
    _clean(run, 0)
    before = dst.read_bytes()
    assert b'"text": "text"' in before

    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[:7])
            self.f.flush()
            raise _enospc()

    monkeypatch.setattr(ptocr.atomic, "open", lambda path, mode: FullDisk(real_open(path, mode)), raising=False)
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", image, image, "--json", str(dst)])
    _clean(run)
    assert f"cannot write {dst}: No space left on device" in run.stderr
    assert dst.read_bytes() == before  # the previous file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.jpg", "x.json"]  # no temporary file left


def test_json_keeps_a_file_name_that_is_not_utf8(tmp_path, monkeypatch):
    # The JSON text was encoded as UTF-8 only after every image was read: a name os.fsdecode gives
    # lone surrogates (Latin-1 bytes) raised UnicodeEncodeError and nothing was written; echoing
    # the name to a strict stdout (CliRunner's, an en_US.UTF-8 terminal's) raised it first.
    import json

    monkeypatch.setattr(ptocr_cli, "_build_ocr", _fake_pipeline)
    odd = tmp_path / "in" / os.fsdecode(b"caf\xe9.jpg")
    odd.parent.mkdir()
    try:
        odd.write_bytes(b"not read: the pipeline is stood in for")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system does not take a non-UTF-8 file name")
    dst = tmp_path / "x.json"
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", str(odd.parent), "--json", str(dst)])
    _clean(run, 0)
    assert list(json.loads(dst.read_text(encoding="utf-8"))) == [str(odd)]  # \u escapes read back to the name


def test_vis_unwritable_is_a_clean_error(image, tmp_path, monkeypatch):
    monkeypatch.setattr(ptocr_cli, "_build_ocr", _fake_pipeline)
    monkeypatch.setattr(OCRResult, "visualize", lambda self, font=None: __import__("numpy").zeros((4, 4, 3), "uint8"))

    def denied(path, suffix=".tmp"):  # the folder takes no new file (as a read-only one; root ignores modes)
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(ptocr.atomic, "temp_beside", denied)
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", image, "--vis", str(tmp_path / "vis")])
    _clean(run)
    assert (f"cannot write {tmp_path / 'vis' / 'scene.png'}: cannot create a file in {tmp_path / 'vis'}: "
            "Permission denied") in run.stderr


# ptocr info


def test_info_takes_zoo_names_only_and_says_so(tmp_path):
    # A folder was "neither a file, a folder nor a known model name": the loaders' message, whose
    # files and folders info does not take.
    run = CliRunner().invoke(ptocr_cli.main, ["info", str(tmp_path)])
    _clean(run)
    assert f"{str(tmp_path)!r} is a folder: ptocr info takes the name of a zoo model or bundle" in run.stderr
    assert "neither a file" not in run.stderr
    run = CliRunner().invoke(ptocr_cli.main, ["info", "PP-OCRv5_mobil"])
    _clean(run)
    assert "'PP-OCRv5_mobil' is not a model or bundle of the zoo" in run.stderr and "did you mean PP-OCRv5_mobile" in run.stderr


# ptocr ocr --set


@pytest.mark.parametrize("bundle, setting, expected", [
    ("ch_PP-OCRv4", "drop_score=[1,2]", "a finite number"),
    ("ch_PP-OCRv4", "drop_score=NaN", "a finite number"),
    ("ch_PP-OCRv4", "drop_score=abc", "a finite number"),
    ("PP-OCRv5_mobile", "text_rec_score_thresh=null", "a finite number"),
    ("PP-OCRv5_mobile", "text_det_limit_side_len=abc", "an integer"),
    ("PP-OCRv5_mobile", "text_det_box_thresh=[1]", "a finite number"),
    ("PP-OCRv5_mobile", 'text_det_unclip_ratio={"a":1}', "a finite number"),
    ("PP-OCRv5_mobile", "use_doc_unwarping=maybe", "true, false or null"),
    ("PP-OCRv5_mobile", "return_word_box=1", "true or false"),
    ("PP-OCRv5_mobile", "text_det_limit_type=3", "text"),
])
def test_set_values_of_the_wrong_type_are_refused_before_models_load(image, monkeypatch, bundle, setting, expected):
    monkeypatch.setattr(ptocr_cli, "_build_ocr", _no_models)
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", image, "--pipeline", bundle, "--set", setting])
    _clean(run)
    assert f"{setting}: expected {expected}" in run.stderr


def test_set_values_of_the_right_type_reach_the_pipeline(image, monkeypatch):
    got = {}

    def build(*a, settings=None, **k):
        got.update(settings)
        return _fake_pipeline()

    monkeypatch.setattr(ptocr_cli, "_build_ocr", build)
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", image, "--set", "text_det_box_thresh=1", "--set",
                                              "use_doc_unwarping=None", "--set", "text_det_limit_type=max",
                                              "--set", "use_textline_orientation=False", "--set", "drop_score=0.2"])
    _clean(run, 0)
    assert got == {"text_det_box_thresh": 1, "use_doc_unwarping": None, "text_det_limit_type": "max",
                   "use_textline_orientation": False, "drop_score": 0.2}
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", image, "--set", "device=cpu"])
    _clean(run)
    assert "give it with --device" in run.stderr


# unreadable model files


def test_an_unreadable_model_file_is_a_model_file_error(image, tmp_path, monkeypatch):
    st = tmp_path / "st.safetensors"
    st.write_bytes(b"\0" * 64)

    def denied(path, *a, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(checkpoint, "open", denied, raising=False)
    with pytest.raises(ModelFileError, match=r"st.safetensors: cannot read it: Permission denied"):
        checkpoint.read_converted(st)
    import ptocr

    with pytest.raises(ModelFileError, match="Permission denied"):
        ptocr.load(str(st))
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", image, "--pipeline", "ch_PP-OCRv4",
                                              "--det", str(st), "--rec", str(st), "--cls", str(st)])
    _clean(run)
    assert f"{st}: cannot read it: Permission denied" in run.stderr


# ptocr export


def test_export_opset_and_folder_destination_are_checked_before_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(ptocr_cli, "load", _no_models)
    for opset in ("3", "99"):
        run = CliRunner().invoke(ptocr_cli.main, ["export", "m", str(tmp_path / "m.onnx"), "--opset", opset])
        _clean(run)
        assert f"--opset {opset}: the ONNX exporter writes opsets" in run.stderr
    run = CliRunner().invoke(ptocr_cli.main, ["export", "m", str(tmp_path)])
    _clean(run)
    assert f"{tmp_path} is a folder" in run.stderr
    run = CliRunner().invoke(ptocr_cli.main, ["export", "m", str(tmp_path / "missing" / "m.onnx")])
    _clean(run)
    assert f"the folder {tmp_path / 'missing'} does not exist" in run.stderr


@pytest.mark.parametrize("error", [_enospc(), PermissionError(errno.EACCES, "Permission denied")],
                         ids=["full disk", "unwritable"])
def test_export_unwritable_destination_is_a_clean_error(tmp_path, monkeypatch, error):
    monkeypatch.setattr(ptocr_cli, "load", lambda model, **k: SimpleNamespace(model=None, config={}))

    def failing(model, config, dst, *a, **k):
        error.filename = str(dst)
        raise error

    monkeypatch.setattr(ptocr_cli, "do_export", failing)
    dst = tmp_path / "cls.onnx"
    run = CliRunner().invoke(ptocr_cli.main, ["export", "m", str(dst)])
    _clean(run)
    assert f"cannot write {dst}: {error.strerror}" in run.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("module, args", [("ptocr", ["list"]), ("converter.cli", ["--list"])])
def test_a_full_stdout_is_one_line_and_exit_2_not_a_traceback(module, args):
    """``ptocr list > /dev/full``: click handles a closed pipe only; a full disk was a traceback."""
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, "-m", module, *args], stdout=full, stderr=subprocess.PIPE,
                             text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().endswith("error: cannot write the output: No space left on device"), run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_no_output_replaces_an_input(tmp_path, monkeypatch):
    """``ptocr ocr a.png --json a.png`` (or ``--vis`` into the inputs' folder) is refused before any
    work, the input left as it was; it used to become the JSON or the drawing."""
    monkeypatch.setattr(ptocr_cli, "_build_ocr", _no_models)
    picture = tmp_path / "a.png"
    picture.write_bytes(b"the input")
    link = tmp_path / "link.json"
    link.symlink_to(picture)
    for args in (["--json", str(picture)], ["--json", str(link)], ["--vis", str(tmp_path)]):
        run = CliRunner().invoke(ptocr_cli.main, ["ocr", str(picture), "--pipeline", "ch_PP-OCRv4", *args])
        _clean(run)
        assert "one of the inputs" in run.stderr and picture.read_bytes() == b"the input", args


def test_an_empty_page_selection_is_refused_not_every_page(image, monkeypatch):
    monkeypatch.setattr(ptocr_cli, "_build_ocr", _no_models)
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", image, "--pipeline", "ch_PP-OCRv4", "--pages", ""])
    _clean(run)
    assert "expected 1-based numbers and ranges" in run.stderr
