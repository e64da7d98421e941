"""What every registered architecture owes the rest of the house, checked over the registry:
a new family is tested here by its entry alone (its own numerics go in its own test file).

- ``ptocr.create_model`` builds it, on the meta device too (how converted files are loaded);
- its outputs keep the task's contract (det: a probability map the input's size; rec: N x T x C
  class probabilities; cls: N x C probabilities; unwarp: an N x 2 sampling mesh);
- fusing its re-parameterizable layers (``fuse_reparameterizable``) computes the same function;
- it survives a file round trip (``converter.writer`` -> ``ptocr.load``) tensor for tensor.
"""

from __future__ import annotations

import copy

import pytest
import torch

import ptocr
from converter.writer import write_converted
from ptocr.architectures import get_architecture
from ptocr.models.build import build_model
from ptocr.models.reparam import fuse_reparameterizable
from ptocr.optimize import example_input

ARCHS = ptocr.list_architectures()
SMALL_HEAD = 40  # recognizers: blank + 38 characters + space, to keep the test small


def _small(name: str) -> tuple[dict, dict]:
    """(architecture entry, model config) with a small recognizer head."""
    entry = get_architecture(name)
    cfg = copy.deepcopy(entry["model"])
    if entry["task"] == "rec":
        cfg["head"]["num_classes"] = SMALL_HEAD
    if entry["task"] == "unwarp":  # every layer, at a 16th of the pixels (the page is resampled to it)
        cfg["backbone"]["input_size"] = [176, 120]
    return entry, cfg


def _randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Batch-norm statistics and affines away from their identity init, so folding is exercised."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return model.eval()


def test_the_registry_lists_every_family():
    assert len(ARCHS) == len(set(ARCHS)) > 0
    assert {get_architecture(a)["task"] for a in ARCHS} == {"det", "rec", "cls", "unwarp"}


@pytest.mark.parametrize("name", ARCHS)
def test_create_model_builds_it_and_meta_builds_the_same_keys(name):
    model = ptocr.create_model(name)
    assert not model.training
    meta = build_model(get_architecture(name)["model"], device="meta")
    assert {k: tuple(v.shape) for k, v in meta.state_dict().items()} == {
        k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ARCHS)
def test_outputs_keep_the_task_contract(name):
    entry, cfg = _small(name)
    model = _randomized(build_model(cfg))
    x = example_input(entry).repeat(2, 1, 1, 1)
    with torch.no_grad():
        y = model(x)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    if entry["task"] == "det":
        assert tuple(y.shape) == (2, 1, *x.shape[2:])
        assert ((y >= 0) & (y <= 1)).all()
    elif entry["task"] == "unwarp":  # a sampling mesh at 1/16 of the network's own input size (ceil)
        assert tuple(y.shape) == (2, 2, *(-(-s // 16) for s in model.backbone.input_size))
    else:
        classes = cfg["head"]["num_classes"]
        assert y.shape[0] == 2 and y.shape[-1] == classes and y.dim() == (3 if entry["task"] == "rec" else 2)
        torch.testing.assert_close(y.sum(-1), torch.ones(y.shape[:-1]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ARCHS)
def test_fusing_rep_layers_computes_the_same_function(name):
    entry, cfg = _small(name)
    model = _randomized(build_model(cfg)).double()
    fused = fuse_reparameterizable(copy.deepcopy(model))
    x = example_input(entry, torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=0, atol=1e-10)
    assert fuse_reparameterizable(fused) is fused  # a second pass changes nothing
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ARCHS)
def test_a_written_file_loads_back_tensor_for_tensor(name, tmp_path):
    entry, cfg = _small(name)
    model = _randomized(build_model(cfg))
    config = {"architecture": name, "task": entry["task"], "model": cfg,
              "preprocess": entry.get("preprocess", {}), "postprocess": entry.get("postprocess", {})}
    text = None
    if entry["task"] == "rec":
        chars = [chr(0x41 + i) for i in range(SMALL_HEAD - 2)]  # + blank + space = SMALL_HEAD
        text = "\n".join(chars) + "\n"
        config["dictionary"] = {"use_space_char": True, "num_characters": len(chars)}
    write_converted(model.state_dict(), config, text, tmp_path / "m.safetensors")
    loaded = ptocr.load(tmp_path / "m.safetensors", fuse=False)
    assert loaded.task == entry["task"] and loaded.config["architecture"] == name
    want, got = model.state_dict(), loaded.model.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_an_architecture_name_in_the_wrong_case_is_suggested_first():
    # Matched case-sensitively, 'pp-ocrv5_server_rec' suggested ch_ppocr_server_v2.0_rec first.
    from ptocr.architectures import canonical_name
    from ptocr.errors import ArchitectureError

    with pytest.raises(ArchitectureError, match=r"did you mean PP-OCRv5_server_rec,"):
        canonical_name("pp-ocrv5_server_rec")
