"""ptocr.training's MultiHead training (CTC + NRTR branch) against PaddleOCR.

The parity fixture ``tests/fixtures/gtc_reference`` is PaddleOCR's own MultiHead and MultiLoss
run in paddle by ``tools/gtc_reference.py`` (see its README); the label encoders are checked
against PaddleOCR's installed classes bit for bit; the real architectures run a training step.
"""

from __future__ import annotations

import copy
import json
import pickle
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_labels_as_paddleocr, compile_paddleocr
import torch.nn.functional as F
from torch import nn

import ptocr
from converter.mapping import Target, apply, rename
from converter.readers import read_pdparams
from converter.tables import get_table
from ptocr.errors import PtocrError
from ptocr.models.heads.ctc_head import CTCHead
from ptocr.models.model import OCRModel
from ptocr.models.necks.svtr import SequenceEncoder
from ptocr.architectures import canonical_name
from ptocr.training import (MultiHeadTraining, MultiLabelEncode, MultiLoss, NRTRLabelEncode, NRTRLoss, create_optimizer,
                            gtc_settings)
from ptocr.training.nrtr import _Attention

FIXTURE = Path(__file__).parent / "fixtures" / "gtc_reference"
RTOL = 1e-5  # float32 rounding, relative to each tensor's scale
# The CTC branch's parameter gradients come through paddle's warpctc against torch's ctc_loss, which
# differ by more than rounding of the ops here (loss ~117 in log space): the tolerance of CTCLoss's
# own gradient parity (tests/test_training_losses.py). Everything the GTC branch computes is at RTOL.
CTC_GRAD_RTOL = 1e-4


def _close(actual: torch.Tensor, expected: np.ndarray, what: str, rtol: float = RTOL) -> float:
    actual = actual.detach().numpy()
    assert actual.shape == expected.shape, what
    scale = max(float(np.abs(expected).max()), 1e-30)
    diff = float(np.abs(actual - expected).max())
    assert diff <= rtol * scale, f"{what}: max |diff| {diff:.3g} over {rtol} x scale {scale:.3g}"
    return diff / scale


@pytest.fixture(scope="module")
def reference():
    io = dict(np.load(FIXTURE / "io.npz"))
    settings = json.loads((FIXTURE / "settings.json").read_text(encoding="utf-8"))
    return io, settings


def _small_multihead(settings, num_classes: int | None = None) -> MultiHeadTraining:
    """The fixture's MultiHead in ptocr: the feature map is the input (identity backbone)."""
    neck_args = {k: v for k, v in settings["neck"].items() if k != "name"}
    neck = SequenceEncoder(settings["in_channels"], "svtr", **neck_args)
    classes = num_classes or len(settings["characters"]) + 2
    net = OCRModel(nn.Identity(), neck, CTCHead(neck.out_channels, classes))
    net.config = {"architecture": "ch_PP-OCRv4_rec"}
    nrtr = {k: v for k, v in settings["nrtr"].items()}
    return MultiHeadTraining(net, gtc_head=nrtr)


def _loaded_multihead(settings) -> MultiHeadTraining:
    model = _small_multihead(settings)
    ctc = apply(read_pdparams(FIXTURE / "multihead.pdparams"), get_table("svtr_lcnet_multihead"),
                Target.from_module(model.net)).state_dict  # the converter's path for the CTC network
    model.net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ctc.items()})
    model.load_paddle_branch(FIXTURE / "multihead.pdparams")
    for module in model.modules():  # the reference ran with every dropout off
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    return model.train()


def _torch_param(model: MultiHeadTraining, paddle_name: str) -> nn.Parameter:
    if paddle_name.startswith(("before_gtc.", "gtc_head.")):
        return model.branch.get_parameter(paddle_name)
    return model.net.get_parameter(rename("head." + paddle_name, get_table("svtr_lcnet_multihead")).target)


# --------------------------------------------------------------------------------------------
# Parity with PaddleOCR's MultiHead / MultiLoss
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["dict", "paddle list"])
def test_outputs_losses_and_gradients_match_paddleocr(reference, form):
    io, settings = reference
    model = _loaded_multihead(settings)
    feature = torch.from_numpy(io["feature"]).requires_grad_(True)
    if form == "dict":
        batch = {k: torch.from_numpy(io[k]) for k in ("label_ctc", "label_gtc", "length", "valid_ratio")}
    else:
        batch = [feature, *(torch.from_numpy(io[k]) for k in ("label_ctc", "label_gtc", "length", "valid_ratio"))]
    out = model(feature, batch)
    assert set(out) == {"ctc", "ctc_neck", "nrtr"}
    _close(out["ctc"], io["ctc"], "ctc logits")
    _close(out["ctc_neck"], io["ctc_neck"], "ctc_neck")
    _close(out["nrtr"], io["nrtr"], "nrtr logits")
    losses = MultiLoss([{"CTCLoss": None}, {"NRTRLoss": {"smoothing": True}}])(out, batch)
    assert list(losses) == ["CTCLoss", "NRTRLoss", "loss"]
    _close(losses["CTCLoss"], io["loss_ctc"], "CTCLoss")
    _close(losses["NRTRLoss"], io["loss_nrtr"], "NRTRLoss")
    _close(losses["loss"], io["loss"], "MultiLoss")
    losses["loss"].backward()
    _close(feature.grad, io["grad_feature"], "d loss / d feature")
    for key in (k for k in io if k.startswith("grad:")):
        name = key.split(":", 1)[1]
        grad = _torch_param(model, name).grad
        expected = io[key].T if grad.ndim == 2 and name.endswith("weight") and "embedding" not in name else io[key]
        _close(grad, expected, f"d loss / d {name}", CTC_GRAD_RTOL if name.startswith("ctc_") else RTOL)


def test_greedy_decode_matches_paddleocr(reference):
    io, settings = reference
    model = _loaded_multihead(settings).eval()
    memory = model.branch["before_gtc"](torch.from_numpy(io["feature"]))
    tokens, probs = model.branch["gtc_head"](memory)
    assert np.array_equal(tokens.numpy(), io["greedy_tokens"])
    _close(probs, io["greedy_probs"], "greedy probabilities")
    assert torch.equal(model(torch.from_numpy(io["feature"])), model.net(torch.from_numpy(io["feature"])))


def test_attention_heads_split_as_torch_multihead_attention():
    """The fixture's decoder has one head (MultiHead gives nrtr_dim // 32); the split into several
    is checked against torch's own multi-head attention with the same projections."""
    torch.manual_seed(0)
    dim, heads = 64, 4
    query, memory = torch.randn(2, 5, dim), torch.randn(2, 7, dim)
    mask = torch.full((5, 5), float("-inf")).triu(1)
    self_attn, cross = _Attention(dim, heads, True), _Attention(dim, heads, False)
    ours_self, ours_cross = self_attn(query, mask=mask), cross(query, memory)

    def torch_mha(q, kv, weight, bias, out, attn_mask=None):
        return F.multi_head_attention_forward(
            q.transpose(0, 1), kv.transpose(0, 1), kv.transpose(0, 1), dim, heads, weight, bias, None, None, False,
            0.0, out.weight, out.bias, training=False, need_weights=False, attn_mask=attn_mask)[0].transpose(0, 1)

    expected_self = torch_mha(query, query, self_attn.qkv.weight, self_attn.qkv.bias, self_attn.out_proj, mask)
    weight = torch.cat([cross.q.weight, cross.kv.weight])
    bias = torch.cat([cross.q.bias, cross.kv.bias])
    expected_cross = torch_mha(query, memory, weight, bias, cross.out_proj)
    torch.testing.assert_close(ours_self, expected_self, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours_cross, expected_cross, rtol=1e-5, atol=1e-6)


def test_nrtr_loss_without_smoothing_is_cross_entropy_ignoring_pad():
    torch.manual_seed(1)
    label = torch.tensor([[2, 5, 6, 3, 0, 0], [2, 7, 3, 0, 0, 0]])
    length = torch.tensor([2, 1])
    pred = torch.randn(2, 3, 9)
    target = label[:, 1:4].reshape(-1)
    expected = F.cross_entropy(pred.reshape(-1, 9), target, ignore_index=0)
    torch.testing.assert_close(NRTRLoss(smoothing=False)(pred, {"label_gtc": label, "length": length})["loss"],
                               expected)


# --------------------------------------------------------------------------------------------
# Labels against PaddleOCR's classes
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ppocr_labels(paddleocr_src):
    """PaddleOCR's own label classes (label_ops.py; its imports pull paddle: stood in for)."""
    names = ["BaseRecLabelEncode", "CTCLabelEncode", "NRTRLabelEncode", "SARLabelEncode", "MultiLabelEncode"]
    ns = compile_paddleocr(paddleocr_src, "ppocr/data/imaug/label_ops.py", names,
                           {"np": np, "copy": copy, "get_logger": lambda: None})
    return types.SimpleNamespace(**{n: ns[n] for n in names})


def _texts(characters: str, rng) -> list[str]:
    alphabet = characters + " " + "XYZ~"  # unknown characters are dropped
    texts = ["", "X", "XYZ", " ", "a", "ab" * 11, "ab" * 11 + "c", "ab" * 12, "ab" * 12 + "c", "a" * 26,
             "a" * 23 + "XY", "a" * 24 + "X"]
    texts += ["".join(rng.choice(list(alphabet), int(rng.integers(1, 28)))) for _ in range(300)]
    return texts


def test_nrtr_and_multi_label_encode_match_paddleocr(ppocr_labels, tmp_path):
    characters = "abcdefghij0123456789蛋糕ababc"  # repeated characters take their last index
    dict_file = tmp_path / "dict.txt"
    dict_file.write_text("".join(c + "\n" for c in characters), encoding="utf-8")
    ours_nrtr = NRTRLabelEncode(dict_file, max_text_length=25, use_space_char=True)
    ours_multi = MultiLabelEncode(dict_file, max_text_length=25, use_space_char=True)
    theirs_nrtr = ppocr_labels.NRTRLabelEncode(25, str(dict_file), True)
    theirs_multi = ppocr_labels.MultiLabelEncode(25, str(dict_file), True, gtc_encode="NRTRLabelEncode")
    assert ours_nrtr.classes == theirs_nrtr.character
    texts = _texts(characters, np.random.default_rng(0))
    assert_labels_as_paddleocr(ours_nrtr, theirs_nrtr, texts)
    assert assert_labels_as_paddleocr(ours_multi, theirs_multi, texts, ("label_ctc", "label_gtc", "length")) > 100
    # v3: label_sar by SARLabelEncode
    ours_sar = MultiLabelEncode(dict_file, max_text_length=25, use_space_char=True, gtc_encode=None)
    theirs_sar = ppocr_labels.MultiLabelEncode(25, str(dict_file), True)
    assert_labels_as_paddleocr(ours_sar, theirs_sar, _texts(characters, np.random.default_rng(1)),
                               ("label_ctc", "label_sar", "length"))
    batch = ours_multi.batch(["abc", "j0"])
    assert batch["label_gtc"].shape == (2, 25) and batch["length"].tolist() == [3, 2]


# --------------------------------------------------------------------------------------------
# The real architectures
# --------------------------------------------------------------------------------------------
def test_v5_mobile_trains_as_v4_mobile():
    """PP-OCRv5_mobile_rec is the v4 mobile network (an alias): the same branch, so one step below."""
    assert canonical_name("PP-OCRv5_mobile_rec") == "ch_PP-OCRv4_rec"
    assert gtc_settings("PP-OCRv5_mobile_rec") == gtc_settings("ch_PP-OCRv4_rec")


@pytest.mark.parametrize("name", ["ch_PP-OCRv4_rec", "PP-OCRv5_server_rec"])
def test_real_architecture_training_step(name):
    torch.manual_seed(0)
    chars = list("abcdefghijklmnopqrstuvwxyz")
    net = ptocr.create_model(name, num_classes=len(chars) + 2)
    model = MultiHeadTraining(net).train()
    assert model.settings["nrtr_dim"] == 384 and model.settings["num_decoder_layers"] == 4
    assert model.net is net and net.neck.encoder.detach_input
    labels = MultiLabelEncode(chars)
    batch = labels.batch(["hello", "multihead"])
    out = model(torch.randn(2, 3, 48, 64), batch)
    assert out["nrtr"].shape == (2, 1 + 9, len(chars) + 2 + 4)
    losses = MultiLoss()(out, batch)
    assert all(torch.isfinite(v) for v in losses.values())
    backbone = list(net.backbone.parameters())
    losses["CTCLoss"].backward(retain_graph=True)  # use_guide: the CTC loss stops at the backbone
    assert all(p.grad is None for p in backbone)
    assert net.head.fc.weight.grad is not None
    losses["NRTRLoss"].backward()
    assert sum(float(p.grad.abs().sum()) for p in backbone if p.grad is not None) > 0
    assert set(model.state_dict()) == {f"net.{k}" for k in net.state_dict()} | {
        f"branch.{k}" for k in model.branch.state_dict()}


def test_recipe_trains_both_branches():
    """create_optimizer takes the wrapper: the recognizer's parameters keep their PaddleOCR attributes
    (CTC head fc_decay), the GTC branch's take Paddle's defaults (lr 1, the optimizer's L2)."""
    model = MultiHeadTraining(ptocr.create_model("ch_PP-OCRv4_rec", num_classes=28))
    section = {"name": "Adam", "beta1": 0.9, "beta2": 0.999, "lr": {"name": "Cosine", "learning_rate": 0.001},
               "regularizer": {"name": "L2", "factor": 3.0e-5}}
    head = {"name": "MultiHead", "head_list": [{"CTCHead": {"Head": {"fc_decay": 1e-5}}}]}
    config = {"Optimizer": section, "Architecture": {"Head": head}}
    groups = create_optimizer(model, config, epochs=1, steps_per_epoch=1).optimizer.param_groups
    decay = {n: (g["lr_scale"], g["weight_decay"]) for g in groups for n in g["param_names"]}
    assert set(decay) == {n for n, _ in model.named_parameters()}
    assert decay["branch.gtc_head.tgt_word_prj.weight"] == (1.0, 3.0e-5)
    assert decay["branch.before_gtc.1.fc.weight"] == (1.0, 3.0e-5)
    assert decay["net.head.fc.weight"] == (1.0, 1e-5)


def test_architecture_without_gtc_branch_is_refused():
    net = ptocr.create_model("ch_PP-OCRv2_rec")
    with pytest.raises(PtocrError, match="no GTC branch"):
        MultiHeadTraining(net)


# --------------------------------------------------------------------------------------------
# Reading the branch from a PaddleOCR checkpoint
# --------------------------------------------------------------------------------------------
def test_branch_loads_from_checkpoint(reference):
    _, settings = reference
    model = _small_multihead(settings)
    model.load_paddle_branch(FIXTURE / "multihead.pdparams")
    source = read_pdparams(FIXTURE / "multihead.pdparams")
    qkv = model.branch.get_parameter("gtc_head.decoder.1.self_attn.qkv.weight")
    assert np.array_equal(qkv.detach().numpy(), source["head.gtc_head.decoder.1.self_attn.qkv.weight"].T)
    emb = model.branch.get_parameter("gtc_head.embedding.embedding.weight")
    assert np.array_equal(emb.detach().numpy(), source["head.gtc_head.embedding.embedding.weight"])


def test_checkpoint_without_branch_is_refused(reference, tmp_path):
    _, settings = reference
    source = read_pdparams(FIXTURE / "multihead.pdparams")
    ctc_only = {k: v for k, v in source.items() if not k.startswith(("head.gtc_head.", "head.before_gtc."))}
    path = tmp_path / "ctc_only.pdparams"
    path.write_bytes(pickle.dumps(ctc_only, protocol=4))
    with pytest.raises(PtocrError, match="holds no GTC branch"):
        _small_multihead(settings).load_paddle_branch(path)
    partial = {k: v for k, v in source.items() if "decoder.1." not in k}
    path.write_bytes(pickle.dumps(partial, protocol=4))
    with pytest.raises(PtocrError, match="not filled"):
        _small_multihead(settings).load_paddle_branch(path)
    extra = {**source, "head.gtc_head.decoder.2.norm1.weight": np.ones(32, np.float32)}
    path.write_bytes(pickle.dumps(extra, protocol=4))
    with pytest.raises(PtocrError, match="no place"):
        _small_multihead(settings).load_paddle_branch(path)


def test_checkpoint_of_another_dictionary_size_is_refused(reference):
    _, settings = reference
    model = _small_multihead(settings, num_classes=40)
    with pytest.raises(PtocrError, match="dictionary differs"):
        model.load_paddle_branch(FIXTURE / "multihead.pdparams")


# --------------------------------------------------------------------------------------------
# PP-OCRv3's SAR branch (ptocr.training.sar)
# --------------------------------------------------------------------------------------------
def test_v3_sar_branch_training_step():
    torch.manual_seed(0)
    chars = list("abcdefghijklmnopqrstuvwxyz")
    net = ptocr.create_model("ch_PP-OCRv3_rec", num_classes=len(chars) + 2)
    model = MultiHeadTraining(net).train()
    assert model.output_key == "sar" and net.neck.encoder.detach_input
    labels = MultiLabelEncode(chars, gtc_encode=None)
    batch = {**labels.batch(["hello", "ocr"]), "valid_ratio": torch.ones(2)}
    out = model(torch.randn(2, 3, 48, 64), batch)
    losses = MultiLoss(["CTCLoss", "SARLoss"])(out, batch)
    assert list(losses) == ["CTCLoss", "SARLoss", "loss"] and torch.isfinite(losses["loss"])
    losses["loss"].backward()


def test_v3_sar_branch_loads_from_checkpoint(reference, tmp_path):
    """load_paddle_branch reads a v3 checkpoint's head.sar_head.*: paddle saves each LSTM weight
    twice (weight_ih_l0 and 0.cell.weight_ih), the table drops the second. The weights are those
    PaddleOCR's own SARHead ran with in tools/sar_reference.py ("lstm": v3's structure, shrunk),
    so the loaded branch's training output is PaddleOCR's."""
    _, settings = reference
    sar_fixture = FIXTURE.parent / "sar_reference"
    head = read_pdparams(sar_fixture / "lstm.pdparams")
    assert any(".cell." in k for k in head)
    ctc = {"backbone.conv1._conv.weight": np.zeros((4, 3, 3, 3), np.float32),  # the CTC network's: not the branch's
           "head.ctc_encoder.encoder.conv1.conv.weight": np.zeros((2, 2), np.float32),
           "head.ctc_head.fc.weight": np.zeros((2, 2), np.float32)}
    path = tmp_path / "v3_multihead.pdparams"
    path.write_bytes(pickle.dumps({**ctc, **{f"head.sar_head.{k}": v for k, v in head.items()}}, protocol=4))
    # The gtc_reference network (32 channels, its 30 characters: SAR's 34 classes) as v3, with the
    # SAR fixture's head settings (tools/sar_reference.py CASES["lstm"]) and every dropout off.
    neck_args = {k: v for k, v in settings["neck"].items() if k != "name"}
    neck = SequenceEncoder(settings["in_channels"], "svtr", **neck_args)
    net = OCRModel(nn.Identity(), neck, CTCHead(neck.out_channels, len(settings["characters"]) + 2))
    net.config = {"architecture": "ch_PP-OCRv3_rec"}
    model = MultiHeadTraining(net, gtc_head=dict(enc_dim=16, d_k=16, max_text_length=8, enc_drop_rnn=0.0,
                                                 pred_dropout=0.0))
    assert model.output_key == "sar"
    model.load_paddle_branch(path)
    prediction = model.branch.get_parameter("sar_head.decoder.prediction.weight")
    assert np.array_equal(prediction.detach().numpy(), head["decoder.prediction.weight"].T)
    ref = np.load(sar_fixture / "lstm.npz")
    targets = [torch.from_numpy(ref["label"]), torch.from_numpy(ref["length"]), torch.from_numpy(ref["valid_ratio"])]
    logits = model.train().branch["sar_head"](torch.from_numpy(ref["feat"]), targets)  # the fixture's map is 2 high
    _close(logits, ref["logits"], "SAR logits")


def _rec_dataset(folder, texts, encoder, **options):
    """A RecDataset over square images (RecConAug's aspect-ratio rule lets any two join)."""
    import cv2

    from ptocr.training import RecDataset

    rng = np.random.default_rng(0)
    for i in range(len(texts)):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    label = folder / "rec.txt"
    label.write_text("".join(f"{i}.png\t{t}\n" for i, t in enumerate(texts)), encoding="utf-8")
    return RecDataset(label, folder, encoder, **options)


def test_rec_dataset_yields_multihead_labels_and_trains(tmp_path):
    """A RecDataset given MultiLabelEncode yields what MultiHeadTraining and MultiLoss read; its
    labels are the two encoders' own."""
    from ptocr.training import CTCLabelEncode, collate

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789")
    net = ptocr.create_model("ch_PP-OCRv4_rec", num_classes=len(chars) + 2)
    encoder = MultiLabelEncode(chars)
    data = _rec_dataset(tmp_path, ["hello", "ab12", "text"], encoder, train=False)
    item = data[1]
    assert {"label_ctc", "label_gtc", "length", "valid_ratio", "text"} <= set(item) and "label" not in item
    assert item["label_ctc"].tolist() == CTCLabelEncode(chars)("ab12")["label"].tolist()
    assert item["label_gtc"].tolist() == NRTRLabelEncode(chars)("ab12")["label"].tolist()
    batch = collate([data[i] for i in range(3)])
    model = MultiHeadTraining(net).train()
    losses = MultiLoss()(model(batch["image"], batch), batch)
    assert set(losses) == {"CTCLoss", "NRTRLoss", "loss"} and torch.isfinite(losses["loss"])


def test_text_refused_after_the_join_is_redrawn_as_paddleocr(tmp_path):
    """RecConAug joins texts up to max_text_length; NRTR's labels need two places more, so a join
    of 12 + 12 characters is refused, and PaddleOCR's dataset then draws another sample (a
    random one in training, the next in evaluation) instead of failing."""
    import random

    from ptocr.training.augment import RecConAug
    from ptocr.training.data import Compose, EncodeText

    encoder = MultiLabelEncode(list("abcdefghijklmnopqrstuvwxyz"))
    texts = ["abcdefghijkl", "mnopqrstuvwx", "abc"]
    assert all(encoder.accepts(t) for t in texts) and not encoder.accepts(texts[0] + texts[1])
    steps = Compose([RecConAug(prob=1.0, image_shape=(48, 320, 3), max_text_length=25), EncodeText(encoder)])
    data = _rec_dataset(tmp_path, texts, encoder, transforms=steps)
    np.random.seed(5)
    random.seed(5)
    seen = [data[i % 2]["text"] for i in range(20)]
    assert all(encoder.accepts(t) for t in seen)
    assert any(len(t) > 12 for t in seen)  # joins that fit are kept
