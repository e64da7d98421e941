"""The fine-tuning loop a timm / docTR user walks: create_model(pretrained) -> a new head ->
train steps (autocast, a frozen backbone) -> ptocr.save_model -> ptocr.load / OCR / export."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ptocr
from ptocr.errors import PtocrError

CHARS = list("0123456789abcdefghijklmnopqrstuvwxyz")


def _ctc_steps(net: nn.Module, steps: int = 2, width: int = 96) -> None:
    """A few AdamW steps of torch's CTC loss on the training-mode logits, under bfloat16 autocast."""
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], 1e-3)
    net.train()
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = net(torch.rand(2, 3, 48, width) * 2 - 1)
        log_probs = logits.float().log_softmax(-1).transpose(0, 1)
        targets = torch.randint(1, logits.shape[-1], (2, 4))
        loss = F.ctc_loss(log_probs, targets, torch.full((2,), log_probs.shape[0]), torch.full((2,), 4))
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()


@pytest.fixture(scope="module")
def v4_rec(shared_dir):
    return shared_dir / "paddle_models" / "ch_PP-OCRv4_rec_infer"


def test_pretrained_with_num_classes_replaces_only_the_last_linear(v4_rec):
    # Was refused ("num_classes goes with pretrained=False"): a new dictionary meant no pretrained backbone.
    trained = ptocr.create_model("ch_PP-OCRv4_rec", pretrained=v4_rec)
    net = ptocr.create_model("ch_PP-OCRv4_rec", pretrained=v4_rec, num_classes=len(CHARS) + 2)
    assert net.head.fc.out_features == net.head.out_channels == len(CHARS) + 2
    assert net.config["model"]["head"]["num_classes"] == len(CHARS) + 2 and net.dictionary is None
    kept = {k: v for k, v in trained.state_dict().items() if not k.startswith("head.fc.")}
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in kept.items())
    with pytest.raises(PtocrError, match="no class count"):
        ptocr.create_model("ch_ppocr_mobile_v2.0_det", num_classes=3)


def test_a_fine_tuned_recognizer_saves_and_loads_back(v4_rec, tmp_path):
    torch.manual_seed(0)
    net = ptocr.create_model("ch_PP-OCRv4_rec", pretrained=v4_rec, num_classes=len(CHARS) + 2)
    net.backbone.conv1.requires_grad_(False)  # a frozen part trains alongside the rest
    frozen = net.backbone.conv1.conv.weight.clone()
    _ctc_steps(net)
    assert torch.equal(net.backbone.conv1.conv.weight, frozen)
    dst = tmp_path / "mine.safetensors"
    with pytest.raises(PtocrError, match="needs its dictionary"):
        ptocr.save_model(net, dst)
    with pytest.raises(PtocrError, match="does not fit"):
        ptocr.save_model(net, dst, dictionary=CHARS[:-1])
    ptocr.save_model(torch.nn.DataParallel(net), dst, dictionary=CHARS)  # a wrapper is unwrapped
    assert (tmp_path / "mine.dict.txt").read_text() == "".join(c + "\n" for c in CHARS)
    assert json.loads((tmp_path / "mine.config.json").read_text())["dictionary"]["num_characters"] == len(CHARS)
    x = torch.rand(3, 3, 48, 200) * 2 - 1
    with torch.no_grad():
        want = net(x)
        plain = ptocr.load(dst, optimize=False)
        assert torch.equal(plain.model(x), want)
        fast = ptocr.load(dst)  # batch norms folded, channels-last: the same function to rounding
        assert (fast.model(x) - want).abs().max() <= 1e-4
    assert fast.dictionary.classes[1:-1] == CHARS and isinstance(fast(_crop())[0], str)
    with pytest.raises(PtocrError, match="exists"):
        ptocr.save_model(net, dst, dictionary=CHARS)
    with pytest.raises(PtocrError, match="optimized"):
        ptocr.save_model(fast.model, tmp_path / "again.safetensors", config=fast.config, dictionary=CHARS)


def _crop():
    return (torch.rand(32, 100, 3) * 255).to(torch.uint8).numpy()


def test_a_detector_trained_with_its_new_threshold_branch_saves_and_loads(shared_dir, tmp_path):
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fresh threshold branch's warning: tested elsewhere
        net = ptocr.create_model("ch_PP-OCRv4_det", pretrained=shared_dir / "paddle_models/ch_PP-OCRv4_det_infer")
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], 1e-3)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    net.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        maps = net(x)["maps"].float()
    F.binary_cross_entropy(maps.clamp(1e-6, 1 - 1e-6), (torch.rand_like(maps) > 0.5).float()).backward()
    opt.step()
    net.eval()
    # Was refused by ptocr.load: the inference program's config says with_thresh=False.
    dst = ptocr.save_model(net, tmp_path / "det.safetensors")
    loaded = ptocr.load(dst)
    assert loaded.config["model"]["head"]["with_thresh"] is True
    with torch.no_grad():
        assert (loaded.model(x) - net(x)).abs().max() <= 1e-4
    assert ptocr.create_model("ch_PP-OCRv4_det", pretrained=dst).head.thresh is not None  # resumes training


def test_a_fresh_classifier_saves_with_its_architecture_settings(tmp_path):
    torch.manual_seed(0)
    net = ptocr.create_model("ch_ppocr_mobile_v2.0_cls").train()
    for _ in range(2):  # train -> eval -> train: batch statistics then running statistics
        F.cross_entropy(net(torch.rand(4, 3, 48, 192) * 2 - 1), torch.tensor([0, 1, 0, 1])).backward()
    net.eval()
    dst = ptocr.save_model(net, tmp_path / "cls.safetensors")
    loaded = ptocr.load(dst, optimize=False)
    assert loaded.config["preprocess"] == net.config["preprocess"] and loaded.task == "cls"
    x = torch.rand(2, 3, 48, 192) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded.model(x), net(x))
    with pytest.raises(PtocrError, match="no dictionary"):
        ptocr.save_model(net, tmp_path / "cls2.safetensors", dictionary=CHARS)
    with pytest.raises(PtocrError, match="create_model"):
        ptocr.save_model(nn.Linear(2, 2), tmp_path / "x.safetensors")
