"""PP-OCRv6's own numerics: the re-parameterizations its layers rely on, the tiers' sizes, and
training checkpoints under PaddleOCR 3.7's structured names converting through the mapping table.

(Every tier's function is checked against transformers' independent implementation in
test_transformers_checkpoint.py, and the small tier against the official trained ONNX files in
the ONNX tests; the registry-wide tests build, fuse and round-trip every entry.)
"""

from __future__ import annotations

import copy
import pickle
import re

import numpy as np
import pytest
import torch

from converter.convert import convert
from ptocr.architectures import get_architecture
from ptocr.models.backbones.pplcnetv4 import RepDWConv
from ptocr.models.build import build_model
from ptocr.models.necks.replk import DILATED_BRANCHES, DilatedReparamBlock

# tiny's CTC head in PaddleOCR: guide_layer = Sequential(Conv1D, BN, Hardswish, Conv1D, BN), fc1, fc2
GUIDE_HEAD_NAMES = {"conv1": "guide_layer.0", "norm1": "guide_layer.1", "conv2": "guide_layer.3",
                    "norm2": "guide_layer.4", "fc": "fc2"}
V6 = [f"PP-OCRv6_{tier}_{task}" for tier in ("tiny", "small", "medium") for task in ("det", "rec")]


def _random_norms(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
    return module.eval()


@pytest.mark.parametrize("kernel", sorted(DILATED_BRANCHES))
def test_dilated_branches_merge_into_one_large_kernel(kernel):
    # Each dilated k x k branch is a sparse span x span kernel centred in the large one.
    block = _random_norms(DilatedReparamBlock(6, kernel)).double()
    x = torch.randn(2, 6, 23, 17, dtype=torch.float64)
    with torch.no_grad():
        want = block(x)
        block.reparameterize()
        assert block.fused and list(dict(block.named_parameters())) == ["lk_origin.weight", "lk_origin.bias"]
        torch.testing.assert_close(block(x), want, rtol=0, atol=1e-12)


def test_rep_dw_conv_folds_its_identity_branch():
    conv = _random_norms(RepDWConv(5)).double()
    x = torch.randn(1, 5, 9, 11, dtype=torch.float64)
    with torch.no_grad():
        want = conv(x)
        conv.reparameterize()
        torch.testing.assert_close(conv(x), want, rtol=0, atol=1e-12)


def test_tier_sizes_are_the_released_ones():
    # PaddleOCR 3.7's release: tiny 1.5M, small 7.7M, medium 34.5M parameters (det + rec, the
    # training structures, recognizers with the 18710-class head, tiny's 6906).
    released = {"tiny": 1.5e6, "small": 7.7e6, "medium": 34.5e6}
    for tier, count in released.items():
        total = sum(sum(p.numel() for p in build_model(get_architecture(f"PP-OCRv6_{tier}_{task}")["model"],
                                                       device="meta").parameters())
                    for task in ("det", "rec"))
        assert abs(total - count) <= 0.05 * count, (tier, total)


def _paddle_names(model: torch.nn.Module, task: str) -> dict[str, np.ndarray]:
    """``model``'s state dict as a PaddleOCR 3.7 training checkpoint names and lays it out: batch-norm
    statistics ``_mean``/``_variance``, Linear weights [in, out], the recognizer's neck and head inside
    MultiHead's CTC branch (tiny's guide layer a Sequential, its class layer ``fc2``), plus the NRTR branch training keeps."""
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    out = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        a = v.numpy().T.copy() if k in linear else v.numpy()
        name = k.replace(".running_mean", "._mean").replace(".running_var", "._variance")
        if task == "rec":
            name = name.replace("neck.", "head.ctc_encoder.", 1) if name.startswith("neck.") else name
            if name.startswith("head.") and not name.startswith("head.ctc_encoder."):
                name = "head.ctc_head." + name[len("head."):]
                if hasattr(model.head, "fc1"):  # tiny's guide layer is a Sequential; fc is fc2
                    name = re.sub(r"^head\.ctc_head\.(conv1|norm1|conv2|norm2|fc)\.",
                                  lambda m: f"head.ctc_head.{GUIDE_HEAD_NAMES[m.group(1)]}.", name)
        out[name] = a
    if task == "rec":
        out["head.before_gtc.1.fc.weight"] = np.zeros((4, 3), np.float32)
        out["head.gtc_head.tgt_word_prj.weight"] = np.zeros((3, 5), np.float32)
    return out


@pytest.mark.parametrize("name", V6)
def test_a_training_checkpoint_converts_by_paddle_names(name, tmp_path):
    entry = get_architecture(name)
    cfg = copy.deepcopy(entry["model"])
    task = entry["task"]
    dictionary = None
    if task == "rec":
        cfg["head"]["num_classes"] = 40
        dictionary = tmp_path / "dict.txt"
        dictionary.write_text("".join(chr(0x41 + i) + "\n" for i in range(38)), encoding="utf-8")
    model = _random_norms(build_model(cfg))  # the training structure: every branch unfused
    ckpt = tmp_path / "train" / "best_accuracy.pdparams"
    ckpt.parent.mkdir()
    ckpt.write_bytes(pickle.dumps(_paddle_names(model, task), protocol=4))

    conv = convert(ckpt, dictionary=dictionary)
    assert conv.arch_name == name and conv.form.startswith("unfused")
    assert sorted(e.source for e in conv.mapping.dropped) == (
        ["head.before_gtc.1.fc.weight", "head.gtc_head.tgt_word_prj.weight"] if task == "rec" else [])
    x = torch.randn(1, 3, 64, 96) if task == "det" else torch.randn(1, 3, 48, 96)
    with torch.no_grad():
        torch.testing.assert_close(conv.model.eval()(x), model(x), rtol=0, atol=0)
