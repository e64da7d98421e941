"""PackedLinear (ptocr.models.packed_linear): a large linear layer (a recognizer's dictionary head)
run by oneDNN on a weight packed once, in eager float32 on the CPU; F.linear everywhere else."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ptocr.models.packed_linear import PackedLinear, packed_linear_available
from ptocr.optimize import for_inference, packed_linears

needs_kernel = pytest.mark.skipif(not packed_linear_available(), reason="this PyTorch build has no oneDNN linear")


class _Head(nn.Module):
    """A neck-sized linear (stays nn.Linear) before a dictionary-sized one (packed)."""

    def __init__(self, classes: int = 6625):
        super().__init__()
        self.mix = nn.Linear(120, 120)
        self.fc = nn.Linear(120, classes)

    def forward(self, x):
        return self.fc(self.mix(x))


def test_only_large_weights_are_packed_and_the_names_stay():
    model = _Head()
    names = set(model.state_dict())
    assert packed_linears(model) == 1
    assert type(model.fc) is PackedLinear and type(model.mix) is nn.Linear
    assert set(model.state_dict()) == names
    assert packed_linears(_Head(classes=97)) == 0  # the English dictionary's head: F.linear is faster


@needs_kernel
@pytest.mark.parametrize("shape", [(1, 40, 120), (6, 40, 120), (3, 120), (1, 1, 120)])
def test_computes_the_same_function(shape):
    plain = _Head().eval()
    model = for_inference(plain, torch.randn(1, 40, 120))
    x = torch.randn(shape)
    with torch.no_grad():
        a, b = plain(x), model(x)
        assert model.fc._applies(x) and model.fc._packed.entry is not None
    assert (a - b).abs().max() <= 1e-5 * a.abs().max()


@needs_kernel
def test_follows_the_weight_changed_in_place_or_replaced():
    model = for_inference(_Head().eval(), torch.randn(1, 40, 120))
    x = torch.randn(2, 40, 120)
    with torch.no_grad():
        model(x)
        model.fc.weight.mul_(-3)
        assert (model.fc(x) - F.linear(x, model.fc.weight, model.fc.bias)).abs().max() <= 1e-4
        model.fc.weight = nn.Parameter(torch.zeros_like(model.fc.weight), requires_grad=False)
        assert torch.equal(model.fc(x), model.fc.bias.expand(2, 40, -1))


@needs_kernel
def test_the_plain_op_runs_wherever_packing_does_not_apply():
    fc = PackedLinear.take_over(nn.Linear(120, 6625))
    x = torch.randn(2, 120)
    assert not fc._applies(x)  # autograd: the weight requires grad
    fc.requires_grad_(False)
    assert fc._applies(x)
    assert not fc._applies(x.double()) and not fc._applies(x.to("meta"))
    with torch.backends.mkldnn.flags(enabled=False):
        assert not fc._applies(x)
    with torch.no_grad():
        graph = str(torch.jit.trace(fc, x).inlined_graph)  # exports see the ordinary op
    assert "_linear_pointwise" not in graph and "linear" in graph
    bf16 = copy.deepcopy(fc).to(torch.bfloat16)
    assert not bf16._applies(x.bfloat16())
    with torch.inference_mode():
        made = PackedLinear.take_over(nn.Linear(120, 6625))  # inference tensors: no version counter
    assert not made._applies(x)
    assert made._packed.entry is None


@needs_kernel
def test_copies_and_pickles_start_without_the_packed_weight():
    model = for_inference(_Head().eval(), torch.randn(1, 40, 120))
    x = torch.randn(1, 40, 120)
    with torch.no_grad():
        ref = model(x)
        for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
            assert other.fc._packed.entry is None
            assert torch.equal(other(x), ref)


def test_refuses_what_it_cannot_take():
    with pytest.raises(ValueError, match="nn.Linear"):
        PackedLinear.take_over(nn.Bilinear(4, 4, 4))
