"""Conversion audit: source variants misread, wrong architectures accepted, flags ignored, outputs
left behind. Each test failed before its fix."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import converter.writer as writer
from converter.cli import EXIT_BAD_INPUT, main
from converter.convert import convert
from converter.errors import ArchitectureError, ConversionError, FormatError, MappingError
from converter.readers import read_source
from converter.readers.pdparams import read_pdparams
from ptocr.conversion import convert_once


@pytest.fixture(scope="module")
def models(shared_dir):
    return shared_dir / "paddle_models"


def _bf16_bits(a: np.ndarray) -> np.ndarray:
    """float32 -> the uint16 bits paddle.save writes for a bfloat16 tensor (truncated)."""
    return (np.ascontiguousarray(a, np.float32).view(np.uint32) >> 16).astype(np.uint16)


def test_bfloat16_training_checkpoint_is_read_as_paddle_reads_it(models, tmp_path):
    # paddle.save of a bfloat16 model pickles each tensor as uint16 bits; paddle.load turns them
    # back into bfloat16. The converter took them for integers: "fits no registered architecture".
    ckpt = read_pdparams(models / "ch_ppocr_mobile_v2.0_det_train" / "best_accuracy.pdparams")
    bits = {k: _bf16_bits(v) if v.dtype == np.float32 else v for k, v in ckpt.items()}
    widened = {k: (b.astype(np.uint32) << 16).view(np.float32) if b.dtype == np.uint16 else b for k, b in bits.items()}
    for name, state in (("bf16", bits), ("fp32", widened)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "best_accuracy.pdparams").write_bytes(pickle.dumps(state, protocol=4))
    got, want = convert(tmp_path / "bf16"), convert(tmp_path / "fp32")
    assert got.arch_name == want.arch_name == "ch_ppocr_mobile_v2.0_det"
    assert got.state_dict.keys() == want.state_dict.keys()
    for k, v in want.state_dict.items():
        assert got.state_dict[k].dtype == v.dtype and torch.equal(got.state_dict[k], v), k


def _four_class_textline_program(models, dst):
    """The Paddle 3 PP-LCNet x0.25 text-line classifier with a 4-class head (a fine-tune)."""
    from verification.pdiparams import write_pdiparams

    src = models / "PP-LCNet_x0_25_textline_ori_infer"
    doc = json.loads((src / "inference.json").read_text())
    resized = []
    for op in doc["program"]["regions"][0]["blocks"][0]["ops"]:
        if op["#"] == "p" and op["A"][3].startswith("linear_"):
            op["O"]["TT"]["D"][1][-1] = 4
            resized.append(op["A"][3])
    assert len(resized) == 2
    dst.mkdir()
    (dst / "inference.json").write_text(json.dumps(doc))
    tensors = dict(read_source(src).tensors)
    for name in resized:
        tensors[name] = np.concatenate([tensors[name]] * 2, axis=-1)
    write_pdiparams(dst / "inference.pdiparams", tensors)
    return dst


def test_a_graph_aligned_classifier_must_have_as_many_classes_as_the_labels(models, tmp_path):
    # A checkpoint's head is checked against the architecture's labels; a Paddle 3 program's
    # (or an ONNX export's) head was resized silently: 4 classes came out labelled ['0', '180'].
    src = _four_class_textline_program(models, tmp_path / "fourway_infer")
    with pytest.raises(MappingError, match=r"4 classes, the architecture's labels are \['0', '180'\]"):
        convert(src, "PP-LCNet_x0_25_textline_ori")
    with pytest.raises(ArchitectureError, match="closest: PP-LCNet_x0_25_textline_ori "):
        convert(src)


def test_a_source_given_relative_to_the_current_folder_converts_the_same(models, monkeypatch):
    # "." and "best_accuracy.pdparams" inside en_number_..._train_finetune named no folder: the
    # zoo model it is named after (model_name, inference settings) was lost, the source name empty.
    folder = models / "en_number_mobile_v2.0_rec_train_finetune"
    want = convert(folder).config
    assert want["model_name"] == "en_number_mobile_v2.0_rec"
    monkeypatch.chdir(folder)
    assert convert(".").config == want
    by_file = convert("best_accuracy.pdparams").config
    assert by_file["model_name"] == want["model_name"] and by_file["inference"] == want["inference"]


def test_use_space_char_for_a_model_without_dictionary_is_refused(models, tmp_path):
    dst = tmp_path / "cls.safetensors"
    res = CliRunner().invoke(main, ["--src", str(models / "ch_ppocr_mobile_v2.0_cls_infer"), "--dst", str(dst),
                                    "--use-space-char"])
    assert res.exit_code == EXIT_BAD_INPUT, res.output
    assert "--use-space-char was given but cls models have no dictionary" in res.output
    assert list(tmp_path.iterdir()) == []


SMALL = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
CONFIG = {"task": "cls", "model": {}}


def test_no_dictionary_of_an_earlier_conversion_stays_beside_a_model_without_one(tmp_path):
    # --force over a recognizer's files with a classifier left the recognizer's m.dict.txt beside it
    dst = tmp_path / "m.safetensors"
    writer.write_converted(SMALL, {"task": "rec", "model": {}}, "a\nb\n", dst)
    writer.write_converted(SMALL, CONFIG, None, dst, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.config.json", "m.safetensors"]
    # without --force a dictionary alone in the way is refused, as a config alone is
    (tmp_path / "other.dict.txt").write_text("a\n")
    with pytest.raises(ConversionError, match="other.dict.txt already exists; pass --force"):
        writer.write_converted(SMALL, CONFIG, None, tmp_path / "other.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.config.json", "m.safetensors", "other.dict.txt"]


def test_a_bfloat16_transformers_checkpoint_is_bad_input_not_a_crash(tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "pp_ocrv6_tiny_rec"}))
    save_file({"head.fc1.weight": torch.zeros(2, 2, dtype=torch.bfloat16)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(FormatError, match="BF16 tensors; ptocr reads float32 checkpoints"):
        convert(tmp_path)


def test_convert_once_leaves_no_folder_when_the_source_fails(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(FormatError):
        convert_once(tmp_path / "src", tmp_path / "out" / "deep" / "m.safetensors")
    assert not (tmp_path / "out").exists()
