"""ptocr.training's targets and losses against PaddleOCR: the label makers against PaddleOCR's own
MakeShrinkMap / MakeBorderMap / CTCLabelEncode (bit for bit), the losses against paddle's ops
composed as ppocr/losses composes them (values and gradients), and small cases by hand."""

from __future__ import annotations

import ast
import math
import types
import warnings

import cv2
import numpy as np
import pyclipper
import pytest
import torch
from shapely.geometry import Polygon

from conftest import assert_labels_as_paddleocr

import ptocr
from ptocr.errors import PtocrError
from ptocr.training import (ClsLoss, CTCLabelEncode, CTCLoss, DBLoss, MakeBorderMap, MakeShrinkMap, make_border_map,
                            make_db_targets, make_shrink_map)


def _paddleocr_classes(root, relpath, names):
    """Only the named top-level classes of one installed PaddleOCR file (its imports pull paddle)."""
    ns = dict(np=np, cv2=cv2, pyclipper=pyclipper, Polygon=Polygon, get_logger=lambda: None)
    with warnings.catch_warnings():  # PaddleOCR's sources have invalid escape sequences
        warnings.simplefilter("ignore")
        tree = ast.parse((root / relpath).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in names:
            exec(compile(ast.Module(body=[node], type_ignores=[]), str(root / relpath), "exec"), ns)
    return types.SimpleNamespace(**{n: ns[n] for n in names})


@pytest.fixture(scope="module")
def ppocr(paddleocr_src):
    imaug = "ppocr/data/imaug/"
    return types.SimpleNamespace(
        **vars(_paddleocr_classes(paddleocr_src, imaug + "make_shrink_map.py", ["MakeShrinkMap"])),
        **vars(_paddleocr_classes(paddleocr_src, imaug + "make_border_map.py", ["MakeBorderMap"])),
        **vars(_paddleocr_classes(paddleocr_src, imaug + "label_ops.py", ["BaseRecLabelEncode", "CTCLabelEncode"])))


# --------------------------------------------------------------------------------------------
# DB targets
# --------------------------------------------------------------------------------------------
def _random_polygon(rng, h, w):
    kind = rng.integers(0, 5)
    center = rng.uniform([-10, -10], [w + 10, h + 10])
    if kind == 0:  # a rotated text box, any size (small ones fall under min_text_size)
        size = rng.uniform([2, 2], [w / 1.5, h / 3])
        return cv2.boxPoints((tuple(center), tuple(size), float(rng.uniform(-45, 45))))
    if kind == 1:  # a curved-text-like star polygon, 6 to 14 points
        k = int(rng.integers(6, 15))
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = rng.uniform(3, min(h, w) / 3, k)
        return np.stack([center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)], 1)
    if kind == 2:  # a dumbbell: shrinking splits it, the ratio is retried
        x, y, s, bar = center[0], center[1], rng.uniform(10, 25), rng.uniform(0.05, 0.35) / 2
        return np.array([[x, y], [x + s, y], [x + s, y + s * (0.5 - bar)], [x + 2 * s, y + s * (0.5 - bar)],
                         [x + 2 * s, y], [x + 3 * s, y], [x + 3 * s, y + s], [x + 2 * s, y + s],
                         [x + 2 * s, y + s * (0.5 + bar)], [x + s, y + s * (0.5 + bar)], [x + s, y + s], [x, y + s]])
    if kind == 3:  # a box whose last points repeat (DetLabelEncode pads polygons so)
        box = cv2.boxPoints((tuple(center), tuple(rng.uniform([10, 10], [60, 30])), float(rng.uniform(-30, 30))))
        return np.concatenate([box, box[-1:], box[-1:]])
    return np.round(rng.uniform([0, 0], [w, h], (4, 2)))  # any quadrilateral, integer points


def _ragged_to_array(polygons):
    """DetLabelEncode's padding: each polygon's last point repeated up to the longest."""
    most = max(len(p) for p in polygons)
    return np.array([np.concatenate([p, np.repeat(p[-1:], most - len(p), 0)]) for p in polygons], np.float32)


def _paddleocr_targets(ppocr, polys, ignore, h, w):
    """PaddleOCR's PP-OCR det config order: MakeBorderMap, then MakeShrinkMap (which clips the
    polys in place: the border map must not see that)."""
    data = {"image": np.zeros((h, w, 3), np.uint8), "polys": polys.copy(), "ignore_tags": ignore.copy()}
    with np.errstate(divide="ignore", invalid="ignore"):  # PaddleOCR sets this globally at import
        data = ppocr.MakeBorderMap(shrink_ratio=0.4, thresh_min=0.3, thresh_max=0.7)(data)
        return ppocr.MakeShrinkMap(shrink_ratio=0.4, min_text_size=8)(data)


def _grown_box_meets_image(polygon, h, w):
    # Where the grown polygon's box misses the image PaddleOCR's slicing misbehaves (documented).
    shape = Polygon(polygon)
    if shape.area <= 0:
        return True
    o = pyclipper.PyclipperOffset()
    o.AddPath(polygon.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    grown = np.array(o.Execute(shape.area * (1 - 0.16) / shape.length)[0])
    return grown[:, 0].max() >= 0 and grown[:, 1].max() >= 0 and grown[:, 0].min() <= w - 1 and grown[:, 1].min() <= h - 1


def _splits_when_shrunk(polygon):
    shape = Polygon(polygon)
    o = pyclipper.PyclipperOffset()
    o.AddPath(polygon.tolist(), pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    return shape.is_valid and len(o.Execute(-shape.area * (1 - 0.16) / shape.length)) > 1


def test_db_targets_match_paddleocr_bit_for_bit(ppocr):
    rng = np.random.default_rng(0)
    split = 0
    for trial in range(60):
        h, w = 32 * int(rng.integers(2, 8)), 32 * int(rng.integers(2, 8))
        polys = [_random_polygon(rng, h, w).astype(np.float32) for _ in range(int(rng.integers(1, 7)))]
        polys = _ragged_to_array([p for p in polys if _grown_box_meets_image(p, h, w)] or [polys[0] * 0 + 5])
        ignore = rng.random(len(polys)) < 0.15
        want = _paddleocr_targets(ppocr, polys, ignore, h, w)
        got = make_db_targets(polys, h, w, ignore)
        for key in ("threshold_map", "threshold_mask", "shrink_map", "shrink_mask"):
            assert got[key].dtype == np.float32 and got[key].shape == (h, w), key
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"trial {trial}: {key}")
        split += sum(_splits_when_shrunk(p) for p, ignored in zip(polys, ignore) if not ignored)
    assert split >= 5  # the retry at the next shrink ratio was exercised


def test_the_data_dict_transforms_match_paddleocr(ppocr):
    polys = np.array([[[5, 5], [60, 8], [58, 30], [4, 27]], [[70, 40], [75, 40], [75, 44], [70, 44]]], np.float32)
    ignore = np.array([False, False])
    want = _paddleocr_targets(ppocr, polys, ignore, 64, 96)
    data = {"image": np.zeros((64, 96, 3), np.uint8), "polys": polys.copy(), "ignore_tags": ignore.copy()}
    data = MakeShrinkMap()(MakeBorderMap()(data))
    for key in ("threshold_map", "threshold_mask", "shrink_map", "shrink_mask"):
        np.testing.assert_array_equal(data[key], want[key])
    np.testing.assert_array_equal(data["polys"], polys)  # left as given (PaddleOCR clips it in place)


def test_db_targets_of_a_rectangle_by_hand():
    # 40 x 20 box: DB's distance D = 800 * (1 - 0.4^2) / 120 = 5.6 pixels.
    rect = [[10, 10], [50, 10], [50, 30], [10, 30]]
    shrink_map, shrink_mask = make_shrink_map([rect], 40, 64)
    ys, xs = np.nonzero(shrink_map)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (16, 44, 16, 24)  # 10 + 5.6 and 50 - 5.6, rounded
    assert shrink_map.sum() == 29 * 9 and shrink_mask.min() == 1
    threshold_map, threshold_mask = make_border_map([rect], 40, 64)
    assert threshold_mask[20, 3] == 0 and threshold_mask[20, 4] == 1 and threshold_mask[20, 57] == 0
    assert threshold_mask[4, 4] == 0  # the grown corner is round
    assert threshold_map[10, 30] == pytest.approx(0.7)                       # on the outline
    assert threshold_map[13, 30] == pytest.approx(0.3 + 0.4 * (1 - 3 / 5.6))  # 3 px inside the edge
    assert threshold_map[20, 30] == pytest.approx(0.3) and threshold_map[0, 0] == pytest.approx(0.3)


def test_ignored_small_and_degenerate_texts_are_masked_out_of_the_shrink_map():
    big = [[10, 10], [50, 10], [50, 30], [10, 30]]
    small = [[60, 10], [66, 10], [66, 30], [60, 30]]    # 6 px wide < min_text_size 8
    flat = [[5, 35], [40, 35], [40, 35.5], [5, 35.5]]  # area 17.5, 0.5 px high
    sliver = [[70.95, 5], [80.95, 15], [81.04, 15], [71.04, 5]]  # 10 x 10 box, area 0.9 < 1
    shrink_map, shrink_mask = make_shrink_map([big, small, flat, sliver], 40, 90,
                                              ignore_tags=[True, False, False, False])
    assert make_shrink_map([sliver], 40, 90, min_text_size=0)[0].sum() == 0
    assert make_shrink_map([np.array(sliver) * [1, 1.2]], 40, 90, min_text_size=0)[0].sum() > 0  # area 1.08
    assert shrink_map.sum() == 0
    assert shrink_mask[20, 30] == 0 and shrink_mask[20, 63] == 0 and shrink_mask[35, 20] == 0
    assert shrink_mask[5, 5] == 1 and shrink_mask[10, 76] == 0
    threshold_map, threshold_mask = make_border_map([big, small], 40, 80, ignore_tags=[True, False])
    assert threshold_mask[:, :55].sum() == 0 and threshold_mask[:, 55:].sum() > 0  # ignored: no border


def test_a_text_outside_the_image_draws_no_border():
    threshold_map, threshold_mask = make_border_map([[[200, 10], [240, 10], [240, 30], [200, 30]]], 40, 64)
    assert threshold_mask.sum() == 0 and np.all(threshold_map == np.float32(0.3))


@pytest.mark.parametrize("polygons, ignore, match", [
    ([[[0, 0], [1, 1]]], None, "shape"),
    ([[[0, 0], [5, 0], [np.nan, 5]]], None, "non-finite"),
    ([[[0, 0], [5, 0], [5, 5]]], [False, True], "2 ignore tags for 1"),
    (["abc"], None, "not an array"),
])
def test_bad_polygons_are_refused(polygons, ignore, match):
    with pytest.raises(PtocrError, match=match):
        make_db_targets(polygons, 32, 32, ignore)


# --------------------------------------------------------------------------------------------
# CTC labels
# --------------------------------------------------------------------------------------------
CHARS = ["a", "b", "c", "我", "1", "b", "é"]  # "b" twice: PaddleOCR's map keeps its last index


def test_ctc_labels_match_paddleocr(ppocr, tmp_path):
    path = tmp_path / "dict.txt"
    path.write_text("".join(c + "\n" for c in CHARS), encoding="utf-8")
    theirs = ppocr.CTCLabelEncode(max_text_length=6, character_dict_path=str(path), use_space_char=True)
    ours = CTCLabelEncode(path, max_text_length=6)
    assert ours.num_classes == len(theirs.character) == len(CHARS) + 2
    texts = ["abc", "b", "我 1é", "a?b", "abcabc", "abcabca", "", "???", " ", "xa", "ABC", "é é é"]
    assert 0 < assert_labels_as_paddleocr(ours, theirs, texts) < len(texts)  # both branches met
    assert ours("abc")["label"].dtype == np.int64


def test_ctc_labels_by_hand():
    encode = CTCLabelEncode(list("abc"), max_text_length=5)  # + space: 5 classes
    got = encode("c ab")
    assert got["label"].tolist() == [3, 4, 1, 2, 0] and int(got["length"]) == 4
    assert encode("cxa")["label"].tolist() == [3, 1, 0, 0, 0]  # "x" unknown: dropped
    with pytest.raises(PtocrError, match="over max_text_length 5"):
        encode("abcabc")
    with pytest.raises(PtocrError, match="empty"):
        encode("")
    with pytest.raises(PtocrError, match="none of"):
        encode("xyz")
    assert CTCLabelEncode(list("abc"), use_space_char=False)("c a")["label"][:3].tolist() == [3, 1, 0]


# --------------------------------------------------------------------------------------------
# Losses against paddle (ppocr/losses composed with paddle's ops)
# --------------------------------------------------------------------------------------------
paddle = pytest.importorskip("paddle")


def _paddle_balance(main, pred, gt, mask, negative_ratio=3, eps=1e-6):
    """det_basic_loss.py BalanceLoss.forward, in paddle."""
    positive = gt * mask
    negative = (1 - gt) * mask
    positive_count = int(positive.sum())
    negative_count = int(min(negative.sum(), positive_count * negative_ratio))
    loss = main(pred, gt, mask)
    positive_loss = positive * loss
    negative_loss = paddle.reshape(negative * loss, shape=[-1])
    if negative_count > 0:
        negative_loss = negative_loss.sort(descending=True)[:negative_count]
        return (positive_loss.sum() + negative_loss.sum()) / (positive_count + negative_count + eps)
    return positive_loss.sum() / (positive_count + eps)


def _paddle_dice(pred, gt, mask, eps=1e-6):
    intersection = paddle.sum(pred * gt * mask)
    union = paddle.sum(pred * mask) + paddle.sum(gt * mask) + eps
    return 1 - 2.0 * intersection / union


def _paddle_db_loss(maps, targets, main="DiceLoss", cbn=None, alpha=5, beta=10, eps=1e-6):
    """det_db_loss.py DBLoss.forward, in paddle. Returns (loss, terms)."""
    t = {k: paddle.to_tensor(v) for k, v in targets.items()}
    if main == "DiceLoss":
        main_loss = _paddle_dice
    else:
        def main_loss(pred, gt, mask):
            return paddle.nn.functional.binary_cross_entropy(pred, gt, reduction="none")
    shrink = alpha * _paddle_balance(main_loss, maps[:, 0], t["shrink_map"], t["shrink_mask"])
    threshold = beta * ((paddle.abs(maps[:, 1] - t["threshold_map"]) * t["threshold_mask"]).sum()
                        / (t["threshold_mask"].sum() + eps))
    binary = _paddle_dice(maps[:, 2], t["shrink_map"], t["shrink_mask"], eps)
    loss = shrink + threshold + binary
    if cbn is not None:
        loss = loss + _paddle_balance(main_loss, cbn[:, 0], t["shrink_map"], t["shrink_mask"])
    return loss, (shrink, threshold, binary)


def _db_case(seed=0, n=2, h=64, w=96):
    rng = np.random.default_rng(seed)
    targets = [make_db_targets([_random_polygon(rng, h, w) for _ in range(4)], h, w) for _ in range(n)]
    batch = {k: np.stack([t[k] for t in targets]) for k in targets[0]}
    maps = (1 / (1 + np.exp(-rng.normal(0, 2, (n, 3, h, w))))).astype(np.float32)
    return maps, batch


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("main", ["DiceLoss", "BCELoss"])
def test_db_loss_and_its_gradient_match_paddle(main, dtype):
    # The reference runs in float64: paddle's own float32 gradient of the shrink term is 1.4e-5
    # off its float64 one (the broadcast scalar's gradient summed over 12k pixels in float32).
    maps, batch = _db_case()
    assert batch["shrink_map"].sum() > 0 and batch["threshold_mask"].sum() > 0
    pmaps = paddle.to_tensor(maps.astype(np.float64), stop_gradient=False)
    ploss, pterms = _paddle_db_loss(pmaps, {k: v.astype(np.float64) for k, v in batch.items()}, main)
    ploss.backward()
    tmaps = torch.tensor(maps, dtype=dtype, requires_grad=True)
    got = DBLoss(main_loss_type=main)({"maps": tmaps}, {k: torch.from_numpy(v) for k, v in batch.items()})
    got["loss"].backward()
    rel = 1e-12 if dtype == torch.float64 else 1e-6  # float32: its rounding over 12k-pixel sums
    for key, want in zip(("loss_shrink_maps", "loss_threshold_maps", "loss_binary_maps"), pterms):
        assert got[key].dtype == dtype and got[key].item() == pytest.approx(float(want), rel=rel), key
    assert got["loss"].item() == pytest.approx(float(ploss), rel=rel)
    grad, want = tmaps.grad.double().numpy(), pmaps.grad.numpy()
    for c in range(3):
        assert np.abs(grad[:, c] - want[:, c]).max() <= rel * np.abs(want[:, c]).max(), c


def test_db_loss_with_pfheadlocal_outputs_adds_the_cbn_term():
    maps, batch = _db_case(seed=1)
    cbn = np.ascontiguousarray(maps[:, 2:3][:, :, ::-1])
    ploss, _ = _paddle_db_loss(paddle.to_tensor(maps), batch, cbn=paddle.to_tensor(cbn))
    t = torch.from_numpy
    got = DBLoss()({"maps": t(maps), "distance_maps": t(maps[:, :1]), "cbn_maps": t(cbn)},
                   [None, *(t(batch[k]) for k in ("threshold_map", "threshold_mask", "shrink_map", "shrink_mask"))])
    assert float(got["loss"]) == pytest.approx(float(ploss), rel=2e-6) and "loss_cbn" in got


def test_db_loss_by_hand():
    # One 1 x 5 image, all in the masks; one positive, so P = 1 and N = min(4, 3 * 1) = 3.
    shrink = torch.tensor([0.8, 0.9, 0.1, 0.3, 0.6])
    gt = torch.tensor([1.0, 0, 0, 0, 0])
    maps = torch.stack([shrink, torch.full((5,), 0.5), shrink]).reshape(1, 3, 1, 5)
    batch = {"shrink_map": gt.reshape(1, 1, 5), "shrink_mask": torch.ones(1, 1, 5),
             "threshold_map": torch.tensor([[[0.7, 0.3, 0.3, 0.3, 0.3]]]),
             "threshold_mask": torch.tensor([[[1.0, 1, 0, 0, 0]]])}
    dice = 1 - 2 * 0.8 / (sum(shrink.tolist()) + 1 + 1e-6)
    l1 = (0.2 + 0.2) / (2 + 1e-6)
    got = DBLoss()({"maps": maps}, batch)
    assert float(got["loss_binary_maps"]) == pytest.approx(dice, rel=1e-6)
    assert float(got["loss_threshold_maps"]) == pytest.approx(10 * l1, rel=1e-6)
    # "DiceLoss" in the balance: the hard-negative pick weights one number, the Dice loss itself.
    assert float(got["loss_shrink_maps"]) == pytest.approx(5 * dice * 4 / (4 + 1e-6), rel=1e-6)
    # "BCELoss": the 3 hardest negatives are 0.9, 0.6, 0.3 (0.1 left out).
    bce = -(math.log(0.8) + math.log(0.1) + math.log(0.4) + math.log(0.7)) / (4 + 1e-6)
    got = DBLoss(main_loss_type="BCELoss")({"maps": maps}, batch)
    assert float(got["loss_shrink_maps"]) == pytest.approx(5 * bce, rel=1e-6)


def test_db_loss_refuses_what_it_cannot_read():
    maps = torch.rand(2, 3, 8, 8)
    targets = {k: torch.rand(2, 8, 8) for k in ("threshold_map", "threshold_mask", "shrink_map", "shrink_mask")}
    with pytest.raises(PtocrError, match="N x 3 x H x W"):
        DBLoss()(torch.rand(2, 1, 8, 8), targets)
    with pytest.raises(PtocrError, match="shrink_mask has shape"):
        DBLoss()(maps, {**targets, "shrink_mask": torch.rand(2, 1, 8, 8)})
    with pytest.raises(PtocrError, match="no shrink_map"):
        DBLoss()(maps, {k: v for k, v in targets.items() if k != "shrink_map"})
    with pytest.raises(PtocrError, match="main_loss_type"):
        DBLoss(main_loss_type="DiceFocalLoss")


def _paddle_ctc(logits, label, length, focal):
    """rec_ctc_loss.py CTCLoss.forward, in paddle (warpctc takes the logits: softmax inside)."""
    predicts = logits.transpose((1, 0, 2))
    steps, batch, _ = predicts.shape
    loss = paddle.nn.CTCLoss(blank=0, reduction="none")(
        predicts, paddle.to_tensor(label, dtype="int32"), paddle.to_tensor([steps] * batch, dtype="int64"),
        paddle.to_tensor(length, dtype="int64"))
    if focal:
        loss = paddle.multiply(loss, paddle.square(paddle.subtract(paddle.to_tensor([1.0]), paddle.exp(-loss))))
    return loss.mean()


@pytest.mark.parametrize("focal", [False, True])
def test_ctc_loss_and_its_gradient_match_paddle(focal):
    rng = np.random.default_rng(3)
    encode = CTCLabelEncode(list("abcdefghij"), max_text_length=8)
    # the last label needs 8 + 3 repeats' blanks = 11 > 10 steps: infeasible, 0 in both
    texts = ["abc", "jihgfedc", "aab", "a", "aaaabbbb"]
    encoded = [encode(t) for t in texts]
    label = np.stack([e["label"] for e in encoded])
    length = np.stack([e["length"] for e in encoded])
    logits = rng.normal(0, 2, (len(texts), 10, encode.num_classes)).astype(np.float32)
    plogits = paddle.to_tensor(logits, stop_gradient=False)
    ploss = _paddle_ctc(plogits, label, length, focal)
    ploss.backward()
    tlogits = torch.tensor(logits, requires_grad=True)
    got = CTCLoss(use_focal_loss=focal)(tlogits, {"label": torch.from_numpy(label), "length": torch.from_numpy(length)})
    got["loss"].backward()
    assert got["loss"].item() == pytest.approx(float(ploss), rel=1e-5)
    np.testing.assert_allclose(tlogits.grad.numpy(), plogits.grad.numpy(), rtol=1e-4, atol=1e-6)
    assert not tlogits.grad[-1].any()  # the infeasible sample: no gradient, as warpctc


def test_ctc_loss_by_hand():
    x = torch.tensor([[[0.5, 1.0, -1.0], [2.0, 0.0, 0.3]]])  # N=1, T=2, C=3
    p = x.softmax(-1)[0]
    # label [1] in 2 steps: paths 1-1, blank-1, 1-blank
    want = -math.log(p[0, 1] * p[1, 1] + p[0, 0] * p[1, 1] + p[0, 1] * p[1, 0])
    batch = [None, torch.tensor([[1, 0]]), torch.tensor([1])]  # PaddleOCR's list
    assert float(CTCLoss()(x, batch)["loss"]) == pytest.approx(want, rel=1e-6)
    focal = want * (1 - math.exp(-want)) ** 2
    assert float(CTCLoss(use_focal_loss=True)([x * 0, x], batch)["loss"]) == pytest.approx(focal, rel=1e-6)


def test_ctc_loss_refuses_what_it_cannot_read():
    batch = {"label": torch.tensor([[1, 2, 0]]), "length": torch.tensor([2])}
    with pytest.raises(PtocrError, match="N x T x C"):
        CTCLoss()(torch.rand(1, 5), batch)
    with pytest.raises(PtocrError, match="outside the head's 2 classes"):
        CTCLoss()(torch.rand(1, 5, 2), batch)
    with pytest.raises(PtocrError, match="do not match a batch of 2"):
        CTCLoss()(torch.rand(2, 5, 4), batch)
    with pytest.raises(PtocrError, match="length is outside"):
        CTCLoss()(torch.rand(1, 5, 4), {"label": batch["label"], "length": torch.tensor([4])})


# --------------------------------------------------------------------------------------------
# On ptocr's networks
# --------------------------------------------------------------------------------------------
def test_the_losses_take_what_the_networks_return_in_training_mode():
    torch.manual_seed(0)
    det = ptocr.create_model("ch_ppocr_mobile_v2.0_det").train()
    targets = make_db_targets([[[8, 8], [56, 10], [55, 30], [7, 28]]], 64, 64)
    batch = {k: torch.from_numpy(v)[None] for k, v in targets.items()}
    losses = DBLoss()(det(torch.rand(1, 3, 64, 64) * 2 - 1), batch)
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"]) and det.head.thresh.conv1.weight.grad.abs().sum() > 0

    rec = ptocr.create_model("ch_PP-OCRv4_rec", num_classes=6).train()  # blank + abcd + space
    encode = CTCLabelEncode(list("abcd"), max_text_length=10)
    items = [encode(t) for t in ("ab", "dc ba")]
    batch = {k: torch.from_numpy(np.stack([i[k] for i in items])) for k in ("label", "length")}
    loss = CTCLoss()(rec(torch.rand(2, 3, 48, 160) * 2 - 1), batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and rec.head.fc.weight.grad.abs().sum() > 0


def test_cls_loss_matches_paddle_cross_entropy():
    """cls_loss.py: paddle's nn.CrossEntropyLoss (mean) on the classifier's training logits."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, (7, 2)).astype(np.float32)
    label = rng.integers(0, 2, 7)
    x = torch.tensor(logits, requires_grad=True)
    loss = ClsLoss()(x, {"label": torch.from_numpy(label)})["loss"]
    loss.backward()
    px = paddle.to_tensor(logits, stop_gradient=False)
    ref = paddle.nn.CrossEntropyLoss(reduction="mean")(px, paddle.to_tensor(label))
    ref.backward()
    assert abs(float(loss) - float(ref)) <= 1e-6 * max(1.0, abs(float(ref)))
    np.testing.assert_allclose(x.grad.numpy(), px.grad.numpy(), rtol=1e-5, atol=1e-7)
