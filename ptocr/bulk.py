"""Bulk OCR: many images through one ``OCR``'s models, results in input order.

``read_many(ocr, images)`` (``OCR.read_many``) returns a list, ``iter_read(ocr, images)``
(``OCR.iter_many``) yields them one by one for streams too large for memory. Each result is
what ``ocr.read(image)`` returns (an ``OCRResult``), or a ``FailedImage`` for an input that could
not be read (the others are still read).

How the work is laid out (doc/bulk.md):

* Images are taken in windows of ``batch_size``. Decoding and the detector's resize run in a
  pool of worker threads, ahead of the models.
* Detection runs images of the same network input size together (bucketing; nothing is padded,
  so no map changes). DB post-processing, the boxes' reading order and the perspective crops
  run in the worker pool while the model computes the next bucket.
* The classifier and recognizer batch each image's crops exactly as ``ocr.read`` does (sorted
  by aspect ratio, groups of ``rec_batch_num``, each group padded to its widest crop), which
  decides the padded width and so the numbers. With ``merge=True`` the groups of every image in
  a window that have the same input shape go through the model in one call (the GPU default:
  large batches are what pays there); on the CPU each group is its own call, as in
  ``ocr.read``, so the results are bit for bit ``ocr.read``'s.
* On the CPU, ``lanes`` windows are in flight at once, each in its own thread with
  ``threads // lanes`` intra-op threads: two single-thread model calls keep two cores busier
  than one two-thread call on these small networks. On CUDA one lane; inputs are copied from
  pinned memory without blocking, and TF32 is off unless asked for (``set_tf32``).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import torch

from ptocr.errors import ImageError, PtocrError
from ptocr.postprocess import apply_cls_rotation, should_rotate
from ptocr.result import Line, OCRResult
from ptocr.transforms import get_rotate_crop_image, load_image, sorted_boxes

__all__ = ["BulkReader", "FailedImage", "compile_for_fixed_shapes", "is_uri", "iter_pipeline", "iter_read", "lines_of", "read_many", "read_uri",
           "set_tf32", "source_name"]

# Most crop rows one merged classifier / recognizer call takes (merge=True): whole groups are
# added while they fit, so a call is never split inside one image's group.
CROP_ROWS = 64


@dataclass
class FailedImage:
    """An input that could not be read: ``error`` says why (the ``ImageError`` message)."""

    source: str | None
    error: str

    def to_dict(self) -> dict:
        return {"error": self.error}


def source_name(image: Any) -> str | None:
    """The path of a path input (as given), else None."""
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else None


def set_tf32(enabled: bool) -> None:
    """TF32 for CUDA matrix products and cuDNN convolutions (process-wide). PyTorch runs cuDNN
    convolutions in TF32 unless told not to; TF32 keeps 10 mantissa bits, which moves box edges
    and texts on the same scale as float16 does. ``BulkReader`` turns it off on CUDA unless
    ``allow_tf32=True``."""
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)


@dataclass
class _Image:
    """One input on its way through: decoded, resized for the detector, then its crops."""

    source: str | None
    img: np.ndarray | None = None
    x: np.ndarray | None = None  # the detector's input, C x H x W
    info: tuple | None = None
    error: str | None = None
    boxes: list | None = None
    crops: list | None = None


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(name: Any) -> bool:
    """``scheme://...`` strings (s3://, gs://, hdfs://, file://)."""
    return isinstance(name, str) and bool(_URI.match(name))


def read_uri(uri: str) -> bytes:
    """The bytes at ``uri``, through pyarrow's filesystems (installed with ``ptocr[ray]``)."""
    try:
        from pyarrow import fs
    except ImportError:
        raise ImageError(f"{uri}: reading URIs needs pyarrow (pip install 'ptocr[ray]')") from None
    try:
        filesystem, path = fs.FileSystem.from_uri(uri)
        with filesystem.open_input_stream(path) as f:
            return f.read()
    except (OSError, ValueError) as e:  # pyarrow's errors for unknown schemes, missing files, access
        raise ImageError(f"{uri}: cannot read ({e})") from None


def _prepare(image: Any, det_pre) -> _Image:
    item = _Image(source_name(image))
    try:
        item.img = load_image(read_uri(image) if is_uri(image) else image)
        item.x, item.info = det_pre(item.img)
    except PtocrError as e:
        item.error = str(e)
    return item


def _boxes_and_crops(det, item: _Image, prob: np.ndarray) -> None:
    """DB post-processing, reading order and crops of one image (in a worker thread)."""
    item.boxes = sorted_boxes(det.boxes(prob, item.info, item.img.shape).boxes)
    item.crops = [get_rotate_crop_image(item.img, b) for b in item.boxes]


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class BulkReader:
    """Reads many images with ``ocr``'s predictors (``ocr.det``, ``ocr.rec``, ``ocr.cls`` or
    None, ``ocr.drop_score``).

    Args:
        batch_size: images per window: at most this many images per detector call, and the
            images whose crops are merged (``merge``).
        merge: put same-shape crop groups of different images through one model call;
            default: on CUDA yes, on the CPU no (see the module's doc).
        lanes: windows in flight at once (CPU); default 1 on CUDA, else
            ``min(2, torch.get_num_threads())``.
        workers: threads decoding, resizing and post-processing (default 2).
        pin_memory: page-locked, non-blocking input copies; default: when on CUDA.
        allow_tf32: leave TF32 on for CUDA (``set_tf32``); default off.
    """

    def __init__(self, ocr, *, batch_size: int = 8, merge: bool | None = None, lanes: int | None = None,
                 workers: int = 2, pin_memory: bool | None = None, allow_tf32: bool = False):
        if int(batch_size) < 1:
            raise PtocrError(f"batch_size must be at least 1, got {batch_size!r}")
        self.det, self.rec, self.cls = ocr.det, ocr.rec, ocr.cls
        self.drop_score = ocr.drop_score
        self.batch_size = int(batch_size)
        cuda = any(p is not None and p.device.type == "cuda" for p in (self.det, self.rec, self.cls))
        self.merge = cuda if merge is None else bool(merge)
        self.lanes = max(1, int(lanes)) if lanes is not None else (1 if cuda else min(2, torch.get_num_threads()))
        self.threads = max(1, torch.get_num_threads() // self.lanes)
        self.workers = max(1, int(workers))
        self.pin_memory = cuda if pin_memory is None else bool(pin_memory)
        if cuda:
            set_tf32(allow_tf32)

    def __call__(self, images: Iterable) -> Iterator[OCRResult | FailedImage]:
        """Yield one result per input, in input order; inputs are read lazily."""
        images = iter(images)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="ptocr-bulk") as pool, \
                ThreadPoolExecutor(self.lanes, thread_name_prefix="ptocr-lane") as lanes:
            prepared: deque[Future] = deque()
            running: deque[Future] = deque()
            ahead = (self.lanes + 1) * self.batch_size  # decoded images waiting for a lane

            def fill() -> None:
                for image in islice(images, max(0, ahead - len(prepared))):
                    prepared.append(pool.submit(_prepare, image, self.det.pre))

            fill()
            while prepared or running:
                while prepared and len(running) < self.lanes:
                    window = [prepared.popleft() for _ in range(min(self.batch_size, len(prepared)))]
                    running.append(lanes.submit(self._window, window, pool))
                    fill()
                yield from running.popleft().result()
                fill()

    def _window(self, window: list[Future], pool: ThreadPoolExecutor) -> list[OCRResult | FailedImage]:
        torch.set_num_threads(self.threads)  # this lane thread's intra-op threads
        items = [f.result() for f in window]
        ok = [it for it in items if it.error is None]
        self._detect(ok, pool)
        crops = [it.crops for it in ok]
        angles: list[list] = [[None] * len(c) for c in crops]
        if self.cls is not None:
            labels = self._crop_model(self.cls, crops)
            thresh = self.cls.thresh
            crops = [apply_cls_rotation(c, r, thresh) for c, r in zip(crops, labels)]
            angles = [[180 if should_rotate(label, score, thresh) else 0 for label, score in r] for r in labels]
        texts = self._crop_model(self.rec, crops)
        out: list[OCRResult | FailedImage] = []
        done = iter(zip(ok, texts, angles))
        for it in items:
            if it.error is not None:
                out.append(FailedImage(it.source, it.error))
                continue
            _, text, angle = next(done)
            out.append(OCRResult(lines_of(it.boxes, text, angle, self.drop_score), source=it.source, image=it.img))
        return out

    def _detect(self, items: list[_Image], pool: ThreadPoolExecutor) -> None:
        """Detector calls on images of one network size each; post-processing in the pool."""
        buckets: dict[tuple, list[_Image]] = defaultdict(list)
        for it in items:
            buckets[it.x.shape].append(it)
        posts = []
        for bucket in buckets.values():
            for chunk in _chunks(bucket, self.batch_size):
                probs = self.det.forward(np.stack([it.x for it in chunk]), self.pin_memory)
                posts += [pool.submit(_boxes_and_crops, self.det, it, prob) for it, prob in zip(chunk, probs)]
        for p in posts:
            p.result()

    def _crop_model(self, predictor, crops: list[list[np.ndarray]]) -> list[list]:
        """Per image, the predictor's result for each crop, batched as the predictor batches one
        image's crops; with ``merge``, same-shape groups of different images in one call."""
        out: list[list] = [[None] * len(c) for c in crops]
        groups: dict[tuple, list] = defaultdict(list)
        for k, image_crops in enumerate(crops):
            if image_crops:
                for index, batch in predictor.pre.batches(image_crops):
                    groups[batch.shape[1:] if self.merge else (k, len(groups))].append((k, index, batch))
        for parts in groups.values():
            for call in _calls(parts, CROP_ROWS):
                results = predictor.post(predictor.forward(np.concatenate([b for _, _, b in call]), self.pin_memory))
                row = 0
                for k, index, batch in call:
                    for i, res in zip(index, results[row:row + len(batch)]):
                        out[k][i] = res
                    row += len(batch)
        return out


def _calls(parts: list, rows: int) -> Iterator[list]:
    """Whole groups per call, up to ``rows`` rows (a larger single group goes alone)."""
    call, n = [], 0
    for part in parts:
        if call and n + len(part[2]) > rows:
            yield call
            call, n = [], 0
        call.append(part)
        n += len(part[2])
    if call:
        yield call


def lines_of(boxes, texts, angles, drop_score: float) -> list[Line]:
    """TextSystem's lines: one per box, those scoring below ``drop_score`` dropped."""
    return [Line(box.tolist(), text, float(score), angle)
            for box, (text, score), angle in zip(boxes, texts, angles) if score >= drop_score]


def iter_read(ocr, images: Iterable, *, batch_size: int = 8, **kw) -> Iterator[OCRResult | FailedImage]:
    """Yield ``ocr.read(image)`` for each of ``images`` (a ``FailedImage`` where an input cannot be
    read), in input order, batched across images (``BulkReader``'s keywords)."""
    return BulkReader(ocr, batch_size=batch_size, **kw)(images)


def iter_pipeline(pipeline, images: Iterable, *, batch_size: int = 8) -> Iterator[OCRResult | FailedImage]:
    """``pipeline.iter_many`` where the pipeline has it (``OCR``, batched across images); else
    (e.g. the PaddleOCR 3.x pipeline, ``OCR3``) its ``read`` one image at a time, an unreadable
    input a ``FailedImage`` as well."""
    if hasattr(pipeline, "iter_many"):
        yield from pipeline.iter_many(images, batch_size=batch_size)
        return
    for image in images:
        try:
            yield pipeline.read(read_uri(image) if is_uri(image) else image)
        except ImageError as e:
            yield FailedImage(source_name(image), str(e))


def read_many(ocr, images: Iterable, *, batch_size: int = 8, **kw) -> list[OCRResult | FailedImage]:
    """``list(iter_read(...))``."""
    return list(iter_read(ocr, images, batch_size=batch_size, **kw))


def compile_for_fixed_shapes(ocr, mode: str = "reduce-overhead") -> None:
    """``torch.compile`` each of ``ocr``'s models for the fixed shapes bucketing produces (in
    place). On CUDA, ``"reduce-overhead"`` records CUDA graphs: one graph per input shape, made
    at its first call; shapes past dynamo's recompile limit run uncompiled."""
    for p in (ocr.det, ocr.rec, ocr.cls):
        if p is not None:
            p.model = torch.compile(p.model, mode=mode, dynamic=False)

