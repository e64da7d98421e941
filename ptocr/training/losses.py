"""PaddleOCR's PP-OCR training losses on what ptocr's networks return in training mode.

Facts from PaddleOCR ``ppocr/losses/det_db_loss.py`` (DBLoss), ``det_basic_loss.py``
(BalanceLoss, DiceLoss, MaskL1Loss, BCELoss) and ``rec_ctc_loss.py`` (CTCLoss); checked against
paddle's own ops in ``tests/test_training_losses.py``. Both compute in float32 at least (autocast's
half-precision outputs are cast up, float64 stays) and return PaddleOCR's dict of losses, ``"loss"`` the one to minimise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ptocr.errors import PtocrError

__all__ = ["DBLoss", "CTCLoss"]

_DB_TARGETS = ("threshold_map", "threshold_mask", "shrink_map", "shrink_mask")


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 (autocast) outputs up to float32; float64 kept."""
    return t if t.dtype == torch.float64 else t.float()


# ---------------------------------------------------------------------------------------------
# DB
# ---------------------------------------------------------------------------------------------
def _dice(pred, gt, mask, eps: float):
    """1 - 2|P*G| / (|P| + |G|) over the mask: one number for the batch."""
    intersection = (pred * gt * mask).sum()
    union = (pred * mask).sum() + (gt * mask).sum() + eps
    return 1 - 2.0 * intersection / union


def _masked_l1(pred, gt, mask, eps: float):
    return ((pred - gt).abs() * mask).sum() / (mask.sum() + eps)


def _bce(pred, gt, mask, eps: float):
    """Per-pixel binary cross-entropy (log clamped at -100, as paddle's and torch's)."""
    with torch.autocast(pred.device.type, enabled=False):  # refused under autocast otherwise
        return F.binary_cross_entropy(pred, gt, reduction="none")


_MAIN_LOSSES = {"DiceLoss": _dice, "BCELoss": _bce}


def _balanced(main, pred, gt, mask, negative_ratio: float, eps: float = 1e-6):
    """PaddleOCR's BalanceLoss: the main loss weighted over the positives and the hardest
    ``negative_ratio`` x as many negatives (OHEM). A main loss that is one number (Dice) is
    broadcast, so the result is that number times (P + N) / (P + N + eps)."""
    positive = gt * mask
    negative = (1 - gt) * mask
    positive_count = int(positive.sum())
    negative_count = int(min(float(negative.sum()), positive_count * negative_ratio))
    loss = main(pred, gt, mask, eps)
    positive_loss = (positive * loss).sum()
    if negative_count <= 0:
        return positive_loss / (positive_count + eps)
    hardest = (negative * loss).reshape(-1).topk(negative_count).values
    return (positive_loss + hardest.sum()) / (positive_count + negative_count + eps)


def _db_maps(predicts) -> torch.Tensor:
    maps = predicts["maps"] if isinstance(predicts, Mapping) else predicts
    if not isinstance(maps, torch.Tensor) or maps.ndim != 4 or maps.shape[1] != 3:
        shape = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise PtocrError(f"DBLoss takes the detector's training output {{'maps': N x 3 x H x W}} "
                         f"(shrink, threshold, binary), got {shape}")
    return _at_least_float32(maps)


def _db_targets(batch, size) -> dict[str, torch.Tensor]:
    """The four target maps from a dict (make_db_targets' keys) or PaddleOCR's batch list
    ``[image, threshold_map, threshold_mask, shrink_map, shrink_mask]``."""
    if isinstance(batch, Mapping):
        missing = [k for k in _DB_TARGETS if k not in batch]
        if missing:
            raise PtocrError(f"DBLoss: the batch has no {', '.join(missing)}")
        targets = {k: batch[k] for k in _DB_TARGETS}
    elif isinstance(batch, Sequence) and len(batch) == 5:
        targets = dict(zip(_DB_TARGETS, batch[1:]))
    else:
        raise PtocrError("DBLoss: the batch must be a dict with " + ", ".join(_DB_TARGETS)
                         + " or PaddleOCR's list [image, threshold_map, threshold_mask, shrink_map, shrink_mask]")
    for key, value in targets.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(size):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise PtocrError(f"DBLoss: {key} has shape {shape}, the predicted maps N x H x W {tuple(size)}")
    return targets


class DBLoss(nn.Module):
    """PaddleOCR's DBLoss with PP-OCR's defaults.

    ``loss = alpha * shrink + beta * threshold + binary`` (+ ``cbn`` for PFHeadLocal):

    * shrink: BalanceLoss of the shrink map (channel 0) on ``shrink_map`` / ``shrink_mask``
      with ``ohem_ratio`` negatives per positive. Its ``main_loss_type`` ``"DiceLoss"``
      (PaddleOCR's only choice in 2.10, every PP-OCR config's) makes this term the batch's Dice
      loss: the hard-negative selection weights a single number. ``"BCELoss"`` gives the DB
      paper's per-pixel BCE with hard negatives (PaddleOCR's BalanceLoss option; its DBLoss
      does not offer it).
    * threshold: L1 between the threshold map (channel 1) and ``threshold_map`` inside
      ``threshold_mask``, averaged over the mask.
    * binary: Dice loss of the approximate binary map (channel 2) on the shrink targets.
    * cbn (when ``predicts`` has ``distance_maps``, PP-OCRv4 server's PFHeadLocal): BalanceLoss
      of ``predicts["cbn_maps"]``, unweighted.

    ``eps`` reaches the L1 and binary Dice terms; the balanced terms keep 1e-6 (as PaddleOCR).
    ``forward(predicts, batch)``: ``predicts`` the detector's training output (or its maps),
    ``batch`` a dict with the four targets (N x H x W) or PaddleOCR's batch list.
    Returns ``loss``, ``loss_shrink_maps``, ``loss_threshold_maps``, ``loss_binary_maps``
    (and ``loss_cbn``).
    """

    def __init__(self, balance_loss: bool = True, main_loss_type: str = "DiceLoss", alpha: float = 5,
                 beta: float = 10, ohem_ratio: float = 3, eps: float = 1e-6):
        super().__init__()
        if main_loss_type not in _MAIN_LOSSES:
            raise PtocrError(f"DBLoss: main_loss_type {main_loss_type!r} is not supported "
                             f"(one of {', '.join(_MAIN_LOSSES)})")
        if main_loss_type == "BCELoss" and not balance_loss:
            raise PtocrError("DBLoss: BCELoss needs balance_loss=True (PaddleOCR reduces it only there)")
        self.balance_loss, self.main_loss_type = balance_loss, main_loss_type
        self.alpha, self.beta, self.ohem_ratio, self.eps = alpha, beta, ohem_ratio, eps

    def _shrink_term(self, pred, targets):
        main = _MAIN_LOSSES[self.main_loss_type]
        gt, mask = targets["shrink_map"], targets["shrink_mask"]
        if not self.balance_loss:
            return main(pred, gt, mask, 1e-6)
        return _balanced(main, pred, gt, mask, self.ohem_ratio)

    def forward(self, predicts, batch) -> dict[str, torch.Tensor]:
        maps = _db_maps(predicts)
        targets = {k: v.to(maps.dtype) for k, v in _db_targets(batch, (maps.shape[0], *maps.shape[2:])).items()}
        shrink = self.alpha * self._shrink_term(maps[:, 0], targets)
        threshold = self.beta * _masked_l1(maps[:, 1], targets["threshold_map"], targets["threshold_mask"],
                                           self.eps)
        binary = _dice(maps[:, 2], targets["shrink_map"], targets["shrink_mask"], self.eps)
        losses = {"loss": shrink + threshold + binary, "loss_shrink_maps": shrink,
                  "loss_threshold_maps": threshold, "loss_binary_maps": binary}
        if isinstance(predicts, Mapping) and "distance_maps" in predicts:
            losses["loss_cbn"] = self._shrink_term(predicts["cbn_maps"][:, 0].to(maps.dtype), targets)
            losses["loss"] = losses["loss"] + losses["loss_cbn"]
        return losses


# ---------------------------------------------------------------------------------------------
# CTC
# ---------------------------------------------------------------------------------------------
def _ctc_logits(predicts) -> torch.Tensor:
    if isinstance(predicts, (list, tuple)):  # PaddleOCR takes the last of several outputs
        predicts = predicts[-1]
    if not isinstance(predicts, torch.Tensor) or predicts.ndim != 3:
        shape = tuple(predicts.shape) if isinstance(predicts, torch.Tensor) else type(predicts).__name__
        raise PtocrError(f"CTCLoss takes the recognizer's training-mode logits N x T x C, got {shape}")
    return _at_least_float32(predicts)


def _check_head_fits(num_classes, head_classes: int) -> None:
    """The labels' dictionary (RecDataset's ``num_classes``) against the head's class count."""
    counts = sorted({int(n) for n in torch.as_tensor(num_classes).reshape(-1).tolist()})
    if counts != [head_classes]:
        raise PtocrError(f"CTCLoss: the labels were encoded with a dictionary of {', '.join(map(str, counts))} "
                         f"classes (blank + characters + space), but the head predicts {head_classes}: build "
                         f"the network with ptocr.create_model(..., num_classes={counts[0]}) for a new dictionary, "
                         "or give the dataset the network's own (net.dictionary)")


def _ctc_labels(batch, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(label N x L, length N)`` from a dict (CTCLabelEncode's keys) or PaddleOCR's batch list
    ``[image, label, length, ...]``, checked against the logits."""
    if isinstance(batch, Mapping):
        if "label" not in batch or "length" not in batch:
            raise PtocrError("CTCLoss: the batch needs 'label' (N x max_text_length) and 'length' (N)")
        label, length = batch["label"], batch["length"]
    elif isinstance(batch, Sequence) and len(batch) >= 3:
        label, length = batch[1], batch[2]
    else:
        raise PtocrError("CTCLoss: the batch must be a dict with label and length or PaddleOCR's "
                         "list [image, label, length, ...]")
    if isinstance(batch, Mapping) and "num_classes" in batch:
        _check_head_fits(batch["num_classes"], logits.shape[-1])
    label = torch.as_tensor(label, device=logits.device).long()
    length = torch.as_tensor(length, device=logits.device).long().reshape(-1)
    n, _, classes = logits.shape
    if label.ndim != 2 or label.shape[0] != n or length.shape[0] != n:
        raise PtocrError(f"CTCLoss: labels {tuple(label.shape)} and lengths {tuple(length.shape)} "
                         f"do not match a batch of {n}")
    if label.numel() and (int(label.min()) < 0 or int(label.max()) >= classes):
        raise PtocrError(f"CTCLoss: a label index is outside the head's {classes} classes "
                         f"(range {int(label.min())}..{int(label.max())}): the dictionary does not fit the head")
    if int(length.min()) < 0 or int(length.max()) > label.shape[1]:
        raise PtocrError(f"CTCLoss: a length is outside 0..{label.shape[1]} (the label width)")
    return label, length


class CTCLoss(nn.Module):
    """PaddleOCR's CTCLoss: CTC over softmax(logits), blank 0, every sequence all T steps long,
    per-sample losses then their mean (not divided by label length, unlike torch's
    ``reduction="mean"``). A label that cannot fit in T steps costs 0 with no gradient, as
    paddle's warpctc gives (torch's ``zero_infinity``). ``use_focal_loss`` weights each sample's
    loss by ``(1 - exp(-loss))^2``.

    ``forward(predicts, batch)``: ``predicts`` the recognizer's training-mode logits N x T x C
    (a list/tuple: its last), ``batch`` a dict with ``label`` (N x L, padded) and ``length`` (N),
    as :class:`~ptocr.training.CTCLabelEncode` makes them collated (with ``RecDataset``'s
    ``num_classes``, a head of another size than the dictionary is refused), or PaddleOCR's batch list
    ``[image, label, length, ...]``. Returns ``{"loss": ...}``.
    """

    def __init__(self, use_focal_loss: bool = False):
        super().__init__()
        self.use_focal_loss = use_focal_loss

    def forward(self, predicts, batch) -> dict[str, torch.Tensor]:
        logits = _ctc_logits(predicts)
        label, length = _ctc_labels(batch, logits)
        log_probs = logits.log_softmax(-1).transpose(0, 1)  # T x N x C
        steps = torch.full((logits.shape[0],), logits.shape[1], dtype=torch.long, device=logits.device)
        loss = F.ctc_loss(log_probs, label, steps, length, blank=0, reduction="none", zero_infinity=True)
        if self.use_focal_loss:
            loss = loss * torch.square(1 - torch.exp(-loss))
        return {"loss": loss.mean()}


class ClsLoss(nn.Module):
    """PaddleOCR's ClsLoss (``ppocr/losses/cls_loss.py``): mean cross entropy of the direction
    classifier's training-mode logits against ``batch["label"]``. Returns ``{"loss": ...}``."""

    def forward(self, predicts, batch) -> dict[str, torch.Tensor]:
        return {"loss": F.cross_entropy(predicts, batch["label"])}
