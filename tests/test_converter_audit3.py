"""Converter audit (3): bad inputs that got past the checks of audits 1 and 2 — an inference.yml
whose nested aliases expand without end (a 226 MB error message), names too long for the file
system (a traceback), a link to nothing at --dst (overwritten without --force), Paddle's path
prefix refused by the command line, a dictionary of empty lines, bytes after a checkpoint's
pickle, self-contradicting descriptions, and a folder's second model left without a word."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from converter import cli as convert_cli
from converter.errors import FormatError
from converter.readers import read_source
from converter.readers.formats import describe_bytes
from converter.readers.pir import MAX_YML_VALUES, read_pir_config
from converter.readers.safe_pickle import loads
from ptocr.dictionary import DictionaryError, parse_dictionary
from ptocr.errors import PtocrError

CLS = "ch_ppocr_mobile_v2.0_cls_infer"


def _convert(*args: str):
    return CliRunner().invoke(convert_cli.main, list(args))


def test_an_inference_yml_whose_aliases_expand_without_end_is_refused_in_a_line(tmp_path):
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    yml = tmp_path / "inference.yml"
    yml.write_text("\n".join(levels) + "\nGlobal: {model_name: x}\nPostProcess: {character_dict: *a8}\n")
    with pytest.raises(FormatError, match=f"expand to more than {MAX_YML_VALUES:,} values") as caught:
        read_pir_config(yml)
    assert len(str(caught.value)) < 300


def test_a_yml_value_in_a_message_is_cut_short(tmp_path):
    yml = tmp_path / "inference.yml"
    yml.write_text("PostProcess: {character_dict: [a, [" + ", ".join(["word"] * 5000) + "]]}\n")
    with pytest.raises(FormatError, match=r"character_dict\[1\] is list \[") as caught:
        read_pir_config(yml)
    assert len(str(caught.value)) < 300


def test_names_too_long_for_the_file_system_are_errors_not_tracebacks(shared_dir, tmp_path):
    result = _convert("--src", str(shared_dir / "paddle_models" / CLS), "--dst", str(tmp_path / ("a" * 300 + ".safetensors")))
    assert result.exit_code == 2 and "File name too long" in result.output, result.output
    assert os.listdir(tmp_path) == []
    result = _convert("--src", str(tmp_path / ("a" * 300)), "--dst", str(tmp_path / "x.safetensors"))
    assert result.exit_code == 2 and "File name too long" in result.output, result.output
    import ptocr

    for name in ("a" * 300, str(tmp_path / ("a" * 300)), *(str(tmp_path / ("a" * 300 + s)) for s in (".safetensors", ".pdmodel", ".onnx"))):
        with pytest.raises(PtocrError):
            ptocr.load(name)


def test_an_empty_src_is_refused_not_read_as_the_working_folder(shared_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(shared_dir / "paddle_models" / CLS)  # a model folder: "" used to convert it
    result = _convert("--src", "", "--dst", str(tmp_path / "x.safetensors"))
    assert result.exit_code == 2 and "--src is empty" in result.output
    assert os.listdir(tmp_path) == []


def test_a_link_to_nothing_at_dst_is_not_replaced_without_force(shared_dir, tmp_path):
    dst = tmp_path / "model.safetensors"
    dst.symlink_to(tmp_path / "nowhere")
    result = _convert("--src", str(shared_dir / "paddle_models" / CLS), "--dst", str(dst))
    assert result.exit_code == 2 and "already exists" in result.output and "--force" in result.output
    assert dst.is_symlink() and not dst.exists()


def test_paddles_path_prefix_converts_on_the_command_line_too(shared_dir, tmp_path):
    dst = tmp_path / "cls.safetensors"
    result = _convert("--src", str(shared_dir / "paddle_models" / CLS / "inference"), "--dst", str(dst))
    assert result.exit_code == 0 and dst.is_file(), result.output
    result = _convert("--src", str(tmp_path / "missing" / "inference"), "--dst", str(tmp_path / "x.safetensors"))
    assert result.exit_code == 2 and "no such file or folder" in result.output


def test_a_dictionary_of_empty_lines_is_refused():
    with pytest.raises(DictionaryError, match="no characters: its 3 lines are empty"):
        parse_dictionary("\n\n\n", use_space_char=True, source="d.txt")
    assert parse_dictionary("a\n\nb\n", use_space_char=False).num_classes == 4  # one empty class among others stays


def test_bytes_after_a_checkpoints_pickle_are_refused(shared_dir):
    data = (shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_det_train" / "best_accuracy.pdparams").read_bytes()
    assert loads(data, "ok.pdparams")  # the real checkpoint ends where its pickle does
    with pytest.raises(FormatError, match="4 bytes after the end of the pickle"):
        loads(data + b"\0\0\0\0", "joined.pdparams")


def test_descriptions_say_what_the_bytes_are():
    assert describe_bytes(b"[1, 2]", 6) == "JSON text (an array)"
    assert describe_bytes(b'{"a": 1}', 8) == "JSON text (an object)"
    text = "'\n疗\n绚\n".encode()
    assert describe_bytes(text + "诚".encode()[:2], 20).startswith("text starting with")  # a character cut at the end
    assert describe_bytes(b"\x00\x01\x02\x03", 4).startswith("binary data")


def test_a_folder_names_the_models_it_did_not_read(shared_dir, tmp_path):
    folder = tmp_path / "two"
    shutil.copytree(shared_dir / "paddle_models" / CLS, folder)
    (folder / "other.onnx").write_bytes(b"not read")
    (folder / "config.json").write_text("{}")  # no .pdiparams of its name: not a program
    notes = read_source(folder).notes
    assert any("not read: other.onnx" in n for n in notes) and not any("config.json" in n for n in notes)
    assert not any("not read" in n for n in read_source(shared_dir / "paddle_models" / CLS).notes)
    assert not any("not read" in n for n in read_source(Path(folder) / "inference.pdmodel").notes)
