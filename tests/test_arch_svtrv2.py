"""ch_SVTRv2_rec (PaddleX's SVTRv2 recognizer) against its exported program.

PaddleX's official ``ch_SVTRv2_rec_infer`` program is not in ../shared;
``tests/fixtures/paddle_graphs/ch_SVTRv2_rec_infer`` is the same network exported from PaddleOCR's
own code by ``tools/export_ch_svtrv2_rec_program.py`` (the program without weights). Against Paddle
Inference on real word crops it is an entry of the parity suite (``tests/test_parity.py``, kind
"exported"); here:

- the converter finds the architecture in the program alone and places every parameter by the graph;
- the output is N x W/8 x 6625 for the common 48 x 320 crop and wider ones (the program's width
  is free), and the float64 model equals the float64 program on widths no crop has (odd ones:
  the ceil of the stride-2 convs, the floor of the final pooling);
- the backbone's own structure: post-norm blocks, the grouped 5 x 5 conv mixer, Paddle's names.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from converter.convert import convert
from ptocr.architectures import get_architecture
from ptocr.errors import ArchitectureError
from ptocr.models.build import build_model
from verification.parity import EXACT_TOLERANCE, paddle_available, paddle_outputs
from verification.seeding import seed_folder

PROGRAM = Path(__file__).parent / "fixtures" / "paddle_graphs" / "ch_SVTRv2_rec_infer"
ARCH = "ch_SVTRv2_rec"
PARAMETERS = 273  # tensors the program reads (and the model's state dict holds, less BN counters)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """The program with seeded (uncalibrated) weights: enough to place and compare them."""
    return seed_folder(PROGRAM, tmp_path_factory.mktemp("svtrv2") / "ch_SVTRv2_rec_infer")


@pytest.fixture(scope="module")
def conversion(seeded):
    return convert(seeded)  # no arch: found in the graph


def test_the_converter_finds_svtrv2_and_places_every_parameter(conversion):
    assert conversion.arch_name == ARCH and conversion.config["task"] == "rec"
    state, tensors = conversion.model.state_dict(), conversion.source.tensors
    assert sum(not k.endswith("num_batches_tracked") for k in state) == len(tensors) == PARAMETERS
    placed = {e.target: e.source for e in conversion.mapping.entries}
    assert len(placed) == PARAMETERS
    # The stage-2 conv mixer (8 groups of 32 channels) and a post-norm of a Global block.
    for key, shape in (("backbone.stages.1.blocks.0.mixer.weight", (256, 32, 5, 5)),
                       ("backbone.stages.2.blocks.5.norm2.weight", (384,)),
                       ("head.fc.weight", (6625, 256))):
        assert tuple(state[key].shape) == shape
        want = tensors[placed[key]]
        np.testing.assert_array_equal(state[key].numpy(), want.T if key == "head.fc.weight" else want)
    # ppocr_keys_v1.txt with the space: the program's inference.yml lists the characters.
    assert conversion.dictionary.num_classes == 6625 and conversion.dictionary.use_space_char


@pytest.mark.parametrize("width, steps", [(320, 40), (100, 12), (643, 80), (1000, 125)])
def test_output_is_one_step_per_eight_columns(conversion, width, steps):
    x = torch.randn(2, 3, 48, width, generator=torch.Generator().manual_seed(width))
    with torch.inference_mode():
        y = conversion.model.eval()(x)
    assert y.shape == (2, steps, 6625)
    torch.testing.assert_close(y.sum(-1), torch.ones(2, steps))  # eval: the CTC head's softmax


def test_float64_model_equals_the_float64_program_on_any_width(conversion, seeded):
    """Widths no parity crop has: the program's shape arithmetic (ceil of the stride-2 convs,
    floor of the height x 2 average pooling) and the network's float64 result are the model's."""
    if not paddle_available():
        pytest.skip("paddlepaddle is not installed")
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, (1, 3, 48, w)).astype(np.float32) for w in (98, 333)]
    ref = paddle_outputs(seeded, inputs, ["float64"])
    m64 = copy.deepcopy(conversion.model).eval().double()
    with torch.inference_mode():
        for x, want in zip(inputs, ref["float64"]):
            got = m64(torch.from_numpy(x).double()).numpy()
            assert got.shape == want.shape
            assert np.abs(got - want).max() <= EXACT_TOLERANCE
            # Uncalibrated weights spread the probabilities little: compare their logarithms (the
            # logits, less a constant per step), which vary over classes and steps.
            log_want = np.log(want)
            assert np.abs(np.log(got) - log_want).max() <= EXACT_TOLERANCE
            assert log_want.std(-1).min() > 0.05 and np.abs(np.diff(log_want, axis=1)).max() > 0.05


def test_blocks_are_post_norm_with_paddles_names():
    model = build_model(get_architecture(ARCH)["model"]).eval()
    backbone = model.backbone
    keys = model.state_dict()
    # Paddle's structured names: the flatten between stage 2's Conv and Global blocks holds
    # index 2, so the Global blocks are 3..6 there, as in a training checkpoint.
    assert "backbone.pope.patch_embed.0.norm.running_mean" in keys and "backbone.pope.patch_embed.0.conv.bias" in keys
    assert "backbone.stages.1.blocks.6.mixer.qkv.weight" in keys
    assert not any(k.startswith("backbone.stages.1.blocks.2.") for k in keys)
    assert "backbone.stages.1.downsample.norm.weight" in keys and "backbone.stages.2.downsample" not in str(keys)
    assert backbone.stages[0].blocks[0].mixer.groups == 4 and backbone.stages[2].blocks[0].mixer.num_heads == 12
    # Post-norm: a block's output is its last LayerNorm's (per-token mean 0, variance 1 at unit
    # affine), for a Global block on tokens and a Conv block on the map's channels.
    tokens = torch.randn(2, 30, 384) * 5 + 3
    with torch.inference_mode():
        out = backbone.stages[2].blocks[0](tokens)
        torch.testing.assert_close(out.mean(-1), torch.zeros(2, 30), atol=1e-5, rtol=0)
        fmap = backbone.stages[0].blocks[0](torch.randn(2, 128, 12, 20) * 4 + 1)
        torch.testing.assert_close(fmap.mean(1), torch.zeros(2, 12, 20), atol=1e-5, rtol=0)
        torch.testing.assert_close(fmap.var(1, unbiased=False), torch.ones(2, 12, 20), atol=1e-3, rtol=0)


def test_mixers_must_be_conv_then_global():
    backbone = dict(get_architecture(ARCH)["model"]["backbone"])
    with pytest.raises(ArchitectureError, match="Conv blocks must come first"):
        build_model({"backbone": {**backbone, "mixer": [["Conv"] * 6, ["Global", "Conv"] * 3, ["Global"] * 6]},
                     "neck": None, "head": {"name": "CTCHead", "num_classes": 10}}, device="meta")
    with pytest.raises(ArchitectureError, match="one entry per stage"):
        build_model({"backbone": {**backbone, "dims": [128, 256]}, "neck": None,
                     "head": {"name": "CTCHead", "num_classes": 10}}, device="meta")
