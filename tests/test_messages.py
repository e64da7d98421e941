"""Bad input names the actual problem: the error text of each refusal (exit codes are tested
elsewhere; these pin what the one line says)."""

from __future__ import annotations

import os
import pickle

import pytest
from click.testing import CliRunner

import ptocr
from converter.cli import EXIT_BAD_INPUT
from converter.cli import main as convert_main
from ptocr import cli as ptocr_cli
from ptocr.errors import ModelFileError

CLS = "ch_ppocr_mobile_v2.0_cls_infer"  # the smallest real model: quick to convert


def convert(*args):
    return CliRunner().invoke(convert_main, [str(a) for a in args])


def _refused(run) -> str:
    assert run.exit_code == EXIT_BAD_INPUT, (run.output, run.exception)
    assert "Traceback" not in run.output
    return run.stderr


def test_parent_of_model_folders_names_them(shared_dir, tmp_path):
    models = shared_dir / "paddle_models"
    err = _refused(convert("--src", models, "--dst", tmp_path / "x.safetensors"))
    assert "it is empty" not in err
    assert "holds no model files itself but has sub-folders" in err and "give one of them" in err
    first = sorted(p.name for p in models.iterdir() if p.is_dir())[0]
    assert f"it holds folders: {first}" in err


def test_parent_of_model_folders_lists_only_model_like_ones(tmp_path):
    (tmp_path / "src" / "det_infer").mkdir(parents=True)
    (tmp_path / "src" / "det_infer" / "inference.pdmodel").write_bytes(b"\n")
    (tmp_path / "src" / "notes").mkdir()
    err = _refused(convert("--src", tmp_path / "src", "--dst", tmp_path / "x.safetensors"))
    assert "it holds folders: det_infer; give one of them" in err and "notes" not in err


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_src_that_is_not_a_regular_file(tmp_path, kind):
    if kind == "device":
        src = "/dev/null"
    else:
        src = tmp_path / "pipe"
        os.mkfifo(src)
    err = _refused(convert("--src", src, "--dst", tmp_path / "x.safetensors"))
    assert f"{src}: not a regular file or folder" in err and "no such file" not in err


def test_load_of_a_folder_named_safetensors(tmp_path):
    folder = tmp_path / "somefolder.safetensors"
    folder.mkdir()
    with pytest.raises(ModelFileError, match="is a folder, not a .safetensors file"):
        ptocr.load(folder)


def test_force_names_the_sidecar_that_is_a_folder(shared_dir, tmp_path):
    out = tmp_path / "out" / "sc"
    (out / "y.config.json").mkdir(parents=True)
    dst = out / "y.safetensors"
    err = _refused(convert("--src", shared_dir / "paddle_models" / CLS, "--dst", dst, "--force"))
    assert f"{out / 'y.config.json'} is a folder" in err
    assert f"cannot write {dst}" not in err
    assert not dst.exists() and sorted(p.name for p in out.iterdir()) == ["y.config.json"]


@pytest.mark.parametrize("below", ["x.safetensors", "sub/x.safetensors"])
def test_dst_folder_that_is_a_file(shared_dir, tmp_path, below):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    err = _refused(convert("--src", shared_dir / "paddle_models" / CLS, "--dst", afile / below))
    assert f"{afile} is a file, not a folder" in err and "does not exist" not in err
    assert afile.read_text() == "mine"


def test_pipeline_given_a_single_model(tmp_path, monkeypatch):
    def no_models(*a, **k):
        raise AssertionError("a model was looked for before the --pipeline name was checked")

    monkeypatch.setattr("ptocr.bundles.resolve", no_models)
    image = tmp_path / "scene.png"
    image.write_bytes(b"not read")
    run = CliRunner().invoke(ptocr_cli.main, ["ocr", str(image), "--pipeline", "ch_PP-OCRv4_det"])
    err = _refused(run)
    assert "ch_PP-OCRv4_det is a single model (det), not a pipeline" in err
    assert "pipelines: " in err and "ch_PP-OCRv4," in err and "give it with --det" in err
    assert "neither" not in err and "did you mean" not in err


def test_protocol0_pickle_is_named_and_never_unpickled(tmp_path, monkeypatch):
    src = tmp_path / "p0.pdparams"
    src.write_bytes(pickle.dumps({"a": 1}, protocol=0))

    def no_unpickling(*a, **k):
        raise AssertionError("the protocol-0 pickle was unpickled")

    import converter.readers.safe_pickle as safe_pickle

    monkeypatch.setattr(safe_pickle, "load", no_unpickling)
    monkeypatch.setattr(safe_pickle, "loads", no_unpickling)
    err = _refused(convert("--src", src, "--dst", tmp_path / "x.safetensors"))
    assert f"{src}: a protocol-0 (text) pickle, which Paddle never writes" in err
    assert "looks like text" not in err


def test_transformers_export_into_a_file_names_it(tmp_path):
    from converter.errors import ConversionError
    from converter.transformers_checkpoint import write_transformers_folder

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConversionError, match="afile is a file, not a folder"):
        write_transformers_folder({}, {"architecture": "PP-OCRv6_small_det"}, None, afile / "out")
    assert afile.read_text() == "x"


@pytest.mark.parametrize("where", ["missing/x.safetensors", "x.pt", "taken.safetensors"])
def test_an_unwritable_destination_is_refused_before_converting(tmp_path, monkeypatch, where):
    import converter.convert

    def no_conversion(*_a, **_k):
        raise AssertionError("converted before checking the destination")
    monkeypatch.setattr(converter.convert, "convert", no_conversion)
    (tmp_path / "taken.safetensors").write_bytes(b"a model")
    err = _refused(convert("--src", tmp_path, "--dst", tmp_path / where))
    assert where.split("/")[0] in err
    assert (tmp_path / "taken.safetensors").read_bytes() == b"a model"
