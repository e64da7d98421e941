"""The mapping engine: renames, drops, Linear layout by module type, strict coverage."""

import numpy as np
import pytest
import torch.nn as nn

from converter.errors import MappingError
from converter.mapping import Rule, Target, apply, plan


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)


def paddle_like(rng):
    return {
        "body.conv.weight": rng.standard_normal((4, 3, 3, 3)).astype("float32"),
        "body.conv.bias": rng.standard_normal(4).astype("float32"),
        "body.bn.weight": rng.standard_normal(4).astype("float32"),
        "body.bn.bias": rng.standard_normal(4).astype("float32"),
        "body.bn._mean": rng.standard_normal(4).astype("float32"),
        "body.bn._variance": rng.random(4).astype("float32"),
        "body.fc.weight": rng.standard_normal((4, 2)).astype("float32"),  # Paddle [in, out]
        "body.fc.bias": rng.standard_normal(2).astype("float32"),
        "aux.head.weight": rng.standard_normal((7, 7)).astype("float32"),
    }


RULES = (
    Rule(r"^aux\.", None, "training-only branch"),
    Rule(r"^body\.", "", "our model has no wrapper"),
)


def test_full_mapping_renames_transposes_and_fills_defaults():
    rng = np.random.default_rng(0)
    src = paddle_like(rng)
    result = apply(src, RULES, Target.from_module(Tiny()))
    sd = result.state_dict
    assert set(sd) == set(Tiny().state_dict())
    np.testing.assert_array_equal(sd["bn.running_mean"], src["body.bn._mean"])
    np.testing.assert_array_equal(sd["bn.running_var"], src["body.bn._variance"])
    np.testing.assert_array_equal(sd["fc.weight"], src["body.fc.weight"].T)
    np.testing.assert_array_equal(sd["conv.weight"], src["body.conv.weight"])  # conv: no transpose
    assert sd["bn.num_batches_tracked"].dtype == np.int64
    assert [e.source for e in result.dropped] == ["aux.head.weight"]
    by_src = {e.source: e for e in result.entries}
    assert by_src["body.fc.weight"].op == "linear_weight"
    assert by_src["body.conv.weight"].op is None
    assert "aux.head.weight -> <dropped>" in result.report()


def test_linear_layout_is_decided_by_module_type_not_name():
    # A square Linear would pass a shape check untransposed: only the module type tells.
    class Square(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(3, 3, bias=False)
            self.proj_conv = nn.Conv2d(3, 3, 1, bias=False)

    w = np.arange(9, dtype="float32").reshape(3, 3)
    c = np.arange(9, dtype="float32").reshape(3, 3, 1, 1)
    sd = apply({"proj.weight": w, "proj_conv.weight": c}, (), Target.from_module(Square())).state_dict
    np.testing.assert_array_equal(sd["proj.weight"], w.T)
    np.testing.assert_array_equal(sd["proj_conv.weight"], c)


def test_unplaced_source_tensor_is_named():
    rng = np.random.default_rng(0)
    src = paddle_like(rng)
    with pytest.raises(MappingError, match=r"aux\.head\.weight"):
        apply(src, RULES[1:], Target.from_module(Tiny()))  # no drop rule for aux


def test_missing_target_key_is_named():
    rng = np.random.default_rng(0)
    src = paddle_like(rng)
    del src["body.bn._variance"]
    with pytest.raises(MappingError, match=r"bn\.running_var"):
        apply(src, RULES, Target.from_module(Tiny()))


def test_shape_mismatch_names_keys_rule_and_shapes():
    rng = np.random.default_rng(0)
    src = paddle_like(rng)
    src["body.conv.weight"] = np.zeros((4, 3, 5, 5), "float32")
    with pytest.raises(MappingError) as e:
        apply(src, RULES, Target.from_module(Tiny()))
    msg = str(e.value)
    assert "body.conv.weight [4, 3, 5, 5] -> conv.weight expects [4, 3, 3, 3]" in msg
    assert "'^body\\\\.' -> ''" in msg


def test_two_sources_on_one_target_is_an_error():
    rng = np.random.default_rng(0)
    src = paddle_like(rng)
    src["conv.weight"] = src["body.conv.weight"]
    with pytest.raises(MappingError, match="more than once"):
        apply(src, RULES, Target.from_module(Tiny()))


def test_plan_is_inspectable_and_applies_each_rule_once():
    entries = plan(["head.x.head.y._mean"], (Rule(r"head\.", "neck."),))
    (e,) = entries
    assert e.target == "neck.x.head.y.running_mean"  # first occurrence only, then the BN rule
    assert len(e.rules) == 2
