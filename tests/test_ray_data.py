"""``ptocr ocr --ray``: a local Ray cluster (two CPU workers) writes the JSON lines the single
process writes, each image once. Skipped without ray (``pip install 'ptocr[ray]'``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ptocr.conversion import convert_once

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ptocr[ray]')")

REPO = Path(__file__).resolve().parents[1]
MODELS = {"det": "ch_PP-OCRv4_det_infer", "rec": "ch_PP-OCRv4_rec_infer", "cls": "ch_ppocr_mobile_v2.0_cls_infer"}
SCENES = ("ger_1.jpg", "japan_1.jpg", "00018069.jpg")


@pytest.fixture(scope="module")
def cluster():
    # The workers import this checkout's ptocr; one intra-op thread each, as this process below.
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}})
    yield
    ray.shutdown()


def test_ray_writes_the_single_process_results(cluster, shared_dir, tmp_path):
    from click.testing import CliRunner

    from ptocr.cli import main

    images = tmp_path / "images"
    images.mkdir()
    for name in SCENES:
        shutil.copy(shared_dir / "images" / "scenes" / name, images / name)
    (images / "b_broken.jpg").write_bytes(b"\xff\xd8\xff truncated")
    models = ["--pipeline", "ch_PP-OCRv4"]  # PaddleOCR 2.x's rules: the batched engine (ptocr.bulk)
    for task, folder in MODELS.items():
        models += [f"--{task}", str(convert_once(shared_dir / "paddle_models" / folder, tmp_path / f"{folder}.safetensors"))]

    runner = CliRunner()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = runner.invoke(main, ["ocr", str(images), "--out", str(tmp_path / "single.jsonl"), *models])
        on_ray = runner.invoke(main, ["ocr", str(images), "--out", str(tmp_path / "ray.jsonl"), "--batch-size", "2",
                                      "--actors", "2", *models, "--ray"])
    finally:
        torch.set_num_threads(threads)
    assert single.exit_code == 2 and on_ray.exit_code == 2, on_ray.output  # the broken file, reported
    assert "b_broken.jpg" in on_ray.stderr and "Traceback" not in on_ray.output
    lines = {name: (tmp_path / name).read_text(encoding="utf-8").splitlines() for name in ("single.jsonl", "ray.jsonl")}
    assert len(lines["ray.jsonl"]) == len(SCENES) + 1
    assert sorted(lines["ray.jsonl"]) == sorted(lines["single.jsonl"])  # Ray may reorder; same lines, once each
    # The same choices recorded beside both (--batch-size, --actors and --ray are not among them).
    records = [json.loads((tmp_path / f"{name}.jsonl.reading.json").read_text(encoding="utf-8")) for name in ("single", "ray")]
    assert records[0]["choices"] == records[1]["choices"] and records[0]["choices"]["pipeline"] == "ch_PP-OCRv4"
