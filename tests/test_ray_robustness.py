"""``ptocr ocr --ray`` where things go wrong: an image that kills the worker reading it, GPUs
the cluster does not have, an address nothing answers on, an exception in the workers, a large
run's blocks. Stand-in pipelines, no models; one local two-CPU cluster for the module (skipped
without ray)."""

from __future__ import annotations

import os
import socket
from functools import partial
from pathlib import Path

import pytest
from conftest import local_ray_cluster

from ptocr.errors import PtocrError
from ptocr.result import Line, OCRResult

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'ptocr[ray]')")

DEATHS = 10  # more than run_on_ray's tries of both passes: Ray Data's default retries forever


class _Reader:
    """``read``: one line, the name. An image named ``poison*`` kills its process (as a decoder's
    segfault would) its first ``DEATHS`` times, counted in ``deaths``; one named ``boom*``
    raises (a model's error, not the image's); each read is counted in ``reads``."""

    def __init__(self, deaths: str, reads: str):
        self.deaths, self.reads = deaths, reads

    def read(self, image):
        name = Path(image).name
        with open(self.reads, "a") as f:
            f.write(name + "\n")
        if name.startswith("poison") and os.path.getsize(self.deaths) < DEATHS:
            with open(self.deaths, "a") as f:
                f.write("x")
            os._exit(1)
        if name.startswith("boom"):
            raise RuntimeError("the model exploded\nsecond line")
        return OCRResult([Line([[0, 0], [1, 0], [1, 1], [0, 1]], name, 1.0, None)], source=image)


def _reader(deaths: str, reads: str) -> _Reader:
    return _Reader(deaths, reads)


@pytest.fixture(scope="module")
def cluster():
    with local_ray_cluster():
        yield


@pytest.fixture
def counters(tmp_path):
    deaths, reads = tmp_path / "deaths", tmp_path / "reads"
    deaths.write_text("")
    reads.write_text("")
    return deaths, reads


def _run(tmp_path, names, counters, bulk_ray="local", **kw):
    from ptocr import bulk_cli

    build = partial(_reader, *map(str, counters))
    return bulk_cli.run(names, build, bulk_out=str(tmp_path / "r.jsonl"), bulk_ray=bulk_ray, **kw)


def _lines(tmp_path) -> dict:
    import json

    lines = [json.loads(s) for s in (tmp_path / "r.jsonl").read_text(encoding="utf-8").splitlines()]
    by_name = {Path(d["image"]).name: d for d in lines}
    assert len(by_name) == len(lines)  # each image once
    return by_name


def test_an_image_that_kills_its_worker_gets_an_error_line_and_the_rest_are_read(cluster, tmp_path, counters,
                                                                                  monkeypatch):
    import ptocr.ray_data

    monkeypatch.setattr(ptocr.ray_data, "RAY_TRIES", 2, raising=False)  # a retry, and fewer actor restarts to wait for
    context = ray.data.DataContext.get_current()
    before = (context.enable_progress_bars, context.max_errored_blocks)
    context.enable_progress_bars = True
    try:
        names = [f"img{i}.png" for i in range(6)]
        names.insert(2, "poison.png")  # in a batch of 4 with good images
        failed = _run(tmp_path, [str(tmp_path / n) for n in names], counters, bulk_batch_size=4, bulk_actors=2)
        # a script's own DataContext is left as it was
        assert (context.enable_progress_bars, context.max_errored_blocks) == (True, before[1])
    finally:
        context.enable_progress_bars = before[0]
    by_name = _lines(tmp_path)
    assert sorted(by_name) == sorted(names) and failed == 1
    assert "died" in by_name["poison.png"]["error"] and "Traceback" not in by_name["poison.png"]["error"]
    assert all(by_name[n]["lines"][0]["text"] == n for n in names if n != "poison.png")
    deaths = os.path.getsize(counters[0])
    assert deaths < DEATHS
    # A rerun skips it (its error line is its result): no worker dies again.
    assert _run(tmp_path, [str(tmp_path / n) for n in names], counters, bulk_batch_size=4) == 0
    assert os.path.getsize(counters[0]) == deaths


def test_an_exception_in_the_workers_stops_the_run_with_one_line(cluster, tmp_path, counters):
    names = [str(tmp_path / n) for n in ("a.png", "boom.png")]
    with pytest.raises(PtocrError, match="boom.png: the Ray workers failed: RuntimeError: the model exploded$"):
        _run(tmp_path, names, counters, bulk_batch_size=1)
    assert not os.path.getsize(counters[0])  # not taken for a dead worker: no narrowing down, no retries


@pytest.mark.parametrize("autoscaler", [None, {"GPU": 4, "CPU": 64}])
def test_gpus_the_cluster_cannot_have_are_an_error_before_the_run(cluster, tmp_path, counters, monkeypatch, autoscaler):
    # The local cluster has no GPU; Ray would wait for one forever.
    from ray._private.state import state

    class Started(Exception):
        pass

    def started(*a, **kw):
        raise Started

    monkeypatch.setattr(ray.data, "from_items", started)
    monkeypatch.setattr(state, "get_max_resources_from_cluster_config", lambda: autoscaler)
    names = [str(tmp_path / "a.png")]
    if autoscaler is None:
        with pytest.raises(PtocrError, match=r"has 0 GPUs.*--actors 3 .*3 x 1 = 3: join a cluster with GPUs"):
            _run(tmp_path, names, counters, bulk_actors=3, device="cuda")
    else:  # an autoscaler that may add 4 GPUs: the run starts, and waits for them
        with pytest.raises(Started):
            _run(tmp_path, names, counters, bulk_actors=3, device="cuda")
        with pytest.raises(PtocrError, match="has 4 GPUs.*give --actors 4 or fewer"):
            _run(tmp_path, names, counters, bulk_actors=5, device="cuda")


def test_a_large_run_is_cut_into_small_blocks(cluster, monkeypatch):
    # A task reads a whole block: what a dead worker, a retry or Ctrl-C costs.
    from ptocr.ray_data import run_on_ray

    blocks = []

    def from_items(items, override_num_blocks=None):
        blocks.append((len(items), override_num_blocks))
        raise KeyboardInterrupt

    monkeypatch.setattr(ray.data, "from_items", from_items)
    with pytest.raises(KeyboardInterrupt):
        list(run_on_ray([f"{i}.png" for i in range(100_000)], _reader, batch_size=2))
    (rows, count), = blocks
    assert count is not None and rows / count <= 64


def test_an_address_nothing_answers_on_is_a_one_line_error(tmp_path, counters, monkeypatch):
    with socket.socket() as s:  # a port of 127.0.0.1 that was free a moment ago: nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def init(*a, **kw):
        raise AssertionError("ray.init would retry for minutes")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(PtocrError, match=f"nothing answers at {address}"):
            _run(tmp_path, [str(tmp_path / "a.png")], counters, bulk_ray=address)
