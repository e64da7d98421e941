"""tools/bulk_stand_in.py: the v5 server pipeline timed for issue #28 runs the server networks on
what the real pipeline gives them (the trained v5 mobile detector's boxes), and tools/bench.py's
bulk section keeps one table per pipeline, device and dtype."""

import numpy as np
import pytest

import ptocr
from ptocr.transforms import load_image
from tests.conftest import v5_ocr3
from tools import bench
from tools.bulk_stand_in import StandInDetector, v5_server_pipeline

SCENES = ("00009282.jpg", "00018069.jpg")


def test_the_stand_in_runs_its_network_and_answers_with_the_remembered_maps(shared_dir):
    timed = ptocr.load(shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_det_infer")
    reference = ptocr.load(shared_dir / "paddle_models" / "PP-OCRv5_mobile_det_infer")
    det = StandInDetector(timed)
    xs = [timed.pre(load_image(shared_dir / "images" / "scenes" / s))[0] for s in SCENES]
    for x in xs:
        det.remember(x, reference.forward(x[None])[0])
    for x in xs:
        got = det.forward(x[None])
        np.testing.assert_array_equal(got, reference.forward(x[None]))
        assert not np.array_equal(got, timed.forward(x[None]))  # the timed network's map is not the answer
    assert det.calls == len(xs)
    with pytest.raises(KeyError, match="no stand-in map"):
        det.forward(xs[0][None] + 1)
    det.remember(xs[0], reference.forward(xs[0][None])[0][:, ::2])
    with pytest.raises(ValueError, match="stand-in maps"):
        det.forward(xs[0][None])


def test_the_v5_server_pipeline_reads_the_mobile_detectors_boxes(shared_dir, v5_models, tmp_path):
    images = [str(shared_dir / "images" / "scenes" / SCENES[0])]  # one scene: the server networks are slow on a CPU
    server = v5_server_pipeline(shared_dir, tmp_path, images)
    assert "server" in repr(server.det) and "server" in repr(server.rec)
    mobile = v5_ocr3(v5_models)
    looped = [server.read(p) for p in images]
    bulk = server.read_many(images)
    assert server.det.calls == 2 * len(images)  # the server detector ran on every input, both ways
    for path, a, b in zip(images, looped, bulk):
        want = mobile.read(path)
        assert len(want.dt_polys) > 5, path
        for got in (a, b):
            assert len(got.dt_polys) == len(want.dt_polys)
            for p, q in zip(got.dt_polys, want.dt_polys):
                np.testing.assert_array_equal(p, q)
        assert a["rec_texts"] == b["rec_texts"]


def test_each_bulk_run_keeps_its_own_section_and_names_its_target():
    assert bench.bulk_section("v4-mobile", "cpu", "float32") == "bulk"  # the CPU parts' existing sections
    names = {bench.bulk_section(p, d, t) for p in bench.BULK_PIPELINES for d in ("cpu", "cuda")
             for t in ("float32", "float16", "bfloat16")}
    assert len(names) == 1 + len(bench.BULK_PIPELINES) * 3  # "bulk" and one per pipeline and dtype
    bulk = {label: {"s_per_pass": 1.0 + i, "images": 17} for i, (label, _) in enumerate(bench.BULK_MODES_CUDA)}
    table = bench.bulk_table(bulk, "cuda", "v5-server")
    assert "target >= 60 in float16" in table and "1.3" not in table
    assert "target >= 1.3 on CPU" in bench.bulk_table(bulk)
