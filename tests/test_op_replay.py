"""Replays (ptocr.models.op_replay through ShapeGraphs(fused=False)): a shape's eager ops recorded
once and run by TorchScript, equal to eager bit for bit, so a model reads the same whatever it read
before; the detectors' and recognizers' default."""

from __future__ import annotations

import contextlib
import copy
import threading
import warnings

import pytest
import torch
import torch.nn as nn

import ptocr
from conftest import intra_op_threads
from ptocr.architectures import ARCHITECTURES
from ptocr.models import op_replay
from ptocr.models.build import build_model
from ptocr.models.layers import capturing_graph
from ptocr.models.shape_graphs import ShapeGraphs
from ptocr.optimize import example_input, for_inference, inference_settings

REPLAYED = sorted(n for n, a in ARCHITECTURES.items() if a["task"] in ("det", "rec"))


@pytest.fixture(autouse=True)
def _one_thread():
    with intra_op_threads(1):  # the server models on a shared 2-core runner: no OpenMP contention
        yield


def _optimized(name: str, build_after: int = 2):
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


@contextlib.contextmanager
def _replayed_only(monkeypatch, model):
    """Inside: the model's Python modules fail if called; only a replay can answer."""
    def refuse(*_a, **_k):
        raise AssertionError("the eager modules ran")
    with monkeypatch.context() as patch:
        patch.setattr(model.backbone, "forward", refuse)
        yield


@pytest.mark.parametrize("name", REPLAYED)
def test_every_detector_and_recognizer_replays_its_eager_ops_bit_for_bit(name, monkeypatch):
    model, eager = _optimized(name)
    height = 64 if ARCHITECTURES[name]["task"] == "det" else 48  # a detector's sides: multiples of 32
    a, b = _lines(2, 160, height=height), _lines(1, 224, seed=1, height=height)
    with torch.inference_mode():
        for call in range(3):
            for x in (a, b):
                assert torch.equal(model(x), eager(x)), f"call {call}, shape {tuple(x.shape)}"
        assert len(model.shape_graphs) == 2
        other = _lines(2, 160, seed=2, height=height)  # another input of a recorded shape: only the shape is baked in
        with _replayed_only(monkeypatch, model):
            got = model(other)
        assert torch.equal(got, eager(other))


def _real_inputs(shared_dir, task: str) -> list[torch.Tensor]:
    """Two real inputs of one shape: two scenes at 640 x 640, or two batches of 3 of the 5 words at 48 x 320."""
    import numpy as np

    from ptocr.transforms import RecPreprocess, load_image

    if task == "det":
        import cv2

        scenes = sorted((shared_dir / "images/scenes").glob("*.jpg"))[:2]
        maps = [cv2.resize(load_image(p), (640, 640)).transpose(2, 0, 1)[None] / 127.5 - 1 for p in scenes]
        return [torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32)) for m in maps]
    prep = RecPreprocess((3, 48, 320))
    words = sorted((shared_dir / "images/words/ch").iterdir())[:5]
    batches = (words[:3], words[2:])
    return [torch.from_numpy(np.stack([prep(load_image(p), 320 / 48) for p in part])) for part in batches]


@pytest.mark.parametrize("folder, task", [("ch_PP-OCRv4_det_infer", "det"), ("ch_PP-OCRv4_rec_infer", "rec")])
def test_a_real_model_reads_the_same_before_and_after_its_replay(shared_dir, folder, task, monkeypatch):
    """What the bulk = per-image promise needs: a map's or a line's values do not depend on how
    many inputs of its shape the model read before. The replay is recorded on the first input and
    must read the second as eager did (large maps take other kernels than the random-weight tests')."""
    model = ptocr.load(shared_dir / "paddle_models" / folder).model
    x, other = _real_inputs(shared_dir, task)
    graphs = model.shape_graphs
    with torch.inference_mode():
        first, second = model(x), model(other)
        for _ in range(graphs.build_after):
            assert torch.equal(model(x), first)
        assert len(graphs) == 1
        with _replayed_only(monkeypatch, model):
            assert torch.equal(model(x), first) and torch.equal(model(other), second)


def test_a_replay_that_differs_from_eager_is_refused(monkeypatch):
    model, eager = _optimized("ch_PP-OCRv4_rec", build_after=1)
    real = op_replay.record

    def off_by_rounding(*args):
        replay = real(*args)
        return op_replay.Replay(lambda x: replay.script(x).nextafter(torch.tensor(2.0)))  # one ulp up

    monkeypatch.setattr(op_replay, "record", off_by_rounding)
    x = _lines(1, 160)
    with torch.inference_mode(), pytest.warns(RuntimeWarning, match="replay .* not eager's bit for bit"):
        got = model(x)
    assert len(model.shape_graphs) == 0 and torch.equal(got, eager(x))
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("error")  # once: the model stays eager, quietly
        assert torch.equal(model(x), eager(x))


def test_no_replay_where_it_would_not_apply():
    model, eager = _optimized("ch_PP-OCRv4_rec", build_after=1)
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
    model, _ = _optimized("ch_PP-OCRv4_rec", build_after=1)
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


def test_dropped_replays_let_go_of_the_weights():
    """A replay holds the model's weights and packed copies while it lives, not after: nothing is
    left in TorchScript's process-wide compilation unit (a frozen module's graph stays there, with
    views of the weights as its constants)."""
    import gc

    model, _ = _optimized("ch_PP-OCRv4_rec", build_after=1)
    weight = model.head.fc.weight

    def holders() -> int:
        gc.collect()
        return torch._C._storage_Use_Count(weight.untyped_storage()._cdata)

    before = holders()
    with torch.inference_mode():
        model(_lines(1, 160))
    assert len(model.shape_graphs) == 1
    model.shape_graphs.clear()
    assert holders() == before  # a frozen replay's constants (views of the weights) stayed: before + 1


def test_two_threads_share_one_model_and_its_replay():
    """Bulk reading runs one model from two threads: the replay is recorded once (under the
    model's lock) and both threads read eager's values through it."""
    model, eager = _optimized("ch_PP-OCRv4_rec", build_after=3)
    xs = [_lines(2, 160, seed=s) for s in range(4)]
    with torch.inference_mode():
        want = [eager(x) for x in xs]
    failures = []

    def read():
        with torch.inference_mode():
            for _ in range(5):
                for x, w in zip(xs, want):
                    if not torch.equal(model(x), w):
                        failures.append(1)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and len(model.shape_graphs) == 1


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

    model, _ = _optimized("ch_PP-OCRv4_rec", build_after=1)
    with torch.inference_mode():
        model(_lines(1, 160))
    assert len(model.shape_graphs) == 1
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert not other.shape_graphs.fused and len(other.shape_graphs) == 0


def test_replays_are_for_an_ocr_model_only():
    with pytest.raises(ValueError, match="need an OCRModel"):
        for_inference(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 8, 8), replays=True)
