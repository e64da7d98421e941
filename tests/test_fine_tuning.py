"""Fine-tuning what ``ptocr.create_model`` builds: every trainable parameter gets a gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import ptocr


@pytest.mark.parametrize("name", ["ch_PP-OCRv4_rec", "ch_PP-OCRv3_rec"])
def test_a_ctc_loss_trains_the_backbone_too(name):
    # PaddleOCR's SVTR neck stops the CTC gradient at the backbone for its GTC branch; a network
    # trained without that branch (MultiHeadTraining adds it) must let the CTC gradient through.
    torch.manual_seed(0)
    net = ptocr.create_model(name, num_classes=40).train()
    logits = net(torch.randn(2, 3, 48, 160))
    if isinstance(logits, dict):
        logits = logits["ctc"]
    log_probs = logits.log_softmax(-1).transpose(0, 1)  # T x N x C
    steps = log_probs.shape[0]
    targets = torch.randint(1, 40, (2, 5))
    F.ctc_loss(log_probs, targets, torch.full((2,), steps), torch.full((2,), 5)).backward()
    # reached: autograd connects every parameter to the loss (a unit that random weights leave
    # saturated may still get an all-zero gradient, so zeros are not counted as missing)
    missing = [k for k, p in net.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient reached {len(missing)} parameters, e.g. {missing[:3]}"
    backbone = [p.grad.abs().sum() for k, p in net.named_parameters() if k.startswith("backbone.")]
    assert backbone and sum(backbone) > 0


def test_a_detector_from_an_inference_program_gets_a_threshold_branch_to_train(shared_dir):
    # The inference program holds only the shrink branch; training runs the threshold one too.
    folder = shared_dir / "paddle_models" / "ch_PP-OCRv4_det_infer"
    with pytest.warns(UserWarning, match="no threshold branch"):
        net = ptocr.create_model("ch_PP-OCRv4_det", pretrained=folder)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        shrink = net(x)  # eval: the trained shrink map, as the program computes it
        reference = ptocr.load(folder, optimize=False).model(x)
    assert torch.equal(shrink, reference)
    maps = net.train()(x)["maps"]
    assert maps.shape == (1, 3, 64, 64)
    maps.mean().backward()
    missing = [k for k, p in net.named_parameters() if p.grad is None]
    assert not missing, missing[:3]


@pytest.mark.parametrize("fuse", [False, True])
def test_a_model_of_load_without_optimize_saves_as_it_is(shared_dir, tmp_path, fuse):
    # Was refused ("save_model needs a model from ptocr.create_model, or config="): the trainable
    # module ptocr.load(optimize=False) gives had no config or dictionary to write.
    folder = shared_dir / "paddle_models" / "ch_PP-OCRv4_rec_infer"
    source = ptocr.load(folder, optimize=False, fuse=fuse)
    dst = ptocr.save_model(source.model, tmp_path / "again.safetensors")
    again = ptocr.load(dst, optimize=False, fuse=fuse)
    assert again.dictionary.classes == source.dictionary.classes
    x = torch.rand(2, 3, 48, 160) * 2 - 1
    with torch.no_grad():
        assert torch.equal(again.model(x), source.model(x))
    source.model.config["model"]["head"]["num_classes"] = -1  # the model's own copy, not the predictor's
    assert source.config["model"]["head"]["num_classes"] == again.config["model"]["head"]["num_classes"]
