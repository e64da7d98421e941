"""Ray bulk OCR when loading or reading goes wrong: models that cannot be built (an exception,
a process that dies while building), ``OCRBatchPredictor`` under Ray Data's own defaults (a
task whose worker dies is retried forever), and ``run_on_ray`` without Ray's deprecated
``ray_remote_args``. Stand-in pipelines, no models; one local two-CPU cluster for the module
(skipped without ray)."""

from __future__ import annotations

import inspect
import json
import os
from functools import partial
from pathlib import Path

import pytest
from conftest import local_ray_cluster

from ptocr.errors import PtocrError
from ptocr.result import Line, OCRResult

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ptocr[ray]')")

DEATHS = 6  # more than the default tries (3); bounded, so that the code before the fix ends too


class _Reader:
    """``read``: one line, the name. An image named ``poison*`` kills its process (as a
    decoder's segfault would) its first ``DEATHS`` times, counted in ``deaths``."""

    def __init__(self, deaths: str):
        self.deaths = deaths

    def read(self, image):
        name = Path(image).name
        if name.startswith("poison") and _count(self.deaths) < DEATHS:
            _tick(self.deaths)
            os._exit(1)
        return OCRResult([Line([[0, 0], [1, 0], [1, 1], [0, 1]], name, 1.0, None)], source=image)


def _count(path: str) -> int:
    return os.path.getsize(path)


def _tick(path: str) -> None:
    with open(path, "a") as f:
        f.write("x")


def _reader(deaths: str) -> _Reader:
    return _Reader(deaths)


def _missing_model() -> _Reader:
    raise PtocrError("/models/det.safetensors: no such model file\nsecond line")


def _dies_while_building(builds: str) -> _Reader:
    """Killed for memory while loading, its first ``DEATHS`` times."""
    if _count(builds) < DEATHS:
        _tick(builds)
        os._exit(1)
    return _Reader(builds)


@pytest.fixture(scope="module")
def cluster():
    with local_ray_cluster():
        yield


@pytest.fixture
def counter(tmp_path) -> str:
    path = tmp_path / "count"
    path.write_text("")
    return str(path)


def test_models_that_cannot_be_built_stop_the_run_with_one_line(cluster, tmp_path):
    from ptocr import bulk_cli

    names = [str(tmp_path / f"{i}.png") for i in range(3)]
    with pytest.raises(PtocrError) as raised:
        bulk_cli.run(names, _missing_model, bulk_out=str(tmp_path / "r.jsonl"), bulk_ray="local")
    message = str(raised.value)
    assert "\n" not in message and "Traceback" not in message
    assert "cannot build the models" in message and "/models/det.safetensors: no such model file" in message
    assert not any(name in message for name in names)  # the models' fault, not an image's


def test_a_worker_that_dies_building_the_models_is_not_restarted_forever(cluster, tmp_path, counter):
    from ptocr.ray_data import run_on_ray

    with pytest.raises(PtocrError, match=r"cannot build the models.*died 3 times while building"):
        list(run_on_ray([str(tmp_path / "a.png")], partial(_dies_while_building, counter)))
    assert _count(counter) == 3


def test_the_documented_map_batches_call_gives_a_poison_image_an_error_row(cluster, tmp_path, counter):
    # Ray Data's defaults (max_task_retries=-1: a dead worker's task is retried forever), as the
    # doc's own example leaves them.
    from ptocr.ray_data import OCRBatchPredictor

    names = [str(tmp_path / n) for n in ("a.png", "poison.png", "b.png", "c.png")]
    ds = ray.data.from_items([{"image": n} for n in names], override_num_blocks=1)
    ds = ds.map_batches(OCRBatchPredictor, fn_constructor_args=(partial(_reader, counter),), batch_size=4,
                        compute=ray.data.ActorPoolStrategy(size=1))
    rows = {Path(r["image"]).name: r for r in ds.take_all()}
    assert sorted(rows) == ["a.png", "b.png", "c.png", "poison.png"]
    assert "died 3 times" in rows["poison.png"]["error"] and _count(counter) == 3
    for name in ("a.png", "b.png", "c.png"):
        assert rows[name]["error"] == "" and json.loads(rows[name]["line"])["lines"][0]["text"] == name


def test_run_on_ray_passes_only_named_map_batches_parameters(cluster, tmp_path, counter, monkeypatch):
    # Ray 2.60 deprecates **ray_remote_args (max_task_retries, max_restarts), to be removed in 2.64.
    from ray.data import Dataset

    from ptocr.ray_data import run_on_ray

    named = set(inspect.signature(Dataset.map_batches).parameters) - {"ray_remote_args"}
    extra: list[str] = []
    map_batches = Dataset.map_batches

    def recording(self, fn, **kw):
        extra.extend(k for k in kw if k not in named)
        return map_batches(self, fn, **kw)

    monkeypatch.setattr(Dataset, "map_batches", recording)
    rows = list(run_on_ray([str(tmp_path / "a.png")], partial(_reader, counter)))
    assert [name for name, _, _ in rows] == [str(tmp_path / "a.png")]
    assert extra == []
