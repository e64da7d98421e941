"""Keep the memory that inference frees inside the process, so the next call reuses it.

PyTorch's CPU allocator passes each tensor to malloc and back. glibc by default gives a block
larger than its mmap threshold a fresh mapping and unmaps it on free, and hands free memory at the
top of its heap back to the system once it exceeds the trim threshold. Either way the next
forward's activations land on new pages, which the kernel faults in and zeroes one by one.
ONNX Runtime and Paddle Inference keep their own arenas and never pay this. What it costs
small models is in doc/design_figures.md.

Another allocator preloaded in glibc's place (tcmalloc, jemalloc) keeps its own memory and is left
as it is; ``malloc_in_use`` names the one serving the process (the bench's header says it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["keep_freed_memory", "malloc_in_use", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

# glibc's ceiling for its own adaptive mmap threshold on 64-bit systems: blocks up to this size
# come from the heap. Larger ones (a 960 x 960 detector's widest maps) still get their own mapping.
MMAP_THRESHOLD = 32 << 20
# Free memory the heap keeps before returning it: room for a large detector's working set.
TRIM_THRESHOLD = 256 << 20

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # malloc.h


@functools.cache
def _glibc():
    """The process's C library if it is glibc, else None (musl, macOS, Windows: nothing to tune)."""
    # By its own name: CDLL(None) would be the process's global scope, whose malloc may be
    # another allocator's (malloc_in_use compares the two).
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError, TypeError):
        return None
    return libc


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def malloc_in_use() -> str:
    """Whose ``malloc`` this process calls: "glibc", the file name of an allocator loaded in its
    place (``LD_PRELOAD=libtcmalloc_minimal.so.4``: "libtcmalloc_minimal.so.4"), or "unknown"
    where the C library is not glibc or the library cannot be named. A preloaded wrapper that
    hands on to glibc's malloc (a memory profiler's) counts as another allocator. Each oneDNN call
    allocates and frees dozens of small blocks, so the allocator moves a small model's time
    (doc/design_figures.md)."""
    libc = _glibc()
    if libc is None:
        return "unknown"
    used = _process_malloc()
    if used == ctypes.cast(libc.malloc, ctypes.c_void_p).value:
        return "glibc"
    return _library_of(used) or "unknown"


def _process_malloc() -> int:
    """The address of the ``malloc`` the process calls: the first the dynamic linker finds in its
    global scope, a preloaded library's before glibc's own."""
    return ctypes.cast(ctypes.CDLL(None).malloc, ctypes.c_void_p).value


def _library_of(address: int) -> str | None:
    """The file name of the shared library that holds ``address`` (glibc's ``dladdr``: in libc
    since 2.34, in libdl before), or None."""
    for lib in (ctypes.CDLL(None), _glibc()):
        dladdr = getattr(lib, "dladdr", None)
        if dladdr is None:
            continue
        info = _DlInfo()
        if dladdr(ctypes.c_void_p(address), ctypes.byref(info)) and info.dli_fname:
            return info.dli_fname.decode(errors="replace").rsplit("/", 1)[-1]
        return None
    return None


def keep_freed_memory(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Set glibc's mmap and trim thresholds for this process (``mallopt``), so tensors freed
    after one forward are reused by the next instead of returned to the system.

    Process-wide and lasting, like ``torch.set_num_threads``: the process keeps up to
    ``trim_threshold`` bytes of freed memory. The ``ptocr`` command calls it; call it once in
    your own process for the same speed. Returns False, changing nothing, where the C library is
    not glibc or another allocator serves ``malloc`` (``malloc_in_use``): those keep their own."""
    for name, value in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if not isinstance(value, int) or not 0 < value < 2**31:  # mallopt takes a C int
            raise ValueError(f"{name} must be a number of bytes in [1, 2**31), got {value!r}")
    libc = _glibc()
    if libc is None or malloc_in_use() != "glibc":
        return False
    # Setting either turns off glibc's adaptive thresholds, so both are set.
    if not libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(mmap_threshold)):
        raise ValueError(f"glibc refused mmap_threshold={mmap_threshold}")
    if not libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(trim_threshold)):
        raise ValueError(f"glibc refused trim_threshold={trim_threshold}")
    return True
