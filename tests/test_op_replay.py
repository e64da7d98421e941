"""Replays (ptocr.models.op_replay through ShapeGraphs(fused=False)): a shape's eager ops recorded
once and run by TorchScript, equal to eager bit for bit, so a model reads the same whatever it read
before; the detectors' and recognizers' default."""

from __future__ import annotations

import copy
import threading
import warnings

import pytest
import torch
import torch.nn as nn

import ptocr
from ptocr.architectures import ARCHITECTURES
from ptocr.models import op_replay
from ptocr.models.build import build_model
from ptocr.models.layers import capturing_graph
from ptocr.models.shape_graphs import ShapeGraphs
from ptocr.optimize import example_input, for_inference, inference_settings

REPLAYED = sorted(n for n, a in ARCHITECTURES.items() if a["task"] in ("det", "rec"))


@pytest.fixture(autouse=True)
def _one_thread():
    # several server recognizers on a shared 2-core runner: one thread avoids OpenMP contention
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _recognizer(name: str, build_after: int = 2):
    """An optimized detector or recognizer with random weights, as ptocr.load sets it up (its
    task's settings)."""
    entry = ARCHITECTURES[name]
    cfg = copy.deepcopy(entry["model"])
    if entry["task"] == "rec":
        cfg["head"]["num_classes"] = 37
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() == 1:  # PP-LCNetV3's scalar affines: not the identity
                p.copy_(torch.rand(1) + 0.5)
    model = for_inference(model, example_input(entry), **inference_settings({**entry, "architecture": name}))
    assert isinstance(model.shape_graphs, ShapeGraphs) and not model.shape_graphs.fused
    model.shape_graphs.build_after = build_after
    eager = copy.deepcopy(model)
    eager.shape_graphs = None
    return model, eager


def _lines(n: int, width: int, seed: int = 0, height: int = 48) -> torch.Tensor:
    return torch.rand(n, 3, height, width, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _replayed_only(model):
    """Inside: the model's Python modules fail if called; only a replay can answer."""
    def refuse(*_a, **_k):
        raise AssertionError("the eager modules ran")
    return _Patch(model.backbone, "forward", refuse)


class _Patch:
    def __init__(self, obj, name, value):
        self.obj, self.name, self.value = obj, name, value

    def __enter__(self):
        setattr(self.obj, self.name, self.value)

    def __exit__(self, *exc):
        delattr(self.obj, self.name)


@pytest.mark.parametrize("name", REPLAYED)
def test_every_detector_and_recognizer_replays_its_eager_ops_bit_for_bit(name):
    model, eager = _recognizer(name)
    height = 64 if ARCHITECTURES[name]["task"] == "det" else 48  # a detector's sides: multiples of 32
    a, b = _lines(2, 160, height=height), _lines(1, 224, seed=1, height=height)
    with torch.inference_mode():
        for call in range(3):
            for x in (a, b):
                assert torch.equal(model(x), eager(x)), f"call {call}, shape {tuple(x.shape)}"
        assert len(model.shape_graphs) == 2
        other = _lines(2, 160, seed=2, height=height)  # another input of a recorded shape: only the shape is baked in
        with _replayed_only(model):
            got = model(other)
        assert torch.equal(got, eager(other))


def _real_input(shared_dir, task: str) -> torch.Tensor:
    import numpy as np

    from ptocr.transforms import RecPreprocess, load_image

    if task == "det":
        import cv2

        scene = cv2.resize(load_image(shared_dir / "images/scenes/00056221.jpg"), (640, 640))
        return torch.from_numpy(np.ascontiguousarray(scene.transpose(2, 0, 1)[None] / 127.5 - 1, dtype=np.float32))
    prep = RecPreprocess((3, 48, 320))
    words = sorted((shared_dir / "images/words/ch").iterdir())[:3]
    return torch.from_numpy(np.stack([prep(load_image(p), 320 / 48) for p in words]))


@pytest.mark.parametrize("folder, task", [("ch_PP-OCRv4_det_infer", "det"), ("ch_PP-OCRv4_rec_infer", "rec")])
def test_a_real_model_reads_the_same_before_and_after_its_replay(shared_dir, folder, task):
    """What the bulk = per-image promise needs: a map's or a line's values do not depend on how
    many inputs of its shape the model read before."""
    model = ptocr.load(shared_dir / "paddle_models" / folder).model
    x = _real_input(shared_dir, task)
    graphs = model.shape_graphs
    with torch.inference_mode():
        first = model(x)
        for _ in range(graphs.build_after):
            assert torch.equal(model(x), first)
        assert len(graphs) == 1
        with _replayed_only(model):
            assert torch.equal(model(x), first)


def test_a_replay_that_differs_from_eager_is_refused(monkeypatch):
    model, eager = _recognizer("ch_PP-OCRv4_rec", build_after=1)
    real = op_replay.record

    def off_by_rounding(*args):
        replay = real(*args)
        return op_replay.Replay(lambda x: replay.script(x).nextafter(torch.tensor(2.0)))

    monkeypatch.setattr(op_replay, "record", off_by_rounding)
    x = _lines(1, 160)
    with torch.inference_mode(), pytest.warns(RuntimeWarning, match="replay .* not eager's bit for bit"):
        got = model(x)
    assert len(model.shape_graphs) == 0 and torch.equal(got, eager(x))
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("error")  # once: the model stays eager, quietly
        assert torch.equal(model(x), eager(x))


def test_no_replay_where_it_would_not_apply():
    model, eager = _recognizer("ch_PP-OCRv4_rec", build_after=1)
    x = _lines(1, 160)
    with torch.no_grad():
        model.double()(x.double())  # float64: eager
    model.float()
    with torch.enable_grad():
        model(x)  # autograd on: eager
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    assert len(model.shape_graphs) == 0
    with torch.inference_mode():
        assert torch.equal(model(x), eager(x))
    assert len(model.shape_graphs) == 1


def test_changed_weights_drop_the_replays():
    model, _ = _recognizer("ch_PP-OCRv4_rec", build_after=1)
    x = _lines(1, 160)
    with torch.inference_mode():
        before = model(x)
        assert len(model.shape_graphs) == 1
    with torch.no_grad():
        model.head.fc.weight.mul_(2)  # in place: the version counter moves
    fresh = copy.deepcopy(model)
    fresh.shape_graphs = None
    with torch.inference_mode():
        got = model(x)
        assert torch.equal(got, fresh(x)) and not torch.equal(got, before)


def test_recording_is_per_thread():
    """A replay recorded in one thread leaves another thread's graph captures (an export, a
    torch.compile) with the plain ops: capturing_graph() answers for this thread only."""
    inside, seen = threading.Event(), threading.Event()
    answers = []

    def other():
        inside.wait()
        answers.append(op_replay.is_recording())
        seen.set()

    t = threading.Thread(target=other)
    t.start()
    with op_replay.recording():
        assert op_replay.is_recording() and not capturing_graph()
        inside.set()
        seen.wait(10)
    t.join()
    assert answers == [False] and not op_replay.is_recording()


def test_a_copy_or_pickle_starts_without_replays():
    import pickle

    model, _ = _recognizer("ch_PP-OCRv4_rec", build_after=1)
    with torch.inference_mode():
        model(_lines(1, 160))
    assert len(model.shape_graphs) == 1
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert not other.shape_graphs.fused and len(other.shape_graphs) == 0


def test_replays_are_for_an_ocr_model_only():
    with pytest.raises(ValueError, match="need an OCRModel"):
        for_inference(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 8, 8), replays=True)
