"""keep_freed_memory: a forward after the first stops page-faulting its activations in."""

import os
import subprocess
import sys
import types

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
# Samples go to storage allocated up front: growing a list as it fills would ask malloc
# for memory itself, and move what it measures.
modules = list(model.modules())
held, count = [0] * (10 * len(modules)), [0]

def sample(*_):
    info = libc.mallinfo2()
    held[count[0] % len(held)] = info.arena + info.hblkhd
    count[0] += 1

for module in modules:
    module.register_forward_hook(sample)
x = torch.randn(6, 3, 48, 192)
with torch.inference_mode():
    for _ in range(3):
        model(x)
    count[0] = 0
    for _ in range(10):
        model(x)
assert count[0] == len(held), (count[0], len(held))
steps = [b - a for a, b in zip(held, held[1:])]
# samples; times the held size went down; bytes it grew by in all; bytes handed back per forward
print(len(held), sum(d < 0 for d in steps), sum(d for d in steps if d > 0), -sum(d for d in steps if d < 0) // 10)
"""


def _held_memory(setting: str) -> tuple[int, int, int, int]:
    """Over ten forwards: (samples, times what malloc holds from the system went down, bytes
    it grew by in all, bytes it handed back per forward)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("GLIBC_TUNABLES", "LD_PRELOAD") and not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", _HELD, setting], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    samples, decreases, grown, returned = map(int, done.stdout.split()[-4:])
    return samples, decreases, grown, returned


def _has_mallinfo2() -> bool:
    libc = allocator._glibc()
    return libc is not None and hasattr(libc, "mallinfo2")  # glibc 2.33 and later


@pytest.mark.skipif(not _has_mallinfo2(), reason="keep_freed_memory tunes glibc; the check reads glibc>=2.33's mallinfo2")
def test_kept_memory_is_reused_by_the_next_forward():
    samples, decreases, grown, _ = _held_memory("kept")
    _, returning_decreases, _, returned = _held_memory("returning")
    # The measure sees memory going back: with small fixed thresholds the held size drops in
    # every forward, by what the forward frees (without the mallopt calls, kept drops too).
    assert returning_decreases >= 10 and returned > 0, (returning_decreases, returned)
    # Kept: nothing freed goes back to the system, and the next forward finds it: over ten
    # forwards the heap grows (where earlier allocations left it fragmented: none, or once by
    # about a megabyte, varying with the process's hash seed) by less than what a single forward
    # hands back when memory is returned. A forward served by new memory would grow it by that
    # much each time.
    assert samples > 100 and decreases == 0, (samples, decreases)
    assert grown < returned, (grown, returned)


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


_PRELOADABLE = [path for path in ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
                                  "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
                                  "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
                                  "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2") if os.path.exists(path)]


@pytest.mark.skipif(allocator._glibc() is None or bool(os.environ.get("LD_PRELOAD")),
                    reason="glibc's own malloc, nothing preloaded")
def test_this_process_uses_glibcs_malloc():
    assert allocator.malloc_in_use() == "glibc"


@pytest.mark.skipif(allocator._glibc() is None, reason="dladdr is glibc's")
def test_a_symbol_is_named_by_the_library_that_holds_it():
    import ctypes

    libc = allocator._glibc()
    assert allocator._library_of(ctypes.cast(libc.malloc, ctypes.c_void_p).value).startswith("libc.so")
    assert allocator._library_of(0) is None  # no library at address 0


@pytest.mark.skipif(allocator._glibc() is None, reason="malloc_in_use tells glibc's malloc from others")
def test_a_malloc_from_another_library_is_named_by_it(monkeypatch):
    """As a preloaded allocator would be: the process's malloc found in a library other than libc
    (here libm's cos stands for it, so that no allocator need be installed)."""
    import ctypes
    import ctypes.util

    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    monkeypatch.setattr(allocator, "_process_malloc", lambda: ctypes.cast(libm.cos, ctypes.c_void_p).value)
    assert allocator.malloc_in_use().startswith("libm.so")
    monkeypatch.setattr(allocator, "_process_malloc", lambda: 0)  # in no library
    assert allocator.malloc_in_use() == "unknown"


def test_another_malloc_is_left_as_it_is(monkeypatch):
    """keep_freed_memory tunes glibc's malloc only: mallopt would change a heap nobody uses."""
    libc = allocator._glibc()
    if libc is not None:
        monkeypatch.setattr(allocator, "_glibc", lambda: types.SimpleNamespace(
            mallopt=lambda *a: pytest.fail("mallopt called under another malloc")))
    monkeypatch.setattr(allocator, "malloc_in_use", lambda: "libtcmalloc_minimal.so.4")
    assert allocator.keep_freed_memory() is False


@pytest.mark.skipif(not _PRELOADABLE, reason="no tcmalloc or jemalloc installed to preload (apt: libtcmalloc-minimal4)")
@pytest.mark.parametrize("library", _PRELOADABLE)
def test_a_preloaded_malloc_is_named_and_left_alone(library):
    code = "from ptocr.allocator import malloc_in_use, keep_freed_memory; print(malloc_in_use(), keep_freed_memory())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "LD_PRELOAD": library})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == [os.path.basename(library), "False"]
