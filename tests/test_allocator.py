"""keep_freed_memory: a forward after the first stops page-faulting its activations in."""

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from ptocr import allocator

# Minor page faults per forward of the v2.0 classifier (random weights) at its bench batch, in a
# fresh process: mallopt is process-wide and lasting, so each setting gets its own interpreter.
_FAULTS = """
import resource, sys, torch
from ptocr.allocator import keep_freed_memory
from ptocr.architectures import get_architecture
from ptocr.models.build import build_model
torch.set_num_threads(1)
if sys.argv[1] == "kept":
    assert keep_freed_memory()
model = build_model(get_architecture("ch_ppocr_mobile_v2.0_cls")["model"]).eval()
x = torch.randn(6, 3, 48, 192)
with torch.inference_mode():
    for _ in range(3):
        model(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        model(x)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _faults_per_forward(setting: str) -> float:
    # glibc's own defaults: no malloc settings from the caller's environment.
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", _FAULTS, setting], capture_output=True, text=True, check=True, env=env)
    return float(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(allocator._glibc() is None, reason="keep_freed_memory tunes glibc; this C library is not glibc")
def test_kept_memory_is_reused_by_the_next_forward():
    default, kept = _faults_per_forward("default"), _faults_per_forward("kept")
    # glibc's defaults hand the activations back: about 1950 faults per forward here, but one
    # clean-clone run, other tests beside it, measured 42.7, so how many depends on the process.
    # The measure must see them; kept, the next forward finds its memory on the heap (0.0 in
    # every run; without the mallopt calls this is the default's count).
    assert default > 20, f"no faults seen with glibc's defaults ({default} per forward)"
    assert kept < 20, (default, kept)


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
