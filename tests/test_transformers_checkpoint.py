"""transformers (PyPI ``transformers``, a test extra) as an independent second implementation of
the PP-OCRv6 networks, and its checkpoint folders as a source and an export target.

For each tier (tiny, small, medium; det and rec) the ptocr network in its fused form gets seeded
weights shaped like a trained model's (batch norms calibrated on the demo scene, logits spread
over the softmax / sigmoid), transformers' own class is built from the ``config.json`` ptocr
writes, the weights go across through ``converter.tables.transformers_layout``, and both run on
the demo scene's real inputs: float32 within the parity tolerance, float64 within the exact one
(``verification.parity``: a larger float64 gap is a different computation, not rounding).

Then the folder round trip both ways: ``ptocr.export.export_transformers`` writes a folder that
``from_pretrained`` loads, and ``ptocr-convert --src`` reads it back to the same tensors.
"""

from __future__ import annotations

import copy
import json
import os
import re
import stat

import numpy as np
import pytest
import torch

from converter.convert import convert
from converter.errors import FormatError, MappingError
from converter.tables.transformers_layout import LAYOUTS, layout_for_architecture
from converter.transformers_checkpoint import to_ptocr, to_transformers, transformers_config
from ptocr.architectures import get_architecture
from ptocr.demo_inputs import demo_inputs
from ptocr.dictionary import Dictionary
from ptocr.export import export_transformers
from ptocr.models.build import build_model
from verification.parity import EXACT_TOLERANCE, TOLERANCE
from verification.seeding_common import LOGIT_STD

transformers = pytest.importorskip("transformers", reason="transformers (the test extra) is not installed")

V6 = [a for lay in LAYOUTS.values() for a in lay.architectures if a.startswith("PP-OCRv6")]
SHAPES = {"det": (1, 3, 128, 192), "rec": (2, 3, 48, 160)}
REC_CLASSES = 97  # blank + 95 characters + space: a small head keeps the test quick


def _fused_cfg(name: str) -> tuple[dict, dict]:
    entry = get_architecture(name)
    cfg = copy.deepcopy(entry["model"])
    cfg["backbone"]["reparam"] = True
    if entry["task"] == "det":
        cfg["neck"]["reparam"] = True
        cfg["head"]["with_thresh"] = False
    else:
        cfg["head"]["num_classes"] = REC_CLASSES
    return entry, cfg


def _seeded_like_trained(model: torch.nn.Module, x: torch.Tensor, task: str) -> torch.nn.Module:
    """Weights by role (convs and Linears N(0, 1/fan_in), norms' scales U(0.5, 1.5), biases
    N(0, 0.1)), every batch norm's statistics those of its actual input on ``x`` (in forward
    order), the output logits rescaled to verification's LOGIT_STD."""
    g = torch.Generator().manual_seed(0)
    norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.LayerNorm)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                fan_in = m.weight[0].numel() if not isinstance(m, torch.nn.ConvTranspose2d) else m.weight[:, 0].numel()
                m.weight.normal_(0, fan_in ** -0.5, generator=g)
            elif isinstance(m, norms):
                m.weight.uniform_(0.5, 1.5, generator=g)
            else:
                continue
            if m.bias is not None:
                m.bias.normal_(0, 0.1, generator=g)

    def calibrate(bn, args):
        dims = [0] + list(range(2, args[0].dim()))
        var = args[0].double().var(dims)
        bn.running_mean.copy_(args[0].double().mean(dims))
        bn.running_var.copy_(var + var.mean())

    hooks = [m.register_forward_pre_hook(calibrate) for m in model.modules()
             if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    last = model.head.binarize.conv3 if task == "det" else model.head.fc
    logits = []
    hooks.append(last.register_forward_hook(lambda m, i, o: logits.append(o)))
    with torch.no_grad():
        model.eval()(x)
        for h in hooks:
            h.remove()
        k = LOGIT_STD["sigmoid" if task == "det" else "softmax"] / float(logits[0].std())
        last.weight.mul_(k)
        last.bias.mul_(k)
    return model


def _transformers_model(name: str, cfg: dict, tf_state: dict):
    _, layout = layout_for_architecture(name)
    config = transformers.AutoConfig.for_model(**transformers_config(name, cfg))
    model = getattr(transformers, layout.model_class)(config).eval()
    if next(iter(tf_state.values())).dtype == np.float64:
        model.double()
    result = model.load_state_dict({k: torch.from_numpy(v) for k, v in tf_state.items()}, strict=False)
    assert result.unexpected_keys == []
    assert all(k.endswith("num_batches_tracked") for k in result.missing_keys), result.missing_keys
    return model


def _paddle_block_eps(tm) -> None:
    # PaddleOCR's LightSVTR blocks normalize with eps 1e-5 and its final norm with 1e-6 (the
    # official small rec program stores both); transformers' config has one layer_norm_eps
    # (1e-6) for all. Set per module so that the two implementations compute the same function.
    for block in getattr(getattr(tm.head, "encoder", None), "svtr_block", []):
        block.layer_norm1.eps = block.layer_norm2.eps = 1e-5


@pytest.fixture(scope="module", params=V6)
def pair(request):
    name = request.param
    entry, cfg = _fused_cfg(name)
    xs = [torch.from_numpy(x) for x in demo_inputs({**entry, "model": cfg}, SHAPES[entry["task"]])]
    model = _seeded_like_trained(build_model(cfg), xs[0], entry["task"])
    mt, _ = layout_for_architecture(name)
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    tm = _transformers_model(name, cfg, to_transformers(state, mt))
    _paddle_block_eps(tm)
    # float64 twins, the layout's operations (fold_bn, compose) done in float64 too: then only
    # the computation itself can differ
    m64 = copy.deepcopy(model).double()
    state64 = {k: v.numpy() for k, v in m64.state_dict().items() if not k.endswith("num_batches_tracked")}
    t64 = _transformers_model(name, cfg, to_transformers(state64, mt)).double()
    _paddle_block_eps(t64)
    return name, entry, cfg, model, tm, xs, m64, t64


def _assert_same_function(name, model, tm, m64, t64, xs) -> None:
    """float32 within the parity tolerance, float64 within the exact one, on every input."""
    with torch.no_grad():
        for x in xs:
            want = model(x)
            got = tm(x).last_hidden_state
            assert got.shape == want.shape
            assert (got - want).abs().max().item() <= TOLERANCE, name
            assert want.std().item() > 100 * TOLERANCE  # outputs that differ between inputs, not flat
            assert (t64(x.double()).last_hidden_state - m64(x.double())).abs().max().item() <= EXACT_TOLERANCE, name


def test_transformers_computes_the_same_function(pair):
    name, entry, _, model, tm, xs, m64, t64 = pair
    _assert_same_function(name, model, tm, m64, t64, xs)


def test_transformers_state_reads_back_to_the_same_tensors(pair):
    name, _, _, model, tm, *_ = pair
    mt, _ = layout_for_architecture(name)
    back = to_ptocr({k: v.numpy() for k, v in tm.state_dict().items()}, mt)
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    back = {k: np.ascontiguousarray(v.T) if k in linear else v for k, v in back.items()}  # readers: Paddle [in, out]
    want = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert back.keys() == want.keys()
    # A RepLKPAN depthwise x pointwise pair comes back as another factorization of the same
    # product (the split is not unique): compared through transformers' dense kernel below.
    factored = re.compile(r"^neck\.(inp_conv|pan_lat_conv)\.\d+\.(dw\.lk_origin|pw)\.")
    for k, v in back.items():
        if not factored.match(k):
            # fold_bn of the identity norms the export wrote: float32 rounding at most
            np.testing.assert_allclose(v, want[k], rtol=1e-6, atol=1e-7, err_msg=k)
    again, first = to_transformers(back, mt), to_transformers(want, mt)
    for k, v in again.items():
        np.testing.assert_allclose(v, first[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_a_folder_round_trip_both_ways(pair, tmp_path):
    name, entry, cfg, model, _, xs, *_ = pair
    dictionary = None
    config = {"architecture": name, "task": entry["task"], "model": cfg}
    if entry["task"] == "rec":
        dictionary = Dictionary(tuple(chr(0x21 + i) for i in range(REC_CLASSES - 2)), True)
    folder = export_transformers(model, config, dictionary, tmp_path / "tf")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["config.json", "model.safetensors"] + (["preprocessor_config.json"] if dictionary else []))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left

    cls = getattr(transformers, json.loads((folder / "config.json").read_text())["architectures"][0])
    tm, info = cls.from_pretrained(str(folder), local_files_only=True, use_kernels=False, output_loading_info=True)
    assert info["missing_keys"] == set() or not [k for k in info["missing_keys"] if "num_batches" not in k]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    _paddle_block_eps(tm.eval())
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask for p in folder.iterdir())
    conv = convert(folder)
    assert conv.arch_name == name and conv.form.startswith("fused") and conv.source.format == "transformers"
    if dictionary is not None:
        assert conv.dictionary.characters == dictionary.characters and conv.dictionary.use_space_char
        assert conv.dictionary.source.endswith("tf/preprocessor_config.json")  # not an inference.yml it lacks
        (folder / "preprocessor_config.json").write_text("[1, 2]")
        with pytest.raises(FormatError, match="preprocessor_config.json: expected a JSON object, found list"):
            convert(folder)
    with torch.no_grad():
        for x in xs:
            want = model(x)
            assert (tm(x).last_hidden_state - want).abs().max().item() <= TOLERANCE
            assert (conv.model(x) - want).abs().max().item() <= TOLERANCE


def test_an_unknown_model_type_is_refused_by_name(tmp_path):
    from safetensors.numpy import save_file

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    save_file({"w": np.zeros(2, np.float32)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(MappingError, match="'bert' is not one ptocr reads"):
        convert(tmp_path)


def test_a_half_precision_checkpoint_is_refused(tmp_path):
    from safetensors.numpy import save_file

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "pp_ocrv6_tiny_rec"}))
    save_file({"head.fc1.weight": np.zeros((2, 2), np.float16)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(FormatError, match="float16"):
        convert(tmp_path)


def test_a_dense_kernel_that_is_no_depthwise_pointwise_product_is_refused():
    _, cfg = _fused_cfg("PP-OCRv6_medium_det")
    model = build_model(cfg)
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    tf = to_transformers(state, "pp_ocrv6_medium_det")
    key = "model.neck.input_feature_projection_convolution.0.weight"
    tf[key] = np.random.default_rng(0).standard_normal(tf[key].shape).astype(np.float32)  # full rank
    with pytest.raises(MappingError, match="not a depthwise kernel times a pointwise one"):
        to_ptocr(tf, "pp_ocrv6_medium_det")


def test_a_missing_tensor_is_named():
    _, cfg = _fused_cfg("PP-OCRv6_tiny_rec")
    state = {k: v.numpy() for k, v in build_model(cfg).state_dict().items() if not k.endswith("num_batches_tracked")}
    tf = to_transformers(state, "pp_ocrv6_tiny_rec")
    del tf["head.norm1.running_var"]
    with pytest.raises(MappingError, match="head.norm1.running_var"):
        to_ptocr(tf, "pp_ocrv6_tiny_rec")


# ---- PP-OCRv5 mobile (ptocr's ch_PP-OCRv4 det / rec networks): transformers keeps the rep
# layers' training branches. Its seeded fp32 outputs are too rounding-sensitive to compare at
# 1e-4 (ptocr's own fused and unfused forms differ by ~1e-4 there), so the function is compared
# in float64, where only a different computation shows.

V5 = ["ch_PP-OCRv4_det", "ch_PP-OCRv4_rec"]


def _output64(tm, x: torch.Tensor) -> torch.Tensor:
    """transformers' output for a float64 comparison: the v5 recognizers' head takes its softmax in
    float32 (``F.softmax(..., dtype=torch.float32)``), which on logits of a few hundred (the seeded
    ones') moves probabilities by 1e-6 as the seeding varies with the thread count; their logits
    are taken before it and the softmax redone in float64."""
    linear = getattr(getattr(tm, "head", None), "head", None)
    if not isinstance(linear, torch.nn.Linear):
        return tm(x).last_hidden_state
    logits = []
    handle = linear.register_forward_hook(lambda module, args, out: logits.append(out))
    try:
        tm(x)
    finally:
        handle.remove()
    return torch.softmax(logits[0], dim=-1)


def _transformers_constants(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with transformers' exact constants where ptocr uses the Paddle programs' float32
    ones (squeeze-excitation gate slope 1/6 or 0.2, attention scale head_dim ** -0.5): the one
    known difference of the two implementations, set aside for a float64 comparison."""
    from ptocr.models.layers import SEModule
    from ptocr.models.necks.svtr import Attention

    for m in model.modules():
        if isinstance(m, SEModule):
            m.slope = 1 / 6 if abs(m.slope - 1 / 6) < 1e-6 else 0.2
        elif isinstance(m, Attention):
            m.scale = m.head_dim ** -0.5
    return model


def _seeded_case(name: str, shapes: dict):
    """(architecture entry, model config with a small recognizer head and no DB threshold branch,
    demo inputs of ``shapes[task]``, the network seeded like a trained one)."""
    entry = get_architecture(name)
    cfg = copy.deepcopy(entry["model"])
    if entry["task"] == "rec":
        cfg["head"]["num_classes"] = REC_CLASSES
    else:
        cfg["head"]["with_thresh"] = False
    xs = [torch.from_numpy(x) for x in demo_inputs({**entry, "model": cfg}, shapes[entry["task"]])]
    return entry, cfg, xs, _seeded_like_trained(build_model(cfg), xs[0], entry["task"])


@pytest.mark.parametrize("name", V5)
def test_v5_mobile_through_transformers_both_ways(name, tmp_path):
    from ptocr.models.reparam import fuse_reparameterizable

    entry, cfg, xs, model = _seeded_case(name, SHAPES)  # the training form
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # the rep layers' learnable affines away from (1, 0)
        for n, p in model.named_parameters():
            if n.endswith("lab.scale"):
                p.uniform_(0.8, 1.2, generator=g)
            elif n.endswith("lab.bias"):
                p.uniform_(-0.1, 0.1, generator=g)
    mt, _ = layout_for_architecture(name)
    unfused = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    m64 = _transformers_constants(copy.deepcopy(model).double())
    fused64 = fuse_reparameterizable(copy.deepcopy(m64))
    for source in (m64, fused64):  # branches as they are, and fused ones written as branches
        state = {k: v.numpy() for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
        tm = _transformers_model(name, cfg, to_transformers(state, mt, unfused_shapes=unfused))
        _paddle_block_eps(tm)
        with torch.no_grad():
            for x in xs:
                assert (_output64(tm, x.double()) - m64(x.double())).abs().max().item() <= EXACT_TOLERANCE

    fused = fuse_reparameterizable(copy.deepcopy(model))
    config = {"architecture": name, "task": entry["task"],
              "model": {**cfg, "backbone": {**cfg["backbone"], "reparam": True}}}
    dictionary = Dictionary(tuple(chr(0x21 + i) for i in range(REC_CLASSES - 2)), True) if entry["task"] == "rec" else None
    folder = export_transformers(fused, config, dictionary, tmp_path / "tf")
    cls = getattr(transformers, json.loads((folder / "config.json").read_text())["architectures"][0])
    _, info = cls.from_pretrained(str(folder), local_files_only=True, use_kernels=False, output_loading_info=True)
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    conv = convert(folder)
    assert conv.arch_name == name and conv.form.startswith("unfused")
    # Read back as branches (the fused conv in the first, the rest zero); fused again, they are
    # the written tensors up to float32 rounding (the identity norms' scale is 1 in float32 only).
    back = fuse_reparameterizable(copy.deepcopy(conv.model)).state_dict()
    want = fused.state_dict()
    assert back.keys() == want.keys()
    for k, v in want.items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(back[k], v, rtol=1e-6, atol=1e-7, msg=k)


# ---- PP-OCRv5 server (PPHGNetV2_B4 + LKPAN / PFHeadLocal, or + the SVTR encoder and CTC head):
# ptocr's network has one form, every batch norm kept as transformers keeps it, so the layout is
# renames only and the tensors come back unchanged. Inputs small: the networks are big.

V5_SERVER = [a for lay in LAYOUTS.values() for a in lay.architectures if a.startswith("PP-OCRv5_server")]
SERVER_SHAPES = {"det": (1, 3, 128, 160), "rec": (2, 3, 48, 160)}


@pytest.mark.parametrize("name", V5_SERVER)
def test_v5_server_through_transformers_both_ways(name, tmp_path):
    entry, cfg, xs, model = _seeded_case(name, SERVER_SHAPES)
    mt, _ = layout_for_architecture(name)
    state = {k: v.numpy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    tm = _transformers_model(name, cfg, to_transformers(state, mt))
    _paddle_block_eps(tm)
    # float64: the recognizer's attention scale as transformers has it (_transformers_constants);
    # then the logits agree to float64 rounding, and what is left (~1e-7) is transformers' CTC
    # head taking its softmax in float32 (``F.softmax(..., dtype=torch.float32)``), as in every
    # transformers recognizer above.
    m64 = _transformers_constants(copy.deepcopy(model).double())
    state64 = {k: v.numpy() for k, v in m64.state_dict().items() if not k.endswith("num_batches_tracked")}
    t64 = _transformers_model(name, cfg, to_transformers(state64, mt))
    _paddle_block_eps(t64)
    _assert_same_function(name, model, tm, m64, t64, xs)

    back = to_ptocr({k: v.numpy() for k, v in tm.state_dict().items()}, mt)
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert back.keys() == state.keys()
    for k, v in back.items():  # renames: the same tensors (Linear weights in Paddle's [in, out])
        np.testing.assert_array_equal(v.T if k in linear else v, state[k], err_msg=k)

    config = {"architecture": name, "task": entry["task"], "model": cfg}
    dictionary = Dictionary(tuple(chr(0x21 + i) for i in range(REC_CLASSES - 2)), True) if entry["task"] == "rec" else None
    folder = export_transformers(model, config, dictionary, tmp_path / "tf")
    cls = getattr(transformers, json.loads((folder / "config.json").read_text())["architectures"][0])
    loaded, info = cls.from_pretrained(str(folder), local_files_only=True, use_kernels=False, output_loading_info=True)
    assert not [k for k in info["missing_keys"] if "num_batches" not in k]
    assert not info["unexpected_keys"] and not info["mismatched_keys"]
    _paddle_block_eps(loaded.eval())
    conv = convert(folder)
    assert conv.arch_name == name and conv.source.format == "transformers"
    assert conv.form == ("inference head" if entry["task"] == "det" else None)
    if dictionary is not None:
        assert conv.dictionary.characters == dictionary.characters and conv.dictionary.use_space_char
    back, want = conv.model.state_dict(), model.state_dict()
    assert back.keys() == want.keys()
    for k, v in want.items():
        torch.testing.assert_close(back[k], v, rtol=0, atol=0, msg=k)
    with torch.no_grad():
        for x in xs:
            assert (loaded(x).last_hidden_state - model(x)).abs().max().item() <= TOLERANCE


@pytest.mark.parametrize("part, key, value, reason", [
    ("head", "output", "cbn", "head output 'cbn'"),  # the v4 server program's map: transformers returns the mean
    ("neck", "intracl", False, "neck intracl False"),
    ("backbone", "use_lab", True, "zero padding"),  # B0-B3's affines: the stem pool's padding then differs
])
def test_a_v5_server_network_transformers_cannot_hold_is_refused_by_name(part, key, value, reason):
    cfg = copy.deepcopy(get_architecture("PP-OCRv5_server_det")["model"])
    cfg[part][key] = value
    with pytest.raises(MappingError, match=re.escape(reason)):
        transformers_config("PP-OCRv5_server_det", cfg)
