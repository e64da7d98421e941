"""Bulk mode's options and the Ray path: relative paths read by actors that start elsewhere,
options that would be ignored refused, inputs that are not paths named, and ``set_tf32`` under
torch's per-op TF32 flags. Stand-in pipelines, no models; the one Ray test starts a one-CPU
local cluster (skipped without ray)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ptocr.errors import PtocrError
from ptocr.result import Line, OCRResult
from ptocr.transforms import load_image

REPO = Path(__file__).resolve().parents[1]


class _Named:
    """A pipeline with only ``read`` (``iter_pipeline`` reads it image by image): one line, the
    file's name; its "model" is a file read when it is built, by a path that may be relative."""

    def __init__(self, model: str):
        self.model = Path(model).read_text()

    def read(self, image):
        load_image(image)  # an ImageError for a file that is not there
        return OCRResult([Line([[0, 0], [1, 0], [1, 1], [0, 1]], f"{self.model}:{Path(image).name}", 1.0, None)],
                         source=image)


def _named_on(model: str) -> _Named:
    return _Named(model)


def _cli(*args: str):
    from ptocr.cli import main

    return CliRunner().invoke(main, ["ocr", *args])


@pytest.mark.parametrize("options", [["--ray"], ["--actors", "2"], ["--batch-size", "4"], ["--batch-size", "4", "--ray"]])
def test_bulk_options_without_out_are_refused(tmp_path, options):
    # Without --out the command reads here one image at a time: --ray and the rest would do nothing.
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    done = _cli(str(image), "--det", str(tmp_path / "missing.safetensors"), *options)
    assert done.exit_code == 2
    assert "--out" in done.output and options[0] in done.output


def test_actors_without_ray_is_refused(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    done = _cli(str(image), "--out", str(tmp_path / "r.jsonl"), "--actors", "4",
                "--det", str(tmp_path / "missing.safetensors"))
    assert done.exit_code == 2 and "--actors" in done.output and "--ray" in done.output


def test_ray_refuses_a_numbered_cuda_device(tmp_path, monkeypatch):
    # An actor sees only the GPU Ray gives it, as cuda:0: cuda:1 would fail in every actor.
    import ptocr.ray_data

    started = []
    monkeypatch.setattr(ptocr.ray_data, "run_on_ray", lambda *a, **kw: started.append(a) or iter(()))
    from ptocr import bulk_cli

    image = tmp_path / "a.png"
    image.write_bytes(b"")
    with pytest.raises(PtocrError, match="--device cuda"):
        bulk_cli.run([str(image)], lambda: None, bulk_out=str(tmp_path / "r.jsonl"), bulk_ray="local", device="cuda:1")
    assert not started


@pytest.mark.parametrize("column", [np.zeros((1, 4, 4, 3), np.uint8), np.array([b"\xff\xd8\xff"], dtype=object)])
def test_batch_predictor_refuses_values_that_are_not_paths(tmp_path, column):
    # ray.data.read_images' "image" column holds pixels: str() of them is no path to read.
    pytest.importorskip("ray", reason="ray is not installed (pip install 'ptocr[ray]')")
    from ptocr.ray_data import OCRBatchPredictor

    (tmp_path / "model.txt").write_text("m")
    predictor = OCRBatchPredictor(lambda: _Named(str(tmp_path / "model.txt")))
    with pytest.raises(PtocrError, match="paths"):
        predictor({"image": column})
    with pytest.raises(PtocrError, match="'path'"):
        OCRBatchPredictor(lambda: _Named(str(tmp_path / "model.txt")), column="path")({"image": column})


def test_ray_reads_relative_paths_from_the_drivers_folder(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ptocr[ray]')")
    from functools import partial

    import cv2

    from ptocr.ray_data import run_on_ray

    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), np.full((16, 32, 3), 255, np.uint8))
    (tmp_path / "model.txt").write_text("m")
    path = os.pathsep.join([str(REPO), str(REPO / "tests")])  # the actors import this checkout and this module
    ray.init(num_cpus=1, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    context = ray.data.DataContext.get_current()
    deaths = context.max_consecutive_actor_init_deaths
    context.max_consecutive_actor_init_deaths = 0  # an actor that cannot build fails the run at once
    try:
        # The raylet (and so each actor) started in the folder of ray.init; the driver moves on, as
        # a driver joining a cluster started elsewhere (`ray start`) is in another folder.
        monkeypatch.chdir(tmp_path)
        rows = list(run_on_ray(["imgs/a.png", "imgs/missing.png"], partial(_named_on, "model.txt")))
    finally:
        context.max_consecutive_actor_init_deaths = deaths
        ray.shutdown()
    by_name = {name: (line, error) for name, line, error in rows}
    assert sorted(by_name) == ["imgs/a.png", "imgs/missing.png"]
    assert by_name["imgs/a.png"][1] is None and '"m:a.png"' in by_name["imgs/a.png"][0]
    assert "imgs/missing.png" in by_name["imgs/missing.png"][1]


def test_tf32_off_holds_under_the_per_op_flags():
    # torch >= 2.9: torch.backends.fp32_precision = "tf32" (the new API) is inherited by cuDNN's
    # conv / rnn; the legacy allow_tf32 = False alone left convolutions in TF32. A subprocess:
    # these flags are process-wide.
    script = """
import torch
from ptocr.bulk import set_tf32
if not hasattr(torch.backends, "fp32_precision"):
    print("skip")
    raise SystemExit
torch.backends.fp32_precision = "tf32"
set_tf32(False)
cudnn = torch.backends.cudnn
print(cudnn.conv.fp32_precision, cudnn.rnn.fp32_precision, torch.backends.cuda.matmul.fp32_precision,
      cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    if done.stdout.split() == ["skip"]:
        pytest.skip("this torch has no per-op fp32_precision flags")
    assert done.stdout.split() == ["ieee", "ieee", "ieee", "False", "False"]


def test_ray_without_ray_installed_is_a_one_line_error(tmp_path, monkeypatch):
    from ptocr import bulk_cli

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ImportError, as where it is not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    image = tmp_path / "a.png"
    image.write_bytes(b"")
    with pytest.raises(PtocrError, match=r"ptocr\[ray\]"):
        bulk_cli.run([str(image)], lambda: None, bulk_out=str(tmp_path / "r.jsonl"), bulk_ray="local")
