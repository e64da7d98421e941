"""ptocr's PP-OCRv6 names against PaddleX's: every PaddleOCR training name PaddleX 3.7.2's own
converter knows (tests/fixtures/ppocrv6_paddlex_names.json, made by ``python -m
tools.paddlex_v6_names`` from a PaddleX install) goes through ptocr's chain (the family's
mapping table to a ptocr training-form key, ptocr's fusion, the transformers layout) to the
transformers tensor PaddleX puts it in, and what PaddleX drops as training-only is dropped.

Through fusion a tensor has no single counterpart: a name whose ptocr key survives fusion must
reach exactly PaddleX's key (found by perturbing that tensor alone); one inside a fused layer
must reach PaddleX's transformers module (perturbing the fused layer's tensors).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest

from converter.mapping import plan
from converter.tables import get_table
from converter.tables.transformers_layout import layout_for_architecture
from converter.transformers_checkpoint import to_transformers
from ptocr.architectures import get_architecture
from ptocr.models.build import build_model
from ptocr.models.reparam import fuse_reparameterizable

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "ppocrv6_paddlex_names.json").read_text(encoding="utf-8"))
REPEATED_BLOCK = re.compile(r"^backbone\.blocks(_s)?\d+\.([2-9]|\d\d+)\.")  # the fixture keeps blocks 0, 1


def _our_key(name: str, rules, keys) -> str | None:
    """``name`` through the table as the converter maps it (an alias spelling only where needed)."""
    target = plan([name], rules)[0].target
    if target is None or target in keys:
        return target
    for rule in rules:
        if rule.alias and rule.regex.search(target):
            return rule.regex.sub(rule.replacement, target, count=1)
    return target


def _module(key: str) -> str:
    return key.rsplit(".", 1)[0]


class _Chain:
    """ptocr's fused state -> transformers, and which transformers tensors a ptocr tensor feeds."""

    def __init__(self, arch: str, cfg: dict):
        fused = fuse_reparameterizable(build_model(cfg).eval())  # the training form, fused as loading does
        self.state = {k: v.numpy().astype(np.float64) for k, v in fused.state_dict().items()
                      if not k.endswith("num_batches_tracked")}
        self.model_type, _ = layout_for_architecture(arch)
        self.base = to_transformers(self.state, self.model_type)

    def fed_by(self, keys: list[str]) -> set[str]:
        state = dict(self.state)
        for k in keys:
            state[k] = state[k] + 0.5
        out = to_transformers(state, self.model_type)
        return {k for k, v in out.items() if not np.array_equal(v, self.base[k])}

    def owner(self, key: str) -> list[str]:
        """The fused tensors of the layer a training-form ``key`` is fused into."""
        parts = key.split(".")[:-1]
        while parts:
            prefix = ".".join(parts) + "."
            inside = [k for k in self.state if k.startswith(prefix)]
            if inside:
                return inside
            parts.pop()
        raise AssertionError(f"{key}: no fused layer holds it")


@pytest.mark.parametrize("arch", sorted(FIXTURE["models"]))
def test_our_chain_puts_every_paddle_name_where_paddlex_does(arch):
    names = FIXTURE["models"][arch]
    entry = get_architecture(arch)
    cfg = copy.deepcopy(entry["model"])
    if entry["task"] == "det":
        cfg["head"]["with_thresh"] = True  # the training head
    else:
        cfg["head"]["num_classes"] = 40  # the class count changes no name
    training = {k for k in build_model(cfg, device="meta").state_dict() if not k.endswith("num_batches_tracked")}
    rules = get_table(entry["family"])
    chain = _Chain(arch, {**cfg, "head": {**cfg["head"], "with_thresh": False}} if entry["task"] == "det" else cfg)

    problems, reached = [], set()
    for name in names["dropped"]:
        ours = _our_key(name, rules, training)
        # the DB head's threshold branch is ptocr's training-head form (transformers has none)
        if ours is not None and not (ours.startswith("head.thresh.") and ours in training):
            problems.append(f"{name}: PaddleX drops it, ours maps it to {ours}")
    for kind in ("renamed", "fused"):
        for name, want in names[kind].items():
            ours = _our_key(name, rules, training)
            if ours not in training:
                problems.append(f"{name}: ours maps it to {ours}, no training-form key")
                continue
            reached.add(ours)
            if kind == "renamed" and ours in chain.state:
                got = chain.fed_by([ours])
                if got != {want}:
                    problems.append(f"{name} -> {ours} feeds {sorted(got)}, PaddleX: {want}")
            else:
                modules = {_module(k) for k in chain.fed_by(chain.owner(ours))}
                if (want if kind == "fused" else _module(want)) not in modules:
                    problems.append(f"{name} -> {ours} feeds {sorted(modules)}, PaddleX: {want}")
    unreached = sorted(k for k in training - reached if not REPEATED_BLOCK.match(k) and not k.startswith("head.thresh."))
    assert not problems and not unreached, (problems[:20], unreached[:20])


def test_the_fixture_says_how_it_was_made():
    assert FIXTURE["made_by"].startswith("python -m tools.paddlex_v6_names") and FIXTURE["paddlex"] == "3.7.2"
    assert sorted(FIXTURE["models"]) == sorted(f"PP-OCRv6_{t}_{k}" for t in ("tiny", "small", "medium") for k in ("det", "rec"))


@pytest.mark.parametrize("arch", sorted(FIXTURE["settings"]))
def test_post_processing_and_rec_input_are_paddlex_inference_yml_values(arch):
    # (The detectors' resize is not compared: inference.yml resizes the long side to 960,
    # preprocessor_config.json limits the short side to 736; ptocr keeps PaddleOCR's 960 max.)
    paddlex = FIXTURE["settings"][arch]["inference.yml"]
    entry = get_architecture(arch)
    if entry["task"] == "det":
        assert {k: entry["postprocess"][k] for k in paddlex["postprocess"]} == paddlex["postprocess"]
    else:
        assert list(entry["preprocess"]["image_shape"]) == paddlex["RecResizeImg"]["image_shape"]
