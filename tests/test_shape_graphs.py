"""ShapeGraphs (ptocr.models.shape_graphs): per-shape frozen oneDNN Graph traces of a model, built
once a shape has come often enough, equal to eager where they run, eager wherever they would not be."""

from __future__ import annotations

import copy
import pickle
import warnings

import pytest
import torch
import torch.nn as nn

import ptocr
from ptocr.architectures import get_architecture
from ptocr.models.build import build_model
from ptocr.models.layers import SEModule
from ptocr.models.model import OCRModel
from ptocr.models.shape_graphs import ShapeGraphs, onednn_graph_available
from ptocr.optimize import example_input, for_inference, inference_settings
from ptocr.transforms import ClsPreprocess, load_image

pytestmark = pytest.mark.skipif(not onednn_graph_available(), reason="this PyTorch build has no oneDNN Graph fuser")


class _Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        return torch.softmax(self.fc(x.mean((2, 3))), 1)


def _model(build_after: int = 3) -> OCRModel:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.Hardswish(), SEModule(16),
                             nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.ReLU())
    model = OCRModel(backbone, None, _Head()).eval()
    model = for_inference(model, torch.randn(1, 3, 16, 32), channels_last=True, shape_graphs=True)
    model.shape_graphs.build_after = build_after
    return model


def _x(n: int = 4) -> torch.Tensor:
    return torch.randn(n, 3, 16, 32)


def test_builds_a_graph_per_shape_after_repeated_calls():
    model, x = _model(), _x()
    with torch.inference_mode():
        expected = model._eager(x)
        for calls in (1, 2):
            model(x)
            assert len(model.shape_graphs) == 0, f"built after {calls} calls"
        model(x)
        assert len(model.shape_graphs) == 1
        got = model(x)  # from the graph
        assert (got - expected).abs().max() <= 1e-5
        other = _x(2)
        model(other)
        assert len(model.shape_graphs) == 1  # a new shape counts from zero
        assert (model(other) - model._eager(other)).abs().max() <= 1e-5
    assert not torch._C._jit_llga_enabled()  # the process-wide switch is set back


def test_eager_wherever_a_graph_would_not_apply():
    model, x = _model(build_after=1), _x()
    for _ in range(3):
        model(x)  # autograd on
    with torch.no_grad():
        model.train()
        model(x)
        model.eval()
        model.double()(x.double())
        model.float()
        with torch.backends.mkldnn.flags(enabled=False):
            model(x)
        traced = torch.jit.trace(model, x, check_trace=False)
        assert len(model.shape_graphs) == 0
        assert (traced(x) - model._eager(x)).abs().max() <= 1e-5


def test_changed_weights_drop_the_graphs():
    model, x = _model(build_after=1), _x()
    with torch.inference_mode():
        model(x)
        assert len(model.shape_graphs) == 1
    with torch.no_grad():
        model.head.fc.weight.mul_(3)
    with torch.inference_mode():
        got = model(x)
        assert (got - model._eager(x)).abs().max() <= 1e-5  # the new weights, not the graph's
        assert len(model.shape_graphs) == 1  # rebuilt for them (build_after=1)


def _fresh_eager(model: OCRModel, x: torch.Tensor) -> torch.Tensor:
    """What ``model``'s weights as they are now compute: a copy starts without graphs and packed weights."""
    with torch.inference_mode():
        return copy.deepcopy(model)._eager(x)


def _built(model: OCRModel, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        before = model(x)
        assert len(model.shape_graphs) == 1
    return before


def _assign_halved(model: OCRModel) -> None:
    halved = {k: v * 0.5 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.load_state_dict(halved, assign=True)  # new Parameter objects


def _bfloat16_round_trip(model: OCRModel) -> None:
    model.to(torch.bfloat16).to(torch.float32)  # the same Parameters, rounded, in other memory


def _halved_through_data(model: OCRModel) -> None:
    for p in model.parameters():
        p.data.mul_(0.5)  # PyTorch's version counter does not count this
    ptocr.optimize.weights_changed(model)


@pytest.mark.parametrize("change, moved", [(_assign_halved, 1e-3), (_bfloat16_round_trip, 1e-5),
                                           (_halved_through_data, 1e-3)],
                         ids=["replaced parameters", "dtype round trip", ".data edits + weights_changed"])
def test_the_graphs_follow_changed_weights(change, moved):
    model, x = _model(build_after=1), _x()
    before = _built(model, x)
    change(model)
    with torch.inference_mode():
        got = model(x)
    assert (got - _fresh_eager(model, x)).abs().max() <= 1e-5
    assert (got - before).abs().max() > moved


def test_a_failed_build_warns_once_and_stays_eager(monkeypatch):
    model, x = _model(build_after=1), _x()

    def refuse(*_a, **_k):
        raise RuntimeError("bad optional access")
    monkeypatch.setattr(torch.jit, "trace", refuse)
    with torch.inference_mode():
        with pytest.warns(RuntimeWarning, match="runs eager.*bad optional access"):
            first = model(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            again = model(x)
            other = _x(2)
            assert torch.equal(model(other), model._eager(other))  # no build, no warning for another shape
    assert len(model.shape_graphs) == 0
    assert torch.equal(first, again) and torch.equal(first, model._eager(x))


def test_at_most_max_shapes_graphs():
    model = _model(build_after=1)
    model.shape_graphs.max_shapes = 2
    with torch.inference_mode():
        for n in (1, 2, 3):
            x = _x(n)
            assert (model(x) - model._eager(x)).abs().max() <= 1e-5
    assert len(model.shape_graphs) == 2
    assert copy.deepcopy(model).shape_graphs.max_shapes == 2


def _pplcnetv3_recognizer() -> OCRModel:
    """ch_PP-OCRv4_rec with random weights and a small head, optimized as ptocr.load does."""
    entry = get_architecture("ch_PP-OCRv4_rec")
    entry["model"]["head"]["num_classes"] = 40
    torch.manual_seed(0)
    model = build_model(entry["model"]).eval()
    settings = {**inference_settings({"task": "rec", "architecture": "ch_PP-OCRv4_rec"}), "shape_graphs": True}
    model = for_inference(model, example_input(entry), **settings)
    model.shape_graphs.build_after = 1
    return model


def test_a_pplcnetv3_recognizer_runs_as_a_graph():
    """Its rep layers' in-place activation + affine, and the pool before its neck, are what oneDNN
    Graph refused ("bad optional access", "could not set attribute to the op") before the traced
    copy made activations out of place and the pool's stride explicit."""
    model = _pplcnetv3_recognizer()
    x = torch.randn(2, 3, 48, 160)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = model(x)
        assert len(model.shape_graphs) == 1
        assert (got - model._eager(x)).abs().max() <= 1e-4
        assert (model(x) - got).abs().max() == 0  # the graph again


def test_a_graph_that_disagrees_with_eager_is_refused():
    model, x = _model(build_after=1), _x()

    def other_weights(m):
        m = copy.deepcopy(m)
        m.shape_graphs = None
        with torch.no_grad():
            m.head.fc.weight.mul_(-1.0)
        return m
    model.shape_graphs.prepare = other_weights
    with torch.inference_mode(), pytest.warns(RuntimeWarning, match="from the eager output"):
        got = model(x)
    assert len(model.shape_graphs) == 0 and torch.equal(got, model._eager(x))


def test_copies_start_without_graphs():
    model, x = _model(build_after=1), _x()
    with torch.inference_mode():
        model(x)
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert isinstance(other.shape_graphs, ShapeGraphs) and len(other.shape_graphs) == 0
        assert other.shape_graphs.build_after == 1
        with torch.inference_mode():
            assert (other(x) - model(x)).abs().max() <= 1e-5


def test_only_an_ocr_model_takes_shape_graphs():
    with pytest.raises(ValueError, match="OCRModel"):
        for_inference(nn.Sequential(nn.Conv2d(3, 4, 3)), torch.randn(1, 3, 8, 8), shape_graphs=True)


def test_the_direction_classifier_reads_the_same_through_its_graph(shared_dir):
    """ch_ppocr_mobile_v2.0_cls as ptocr.load gives it: the default settings turn graphs on, and
    a batch of real crops through the graph gives eager's probabilities."""
    folder = shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer"
    words = sorted((shared_dir / "images" / "words" / "ch").iterdir())[:6]
    x = torch.from_numpy(ClsPreprocess((3, 48, 192)).batch([load_image(p) for p in words]))
    model = ptocr.load(folder).model
    graphs = model.shape_graphs
    assert isinstance(graphs, ShapeGraphs)
    with torch.inference_mode():
        expected = model._eager(x)
        for _ in range(graphs.build_after + 1):
            got = model(x)
    assert len(graphs) == 1
    assert (got - expected).abs().max() <= 1e-5
    assert torch.equal(got.argmax(1), expected.argmax(1))


def test_a_model_with_inference_tensor_weights_stays_eager():
    """Weights made under inference_mode have no version counter to watch: never a graph."""
    with torch.inference_mode():
        model, x = _model(build_after=1), _x()
        assert all(p.is_inference() for p in model.parameters())
        for _ in range(3):
            got = model(x)
    assert len(model.shape_graphs) == 0 and model.shape_graphs._params == []
    with torch.inference_mode():
        assert torch.equal(got, model._eager(x))


def test_a_classifier_loaded_under_inference_mode_reads_eager(shared_dir):
    """ptocr.load inside torch.inference_mode gives inference-tensor weights: the classifier runs,
    eager, and reads what one loaded outside it reads."""
    folder = shared_dir / "paddle_models" / "ch_ppocr_mobile_v2.0_cls_infer"
    words = sorted((shared_dir / "images" / "words" / "ch").iterdir())[:6]
    x = torch.from_numpy(ClsPreprocess((3, 48, 192)).batch([load_image(p) for p in words]))
    outside = ptocr.load(folder).model
    with torch.inference_mode():
        inside = ptocr.load(folder).model
        for _ in range(inside.shape_graphs.build_after + 1):
            got = inside(x)
        expected = outside._eager(x)
    assert len(inside.shape_graphs) == 0
    assert (got - expected).abs().max() <= 1e-5
