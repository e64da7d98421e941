"""tools/bench.py's reporting: a stage an engine fails on (the oneDNN Graph fuser refuses some
models) is shown as such in the progress line and the table, not a crash or a number."""

import math

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
