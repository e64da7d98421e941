"""ch_RepSVTR_rec (PaddleX's RepSVTR recognizer) against its exported programs.

PaddleX's official ``ch_RepSVTR_rec_infer`` program is not in ../shared;
``tests/fixtures/paddle_graphs/ch_RepSVTR_rec_infer`` is the same network exported from PaddleOCR's own
code by ``tools/export_ch_repsvtr_rec_program.py`` (the program without weights), as PaddleOCR's
exporter saves it: every conv-BN pair and RepVGGDW branch unfused (it calls ``rep()`` only for
PPLCNetV3). Its ``fused/`` folder is the same network after ``RepViT.rep()`` of later PaddleOCR
sources (applied by the export tool). Each folder's ``state_dict.json`` lists PaddleOCR's structured
names and shapes. Here:

- the converter finds the architecture and its form in either program alone and places every
  parameter by the graph;
- the float64 model equals the float64 program of both forms, at widths no crop has;
- on real word crops, with weights seeded and calibrated on them, the model agrees with Paddle
  Inference as the parity suite judges it (``verification.parity.check_parity``);
- a training checkpoint under PaddleOCR's own names converts (the NRTR branch dropped), in both forms,
  and trains with that branch (``ptocr.training.MultiHeadTraining``);
- the fused form is ``RepViT.rep()``'s arithmetic, and PaddleOCR's config describes this architecture.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from converter.convert import convert
from ptocr.architectures import get_architecture
from ptocr.models.backbones.repsvtr import Conv2dBN, RepSVTR, RepVGGDW, RepViTBlock
from ptocr.models.build import build_model
from ptocr.models.reparam import fuse_reparameterizable
from ptocr.training.architecture import architecture_for
from verification.parity import EXACT_TOLERANCE, check_parity, paddle_available, paddle_outputs
from verification.seeding import seed_and_calibrate, seed_folder
from verification.suite import EXPORTED, SOURCE_KINDS

PROGRAM = Path(__file__).parent / "fixtures" / "paddle_graphs" / "ch_RepSVTR_rec_infer"
FORMS = {"unfused": PROGRAM, "fused": PROGRAM / "fused"}
ARCH = "ch_RepSVTR_rec"
# Tensors each program reads (the model's state dict less BN counters); the training structure
# also holds MultiHead's NRTR branch (NRTR_TENSORS), which no program reads.
PARAMETERS = {"unfused": 354, "fused": 159}
NRTR_TENSORS = 44
WORDS = ("word_1.jpg", "word_3.jpg")

# configs/rec/SVTRv2/ch_RepSVTR_rec.yml's Architecture section.
CONFIG_ARCHITECTURE = """
model_type: rec
algorithm: SVTR_HGNet
Transform:
Backbone:
  name: RepSVTR
Head:
  name: MultiHead
  head_list:
    - CTCHead:
        Neck:
          name: svtr
          dims: 256
          depth: 2
          hidden_dims: 256
          kernel_size: [1, 3]
          use_guide: True
        Head:
          fc_decay: 0.00001
    - NRTRHead:
        nrtr_dim: 384
        max_text_length: 25
        num_decoder_layers: 2
"""


def _random_norms(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Batch norms and conv biases away from their identity init, so every folded term matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.5, 0.5, generator=g)
            elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(-0.5, 0.5, generator=g)
    return module.eval()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """Each program with seeded (uncalibrated) weights: enough to place and compare them."""
    root = tmp_path_factory.mktemp("repsvtr")
    return {form: seed_folder(src, root / form / "ch_RepSVTR_rec_infer") for form, src in FORMS.items()}


@pytest.fixture(scope="module")
def conversions(seeded):
    return {form: convert(folder) for form, folder in seeded.items()}  # no arch: found in the graph


def test_a_float64_load_fuses_the_branches_in_float64(seeded):
    """ptocr.load(dtype="float64", optimize=False) fuses the unfused program's rep branches: in
    float64, not in float32 first (1.1e-5 off the unfused float64 model that way, on these weights)."""
    import ptocr

    unfused = convert(seeded["unfused"]).model.double().eval()
    loaded = ptocr.load(seeded["unfused"], dtype="float64", optimize=False)
    x = torch.rand(1, 3, 48, 200, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (loaded.model(x) - unfused(x)).abs().max() < 1e-10


@pytest.mark.parametrize("form", sorted(FORMS))
def test_the_converter_finds_repsvtr_and_its_form_and_places_every_parameter(conversions, form):
    conv = conversions[form]
    assert conv.arch_name == ARCH and conv.form == form and conv.config["task"] == "rec"
    state, tensors = conv.model.state_dict(), conv.source.tensors
    assert sum(not k.endswith("num_batches_tracked") for k in state) == len(tensors) == PARAMETERS[form]
    placed = {e.target: e.source for e in conv.mapping.entries}
    assert len(placed) == PARAMETERS[form]
    # The first RepVGGDW (3 branches, or one biased depthwise conv), a (2, 1)-strided depthwise
    # conv, an SE and the CTC head.
    dw = ("backbone.features.1.token_mixer.0.conv1.bias" if form == "unfused"
          else "backbone.features.1.token_mixer.0.bias")
    strided = "backbone.features.4.token_mixer.0." + ("c.weight" if form == "unfused" else "weight")
    for key, shape in ((dw, (96,)), (strided, (96, 1, 3, 3)),
                       ("backbone.features.12.token_mixer.1.fc1.weight", (96, 384, 1, 1)),
                       ("head.fc.weight", (6625, 256))):
        assert tuple(state[key].shape) == shape
        want = tensors[placed[key]]
        np.testing.assert_array_equal(state[key].numpy(), want.T if key == "head.fc.weight" else want)
    assert conv.model.backbone.is_repped == (form == "fused")
    # ppocr_keys_v1.txt with the space: the program's inference.yml lists the characters.
    assert conv.dictionary.num_classes == 6625 and conv.dictionary.use_space_char


@pytest.mark.parametrize("width, steps", [(320, 40), (100, 12), (643, 80), (1000, 125)])
def test_output_is_one_step_per_eight_columns(conversions, width, steps):
    x = torch.randn(2, 3, 48, width, generator=torch.Generator().manual_seed(width))
    with torch.inference_mode():
        y = conversions["unfused"].model.eval()(x)
    assert y.shape == (2, steps, 6625)
    torch.testing.assert_close(y.sum(-1), torch.ones(2, steps))  # eval: the CTC head's softmax


@pytest.mark.parametrize("form", sorted(FORMS))
def test_float64_model_equals_the_float64_program_on_any_width(conversions, seeded, form):
    """Widths no parity crop has (odd ones: the ceil of the stride-2 patch embedding, the floor of
    the height x 2 average pooling): the program's shape arithmetic and float64 result are the model's."""
    if not paddle_available():
        pytest.skip("paddlepaddle is not installed")
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, (1, 3, 48, w)).astype(np.float32) for w in (98, 333)]
    inputs.append(rng.uniform(-1, 1, (2, 3, 48, 320)).astype(np.float32))
    want = paddle_outputs(seeded[form], inputs, ["float64"])["float64"]
    model = copy.deepcopy(conversions[form].model).double().eval()
    with torch.inference_mode():
        for x, w in zip(inputs, want):
            got = model(torch.from_numpy(x).double()).numpy()
            assert got.shape == w.shape
            assert np.abs(got - w).max() <= EXACT_TOLERANCE


def test_the_unfused_program_agrees_with_paddle_inference_on_word_crops(shared_dir, tmp_path):
    """The parity suite's judgement on the unfused program (what PaddleOCR's exporter saves), its weights
    seeded and calibrated on Chinese word crops: probabilities within the tolerance (or Paddle's own
    fp32 noise), the same texts, float64 within EXACT_TOLERANCE; eager and optimized."""
    if not paddle_available():
        pytest.skip("paddlepaddle is not installed")
    images = [shared_dir / "images" / "words" / "ch" / n for n in WORDS]
    folder = seed_and_calibrate(PROGRAM, tmp_path / "ch_RepSVTR_rec_infer", images)
    report = check_parity(folder, images, source_kind=SOURCE_KINDS[EXPORTED])
    assert report.architecture == ARCH and report.form == "unfused"
    assert report.ok, report.summary()


def _checkpoint(form: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """A training checkpoint (``best_accuracy.pdparams``) holding random tensors under PaddleOCR's
    names and shapes for ``form`` (``state_dict.json``), and the names of its NRTR branch."""
    shapes = json.loads((FORMS[form] / "state_dict.json").read_text())
    rng = np.random.default_rng(1)
    tensors = {k: (rng.uniform(0.5, 1.5, s) if k.endswith("._variance") else rng.normal(0, 0.1, s)).astype(np.float32)
               for k, s in shapes.items()}
    path = tmp_path / "train" / "best_accuracy.pdparams"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(tensors, protocol=4))
    return path, sorted(k for k in shapes if k.startswith(("head.before_gtc.", "head.gtc_head.")))


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_training_checkpoint_under_paddleocrs_names_converts(form, tmp_path):
    path, nrtr = _checkpoint(form, tmp_path)
    assert len(nrtr) == NRTR_TENSORS
    conv = convert(path)
    assert conv.arch_name == ARCH and conv.form == form
    assert sorted(e.source for e in conv.mapping.dropped) == nrtr
    placed = {e.target: e.source for e in conv.mapping.entries if e.target is not None}
    assert sorted(placed) == sorted(k for k in conv.model.state_dict() if not k.endswith("num_batches_tracked"))
    assert len(placed) == PARAMETERS[form]
    # PaddleOCR's names pass unchanged (batch-norm statistics aside), but for MultiHead's CTC branch
    # (our neck and head).
    same = {s.replace("._mean", ".running_mean").replace("._variance", ".running_var") for s in placed.values()}
    renamed = {t for t in placed if t not in same}
    assert renamed == {t for t in placed if t.startswith(("neck.", "head."))}
    assert conv.dictionary.num_classes == 6625  # the default ppocr_keys_v1.txt, with the space


def test_the_unfused_checkpoint_fuses_into_the_fused_programs_tensors(tmp_path):
    """ptocr's fusing leaves exactly the tensors the fused program holds, under PaddleOCR's fused names
    (``RepViT.rep()``), and computes the same function."""
    conv = convert(_checkpoint("unfused", tmp_path)[0])
    model = _random_norms(conv.model.double())
    fused = fuse_reparameterizable(copy.deepcopy(model))
    paddle_fused = {k.replace("._mean", ".running_mean").replace("._variance", ".running_var").replace(
        "head.ctc_encoder.", "neck.").replace("head.ctc_head.", "head."): tuple(s)
        for k, s in json.loads((FORMS["fused"] / "state_dict.json").read_text()).items()
        if not k.startswith(("head.before_gtc.", "head.gtc_head."))}
    ours = {k: tuple(v.shape) for k, v in fused.state_dict().items() if not k.endswith("num_batches_tracked")}
    linear = {f"{n}.weight" for n, m in fused.named_modules() if isinstance(m, torch.nn.Linear)}
    assert ours == {k: s[::-1] if k in linear else s for k, s in paddle_fused.items()}
    x = torch.randn(2, 3, 48, 160, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=0, atol=1e-10)


def test_the_checkpoint_trains_with_its_nrtr_branch(tmp_path):
    """MultiHead's training: the CTC network from the checkpoint (ptocr.create_model), the NRTR
    branch (nrtr_dim 384, 2 decoder layers) from its own tensors under PaddleOCR's names."""
    import ptocr
    from ptocr.training.multihead import MultiHeadTraining

    path = _checkpoint("unfused", tmp_path)[0]
    wrapper = MultiHeadTraining(ptocr.create_model(ARCH, pretrained=path))
    wrapper.load_paddle_branch(path)  # strict: every tensor of the branch, every shape
    wrapper.train()
    batch = {"label_gtc": torch.randint(3, 6628, (2, 12)), "length": torch.tensor([5, 9])}
    out = wrapper(torch.randn(2, 3, 48, 96), batch)
    assert out["ctc"].shape == (2, 12, 6625) and out["ctc_neck"].shape == (2, 12, 256)
    (out["ctc"].logsumexp(-1).mean() + out["nrtr"].logsumexp(-1).mean()).backward()
    assert wrapper.net.backbone.features[0][0].c.weight.grad is not None


def test_rep_vgg_dw_folds_both_branches_the_identity_and_its_norm():
    dw = _random_norms(RepVGGDW(6)).double()
    x = torch.randn(2, 6, 7, 9, dtype=torch.float64)
    with torch.no_grad():
        conv = dw.fused()
        assert isinstance(conv, torch.nn.Conv2d) and conv.groups == 6 and conv.kernel_size == (3, 3)
        torch.testing.assert_close(conv(x), dw(x), rtol=0, atol=1e-12)


def test_rep_fuses_the_backbone_in_place_and_twice_is_once():
    net = _random_norms(RepSVTR()).double()
    want_keys = set(RepSVTR(reparam=True).state_dict())
    x = torch.randn(1, 3, 48, 64, dtype=torch.float64)
    with torch.no_grad():
        want = net(x)
        assert net.rep() is net and net.is_repped and set(net.state_dict()) == want_keys
        assert not any(isinstance(m, (Conv2dBN, RepVGGDW)) for m in net.modules())
        torch.testing.assert_close(net(x), want, rtol=0, atol=1e-10)
        net.rep()
        torch.testing.assert_close(net(x), want, rtol=0, atol=1e-10)


def test_blocks_are_the_papers_shapes():
    net = RepSVTR()
    blocks = [f for f in net.features if isinstance(f, RepViTBlock)]
    assert len(blocks) == 13 and net.out_channels == 384
    # (2, 1) strides at blocks 4 and 11 (features 4, 11): there the strided conv path.
    strided = [i for i, f in enumerate(net.features) if i and not isinstance(f.token_mixer[0], RepVGGDW)]
    assert strided == [4, 11]
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 48, 320)).shape == (1, 384, 1, 40)


def test_paddleocrs_config_describes_this_architecture():
    found = architecture_for(yaml.safe_load(CONFIG_ARCHITECTURE))
    assert found.name == ARCH and found.task == "rec"
    assert found.gtc_head == {"NRTRHead": {"nrtr_dim": 384, "max_text_length": 25, "num_decoder_layers": 2}}
    entry = get_architecture(ARCH)
    assert entry["gtc_head"] == {"name": "NRTRHead", **found.gtc_head["NRTRHead"]}
    # The config's class count: ppocr_keys_v1.txt's 6623 characters, blank and space.
    assert build_model(entry["model"], device="meta").head.fc.out_features == 6625
