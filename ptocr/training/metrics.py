"""PaddleOCR's evaluation metrics: the numbers its ``tools/eval.py`` prints, for ptocr's predictors.

* ``DetMetric``: ``ppocr/metrics/det_metric.py`` with ``eval_det_iou.py``'s evaluator (ICDAR 2015's
  IoU protocol): ``{"precision", "recall", "hmean"}`` over all images seen since the last
  ``get_metric()``, from the sums of matches and of boxes (not a mean of per-image values).
* ``RecMetric``: ``ppocr/metrics/rec_metric.py``: ``{"acc", "norm_edit_dis"}``.
* ``ClsMetric``: ``ppocr/metrics/cls_metric.py``: ``{"acc"}``.
* ``evaluate_det`` / ``evaluate_rec`` / ``evaluate_cls``: a ``ptocr.load(...)`` predictor over a
  PaddleOCR label file (``path<TAB>json`` for det, ``path<TAB>text`` for rec and cls)::

      import ptocr
      from ptocr.training.metrics import evaluate_rec
      evaluate_rec(ptocr.load("mine.safetensors"), "val_list.txt", data_dir="train_data/")

Where these differ from PaddleOCR on purpose: a polygon with fewer than 3 points counts as invalid
(skipped) where shapely raises; a label line whose sample PaddleOCR's data set would drop (no
box, or a text with no character of the dictionary) is evaluated as it is, where PaddleOCR's
evaluation loader silently evaluates the next sample in its place.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
from shapely.geometry import Polygon

from ptocr.errors import PtocrError
from ptocr.training.data import parse_det_label, read_label_files

__all__ = ["DetMetric", "RecMetric", "ClsMetric", "DetCounts", "DetLabel", "evaluate_image", "combine_counts",
           "levenshtein", "normalized_edit_distance",
           "evaluate_det", "evaluate_rec", "evaluate_cls"]

IOU_THRESHOLD = 0.5               # eval_det_iou.py: a match needs IoU strictly above this
AREA_PRECISION_THRESHOLD = 0.5    # a prediction more than this inside a "don't care" GT is ignored
EPS = 1e-5                        # rec_metric.py / cls_metric.py add it to every denominator
EVAL_LIMIT_SIDE_LEN, EVAL_LIMIT_TYPE = 736, "min"  # DetResizeForTest with no arguments (the v4/v5 eval configs)


# ---------------------------------------------------------------- detection

@dataclass(frozen=True)
class DetCounts:
    """One image's tallies, as ``evaluate_image`` of eval_det_iou.py keeps them."""

    gt_care: int    # valid GT polygons not marked "don't care"
    det_care: int   # valid predictions not lying inside a "don't care" GT
    matched: int    # one-to-one matches with IoU above the threshold


def as_polygon(points) -> Polygon | None:
    """A shapely polygon of ``points`` (N x 2), or None where PaddleOCR skips it: invalid or not
    simple (self-crossing, collinear, NaN or infinite coordinates). Fewer than 3 points also gives
    None (shapely raises)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) < 3 or not np.isfinite(pts).all():  # GEOS calls both invalid; shapely raises or warns
        return None
    poly = Polygon(pts)
    return poly if poly.is_valid and poly.is_simple else None


def _valid(polygons, flags=None) -> tuple[list[Polygon], list[bool]]:
    """The polygons PaddleOCR keeps, with the flags of those kept (indices shift as it drops)."""
    flags = [False] * len(polygons) if flags is None else list(flags)
    if len(flags) != len(polygons):
        raise ValueError(f"{len(polygons)} polygons but {len(flags)} ignore tags")
    kept = [(p, bool(f)) for p, f in ((as_polygon(pts), f) for pts, f in zip(polygons, flags)) if p is not None]
    return [p for p, _ in kept], [f for _, f in kept]


def _inside_dont_care(det: Polygon, dont_care: Sequence[Polygon], threshold: float) -> bool:
    """Whether more than ``threshold`` of the prediction's area lies in one "don't care" GT."""
    if det.area == 0:
        return False
    return any(det.intersection(gt).area / det.area > threshold for gt in dont_care)


def _iou(a: Polygon, b: Polygon) -> float:
    union = a.union(b).area  # PaddleOCR's union, not area sum minus intersection
    return 0.0 if union == 0 else a.intersection(b).area / union


def _greedy_matches(gts: Sequence[Polygon], dets: Sequence[Polygon], threshold: float) -> int:
    """eval_det_iou.py's one-to-one matching: GTs in order, each takes the first free prediction
    (in order) whose IoU exceeds ``threshold``; not an optimal assignment."""
    taken = [False] * len(dets)
    matched = 0
    for gt in gts:
        for j, det in enumerate(dets):
            if not taken[j] and _iou(det, gt) > threshold:
                taken[j] = True
                matched += 1
                break
    return matched


def evaluate_image(predictions, gt_polygons, ignore_tags=None, *, iou_threshold: float = IOU_THRESHOLD,
                   area_precision_threshold: float = AREA_PRECISION_THRESHOLD) -> DetCounts:
    """One image: predicted polygons (K x P x 2, or a list of N_k x 2) against the GT polygons
    and their "don't care" tags. Invalid polygons on either side are dropped first; predictions
    inside a "don't care" GT and the "don't care" GTs then leave both counts and the matching."""
    gts, ignored = _valid(gt_polygons, ignore_tags)
    dets, _ = _valid(predictions)
    dont_care = [g for g, ign in zip(gts, ignored) if ign]
    care_gts = [g for g, ign in zip(gts, ignored) if not ign]
    care_dets = [d for d in dets if not _inside_dont_care(d, dont_care, area_precision_threshold)]
    return DetCounts(len(care_gts), len(care_dets), _greedy_matches(care_gts, care_dets, iou_threshold))


def combine_counts(counts: Iterable[DetCounts]) -> dict[str, float]:
    """``combine_results``: precision and recall from the summed counts (0 where a sum is 0)."""
    counts = list(counts)
    gt = sum(c.gt_care for c in counts)
    det = sum(c.det_care for c in counts)
    matched = sum(c.matched for c in counts)
    recall = 0.0 if gt == 0 else matched / gt
    precision = 0.0 if det == 0 else matched / det
    hmean = 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)
    return {"precision": precision, "recall": recall, "hmean": hmean}


def _prediction_polygons(pred):
    """A ``DetResult`` (its ``.boxes``) or the polygons themselves."""
    return getattr(pred, "boxes", pred)


class DetMetric:
    """PaddleOCR's ``DetMetric``: ``update`` once per image, ``get_metric()`` for the totals
    (and a reset), ``main_indicator`` "hmean" as its configs name it."""

    main_indicator = "hmean"

    def __init__(self, iou_threshold: float = IOU_THRESHOLD,
                 area_precision_threshold: float = AREA_PRECISION_THRESHOLD):
        self.iou_threshold = iou_threshold
        self.area_precision_threshold = area_precision_threshold
        self.reset()

    def update(self, prediction, gt_polygons, ignore_tags=None) -> DetCounts:
        """One image: ``prediction`` a ``DetResult`` or its boxes (K x 4 x 2, or polygons), the GT
        polygons (each N x 2) and their ignore tags (True: "###"). Returns the image's counts."""
        counts = evaluate_image(_prediction_polygons(prediction), gt_polygons, ignore_tags,
                                iou_threshold=self.iou_threshold,
                                area_precision_threshold=self.area_precision_threshold)
        self.counts.append(counts)
        return counts

    __call__ = update

    def get_metric(self) -> dict[str, float]:
        metric = combine_counts(self.counts)
        self.reset()
        return metric

    def reset(self) -> None:
        self.counts: list[DetCounts] = []


# ---------------------------------------------------------------- recognition

def levenshtein(a: str, b: str) -> int:
    """Edit distance with unit insertions, deletions and substitutions, per code point."""
    while a and b and a[0] == b[0]:   # a shared prefix or suffix never costs anything
        a, b = a[1:], b[1:]
    while a and b and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))  # distances from a[:0] to every prefix of b
    for i, ca in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ca != cb))
    return row[-1]


def normalized_edit_distance(a: str, b: str) -> float:
    """rapidfuzz's ``Levenshtein.normalized_distance``: distance over the longer length; 0 for two
    empty strings."""
    longer = max(len(a), len(b))
    return 0.0 if longer == 0 else levenshtein(a, b) / longer


_ALPHANUMERIC = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _text(item) -> str:
    """A recognizer output ``(text, score)`` or a text."""
    return item if isinstance(item, str) else item[0]


class RecMetric:
    """PaddleOCR's ``RecMetric``. ``update(predictions, labels)`` takes a batch of recognizer outputs
    (``(text, score)`` pairs or texts) and label texts, returns the batch's metrics and adds it
    to the totals that ``get_metric()`` returns (and resets).

    ``acc``: exact matches / (count + 1e-5); ``norm_edit_dis``: 1 - summed normalized edit
    distances / (count + 1e-5). Both texts lose their spaces first (``ignore_space``), then, with
    ``is_filter``, every character but ASCII letters and digits, and are lower-cased."""

    main_indicator = "acc"

    def __init__(self, is_filter: bool = False, ignore_space: bool = True):
        self.is_filter = is_filter
        self.ignore_space = ignore_space
        self.reset()

    def normalize(self, text: str) -> str:
        if self.ignore_space:
            text = text.replace(" ", "")
        if self.is_filter:
            text = "".join(c for c in text if c in _ALPHANUMERIC).lower()
        return text

    def update(self, predictions, labels) -> dict[str, float]:
        correct, count, distance = 0, 0, 0.0
        for pred, label in zip(predictions, labels, strict=True):
            pred, label = self.normalize(_text(pred)), self.normalize(_text(label))
            distance += normalized_edit_distance(pred, label)
            correct += pred == label
            count += 1
        self.correct += correct
        self.count += count
        self.distance += distance
        return _rec_result(correct, count, distance)

    __call__ = update

    def get_metric(self) -> dict[str, float]:
        metric = _rec_result(self.correct, self.count, self.distance)
        self.reset()
        return metric

    def reset(self) -> None:
        self.correct, self.count, self.distance = 0, 0, 0.0


def _rec_result(correct: int, count: int, distance: float) -> dict[str, float]:
    return {"acc": correct / (count + EPS), "norm_edit_dis": 1 - distance / (count + EPS)}


class ClsMetric:
    """PaddleOCR's ``ClsMetric``: predicted labels (``(label, score)`` pairs, as a
    ``ClsPredictor`` returns them, or labels) equal to the label texts ("0", "180"), over
    count + 1e-5 (the newer PaddleOCR's guard against no samples)."""

    main_indicator = "acc"

    def __init__(self):
        self.reset()

    def update(self, predictions, labels) -> dict[str, float]:
        pairs = [(str(_label(p)), str(_label(t))) for p, t in zip(predictions, labels, strict=True)]
        correct = sum(p == t for p, t in pairs)
        self.correct += correct
        self.count += len(pairs)
        return {"acc": correct / (len(pairs) + EPS)}

    __call__ = update

    def get_metric(self) -> dict[str, float]:
        metric = {"acc": self.correct / (self.count + EPS)}
        self.reset()
        return metric

    def reset(self) -> None:
        self.correct, self.count = 0, 0


def _label(item):
    return item[0] if isinstance(item, (tuple, list)) else item


# ---------------------------------------------------------------- label files

@dataclass(frozen=True)
class DetLabel:
    """One image's ground truth: its polygons (float32 N_k x 2, as DetLabelEncode casts them)
    and whether each is "don't care" (transcription "###" or "*")."""

    polygons: list
    ignore_tags: list


def _det_label(text: str, where: str) -> DetLabel:
    """A det label's JSON as ``ptocr.training.data.parse_det_label`` reads it (an image without
    text allowed: its predictions are false positives), errors naming ``where``."""
    try:
        polys, _texts, ignore = parse_det_label(text, allow_empty=True)
    except PtocrError as e:
        raise PtocrError(f"{where}: {e}") from None
    return DetLabel(list(polys), [bool(t) for t in ignore])


def _label_lines(label_file, data_dir) -> list[tuple[str, str, str]]:
    """(image path joined to ``data_dir``, label, file:line) of a PaddleOCR label file."""
    return [(os.path.join(data_dir or "", line.path), line.label, line.where) for line in read_label_files(label_file)]


def _some(samples: list, source) -> list:
    """The samples, refused when there are none: the metrics' EPS guard would report acc 0 and
    norm_edit_dis 1 (or hmean 0) for nothing evaluated."""
    if not samples:
        where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the samples given"
        raise PtocrError(f"nothing to evaluate: {where} holds no samples")
    return samples


def _det_samples(samples, data_dir):
    """(image, DetLabel) pairs from a label file or from (image, label) pairs, the label a
    DetLabel, its JSON text or the decoded list."""
    if isinstance(samples, (str, os.PathLike)):
        return [(path, _det_label(text, where)) for path, text, where in _label_lines(samples, data_dir)]
    out = []
    for k, (image, label) in enumerate(samples):
        if isinstance(label, list):
            label = json.dumps(label)
        out.append((image, label if isinstance(label, DetLabel) else _det_label(label, f"sample {k}")))
    return out


def _text_samples(samples, data_dir):
    """(image, text) pairs from a label file or as given."""
    if isinstance(samples, (str, os.PathLike)):
        return [(path, text) for path, text, _ in _label_lines(samples, data_dir)]
    return [(image, str(text)) for image, text in samples]


# ---------------------------------------------------------------- running a predictor

def evaluate_det(predictor, samples, *, data_dir=None, pipeline: str = "eval",
                 limit_side_len: float = EVAL_LIMIT_SIDE_LEN, limit_type: str = EVAL_LIMIT_TYPE) -> dict[str, float]:
    """A ``DetPredictor`` over ``samples`` (a det label file, paths joined to ``data_dir``, or
    (image, label) pairs) -> ``{"precision", "recall", "hmean"}``.

    ``pipeline="eval"``: as tools/eval.py runs a PP-OCRv4/v5 det config: ``DetResizeForTest``
    with its defaults (shorter side to at least 736; ``limit_side_len`` / ``limit_type`` for a
    config that sets them), the predictor's normalization and DB post-processing, and DB's boxes
    scored unfiltered (eval.py has no predict_det filter). ``pipeline="predictor"``: the
    predictor's own output (its resize, 960 on the longer side for PaddleOCR 2.x's inference,
    and predict_det's clip-and-drop of boxes 3 px or thinner)."""
    if pipeline not in ("eval", "predictor"):
        raise ValueError(f"pipeline {pipeline!r}: expected 'eval' or 'predictor'")
    predict = _predictor_boxes(predictor) if pipeline == "predictor" else _eval_boxes(predictor, limit_side_len, limit_type)
    metric = DetMetric()
    for image, label in _some(_det_samples(samples, data_dir), samples):
        metric.update(predict(image), label.polygons, label.ignore_tags)
    return metric.get_metric()


def _predictor_boxes(predictor):
    return lambda image: predictor(image).boxes


def _eval_boxes(predictor, limit_side_len, limit_type):
    """image -> DB's boxes at the eval config's resize, through the predictor's network."""
    from ptocr.transforms import DetPreprocess, load_image

    pre = predictor.pre
    resize = DetPreprocess(limit_side_len, limit_type, pre.mean, pre.std, pre.scale, normalize=pre.normalize)

    def boxes(image):
        x, info = resize(load_image(image))
        (polys, _scores), = predictor.post(predictor.forward(x[None]), [info])
        return polys
    return boxes


def evaluate_rec(predictor, samples, *, data_dir=None, is_filter: bool = False, ignore_space: bool = True,
                 dictionary_only: bool = True) -> dict[str, float]:
    """A ``RecPredictor`` over ``samples`` (a rec label file, paths joined to ``data_dir``, or
    (image, text) pairs) -> ``{"acc", "norm_edit_dis"}``.

    As tools/eval.py: each crop on its own (the eval configs' batch of 1: the crop resized to the
    model height at its own width, at least the model width); with ``dictionary_only`` the label
    keeps only the characters of the predictor's dictionary (and the space when it has one), as
    CTCLabelEncode then CTCLabelDecode hand it to the metric."""
    keep = _dictionary_filter(predictor) if dictionary_only else (lambda text: text)
    metric = RecMetric(is_filter=is_filter, ignore_space=ignore_space)
    for image, text in _some(_text_samples(samples, data_dir), samples):
        metric.update([predictor(image)], [keep(text)])
    return metric.get_metric()


def _dictionary_filter(predictor):
    characters = set(predictor.dictionary.characters) | ({" "} if predictor.dictionary.use_space_char else set())
    return lambda text: "".join(c for c in text if c in characters)


def evaluate_cls(predictor, samples, *, data_dir=None) -> dict[str, float]:
    """A ``ClsPredictor`` over ``samples`` (a cls label file, ``path<TAB>0`` / ``180``, or
    (image, label) pairs) -> ``{"acc"}``."""
    metric = ClsMetric()
    for image, label in _some(_text_samples(samples, data_dir), samples):
        metric.update([predictor(image)], [label])
    return metric.get_metric()
