"""PP-OCRv3's SAR branch (ptocr.training.sar) against PaddleOCR: the head and loss against the
fixture PaddleOCR's own SARHead / SARLoss wrote in paddle (tools/sar_reference.py: outputs, loss,
gradients), the labels against PaddleOCR's installed SARLabelEncode (bit for bit), the head on the
real v3 backbone. The fixture's weights are read as a training checkpoint's ``head.sar_head.*``
through ``ptocr.training.gtc_weights.load_gtc_branch``, the path ``load_paddle_branch`` takes."""

from __future__ import annotations

import ast
import pickle
import random
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_labels_as_paddleocr
from torch import nn

import ptocr
from converter.readers.pdparams import read_pdparams
from ptocr.dictionary import builtin_dictionary
from ptocr.errors import PtocrError
from ptocr.training.gtc_weights import load_gtc_branch
from ptocr.training.sar import SARHead, SARLabelEncode, SARLoss

FIXTURE = Path(__file__).parent / "fixtures" / "sar_reference"
# tools/sar_reference.py's settings (kept here: the tool imports paddle).
CHARS = "abcdefghijklmnopqrstuvwxyz0123"
CASES = {
    "lstm": dict(in_channels=32, enc_dim=16, d_k=16),
    "gru_bi": dict(in_channels=16, enc_dim=4, d_k=8, enc_gru=True, dec_gru=True, enc_bi_rnn=True,
                   dec_bi_rnn=True, pred_concat=False),
}
SAR_CLASSES, PADDING = len(CHARS) + 1 + 3, len(CHARS) + 3


def _assert_close(got, want, what):
    """float32 rounding: 1e-5 relative, or 1e-6 of the array's largest value for the elements
    that cancel to near zero (sums of products of both signs)."""
    got = got.detach().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * float(np.abs(want).max()), err_msg=what)


def _write_checkpoint(path, case, prefix="head.sar_head.", extra=None):
    """The fixture's head state dict (paddle's names, both of each RNN weight's) as a training
    checkpoint's entries ``<prefix><name>``, written as the converter's reader takes it."""
    tensors = {f"{prefix}{k}": np.asarray(v) for k, v in read_pdparams(FIXTURE / f"{case}.pdparams").items()}
    path.write_bytes(pickle.dumps({**tensors, **(extra or {})}, protocol=4))
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sar_checkpoints")
    return {case: _write_checkpoint(folder / f"{case}.pdparams", case) for case in CASES}


def _new_head(case):
    return SARHead(out_channels=SAR_CLASSES, max_text_length=8, enc_drop_rnn=0.0, pred_dropout=0.0, **CASES[case])


def _load(head, path, submodel=None):
    load_gtc_branch(nn.ModuleDict({"sar_head": head}), path, submodel=submodel)  # MultiHeadTraining.branch's form
    return head


def _fixture_head(checkpoints, case):
    return _load(_new_head(case), checkpoints[case])


def _is_linear_weight(head, name):
    """Paddle stores a Linear weight [in, out]: its gradient too is the transpose of torch's."""
    module, _, leaf = name.rpartition(".")
    return leaf == "weight" and isinstance(head.get_submodule(module), nn.Linear)


def _targets(ref, ratio_dtype=torch.float64):
    return [torch.from_numpy(ref["label"]), torch.from_numpy(ref["length"]),
            torch.from_numpy(ref["valid_ratio"]).to(ratio_dtype)]


# --------------------------------------------------------------------------------------------
# Head and loss against PaddleOCR's, run in paddle
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_training_forward_loss_and_gradients_match_paddleocr(checkpoints, case):
    ref = np.load(FIXTURE / f"{case}.npz")
    head = _fixture_head(checkpoints, case).train()
    feat = torch.from_numpy(ref["feat"]).requires_grad_()
    targets = _targets(ref)
    logits = head(feat, targets)
    _assert_close(logits, ref["logits"], "logits")
    loss = SARLoss(ignore_index=PADDING)(logits, [None, *targets])["loss"]  # MultiLoss's list
    _assert_close(loss, ref["loss"], "loss")
    loss.backward()
    _assert_close(feat.grad, ref["grad_feat"], "d loss / d feat")
    params = dict(head.named_parameters())
    names = [k[len("grad/"):] for k in ref.files if k.startswith("grad/")]
    assert len(names) >= 10
    for name in names:
        grad = params[name].grad
        _assert_close(grad.T if _is_linear_weight(head, name) else grad, ref[f"grad/{name}"], f"d loss / d {name}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_eval_greedy_decode_matches_paddleocr(checkpoints, case):
    ref = np.load(FIXTURE / f"{case}.npz")
    head = _fixture_head(checkpoints, case).eval()
    feat = torch.from_numpy(ref["feat"])
    with torch.no_grad():
        _assert_close(head(feat, _targets(ref)), ref["eval_probs_masked"], "eval, masked")
        _assert_close(head(feat, None), ref["eval_probs_unmasked"], "eval, unmasked")


def test_float32_valid_ratios_give_the_same_masks(checkpoints):
    """The ratio * width arithmetic stays in the ratio's dtype: a float32 0.3 widened to float64
    would make ceil(0.3 * 20) 7 instead of 6."""
    ref = np.load(FIXTURE / "lstm.npz")
    head = _fixture_head(checkpoints, "lstm").train()
    logits = head(torch.from_numpy(ref["feat"]), _targets(ref, torch.float32))
    _assert_close(logits, ref["logits"], "logits with float32 ratios")


def test_greedy_decode_keeps_autograd_working(checkpoints):
    head = _fixture_head(checkpoints, "lstm").eval()
    feat = torch.from_numpy(np.load(FIXTURE / "lstm.npz")["feat"]).requires_grad_()
    head(feat).sum().backward()  # no in-place write into a tensor the RNN saved
    assert torch.isfinite(feat.grad).all()


# --------------------------------------------------------------------------------------------
# PaddleOCR checkpoint names
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_paddle_names_map_onto_the_head(tmp_path, case):
    paddle_state = read_pdparams(FIXTURE / f"{case}.pdparams")
    cells = [k for k in paddle_state if ".cell" in k]  # paddle's second name for each RNN weight
    assert cells and len(cells) * 2 == sum("rnn_" in k for k in paddle_state)
    ctc = {"head.ctc_head.fc.weight": np.zeros((2, 2), np.float32)}  # another branch: not taken
    head = _load(_new_head(case), _write_checkpoint(tmp_path / "multihead.pdparams", case, extra=ctc))
    state = head.state_dict()
    assert len(state) == len(paddle_state) - len(cells)
    for name, value in state.items():  # every weight paddle's, Linear weights transposed
        want = paddle_state[name].T if _is_linear_weight(head, name) else paddle_state[name]
        np.testing.assert_array_equal(value.numpy(), want, err_msg=name)
    np.testing.assert_array_equal(head.decoder.prediction.weight.detach().numpy(),
                                  paddle_state["decoder.prediction.weight"].T)
    # A cell's copy is the same tensor as torch's name for it (what makes dropping it safe).
    fw = "_fw" if case == "gru_bi" else ""
    np.testing.assert_array_equal(paddle_state[f"encoder.rnn_encoder.1.cell{fw}.weight_hh"],
                                  paddle_state["encoder.rnn_encoder.weight_hh_l1"])
    # A distillation checkpoint: the Student's head by default.
    student = _write_checkpoint(tmp_path / "distill.pdparams", case, prefix="Student.head.sar_head.")
    tensors = pickle.loads(student.read_bytes())
    tensors.update({k.replace("Student.", "Teacher.", 1): np.zeros_like(v) for k, v in tensors.items()})
    student.write_bytes(pickle.dumps(tensors, protocol=4))
    loaded = _load(_new_head(case), student).state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not any(v.abs().sum() > 0 for v in _load(_new_head(case), student, submodel="Teacher").state_dict().values())
    with pytest.raises(PtocrError, match="holds no GTC branch"):
        _load(_new_head(case), _write_checkpoint(tmp_path / "other.pdparams", case, prefix="head.other."))


# --------------------------------------------------------------------------------------------
# Labels against PaddleOCR's SARLabelEncode
# --------------------------------------------------------------------------------------------
def _paddleocr_sar_label_encode(root):
    """Only BaseRecLabelEncode and SARLabelEncode of the installed label_ops.py (it imports paddle)."""
    path = root / "ppocr/data/imaug/label_ops.py"
    with warnings.catch_warnings():  # PaddleOCR's sources have invalid escape sequences
        warnings.simplefilter("ignore")
        tree = ast.parse(path.read_text(encoding="utf-8"))
    body = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in ("BaseRecLabelEncode", "SARLabelEncode")]
    ns = dict(np=np, get_logger=lambda: None)
    exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), ns)
    return types.SimpleNamespace(SARLabelEncode=ns["SARLabelEncode"])


def _texts(alphabet, count, seed=0):
    rng = random.Random(seed)
    texts = ["", " ", "a", "ab", "abcdef", "abcdefg", "abcdefgh", "abcdefghi", "a?b", "???", "é", "é é",
             "abcdef?", "abcdef??", "??abcdef", "ABC", "我", "a b c"]
    pool = alphabet + "?é我 "
    texts += ["".join(rng.choice(pool) for _ in range(rng.randint(0, 11))) for _ in range(count)]
    return texts


@pytest.mark.parametrize("use_space_char,repeat", [(True, False), (False, False), (True, True)])
def test_sar_labels_match_paddleocr(paddleocr_src, tmp_path, use_space_char, repeat):
    chars = list(CHARS) + (["b", "我"] if repeat else [])  # a repeated character takes its last index
    path = tmp_path / "dict.txt"
    path.write_text("".join(c + "\n" for c in chars), encoding="utf-8")
    theirs = _paddleocr_sar_label_encode(paddleocr_src).SARLabelEncode(
        max_text_length=8, character_dict_path=str(path), use_space_char=use_space_char)
    ours = SARLabelEncode(path, max_text_length=8, use_space_char=use_space_char)
    assert ours.characters == theirs.character and ours.num_classes == len(theirs.character)
    assert (ours.unknown_idx, ours.start_idx, ours.end_idx, ours.padding_idx) == \
        (theirs.unknown_idx, theirs.start_idx, theirs.end_idx, theirs.padding_idx)
    assert assert_labels_as_paddleocr(ours, theirs, _texts(CHARS, 400)) > 50


def test_sar_labels_by_hand():
    encode = SARLabelEncode(list("abc"), max_text_length=6)  # a b c " " <UKN> <BOS/EOS> <PAD>
    assert encode.num_classes == 7 and (encode.start_idx, encode.padding_idx) == (5, 6)
    got = encode("c ab")
    assert got["label"].tolist() == [5, 2, 3, 0, 1, 5] and int(got["length"]) == 4
    assert encode("cxa")["label"].tolist() == [5, 2, 0, 5, 6, 6]  # "x" unknown: dropped
    with pytest.raises(PtocrError, match="the label takes 7, over max_text_length 6"):
        encode("abcab")
    assert encode.accepts("abcax") and not encode.accepts("")
    net_dictionary = builtin_dictionary("ppocr_keys_v1.txt", True)
    ch = SARLabelEncode(net_dictionary)
    assert ch.num_classes == net_dictionary.num_classes + 2  # tools/train.py's SARLabelDecode + 2


# --------------------------------------------------------------------------------------------
# Loss by hand
# --------------------------------------------------------------------------------------------
def test_sar_loss_by_hand():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5)
    label = torch.tensor([[4, 1, 3, 4], [4, 2, 4, 5]])  # start 4, padding 5
    got = SARLoss(ignore_index=5)(logits, {"label_sar": label})["loss"]
    steps = [(0, 0, 1), (0, 1, 3), (0, 2, 4), (1, 0, 2), (1, 1, 4)]  # (sample, step, target)
    want = torch.stack([-logits[n, t].log_softmax(-1)[c] for n, t, c in steps]).mean()
    torch.testing.assert_close(got, want)
    with pytest.raises(PtocrError, match="ignore_index=SARLabelEncode's padding_idx"):
        SARLoss()(logits, [None, label])  # 92: the padding 5 is out of the 5 predicted classes


# --------------------------------------------------------------------------------------------
# The real size on PP-OCRv3's backbone
# --------------------------------------------------------------------------------------------
def test_v3_sized_head_trains_on_the_v3_backbone():
    torch.manual_seed(0)
    net = ptocr.create_model("ch_PP-OCRv3_rec").train()
    encode = SARLabelEncode(builtin_dictionary("ppocr_keys_v1.txt", True), max_text_length=25)
    assert encode.num_classes == net.head.fc.out_features + 2
    head = SARHead(in_channels=512, out_channels=encode.num_classes, enc_dim=512, max_text_length=25).train()
    feat = net.backbone(torch.randn(2, 3, 48, 320))
    assert feat.shape == (2, 512, 1, 40)
    labels = [encode(t) for t in ("你好, world", "PP-OCRv3")]
    targets = [torch.from_numpy(np.stack([e["label"] for e in labels])),
               torch.from_numpy(np.stack([e["length"] for e in labels])), torch.tensor([1.0, 0.45], dtype=torch.float64)]
    logits = head(feat, targets)
    assert logits.shape == (2, 25, encode.num_classes - 1)
    loss = SARLoss(ignore_index=encode.padding_idx)(logits, [None, *targets])["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    backbone_grads = [p.grad for p in net.backbone.parameters() if p.grad is not None]
    assert backbone_grads and all(torch.isfinite(g).all() for g in backbone_grads)
    assert any(g.abs().sum() > 0 for g in backbone_grads)
    assert all(p.grad is not None for n, p in head.named_parameters()), "a head parameter got no gradient"


def test_training_mode_needs_targets():
    head = SARHead(in_channels=8, out_channels=6, enc_dim=4, d_k=4).train()
    with pytest.raises(PtocrError, match="needs the targets"):
        head(torch.zeros(1, 8, 1, 5))
    with pytest.raises(PtocrError, match="must be in"):
        SARHead(in_channels=8, out_channels=6, pred_dropout=1.0)
