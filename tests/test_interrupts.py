"""ptocr.interrupts: SIGTERM and SIGHUP end a command as Ctrl-C does, its files removed or left
whole, with 128 + the signal's number as the exit code (a kill used to leave a conversion's
temporary file beside --dst, and Ctrl-C exited 1, the code of internal errors)."""

import os
import signal
import threading

import pytest
from click.testing import CliRunner

from converter import cli as convert_cli
from ptocr import checkpoint
from ptocr.interrupts import Interrupted, exit_code, signals_interrupt


@pytest.fixture(autouse=True)
def main_thread():
    """The signals raised here are handled in the main thread: anywhere else they would stop the
    test process itself."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread only")


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_raises_where_the_main_thread_is_and_the_handler_is_put_back(name):
    signum = getattr(signal, name)
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as caught, signals_interrupt():
        signal.raise_signal(signum)
    assert caught.value.signum == signum and exit_code(caught.value) == 128 + signum
    assert signal.getsignal(signum) is before
    assert exit_code(KeyboardInterrupt()) == 130


def test_a_handler_set_by_the_caller_is_kept():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with signals_interrupt():
            signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_conversion_stopped_while_writing_leaves_nothing_and_exits_128_plus_the_signal(shared_dir, tmp_path,
                                                                                         monkeypatch, name):
    signum = getattr(signal, name)
    real_save = checkpoint.save_file

    def save_then_signal(tensors, path, metadata=None):
        real_save(tensors, path, metadata=metadata)  # the temporary file is written, not yet renamed
        assert os.path.exists(path)
        signal.raise_signal(signum)

    monkeypatch.setattr(checkpoint, "save_file", save_then_signal)
    dst = tmp_path / "out" / "cls.safetensors"
    dst.parent.mkdir()
    result = CliRunner().invoke(convert_cli.main, ["--src", str(shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer"),
                                                   "--dst", str(dst)])
    assert result.exit_code == 128 + signum, result.output
    assert "interrupted" in result.output and "Aborted" not in result.output
    assert os.listdir(dst.parent) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
