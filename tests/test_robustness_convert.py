"""Issue 8, converter and ``ptocr-convert``: documented exit codes (0 ok, 2 bad input,
1 internal error) from a real process, errors on stderr without a traceback, a wrong
--arch naming keys and shapes, and no output file after a failure at any write step.

test_convert.py covers a wrong --arch on a model of another architecture, a too-small --dict, --force, and three
injected write failures; this adds the real exit codes, every write step (each rename,
the hash, an interrupt), failures over existing outputs, and shape mismatches.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import converter.convert
import converter.writer as writer
import ptocr.checkpoint as model_file  # the writer's own module
from converter.cli import EXIT_BAD_INPUT, main
from converter.errors import ConversionError
from converter.readers import read_source
from ptocr.checkpoint import read_converted

REPO = Path(__file__).resolve().parents[1]
CLS = "ch_ppocr_mobile_v2.0_cls_infer"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def run_process(*args, code: str | None = None) -> subprocess.CompletedProcess:
    """The real console entry point in a fresh interpreter (exit status, stderr as users see)."""
    prog = code or "from converter.cli import main; main()"
    return subprocess.run([sys.executable, "-c", prog, *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def cls_conv(shared_dir):
    return converter.convert.convert(shared_dir / "paddle_models" / CLS)


@pytest.fixture
def fake_convert(cls_conv, monkeypatch):
    """The CLI with the (slow) conversion replaced by the cached one: tests the CLI + writer."""
    monkeypatch.setattr(converter.convert, "convert", lambda *a, **k: cls_conv)


# --- exit codes and stderr, from a real process ------------------------------------------


def test_exit_0_on_success(shared_dir, tmp_path):
    dst = tmp_path / "cls.safetensors"
    p = run_process("--src", shared_dir / "paddle_models" / CLS, "--dst", dst)
    assert p.returncode == 0, p.stderr
    assert "detected architecture" in p.stdout and dst.is_file()


@pytest.mark.parametrize(
    "case",
    ["foreign file", "hostile pickle", "missing --src", "no such --src", "bad --dst suffix"],
)
def test_exit_2_on_bad_input_with_a_message_and_no_traceback(tmp_path, case):
    src = tmp_path / "best_accuracy.pdparams"
    dst = tmp_path / "out.safetensors"
    if case == "foreign file":
        src.write_text("<html>404</html>")
        args = ["--src", src, "--dst", dst]
    elif case == "hostile pickle":
        src.write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
        args = ["--src", src, "--dst", dst]
    elif case == "missing --src":
        args = ["--dst", dst]
    elif case == "no such --src":
        args = ["--src", tmp_path / "nope", "--dst", dst]
    else:
        src.write_bytes(pickle.dumps({"w": np.zeros(2, np.float32)}, protocol=2))
        args = ["--src", src, "--dst", tmp_path / "out.pt"]
    p = run_process(*args)
    assert p.returncode == EXIT_BAD_INPUT == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    assert p.stderr.strip() and "rror" in p.stderr  # "error:" / click's "Error:"
    assert p.stdout == ""  # nothing to stdout on failure: scripts can pipe it
    assert not dst.exists() and not (tmp_path / "pwned").exists()


def test_exit_1_on_an_internal_error_with_the_traceback(tmp_path):
    # A bug (not bad input) must not be disguised as bad input: exit 1, traceback shown.
    code = ("import converter.convert as c\n"
            "def boom(*a, **k): raise RuntimeError('injected bug')\n"
            "c.convert = boom\nfrom converter.cli import main; main()")  # fmt: skip
    src = tmp_path / "best_accuracy.pdparams"
    src.write_bytes(pickle.dumps({"w": np.zeros(2, np.float32)}, protocol=2))
    p = run_process("--src", src, "--dst", tmp_path / "o.safetensors", code=code)
    assert p.returncode == 1
    assert "Traceback" in p.stderr and "injected bug" in p.stderr


def test_unwritable_output_is_bad_input_not_a_crash(fake_convert, tmp_path, monkeypatch):
    # (Tests run as root here, so chmod cannot make a folder unwritable: inject ENOSPC.)
    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(model_file, "save_file", full)
    dst = tmp_path / "cls.safetensors"
    res = CliRunner().invoke(main, ["--src", str(tmp_path), "--dst", str(dst)])
    assert res.exit_code == EXIT_BAD_INPUT, res.output
    assert "No space left on device" in res.stderr and str(dst) in res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert list(tmp_path.iterdir()) == []


# --- wrong --arch: keys and shapes named ----------------------------------------------------


def test_wrong_arch_shape_mismatch_names_key_and_both_shapes(shared_dir, tmp_path):
    # Same names as the classifier, one tensor with another shape: the error must say which
    # and both shapes (a key-only report would not help here).
    tensors = dict(read_source(shared_dir / "paddle_models" / CLS).tensors)
    key = "backbone.conv1.conv.weight"
    tensors[key] = np.zeros((16, 3, 3, 3), np.float32)
    assert read_source(shared_dir / "paddle_models" / CLS).tensors[key].shape == (8, 3, 3, 3)
    ckpt = tmp_path / "best_accuracy.pdparams"
    ckpt.write_bytes(pickle.dumps(tensors, protocol=2))
    dst = tmp_path / "x.safetensors"
    res = run("--arch", "ch_ppocr_mobile_v2.0_cls", "--src", ckpt, "--dst", dst)
    assert res.exit_code == EXIT_BAD_INPUT
    assert key in res.stderr and "16, 3, 3, 3" in res.stderr and "8, 3, 3, 3" in res.stderr, res.stderr
    assert "Traceback" not in res.output and not dst.exists()


def test_wrong_arch_lists_first_mismatching_keys(shared_dir, tmp_path):
    # A classifier missing one tensor fits no architecture, so the keys that differ are the answer.
    tensors = dict(read_source(shared_dir / "paddle_models" / CLS).tensors)
    del tensors["head.fc.bias"]
    ckpt = tmp_path / "best_accuracy.pdparams"
    ckpt.write_bytes(pickle.dumps(tensors, protocol=2))
    res = run("--arch", "ch_PP-OCRv4_rec", "--src", ckpt, "--dst", tmp_path / "x.safetensors")
    assert res.exit_code == EXIT_BAD_INPUT
    assert "backbone.blocks.0.bottleneck_conv.bn.bias" in res.stderr  # first source key
    assert "not filled by any source tensor" in res.stderr


def test_wrong_arch_of_a_known_model_names_the_one_it_is(shared_dir, tmp_path):
    dst = tmp_path / "x.safetensors"
    res = run("--arch", "ch_PP-OCRv4_rec", "--src", shared_dir / "paddle_models" / CLS, "--dst", dst)
    assert res.exit_code == EXIT_BAD_INPUT
    assert "is not ch_PP-OCRv4_rec: it is ch_ppocr_mobile_v2.0_cls" in res.stderr, res.stderr
    assert "--arch ch_ppocr_mobile_v2.0_cls" in res.stderr
    assert len(res.stderr.splitlines()) == 1 and not dst.exists()


# --- nothing half-written -------------------------------------------------------------------

SMALL = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
CONFIG = {"task": "cls", "model": {}}


def _inject(monkeypatch, step: str, nth: int = 1):
    """Make the ``nth`` call of one write step fail."""
    calls = {"n": 0}

    def failing(real):
        def f(*a, **k):
            calls["n"] += 1
            if calls["n"] == nth:
                raise (KeyboardInterrupt() if step == "interrupt" else OSError(5, "injected I/O error"))
            return real(*a, **k)

        return f

    if step in ("save", "interrupt"):
        monkeypatch.setattr(model_file, "save_file", failing(model_file.save_file))
    elif step == "write_text":
        monkeypatch.setattr(Path, "write_text", failing(Path.write_text))
    elif step == "hash":
        monkeypatch.setattr(model_file, "file_sha256", failing(model_file.file_sha256))
    elif step == "rename":
        monkeypatch.setattr(model_file.os, "replace", failing(model_file.os.replace))
    elif step == "chmod":
        monkeypatch.setattr(model_file.os, "chmod", failing(model_file.os.chmod))


STEPS = [("save", 1), ("interrupt", 1), ("write_text", 1), ("write_text", 2), ("hash", 1),
         ("rename", 1), ("rename", 2), ("rename", 3), ("chmod", 1), ("chmod", 2), ("chmod", 3)]  # fmt: skip


@pytest.mark.parametrize("step,nth", STEPS, ids=[f"{s}{n}" for s, n in STEPS])
def test_failure_at_any_write_step_leaves_no_file(tmp_path, monkeypatch, step, nth):
    _inject(monkeypatch, step, nth)
    with pytest.raises((OSError, KeyboardInterrupt)):
        writer.write_converted(SMALL, CONFIG, "a\nb\n", tmp_path / "m.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no output, no temp file


@pytest.mark.parametrize("step,nth", [("save", 1), ("rename", 1), ("rename", 2), ("rename", 3)])
def test_failure_with_force_keeps_a_complete_model(tmp_path, monkeypatch, step, nth):
    # Over existing outputs (--force) a failure must leave no temp files and never a
    # truncated or mixed .safetensors: it is the old one or the new one, complete.
    dst = tmp_path / "m.safetensors"
    old = {"w": torch.zeros(2, 3)}
    writer.write_converted(old, CONFIG, "a\nb\n", dst)
    _inject(monkeypatch, step, nth)
    with pytest.raises(OSError):
        writer.write_converted(SMALL, CONFIG, "a\nb\n", dst, force=True)
    monkeypatch.undo()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    from safetensors.torch import load_file

    assert torch.equal(load_file(str(dst))["w"], old["w"])


def test_existing_sidecar_alone_blocks_without_force(fake_convert, tmp_path):
    (tmp_path / "cls.config.json").write_text("{}")
    res = run("--src", tmp_path, "--dst", tmp_path / "cls.safetensors")
    assert res.exit_code == EXIT_BAD_INPUT and "cls.config.json already exists" in res.stderr
    assert (tmp_path / "cls.config.json").read_text() == "{}"
    assert not (tmp_path / "cls.safetensors").exists()


def test_output_permissions_follow_the_umask(fake_convert, tmp_path):
    # safetensors' save_file makes its file 0600; outputs are ordinary files (0666 & ~umask)
    res = run("--src", tmp_path, "--dst", tmp_path / "cls.safetensors")
    assert res.exit_code == 0, res.output
    mask = os.umask(0)
    os.umask(mask)
    for p in tmp_path.iterdir():
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p.name


def test_output_into_missing_folder_or_with_wrong_suffix(tmp_path):
    with pytest.raises(ConversionError, match="does not exist"):
        writer.write_converted(SMALL, CONFIG, None, tmp_path / "no" / "m.safetensors")
    with pytest.raises(ConversionError, match=r"must be a \.safetensors"):
        writer.write_converted(SMALL, CONFIG, None, tmp_path / "m.pth")
    assert list(tmp_path.iterdir()) == []


def test_written_file_round_trips(fake_convert, tmp_path, cls_conv):
    dst = tmp_path / "cls.safetensors"
    assert run("--src", tmp_path, "--dst", dst).exit_code == 0
    conv = read_converted(dst)
    assert conv.config == json.loads((tmp_path / "cls.config.json").read_text())
