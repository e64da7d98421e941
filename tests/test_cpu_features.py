"""A model cast on the CPU to a 16-bit type that CPU has no instructions for warns, once."""

from __future__ import annotations

import warnings

import pytest
import torch

import ptocr
from ptocr import cpu_features
from ptocr.predictors import make_predictor

ICE_LAKE = frozenset("fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni".split())
SAPPHIRE_RAPIDS = ICE_LAKE | {"avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"}
ZEN_5 = ICE_LAKE | {"avx512_bf16", "avx_vnni"}


def test_which_types_a_cpu_emulates():
    assert cpu_features.emulates(torch.bfloat16, ICE_LAKE) and cpu_features.emulates(torch.float16, ICE_LAKE)
    assert not cpu_features.emulates(torch.bfloat16, SAPPHIRE_RAPIDS)
    assert not cpu_features.emulates(torch.float16, SAPPHIRE_RAPIDS)
    assert not cpu_features.emulates(torch.bfloat16, ZEN_5) and cpu_features.emulates(torch.float16, ZEN_5)
    assert not cpu_features.emulates(torch.float32, ICE_LAKE)


def test_cpuinfo_fields_are_the_first_processors():
    text = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu avx2\n\nprocessor\t: 1\nflags\t: x\n"
    assert cpu_features.cpuinfo_fields(text) == {"processor": "0", "vendor_id": "GenuineIntel", "flags": "fpu avx2"}


@pytest.fixture
def cpu(monkeypatch):
    """Sets the flags this process's CPU is taken to have; the once-per-process memory reset."""
    def set_flags(flags):
        monkeypatch.setattr(cpu_features, "cpu_flags", lambda: flags)
        cpu_features.warn_if_emulated.cache_clear()
    yield set_flags
    cpu_features.warn_if_emulated.cache_clear()


def _cast_warnings(dtype, made_with_it: bool = False) -> list[str]:
    """The warnings of a predictor made in ``dtype`` (``made_with_it``) or moved to it."""
    model = ptocr.create_model("ch_ppocr_mobile_v2.0_cls")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = make_predictor(model, model.config, dtype=dtype if made_with_it else None)
        predictor.to(dtype=dtype)
    return [str(w.message) for w in caught if "emulates" in str(w.message)]


def test_a_predictor_cast_to_an_emulated_type_warns_once(cpu):
    cpu(ICE_LAKE)
    first = _cast_warnings(torch.bfloat16)
    assert len(first) == 1 and first[0].startswith("bfloat16 on this CPU") and "avx512_bf16" in first[0]
    assert _cast_warnings(torch.bfloat16) == []  # once per process
    assert len(_cast_warnings(torch.float16)) == 1  # the other type is its own warning
    cpu(SAPPHIRE_RAPIDS)
    assert _cast_warnings(torch.bfloat16) == [] and _cast_warnings(torch.float16) == []
    cpu(ZEN_5)
    assert _cast_warnings(torch.bfloat16, made_with_it=True) == []
    assert len(_cast_warnings(torch.float16, made_with_it=True)) == 1
    cpu(None)  # flags unknown (not Linux on x86): nothing said
    assert _cast_warnings(torch.bfloat16) == []
