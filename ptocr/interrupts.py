"""Ctrl-C, SIGTERM and SIGHUP end a ptocr command alike: the stack unwinds, so a file being
written is removed or left whole (``ptocr.atomic``, the bulk results file), and the process exits
with 128 + the signal's number (130, 143, 129), as a shell reports a process the signal killed.

Python's default for SIGTERM and SIGHUP kills the process where it stands, leaving the temporary
file a conversion was writing; and click reads Ctrl-C as "Aborted!", exit 1, which ptocr's
commands keep for internal errors. ``InterruptibleCommand`` / ``InterruptibleGroup`` (click's
``cls=``) turn both signals into ``Interrupted`` for as long as the command runs, then put the
handlers back.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import click

__all__ = ["Interrupted", "InterruptibleCommand", "InterruptibleGroup", "exit_code", "signals_interrupt"]

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the main thread was, as Ctrl-C raises KeyboardInterrupt."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_code(e: KeyboardInterrupt) -> int:
    """128 + the signal that interrupted: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + getattr(e, "signum", signal.SIGINT)


def _raise(signum, _frame) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_interrupt():
    """Within the block, SIGTERM and SIGHUP raise ``Interrupted`` in the main thread (where their
    handler is still Python's default); elsewhere (another thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in _SIGNALS}
    for s, handler in before.items():
        if handler is signal.SIG_DFL:  # a handler someone set is theirs
            signal.signal(s, _raise)
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


class _Interruptible:
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
