"""ptocr-convert on the real official models, and every way a conversion must refuse."""

import copy
import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import converter.writer as writer
import ptocr.checkpoint as model_file  # the writer's own module
from converter.cli import EXIT_BAD_INPUT, main
from converter.convert import convert
from conftest import assert_same_state
from ptocr.models.reparam import fuse_reparameterizable
from ptocr.models.build import build_model
from ptocr.architectures import get_architecture

OFFICIAL = {
    "ch_PP-OCRv4_det_infer": "ch_PP-OCRv4_det",
    "ch_PP-OCRv4_rec_infer": "ch_PP-OCRv4_rec",
    "ch_ppocr_mobile_v2.0_cls_infer": "ch_ppocr_mobile_v2.0_cls",
}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def models(shared_dir):
    return shared_dir / "paddle_models"


@pytest.mark.parametrize("folder,arch", OFFICIAL.items())
def test_convert_detects_architecture_and_writes_loadable_files(models, tmp_path, folder, arch):
    dst = tmp_path / "m.safetensors"
    res = run("--src", models / folder, "--dst", dst)
    assert res.exit_code == 0, res.output
    assert f"detected architecture: {arch}" in res.output
    config = json.loads((tmp_path / "m.config.json").read_text())
    assert config["architecture"] == arch
    assert config["source"]["format"] == "paddle2_inference"
    assert len(config["source"]["sha256"]) == 64
    assert (tmp_path / "m.dict.txt").exists() == (config["task"] == "rec")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files

    import ptocr

    predictor = ptocr.load(dst, fuse=False)
    reference = convert(models / folder).model
    # The file holds the conversion's tensors exactly, each at an aligned address as loaded
    # (MKL and oneDNN choose kernels by alignment).
    loaded, converted = predictor.model.state_dict(), reference.state_dict()
    assert_same_state(loaded, converted)
    assert all(t.data_ptr() % 64 == 0 for t in [*loaded.values(), *converted.values()])
    x = torch.randn(2, 3, 64, 320) if config["task"] != "det" else torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        got, want = predictor.model(x), reference(x)
        exact = copy.deepcopy(reference).double()(x.double())
    # Same function, same weights: the outputs can differ only as two float32 evaluations of it
    # can, each within float32's rounding of the exact (float64) output. The reference's own
    # distance from it measures that rounding for this network and input; a conversion defect (a
    # setting lost in the file, a float64 module computed in float32) moves outputs far more.
    rounding = (want.double() - exact).abs().max().item()
    assert (got.double() - want.double()).abs().max().item() <= 2 * rounding


def test_rec_dictionary_is_recorded(models, tmp_path):
    dst = tmp_path / "rec.safetensors"
    assert run("--src", models / "ch_PP-OCRv4_rec_infer", "--dst", dst).exit_code == 0
    config = json.loads((tmp_path / "rec.config.json").read_text())
    assert config["dictionary"]["num_characters"] == 6623
    assert config["dictionary"]["use_space_char"] is True
    assert config["model"]["head"]["num_classes"] == 6625
    lines = (tmp_path / "rec.dict.txt").read_text(encoding="utf-8").split("\n")
    assert len(lines) == 6624 and lines[-1] == ""


def test_wrong_arch_names_the_architecture_the_source_is(models, tmp_path):
    dst = tmp_path / "x.safetensors"
    res = run("--arch", "ch_PP-OCRv4_rec", "--src", models / "ch_PP-OCRv4_det_infer", "--dst", dst)
    assert res.exit_code == EXIT_BAD_INPUT
    assert "Traceback" not in res.output
    assert "is not ch_PP-OCRv4_rec: it is ch_PP-OCRv4_det" in res.output
    assert not dst.exists()


@pytest.mark.parametrize("given", [".", "inference.pdmodel", "inference.pdiparams.info"])
def test_an_inference_folder_given_by_one_of_its_files_is_the_same_model(models, tmp_path, given, monkeypatch):
    folder = "ch_ppocr_mobile_v2.0_cls_infer"
    whole = run("--src", models / folder, "--dst", tmp_path / "a.safetensors")
    monkeypatch.chdir(models / folder)
    part = run("--src", given, "--dst", tmp_path / "b.safetensors")
    assert whole.exit_code == part.exit_code == 0, part.output
    assert json.loads((tmp_path / "b.config.json").read_text())["source"]["name"] == folder
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_unknown_arch_suggests_close_names(models, tmp_path):
    res = run("--arch", "ch_PP-OCRv4_recc", "--src", models / "ch_PP-OCRv4_rec_infer", "--dst", tmp_path / "x.safetensors")
    assert res.exit_code == EXIT_BAD_INPUT
    assert "did you mean ch_PP-OCRv4_rec" in res.output
    # --arch takes zoo model names too: they are suggested as well
    res = run("--arch", "german_mobile_v2.0_recc", "--src", models / "german_mobile_v2.0_rec_infer",
              "--dst", tmp_path / "x.safetensors")
    assert res.exit_code == EXIT_BAD_INPUT and "did you mean german_mobile_v2.0_rec" in res.output


def test_dictionary_that_does_not_fit_the_head_is_refused(models, tmp_path):
    small = tmp_path / "small_dict.txt"
    small.write_text("a\nb\nc\n", encoding="utf-8")
    dst = tmp_path / "x.safetensors"
    res = run("--src", models / "ch_PP-OCRv4_rec_infer", "--dst", dst, "--dict", small)
    assert res.exit_code == EXIT_BAD_INPUT
    assert "3 characters + blank + space = 5 classes" in res.output and "6625" in res.output
    assert not dst.exists()


def test_a_zoo_model_named_by_arch_must_bring_a_dictionary_that_fits(models, tmp_path):
    # en_number's head has 97 classes; french_mobile_v2.0_rec's dictionary gives 137/138: the
    # file must not come out labelled french with another dictionary found beside or by default
    dst = tmp_path / "x.safetensors"
    res = run("--src", models / "en_number_mobile_v2.0_rec_infer", "--arch", "french_mobile_v2.0_rec", "--dst", dst)
    assert res.exit_code == EXIT_BAD_INPUT, res.output
    assert "french_dict.txt" in res.output and "97 classes" in res.output and "ch_ppocr_mobile_v2.0_rec" in res.output
    assert not dst.exists()
    res = run("--src", models / "en_number_mobile_v2.0_rec_infer", "--arch", "en_number_mobile_v2.0_rec", "--dst", dst)
    assert res.exit_code == 0, res.output


def test_existing_output_is_not_overwritten_without_force(models, tmp_path):
    dst = tmp_path / "cls.safetensors"
    dst.write_bytes(b"precious")
    res = run("--src", models / "ch_ppocr_mobile_v2.0_cls_infer", "--dst", dst)
    assert res.exit_code == EXIT_BAD_INPUT and "--force" in res.output
    assert dst.read_bytes() == b"precious"
    assert run("--src", models / "ch_ppocr_mobile_v2.0_cls_infer", "--dst", dst, "--force").exit_code == 0
    assert dst.read_bytes() != b"precious"


@pytest.mark.parametrize("fail_at", ["weights", "sidecar", "rename"])
def test_a_failure_while_writing_leaves_nothing(models, tmp_path, monkeypatch, fail_at):
    conv = convert(models / "ch_PP-OCRv4_rec_infer")
    real_save, real_replace = model_file.save_file, model_file.os.replace
    calls = []

    def save_then_fail(tensors, path, metadata=None):
        real_save(tensors, path, metadata=metadata)  # a complete temp file exists, then we fail
        raise OSError("disk full (injected)")

    def replace_fails_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("rename failed (injected)")
        return real_replace(src, dst)

    if fail_at == "weights":
        monkeypatch.setattr(model_file, "save_file", save_then_fail)
    elif fail_at == "sidecar":
        monkeypatch.setattr(Path, "write_text", lambda *a, **k: (_ for _ in ()).throw(OSError("injected")))
    else:
        monkeypatch.setattr(model_file.os, "replace", replace_fails_second)
    with pytest.raises(OSError, match="injected"):
        writer.write_converted(conv.state_dict, conv.config, conv.dictionary.text(), tmp_path / "rec.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_truncated_pdiparams_is_a_clear_error(models, tmp_path):
    src = tmp_path / "cls"
    shutil.copytree(models / "ch_ppocr_mobile_v2.0_cls_infer", src)
    params = src / "inference.pdiparams"
    params.write_bytes(params.read_bytes()[:-1000])
    res = run("--src", src, "--dst", tmp_path / "x.safetensors")
    assert res.exit_code == EXIT_BAD_INPUT
    assert "inference.pdiparams" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x.safetensors").exists()


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pdparams_whose_pickle_would_run_a_command_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "best_accuracy.pdparams"
    ckpt.write_bytes(pickle.dumps({"backbone.conv1.conv.weight": _Payload(marker)}, protocol=2))
    res = run("--src", ckpt, "--dst", tmp_path / "x.safetensors")
    assert res.exit_code == EXIT_BAD_INPUT
    assert "system" in res.output
    assert not marker.exists()


def _to_paddle_names(state_dict, model, prefix=""):
    """Inverse of the shared mapping rules: what a PaddleOCR training checkpoint holds."""
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    out = {}
    for k, v in state_dict.items():
        if k.endswith("num_batches_tracked"):
            continue
        a = v.numpy()
        if k in linear:
            a = a.T.copy()
        k = k.replace("running_mean", "_mean").replace("running_var", "_variance")
        out[prefix + k] = a
    return out


def test_unfused_training_checkpoint_converts_and_fuses_to_the_same_outputs(tmp_path):
    # A distillation training checkpoint of the v4 detector, in PaddleOCR's unfused
    # (training) form, with random weights and non-trivial BN statistics.
    torch.manual_seed(0)
    cfg = get_architecture("ch_PP-OCRv4_det")["model"]
    cfg["backbone"]["reparam"] = False
    cfg["head"]["with_thresh"] = True
    model = build_model(cfg)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    model.eval()
    state = {}
    state.update(_to_paddle_names(model.state_dict(), model, "Student."))
    state.update(_to_paddle_names(model.state_dict(), model, "Teacher."))
    ckpt = tmp_path / "best_accuracy.pdparams"
    ckpt.write_bytes(pickle.dumps(state, protocol=2))

    conv = convert(ckpt)
    assert conv.arch_name == "ch_PP-OCRv4_det"
    assert conv.form == "unfused, training head"
    assert conv.source.submodel == "Student"
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(conv.model(x), expected)
        fused = fuse_reparameterizable(conv.model)
        assert (fused(x) - expected).abs().max() < 1e-5


def test_conversion_is_byte_reproducible(models, tmp_path):
    # The zoo pins sha256s: the same source must always give the same bytes.
    import subprocess
    import sys

    digests = []
    for i in range(2):  # separate processes: hash-map orders differ between them
        dst = tmp_path / f"cls{i}.safetensors"
        out = subprocess.run([sys.executable, "-m", "converter.cli", "--src",
                              str(models / "ch_ppocr_mobile_v2.0_cls_infer"), "--dst", str(dst)],
                             capture_output=True, text=True, check=True).stdout
        digests.append(dst.read_bytes())
        assert "sha256" in out
    assert digests[0] == digests[1]


def test_unknown_model_names_closest_architectures(models, tmp_path):
    # A PP-OCRv3 det checkpoint with one layer missing fits nothing: detection must say so
    # and rank the architecture it nearly is first.
    import pickle

    from converter.readers import read_source

    tensors = dict(read_source(models / "ch_PP-OCRv3_det_infer").tensors)
    tensors.pop(sorted(k for k in tensors if k.startswith("neck."))[0])
    ckpt = tmp_path / "odd_model" / "best_accuracy.pdparams"
    ckpt.parent.mkdir()
    ckpt.write_bytes(pickle.dumps(tensors, protocol=4))
    res = run("--src", ckpt, "--dst", tmp_path / "x.safetensors")
    assert res.exit_code == EXIT_BAD_INPUT
    assert "fits no registered architecture" in res.output
    assert "closest: ch_PP-OCRv3_det " in res.output
    assert not (tmp_path / "x.safetensors").exists()
