"""Serving audit: one pipeline or predictor shared by a thread pool, forked or pickled to worker
processes. Real PP-OCRv5 mobile det + rec and the PP-LCNet textline classifier of ../shared;
races are forced with events and barriers, never left to luck."""

from __future__ import annotations

import multiprocessing as mp
import pickle
import threading
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import intra_op_threads

import ptocr.optimize as optimize
from ptocr.errors import PtocrError
from ptocr.models import shape_graphs
from ptocr.models.model import OCRModel
from ptocr.pipeline3 import OCR3

graphs_only = pytest.mark.skipif(not shape_graphs._AVAILABLE, reason="no oneDNN Graph in this torch build")
# How long a forced interleaving waits for the other thread before going on alone: only the
# fixed code makes it wait (the other thread is then held by the lock under test).
_PATIENCE = 2.0


@pytest.fixture(scope="module")
def scenes(shared_dir) -> list[np.ndarray]:
    return [cv2.imread(str(shared_dir / "images" / "scenes" / name)) for name in ("ger_1.jpg", "img_12.jpg")]


def _lines(result) -> list:
    return [(line.text, line.score, line.angle, np.asarray(line.box).tolist()) for line in result.lines]


# ---- shared pipeline, many threads ----

@graphs_only
def test_threads_sharing_a_pipeline_read_as_one_thread_does(v5_models, scenes):
    """Calls with different per-call settings at once, while the textline classifier builds its
    graphs, give exactly the sequential results: nothing leaks between calls."""
    calls = [({}, 0), ({"text_det_box_thresh": 0.8}, 1), ({"return_word_box": True}, 0),
             ({"use_textline_orientation": False}, 1)]
    with intra_op_threads(1):
        ocr = OCR3(v5_models["det"], v5_models["rec"], v5_models["textline"])
        graphs = ocr.textline.model.shape_graphs
        expected = [_lines(ocr(scenes[i], **s)) for s, i in calls]
        graphs.clear()
        graphs.build_after = 2  # built during the concurrent calls below
        start = threading.Barrier(len(calls))

        def call(job):
            settings, i = job
            start.wait()
            return _lines(ocr(scenes[i], **settings))

        with ThreadPoolExecutor(len(calls)) as pool:
            for _ in range(2):
                assert list(pool.map(call, calls)) == expected
    assert len(graphs) > 0
    assert ocr.settings["text_det_box_thresh"] == 0.6 and ocr.textline is not None  # untouched by the calls


def test_a_failed_call_leaves_the_pipeline_working(v5_models, scenes):
    with intra_op_threads(1):
        ocr = OCR3(v5_models["det"], v5_models["rec"], v5_models["textline"])
        before = _lines(ocr(scenes[1]))
        with pytest.raises(PtocrError):
            ocr(scenes[1], text_det_tresh=0.5)
        with pytest.raises(Exception):
            ocr(np.zeros((0, 0, 3), np.uint8))
        assert _lines(ocr(scenes[1])) == before


# ---- shape graphs: forced interleavings ----

class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        return torch.relu(self.conv(x))


def _model(build_after: int = 1, max_shapes: int = 8) -> OCRModel:
    torch.manual_seed(0)
    model = OCRModel(nn.Identity(), None, _Net()).eval()
    model.shape_graphs = shape_graphs.ShapeGraphs(optimize._traceable_copy, build_after, max_shapes)
    return model


def _run(model, x):
    with torch.no_grad():
        return model(x)


def _both(target, args_a, args_b):
    threads = [threading.Thread(target=target, args=a) for a in (args_a, args_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@graphs_only
def test_two_models_building_at_once_leave_the_warnings_filters_alone(monkeypatch):
    """catch_warnings saves and restores the process's filter list: two builds interleaved
    (the first leaving before the second) left "ignore every warning" in place for good."""
    trace, inside = torch.jit.trace, threading.Event()

    def interleaved_trace(*a, **k):
        if not inside.is_set():  # the first build waits until the second is inside too
            inside.set()
            second_inside.wait(_PATIENCE)
        else:
            second_inside.set()
        return trace(*a, **k)

    second_inside = threading.Event()
    monkeypatch.setattr(torch.jit, "trace", interleaved_trace)
    before = list(warnings.filters)
    _both(_run, (_model(), torch.randn(1, 3, 8, 8)), (_model(), torch.randn(1, 3, 8, 8)))
    assert warnings.filters == before


@graphs_only
def test_concurrent_builds_keep_to_max_shapes():
    """Threads with different shapes that all passed the bound's check before any build finished
    must not build past it."""
    model = _model(build_after=2, max_shapes=1)
    shapes = (torch.randn(1, 3, 8, 8), torch.randn(1, 3, 16, 16))
    for x in shapes:  # each shape counted once: the next call of each builds
        _run(model, x)
    both_counted = threading.Barrier(2)

    class Meeting(Counter):  # both threads count their shape, then meet, then build
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            both_counted.wait()

    model.shape_graphs._seen = Meeting(model.shape_graphs._seen)
    _both(_run, (model, shapes[0]), (model, shapes[1]))
    assert len(model.shape_graphs) == 1


# ---- the thread count ----

def test_concurrent_loads_leave_new_threads_at_the_users_thread_count(monkeypatch):
    """Each load runs its rewrites at one thread and restores the count it found: a second load
    started meanwhile found the 1, and restoring it after the first left torch at one thread for
    every thread started later."""
    real, first_inside, second_inside = optimize._optimize, threading.Event(), threading.Event()
    first_done = threading.Event()

    def interleaved(*a):  # the second load starts inside the first and ends after it
        if not first_inside.is_set():
            first_inside.set()
            second_inside.wait(_PATIENCE)
        else:
            second_inside.set()
            first_done.wait(_PATIENCE)
        return real(*a)

    def load(first: bool):
        if not first:
            first_inside.wait()
        optimize.for_inference(_Net(), torch.randn(1, 3, 8, 8))
        if first:
            first_done.set()

    monkeypatch.setattr(optimize, "_optimize", interleaved)
    with intra_op_threads(2):
        _both(load, (True,), (False,))
        seen = []
        fresh = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        fresh.start()
        fresh.join()
    assert seen == [2]


# ---- other processes ----

def _child_report(model, x, queue):
    """In a forked child: its graphs, whether a build may start, then its output at one thread
    (the parent's oneDNN Graph kernels hang in a child, whatever the thread count)."""
    queue.put((len(model.shape_graphs), shape_graphs._BUILD_LOCK.locked(), model.shape_graphs._lock.locked()))
    torch.set_num_threads(1)  # torch's OpenMP pool of the parent cannot run in a child
    queue.put(_run(model, x).numpy())


@graphs_only
def test_a_forked_child_starts_without_the_parents_graphs_and_locks():
    model, x = _model(), torch.randn(1, 3, 8, 8)
    expected = _run(model, x)
    assert len(model.shape_graphs) == 1
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    with shape_graphs._BUILD_LOCK, model.shape_graphs._lock:  # as if another thread were building
        child = ctx.Process(target=_child_report, args=(model, x, queue), daemon=True)
        child.start()
    try:
        assert queue.get(timeout=120) == (0, False, False)
        np.testing.assert_allclose(queue.get(timeout=120), expected.numpy(), rtol=1e-4, atol=1e-5)
    finally:
        child.kill()
        child.join()


def _spawned_read(payload: bytes, crops, queue):
    queue.put(pickle.loads(payload)(crops))


@graphs_only
def test_a_classifier_with_graphs_pickles_to_a_spawned_process(v5_models, scenes):
    from ptocr import load

    with intra_op_threads(1):
        cls = load(v5_models["textline"])
        cls.model.shape_graphs.build_after = 1
        crops = [scenes[0][:48, :160], scenes[0][48:96, :160]]
        expected = cls(crops)
        assert len(cls.model.shape_graphs) == 1
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_spawned_read, args=(pickle.dumps(cls), crops, queue))
    child.start()
    try:
        got = queue.get(timeout=300)
    finally:
        child.join()
    assert [label for label, _ in got] == [label for label, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-4)


def test_two_tiff_headers_read_at_once_leave_the_warnings_filters_alone(monkeypatch):
    """The image size check silences PIL's damaged-TIFF-tag warnings with catch_warnings, which
    swaps the process's filter list: a request leaving it before another that came in later left
    every warning ignored."""
    from PIL import Image

    from ptocr.transforms import image

    tiff = cv2.imencode(".tiff", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    real_open, first = Image.open, []
    second_inside, first_left = threading.Event(), threading.Event()

    def interleaved_open(*a, **k):
        if not first:  # the first call waits until the second is inside too
            first.append(threading.get_ident())
            second_inside.wait(_PATIENCE)
        else:  # the second leaves after the first has left
            second_inside.set()
            first_left.wait(_PATIENCE)
        return real_open(*a, **k)

    def read():
        sizes.append(image._header_size(tiff))
        if first == [threading.get_ident()]:
            first_left.set()

    monkeypatch.setattr(Image, "open", interleaved_open)
    before, sizes = list(warnings.filters), []
    _both(read, (), ())
    assert sizes == [(4, 4), (4, 4)]
    assert warnings.filters == before
