"""keep_freed_memory: a forward after the first stops page-faulting its activations in."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ptocr import allocator

# What malloc holds from the system (heap + mapped blocks, glibc's mallinfo2), sampled after every
# module of ten forwards of the v2.0 classifier (random weights) at its bench batch, in a fresh
# process: mallopt is process-wide and lasting, so each setting gets its own interpreter.
# Unlike a count of page faults, malloc's bookkeeping follows the sequence of allocations alone,
# whatever else the machine is doing.
_HELD = """
import ctypes, sys, torch
from ptocr.allocator import keep_freed_memory
from ptocr.architectures import get_architecture
from ptocr.models.build import build_model

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
torch.set_num_threads(1)
if sys.argv[1] == "kept":
    assert keep_freed_memory()
else:  # glibc's initial thresholds, fixed: freed blocks go back to the system
    assert keep_freed_memory(mmap_threshold=128 << 10, trim_threshold=128 << 10)
model = build_model(get_architecture("ch_ppocr_mobile_v2.0_cls")["model"]).eval()
held = []

def sample(*_):
    info = libc.mallinfo2()
    held.append(info.arena + info.hblkhd)

for module in model.modules():
    module.register_forward_hook(sample)
x = torch.randn(6, 3, 48, 192)
with torch.inference_mode():
    for _ in range(3):
        model(x)
    held.clear()
    for _ in range(10):
        model(x)
print(len(held), len(set(held)))
"""


def _held_sizes(setting: str) -> tuple[int, int]:
    """(samples, distinct sizes of what malloc holds from the system) over ten forwards."""
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", _HELD, setting], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    samples, distinct = map(int, done.stdout.split()[-2:])
    return samples, distinct


def _has_mallinfo2() -> bool:
    libc = allocator._glibc()
    return libc is not None and hasattr(libc, "mallinfo2")  # glibc 2.33 and later


@pytest.mark.skipif(not _has_mallinfo2(), reason="keep_freed_memory tunes glibc; the check reads glibc>=2.33's mallinfo2")
def test_kept_memory_is_reused_by_the_next_forward():
    samples, kept = _held_sizes("kept")
    # Kept: after the first forwards, what malloc holds from the system never changes: each
    # forward finds the memory the last one freed, nothing is handed back or asked for anew.
    assert samples > 100 and kept == 1, (samples, kept)
    # The measure sees memory going back: with small fixed thresholds the held size moves
    # within every forward (without the mallopt calls, kept moves too).
    samples, returning = _held_sizes("returning")
    assert returning > 1, (samples, returning)


@pytest.mark.parametrize("bad", [0, -1, 2**31, 1.5, "32M"])
def test_bad_thresholds_are_refused_before_anything_is_set(bad):
    with pytest.raises(ValueError, match="mmap_threshold"):
        allocator.keep_freed_memory(mmap_threshold=bad)
    with pytest.raises(ValueError, match="trim_threshold"):
        allocator.keep_freed_memory(trim_threshold=bad)


def test_the_command_keeps_freed_memory(monkeypatch):
    from ptocr import cli

    calls = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: calls.append(1) or True)
    result = CliRunner().invoke(cli.main, ["list"])
    assert result.exit_code == 0, result.output
    assert calls == [1]
