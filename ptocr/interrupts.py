"""Ctrl-C, SIGTERM and SIGHUP end a ptocr command alike: the stack unwinds, so a file being
written is removed or left whole (``ptocr.atomic``, the bulk results file), and the process exits
with 128 + the signal's number (130, 143, 129), as a shell reports a process the signal killed.

Python's default for SIGTERM and SIGHUP kills the process where it stands, leaving the temporary
file a conversion was writing; and click reads Ctrl-C as "Aborted!", exit 1, which ptocr's
commands keep for internal errors. ``InterruptibleCommand`` / ``InterruptibleGroup`` (click's
``cls=``) turn both signals into ``Interrupted`` for as long as the command runs, then put the
handlers back. After the first, both are ignored until the command ends, so a second one (a
hang-up reaches a shell's job twice) cannot cut the cleanup the first started; SIGKILL still ends
the process.

The same classes end a command whose standard output cannot be written (a full disk, an I/O error:
``ptocr list > /dev/full``) with one line on stderr and exit 2, as an output file that cannot be
written does, instead of a traceback; click itself handles a closed pipe.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
import threading
from pathlib import Path

import click

__all__ = ["Interrupted", "InterruptibleCommand", "InterruptibleGroup", "exit_code", "kept_signal_handlers",
           "signals_interrupt"]

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the main thread was, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int):
        super().__init__(signum)  # args: what pickling and copying rebuild it from
        self.signum = signum

    def __str__(self) -> str:
        return signal.Signals(self.signum).name


def exit_code(e: KeyboardInterrupt) -> int:
    """128 + the signal that interrupted: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + getattr(e, "signum", signal.SIGINT)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def kept_signal_handlers():
    """SIGTERM's and SIGHUP's handlers as they were before the block, whatever code in it sets
    (``ray.init`` sets one that exits without unwinding)."""
    before = {s: signal.getsignal(s) for s in _SIGNALS} if _main_thread() else {}
    try:
        yield
    finally:
        for s, handler in before.items():
            if handler is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(s, handler)


@contextlib.contextmanager
def signals_interrupt():
    """Within the block, SIGTERM and SIGHUP raise ``Interrupted`` in the main thread (where their
    handler is still Python's default); elsewhere (another thread) nothing changes."""
    if not _main_thread():
        yield
        return
    changed = [s for s in _SIGNALS if signal.getsignal(s) is signal.SIG_DFL]  # a handler someone set is theirs

    def interrupt(signum, _frame) -> None:
        for s in changed:  # the cleanup this starts runs to its end
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    for s in changed:
        signal.signal(s, interrupt)
    try:
        yield
    finally:
        masked = changed if hasattr(signal, "pthread_sigmask") else []  # no signal between two restores
        if masked:
            signal.pthread_sigmask(signal.SIG_BLOCK, masked)
        try:
            for s in changed:
                signal.signal(s, signal.SIG_DFL)
        finally:
            if masked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, masked)


# What writing to a full or failing standard output raises (EPIPE is click's).
_WRITE_FAILURES = {errno.ENOSPC, errno.EIO, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class _Interruptible:
    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        except OSError as e:
            if e.errno not in _WRITE_FAILURES:
                raise
            name = kwargs.get("prog_name") or Path(sys.argv[0]).name
            if name.endswith(".py"):  # python -m ptocr
                name = self.name
            click.echo(f"{name}: error: cannot write the output: {e.strerror or e}", err=True)
            # Python flushes stdout once more at exit, which would fail again with a traceback.
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (open until the process ends)
            sys.exit(2)

    def invoke(self, ctx: click.Context):
        with signals_interrupt():
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt as e:
                click.echo(f"{ctx.find_root().info_name}: interrupted", err=True)
                ctx.exit(exit_code(e))


class InterruptibleCommand(_Interruptible, click.Command):
    """A click command that a signal ends as described in the module's doc."""


class InterruptibleGroup(_Interruptible, click.Group):
    """A click group whose commands a signal ends as described in the module's doc."""
