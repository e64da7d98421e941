"""ptocr.optimize: the inference rewrites compute the plain model's function, exactly in float64."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from conftest import intra_op_threads
from ptocr.architectures import ARCHITECTURES
from ptocr.models.backbones.pplcnetv3 import FoldedRepLayer, LCNetV3Block
from ptocr.models.build import build_model
from ptocr.models.layers import GlobalAvgPool, SEModule
from ptocr.optimize import (
    INFERENCE_OPTIONS,
    TASK_SETTINGS,
    example_input,
    for_fixed_shape_graph,
    for_inference,
    inference_settings,
    se_as_matrices,
)

REL_TOL_FP64 = 1e-10


@pytest.fixture(autouse=True)
def _one_thread():
    with intra_op_threads(1):  # float64 server models on a shared 2-core runner: no OpenMP contention
        yield


def _random_model(name: str) -> nn.Module:
    """Random weights with non-trivial BN statistics and affines, so every folded term matters."""
    entry = ARCHITECTURES[name]
    cfg = copy.deepcopy(entry["model"])
    if entry["task"] == "rec":
        cfg["head"]["num_classes"] = 37
    if entry["task"] == "unwarp":  # every layer, at a 16th of the pixels (the page is resampled to it)
        cfg["backbone"]["input_size"] = [176, 120]
    gen = torch.Generator().manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                for t, lo, hi in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.3, 2.0),
                                  (m.weight, 0.5, 1.5), (m.bias, -0.5, 0.5)):
                    t.copy_(torch.rand(t.shape, generator=gen) * (hi - lo) + lo)
        for p in model.parameters():
            if p.numel() == 1:  # the learnable scalar affines of PP-LCNetV3
                p.copy_(torch.rand(1, generator=gen) + 0.5)
    return model.double()


def _bns_run(model: nn.Module, x: torch.Tensor) -> set[str]:
    ran: set[str] = set()
    hooks = [m.register_forward_pre_hook(lambda m, _i, n=n: ran.add(n))
             for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return ran


def _parts(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Backbone, neck and model outputs: a saturated softmax alone could hide a difference."""
    with torch.no_grad():
        feats = model.backbone(x)
        outs = [*feats] if isinstance(feats, (list, tuple)) else [feats]
        if model.neck is not None:
            outs.append(model.neck(feats))
        outs.append(model(x))
    return outs


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_optimized_equals_plain_in_float64(name):
    plain = _random_model(name)
    x = example_input(ARCHITECTURES[name], torch.float64)
    before = copy.deepcopy(plain.state_dict())
    fast = for_inference(plain, x)

    for a, b in zip(_parts(plain, x), _parts(fast, x), strict=True):
        assert a.shape == b.shape
        assert a.abs().max() > 0
        rel = ((a - b).abs().max() / a.abs().max()).item()
        assert rel <= REL_TOL_FP64, f"{name}: relative difference {rel:.2e}"

    # Every BN that runs at inference is folded; the ones left are those eval() never runs
    # (DB's threshold branch, training only).
    all_bns = {n for n, m in plain.named_modules() if isinstance(m, nn.BatchNorm2d)}
    left = {n for n, m in fast.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert _bns_run(fast, x) == set()
    assert left == all_bns - _bns_run(plain, x)
    # The original is untouched.
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())


def test_rep_layers_folded_and_float32_close():
    plain = _random_model("ch_PP-OCRv4_rec").float()
    x = example_input(ARCHITECTURES["ch_PP-OCRv4_rec"])
    fast = for_inference(plain, x, channels_last=True)
    assert any(isinstance(m, FoldedRepLayer) for m in fast.modules())
    # Blocks without SE: the depthwise layer's output affine is the pointwise conv's now.
    taken = [m for m in fast.modules() if isinstance(m, FoldedRepLayer) and m.act is not None and m.act_scale is None]
    assert len(taken) == sum(1 for m in plain.modules() if isinstance(m, LCNetV3Block) and not m.use_se) > 0
    with torch.no_grad():
        a, b = plain(x), fast(x)
    assert (a - b).abs().max() <= 1e-4 * a.abs().max()


def test_bn_read_twice_is_not_folded():
    """A conv output that a residual also reads must keep its BN: folding would change the residual."""

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.bn = nn.BatchNorm2d(3)
            self.act = nn.ReLU()

        def forward(self, x):
            y = self.conv(x)
            return self.act(self.bn(y)) + y

    model = Twice().eval()
    with torch.no_grad():
        model.bn.running_mean.fill_(0.3)
        model.bn.running_var.fill_(2.0)
    x = torch.randn(1, 3, 8, 8)
    fast = for_inference(model, x)
    assert isinstance(fast.bn, nn.BatchNorm2d) and not fast.act.inplace
    with torch.no_grad():
        assert torch.allclose(model(x), fast(x))


def test_fold_batch_norms_off_keeps_every_batch_norm():
    """A model's config may keep its batch norms (its manifest entry's "inference"), the rest still applies."""
    plain = _random_model("ch_ppocr_mobile_v2.0_rec").float()
    x = example_input(ARCHITECTURES["ch_ppocr_mobile_v2.0_rec"])
    kept = for_inference(plain, x, fold_batch_norms=False)
    folded = for_inference(plain, x)
    assert _bns_run(kept, x) == _bns_run(plain, x) != set()
    assert _bns_run(folded, x) == set()
    with torch.no_grad():
        assert torch.equal(plain(x), kept(x))


def test_inference_settings_task_defaults_and_model_override():
    """Every task runs channels-last by default, the classifiers alone with shape graphs, the
    detectors and recognizers with replays; a model's own "inference" wins."""
    det, rec, cls = (dict(ARCHITECTURES[a]) for a in ("ch_PP-OCRv4_det", "ch_PP-OCRv4_rec", "ch_ppocr_mobile_v2.0_cls"))
    assert all(inference_settings(c)["channels_last"] for c in (det, rec, cls))
    assert [inference_settings(c)["shape_graphs"] for c in (det, rec, cls)] == [False, False, True]
    assert [inference_settings(c).get("replays", False) for c in (det, rec, cls)] == [True, True, False]
    det["inference"] = {"channels_last": False, "fold_batch_norms": False, "shape_graphs": True, "replays": False}
    assert inference_settings(det) == {"channels_last": False, "fold_batch_norms": False, "shape_graphs": True,
                                       "max_shape_graphs": TASK_SETTINGS["det"]["max_shape_graphs"],
                                       "replays": False}
    assert set(TASK_SETTINGS) == {a["task"] for a in ARCHITECTURES.values()}
    for settings in [*TASK_SETTINGS.values(), *(a.get("inference", {}) for a in ARCHITECTURES.values())]:
        assert all(isinstance(v, INFERENCE_OPTIONS[k]) for k, v in settings.items())


def test_architecture_settings_sit_between_task_and_model(monkeypatch):
    """An architecture's "inference" overrides its task's; its model's own entry wins over both."""
    monkeypatch.setitem(TASK_SETTINGS, "rec", {**TASK_SETTINGS["rec"], "shape_graphs": True})
    lstm = {"task": "rec", "architecture": "ch_ppocr_mobile_v2.0_rec"}
    assert inference_settings(lstm)["shape_graphs"] is False  # its LSTM magnifies a graph's rounding
    assert inference_settings({**lstm, "inference": {"shape_graphs": True}})["shape_graphs"] is True
    assert inference_settings({"task": "rec", "architecture": "ch_PP-OCRv4_rec"})["shape_graphs"] is True
    assert inference_settings({"task": "rec", "architecture": "from_a_newer_version"}) == TASK_SETTINGS["rec"]


def test_asking_for_shape_graphs_overrides_the_task_not_a_model_that_rules_them_out():
    v4, lstm = ({"task": "rec", "architecture": a} for a in ("ch_PP-OCRv4_rec", "ch_ppocr_mobile_v2.0_rec"))
    assert inference_settings(v4, shape_graphs=True)["shape_graphs"] is True
    assert inference_settings(lstm, shape_graphs=True)["shape_graphs"] is False
    cls = {"task": "cls", "architecture": "ch_ppocr_mobile_v2.0_cls"}
    assert inference_settings(cls, shape_graphs=False)["shape_graphs"] is False


def test_channels_last_weights_same_function():
    plain = _random_model("ch_ppocr_mobile_v2.0_cls").float()
    x = example_input(ARCHITECTURES["ch_ppocr_mobile_v2.0_cls"])
    fast = for_inference(plain, x, channels_last=True)
    convs = [m for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    with torch.no_grad():
        a, b = plain(x), fast(x)
    assert (a - b).abs().max() <= 1e-5


def test_squeeze_excitation_as_matrices_same_function_without_conv_calls():
    """The optimized model runs SE's 1x1 convs as matrix products; the converted one keeps the
    conv calls (PIR graph alignment matches them to the program's)."""
    plain = _random_model("ch_ppocr_mobile_v2.0_cls")
    x = example_input(ARCHITECTURES["ch_ppocr_mobile_v2.0_cls"], torch.float64)
    assert not any(m.as_matrices for m in plain.modules() if isinstance(m, SEModule))
    assert all(m.as_matrices for m in for_inference(plain, x).modules() if isinstance(m, SEModule))
    rewritten = copy.deepcopy(plain)
    assert se_as_matrices(rewritten) == 9
    called = []
    hooks = [m.register_forward_hook(lambda *_: called.append(1))
             for se in rewritten.modules() if isinstance(se, SEModule) for m in (se.conv1, se.conv2)]
    with torch.no_grad():
        a, b = plain(x), rewritten(x)
    assert not called and hooks
    assert (a - b).abs().max() <= REL_TOL_FP64 * a.abs().max()


def test_fixed_shape_graph_form_same_function_as_pools_and_convs():
    """A static export's form: a copy whose SE blocks call their 1x1 convs and whose global pools
    are average pooling over the traced map; the same function, the model it came from unchanged."""
    plain = _random_model("ch_ppocr_mobile_v2.0_cls")
    x = example_input(ARCHITECTURES["ch_ppocr_mobile_v2.0_cls"], torch.float64)
    fast = for_inference(plain, x)
    graph = for_fixed_shape_graph(fast)
    assert all(m.as_matrices for m in fast.modules() if isinstance(m, SEModule))
    assert not any(m.fixed_window for m in fast.modules() if isinstance(m, GlobalAvgPool))
    assert not any(m.as_matrices for m in graph.modules() if isinstance(m, SEModule))
    pools = [m for m in graph.modules() if isinstance(m, GlobalAvgPool)]
    assert len(pools) == 9 and all(m.fixed_window for m in pools)
    with torch.no_grad():
        a, b = fast(x), torch.jit.trace(graph, x, check_trace=False)(x)
    assert (a - b).abs().max() <= REL_TOL_FP64 * a.abs().max()


@pytest.mark.parametrize("hw, levels", [((2, 96), 1), ((32, 32), 1), ((40, 40), 2), ((1, 2000), 2)])
def test_fixed_window_pool_levels(hw, levels):
    """Up to ONE_WINDOW_MAX values a map pools in one window; a bigger one in two (rows, then
    the column of row means): oneDNN sums a window sequentially. Both give the map's mean."""
    pool = GlobalAvgPool()
    pool.fixed_window = True
    x = torch.rand(2, 3, *hw, dtype=torch.float64)
    traced = torch.jit.trace(pool, x, check_trace=False)
    assert str(traced.graph).count("aten::avg_pool2d") == levels
    assert torch.allclose(traced(x), x.mean((2, 3), keepdim=True), rtol=1e-12, atol=0)
