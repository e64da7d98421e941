"""tools/bench.py's reporting: a stage an engine fails on (the oneDNN Graph fuser refuses some
models) is shown as such in the progress line and the table, not a crash or a number."""

import math

import pytest

from tools import bench


def _times(graph_det: float) -> dict:
    times = {e: {"det 640x640": 10.0 + i, "cls batch 6 (48x192)": 5.0 + i} for i, e in enumerate(bench.ENGINES)}
    times[bench.TORCH_GRAPH] = {"det 640x640": graph_det, bench.FIRST + "det 640x640": graph_det,
                                "cls batch 6 (48x192)": 2.5, bench.FIRST + "cls batch 6 (48x192)": 0.7}
    if math.isnan(graph_det):
        times[bench.TORCH_GRAPH][bench.FAILED + "det 640x640"] = "RuntimeError: bad optional access"
    return times


def test_a_failed_stage_is_reported_not_timed():
    times = _times(float("nan"))
    line = bench.progress(times[bench.TORCH_GRAPH])
    assert "det 640x640 fails" in line and "RuntimeError: bad optional access" in line
    table = bench.stage_table(times)
    row = next(r for r in table.splitlines() if r.startswith("| det 640x640"))
    assert "fails" in row and "nan" not in table.lower()
    assert "fails on: det 640x640 (RuntimeError: bad optional access)" in table
    best = min(times[o]["cls batch 6 (48x192)"] for o in bench.OTHERS)
    assert f"{2.5 / best:.2f}" in next(r for r in table.splitlines() if r.startswith("| cls"))


def test_a_timed_stage_has_no_failure_note():
    table = bench.stage_table(_times(12.0))
    assert "fails" not in table


# doc/benchmarks.md: one part per CPU family, sections replaced one by one (tools/bench_doc.py).

from tools import bench_doc  # noqa: E402

AMD_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl avx512_bf16 avx512_vnni
processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
"""


def _cpu(family: str) -> bench_doc.CpuInfo:
    return bench_doc.CpuInfo(family, f"{family} CPU", ("avx2",), "AVX2", 2)


def test_cpuinfo_names_the_family_model_and_isa():
    family, model, isa = bench_doc.parse_cpuinfo(AMD_CPUINFO)
    assert (family, model) == ("AMD AVX-512", "AMD EPYC 9R14 96-Core Processor, family 25 model 17")
    # a Zen 3 (no AVX-512) is another family: oneDNN and ONNX Runtime run other kernels there
    assert bench_doc.parse_cpuinfo(AMD_CPUINFO.replace(" avx512", " x"))[0] == "AMD AVX2"
    assert bench_doc.CpuInfo("AMD AVX-512", "m", (), "AVX512", 2).key == "amd_avx512"
    # a Xeon with AMX (bfloat16 on its tile unit) is another family than one without (Ice Lake)
    intel = AMD_CPUINFO.replace("AuthenticAMD", "GenuineIntel")
    assert bench_doc.parse_cpuinfo(intel)[0] == "Intel AVX-512"
    assert bench_doc.parse_cpuinfo(intel.replace(" avx512f", " avx512f amx_tile"))[0] == "Intel AVX-512 AMX"
    assert bench_doc.CpuInfo("Intel AVX-512 AMX", "m", (), "AVX512", 2).key == "intel_avx512_amx"
    assert bench_doc.parse_cpuinfo(AMD_CPUINFO.replace("cpu family", "x"))[1] == "AMD EPYC 9R14 96-Core Processor"
    assert isa == ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16")
    assert "ISA avx2" in _cpu("AMD").describe() and "capability AVX2" in _cpu("AMD").describe()


def test_a_run_replaces_its_own_family_and_section_only():
    doc = bench_doc.update("", _cpu("Intel"), "stages", "intel stages v1", "NOTES")
    doc = bench_doc.update(doc, _cpu("Intel"), "e2e", "intel e2e v1", "NOTES")
    doc = bench_doc.update(doc, _cpu("AMD"), "stages", "amd stages v1", "NOTES")
    doc = bench_doc.update(doc, _cpu("Intel"), "stages", "intel stages v2", "NOTES")
    assert doc.startswith(bench_doc.TITLE) and doc.count("NOTES") == 1
    assert "intel stages v1" not in doc and doc.count("intel stages v2") == 1
    assert "intel e2e v1" in doc and "amd stages v1" in doc
    intel, amd = doc.index("## Intel"), doc.index("## AMD")
    assert intel < doc.index("intel stages v2") < doc.index("intel e2e v1") < amd < doc.index("amd stages v1")
    # A new section of a family that is not the last one lands inside that family's part.
    doc = bench_doc.update(doc, _cpu("Intel"), "bulk", "intel bulk", "NOTES")
    assert doc.index("intel e2e v1") < doc.index("intel bulk") < doc.index("## AMD")


def test_families_that_share_a_vendor_keep_their_own_parts():
    """A Zen 3 (AVX2) and a Zen 5 (AVX-512) run land in parts of their own, and a family whose
    name begins another's ("AMD", no vector ISA known) is not taken for it."""
    def cpu(family):
        return bench_doc.CpuInfo(family, f"{family} CPU", (), "DEFAULT", 2)
    doc = bench_doc.update("", cpu("AMD AVX2"), "stages", "zen3 stages", "NOTES")
    doc = bench_doc.update(doc, cpu("AMD AVX-512"), "stages", "zen5 stages", "NOTES")
    doc = bench_doc.update(doc, cpu("AMD AVX2"), "e2e", "zen3 e2e", "NOTES")
    doc = bench_doc.update(doc, cpu("AMD"), "e2e", "bare e2e", "NOTES")
    avx2, avx512, bare = doc.index("## AMD AVX2:"), doc.index("## AMD AVX-512:"), doc.index("## AMD:")
    assert avx2 < doc.index("zen3 stages") < doc.index("zen3 e2e") < avx512 < doc.index("zen5 stages") < bare
    assert bare < doc.index("bare e2e")
    assert "<!-- bench:amd_avx2:e2e -->" in doc and "<!-- bench:amd_avx512:stages -->" in doc


def test_the_documents_parts_are_well_formed():
    text = (bench_doc.Path(__file__).resolve().parents[1] / "doc" / "benchmarks.md").read_text(encoding="utf-8")
    starts = bench_doc.re.findall(r"<!-- bench:(\w+):(\w+) -->", text)
    ends = bench_doc.re.findall(r"<!-- /bench:(\w+):(\w+) -->", text)
    assert starts and starts == ends and len(set(starts)) == len(starts)
    assert ("intel_avx512_amx", "stages") in starts and ("amd_avx2", "stages") in starts


def test_a_gpu_bulk_run_has_its_own_part():
    gpu = bench_doc.CpuInfo("GPU", "NVIDIA H200 (host Intel CPU, 16 logical cores)", (), "CUDA 13.0, cuDNN 91000", 16)
    doc = bench_doc.update("", _cpu("Intel"), "bulk", "intel bulk", "NOTES")
    doc = bench_doc.update(doc, gpu, "bulk", "h200 bulk", "NOTES")
    assert "intel bulk" in doc and doc.index("## Intel") < doc.index("## GPU") < doc.index("h200 bulk")
    assert "NVIDIA H200" in gpu.describe() and "CUDA 13.0" in gpu.describe() and "ISA" not in gpu.describe()


def test_a_missing_peer_package_stops_the_run_before_any_round(monkeypatch, capsys):
    """A run whose engines need a package that does not import is refused up front, naming it
    (a missing paddle2onnx used to fail the ONNX Runtime worker after the engines before it ran)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "paddle2onnx" else real(name))
    monkeypatch.setattr(bench, "stage_rounds", lambda *a: pytest.fail("a round ran"))
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--skip", "e2e", "load", "precision", "bulk"])
    assert exit_.value.code == 2 and "paddle2onnx" in capsys.readouterr().err
    # Engines that do not need it run (the patched rounds stand for them).
    ran = []
    monkeypatch.setattr(bench, "stage_rounds", lambda *a: ran.append(a) or {})
    monkeypatch.setattr(bench, "stage_table", lambda times: "")
    bench.main(["--skip", "e2e", "load", "precision", "bulk", "--engines", "PyTorch optimized",
                "Paddle Inference oneDNN"])
    assert ran
