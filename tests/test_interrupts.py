"""ptocr.interrupts: SIGTERM and SIGHUP end a command as Ctrl-C does, its files removed or left
whole, with 128 + the signal's number as the exit code (a kill used to leave a conversion's
temporary file beside --dst, and Ctrl-C exited 1, the code of internal errors)."""

import copy
import os
import pickle
import signal
import threading

import pytest
from click.testing import CliRunner

from converter import cli as convert_cli
from ptocr import checkpoint
from ptocr.interrupts import Interrupted, exit_code, kept_signal_handlers, signals_interrupt


@pytest.fixture(autouse=True)
def default_handlers():
    """Python's default handlers, whatever pytest was started under (nohup ignores SIGHUP, a
    background job of a shell SIGINT), put back after. The signals raised here are handled in the
    main thread: anywhere else they would stop the test process itself."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers run in the main thread only")
    defaults = {signal.SIGTERM: signal.SIG_DFL, signal.SIGHUP: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
    before = {s: signal.signal(s, handler) for s, handler in defaults.items()}
    yield
    for s, handler in before.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_raises_where_the_main_thread_is_and_the_handler_is_put_back(name):
    signum = getattr(signal, name)
    before = signal.getsignal(signum)
    with pytest.raises(Interrupted) as caught, signals_interrupt():
        signal.raise_signal(signum)
    assert caught.value.signum == signum and exit_code(caught.value) == 128 + signum
    assert signal.getsignal(signum) is before
    assert exit_code(KeyboardInterrupt()) == 130


def test_a_second_signal_does_not_cut_the_cleanup_the_first_started():
    cleaned = []
    with pytest.raises(Interrupted) as caught, signals_interrupt():
        try:
            signal.raise_signal(signal.SIGHUP)
        finally:  # a writer's cleanup, hit by the hang-up's second delivery
            signal.raise_signal(signal.SIGHUP)
            signal.raise_signal(signal.SIGTERM)
            cleaned.append(True)
    assert cleaned == [True] and caught.value.signum == signal.SIGHUP
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_interrupted_pickles_and_reads_as_its_signal():
    e = pickle.loads(pickle.dumps(Interrupted(signal.SIGTERM)))
    assert isinstance(e, KeyboardInterrupt) and e.signum == signal.SIGTERM and str(e) == "SIGTERM"
    assert copy.copy(e).signum == signal.SIGTERM


def test_handlers_set_inside_kept_signal_handlers_are_undone():
    with signals_interrupt():
        ours = signal.getsignal(signal.SIGTERM)
        with kept_signal_handlers():
            signal.signal(signal.SIGTERM, lambda *a: None)  # as ray.init sets its own
        assert signal.getsignal(signal.SIGTERM) is ours


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
