"""Bulk OCR: many images through one pipeline's models, results in input order.

``read_many(ocr, images)`` (``OCR.read_many``, ``OCR3.read_many``) returns a list,
``iter_read(ocr, images)`` (``iter_many``) yields them one by one for streams too large for
memory. Each result is what ``ocr.read(image)`` returns, or a ``FailedImage`` for an input that
could not be read (the others are still read). A PDF or TIFF (a path ending in .pdf, .tif,
.tiff, or ``PdfPages``) gives one result per page, in page order. The engine runs the pipeline's steps
(``ptocr.bulk_steps``: PaddleOCR 2.x's ``OCR``, 3.x's ``OCR3``), so it is written once.

How the work is laid out (doc/bulk.md):

* Images are taken in windows of ``batch_size`` (default: 8 on CUDA, 1 on the CPU, where a
  batched detector call is slower per image than single ones). Decoding and the detector's
  resize run in a pool of worker threads, ahead of the models.
* Detection runs images of the same network input size together (bucketing; nothing is padded,
  so no map changes). DB post-processing, the boxes' reading order and the perspective crops
  run in the worker pool while the model computes the next bucket.
* The crop models (direction / textline classifier, recognizer) batch each image's crops
  exactly as ``ocr.read`` does (2.x: sorted by aspect ratio, groups of ``rec_batch_num``, each
  group padded to its widest crop; 3.x: the same with each crop at its own width, zero-padded),
  which decides the padded width and so the numbers. With ``merge=True`` the groups of every image in
  a window that have the same input shape go through the model in one call (the GPU default:
  large batches are what pays there); on the CPU each group is its own call, as in
  ``ocr.read``, so the results are bit for bit ``ocr.read``'s.
* On the CPU, ``lanes`` windows run at once, each in its own thread with ``threads // lanes``
  intra-op threads: two single-thread model calls keep two cores busier than one two-thread
  call on these small networks. A lane that finishes takes the next window at once (results
  wait for their turn, not lanes), and a window that starts when no other is left to run gets
  every thread, so the last image is not read at half speed. On CUDA one lane; inputs are
  copied from pinned memory without blocking, and TF32 is off unless asked for (``set_tf32``).
"""

from __future__ import annotations

import os
import re
import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import torch

from ptocr.bulk_steps import BulkItem, CropStage, lines_of
from ptocr.errors import ImageError, PtocrError
from ptocr.pdf import PageError, document_pages, is_paged, page_count
from ptocr.result import OCRResult

__all__ = ["BulkReader", "BulkReading", "FailedImage", "PdfPages", "check_inputs", "compile_for_fixed_shapes", "is_uri", "iter_pipeline", "iter_read",
           "lines_of", "read_many", "read_uri", "set_tf32", "source_name"]

# Most crop rows one merged classifier / recognizer call takes (merge=True): whole groups are
# added while they fit, so a call is never split inside one image's group.
CROP_ROWS = 64


@dataclass
class FailedImage:
    """An input that could not be read: ``error`` says why (the ``ImageError`` message)."""

    source: str | None
    error: str
    page_index: int | None = None  # the 0-based page of a PDF that failed there

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
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9's per-op flags
        # The legacy flag leaves conv / rnn inheriting cudnn's (or torch.backends') fp32_precision:
        # "tf32" set there would keep TF32 on. Set per op, as the legacy getter expects them.
        conv.fp32_precision = torch.backends.cudnn.rnn.fp32_precision = "tf32" if enabled else "ieee"


@dataclass(frozen=True)
class PdfPages:
    """Some pages of a PDF (or TIFF) as one bulk input: ``pages`` 1-based (None: all of them)."""

    path: str
    pages: tuple[int, ...] | None = None


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


def _expand(images: Iterable, pdfs: bool) -> Iterator[tuple[BulkItem, Any]]:
    """(item, what to load) per image and, with ``pdfs``, per page of each PDF or TIFF. A document
    that cannot be opened is one failed item without a page; a page that cannot be rendered is
    that page's failed item, and the other pages are read."""
    for image in images:
        doc = image if isinstance(image, PdfPages) else PdfPages(os.fspath(image)) if pdfs and is_paged(image) else None
        if doc is None:
            yield BulkItem(source_name(image)), image
            continue
        if is_uri(doc.path):  # pages are read from files here, not through pyarrow's streams
            yield BulkItem(doc.path, error=f"{doc.path}: PDF and TIFF pages are read from local files only; "
                                           "copy it here first"), None
            continue
        wanted = None if doc.pages is None else list(doc.pages)
        done = 0  # pages yielded or failed: the next one is wanted[done] (page done + 1 for all)
        while True:
            try:
                for index, page in document_pages(doc.path, None if wanted is None else wanted[done:]):
                    done += 1
                    yield BulkItem(doc.path, page_index=index), page
                break
            except PageError as e:  # the page that failed, or the document (None): what a rerun skips
                yield BulkItem(doc.path, page_index=None if e.page is None else e.page - 1, error=str(e)), None
                if e.page is None:
                    break
                # A page that cannot be rendered: the ones after it are read all the same.
                wanted = list(range(1, (page_count(doc.path) or 0) + 1)) if wanted is None else wanted
                done += 1
                if done >= len(wanted):
                    break


def check_inputs(images: Any) -> None:
    """``images`` of ``read_many`` / ``iter_many`` must be a list (any iterable) of inputs: one
    input given alone (a path, whose characters would be read one by one; bytes, an array, a PIL
    image) is a PtocrError saying what to give instead."""
    # An array is one input only as one image: a stack of images (N x H x W x C) or an array of
    # paths (a dataframe column's values) is a sequence of inputs.
    image = isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype.kind not in "USO"
    one = image or isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike, PdfPages)) \
        or type(images).__module__.startswith("PIL.")
    if one or not isinstance(images, Iterable):
        what = f"{type(images).__name__} {os.fspath(images)!r}" if isinstance(images, (str, os.PathLike)) \
            else type(images).__name__
        raise PtocrError(f"read_many / iter_many take a list of inputs, not one {what}: give [image], or read one "
                         "image with ocr.read(image) and a folder, PDF or TIFF with ocr(path)")


def _prepare(item: BulkItem, image: Any, steps) -> BulkItem:
    """Decode (and the 3.x pipeline's document orientation) and the detector's resize. An input
    that cannot be read is that item's error (the decoders raise ``ImageError`` for whatever PIL
    or OpenCV fail on); anything else, a model's error in the 3.x document preprocessor included,
    is raised as ``ocr.read`` raises it, not written down as that input's result."""
    if item.error is None:
        try:
            item.img, item.extra = steps.load(read_uri(image) if is_uri(image) else image)
            item.x, item.info = steps.det_input(item.img)
        except PtocrError as e:
            item.error = str(e)
    return item


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class BulkReader:
    """Reads many images with the models of ``pipeline`` (an ``OCR`` or ``OCR3``: its
    ``bulk_steps()``).

    Args:
        batch_size: images per window: at most this many images per detector call, and the
            images whose crops are merged (``merge``); default 8 on CUDA, 1 on the CPU.
        merge: put same-shape crop groups of different images through one model call;
            default: on CUDA yes, on the CPU no (see the module's doc).
        lanes: windows in flight at once (CPU); default 1 on CUDA, else
            ``min(2, torch.get_num_threads())``.
        workers: threads decoding, resizing and post-processing (default 2).
        pin_memory: page-locked, non-blocking input copies; default: when on CUDA.
        allow_tf32: leave TF32 on for CUDA (``set_tf32``); default off.
        pdfs: read a PDF or TIFF path as its pages (one result each); False: as an image (a PDF
            then fails, a TIFF gives its first frame).
    """

    def __init__(self, pipeline, *, batch_size: int | None = None, merge: bool | None = None, lanes: int | None = None,
                 workers: int = 2, pin_memory: bool | None = None, allow_tf32: bool = False, pdfs: bool = True):
        if batch_size is not None and int(batch_size) < 1:
            raise PtocrError(f"batch_size must be at least 1, got {batch_size!r}")
        if not hasattr(pipeline, "bulk_steps"):
            raise PtocrError(f"{type(pipeline).__name__} has no steps for bulk reading (bulk_steps)")
        self.steps = pipeline.bulk_steps()
        cuda = any(p.device.type == "cuda" for p in self.steps.models)
        self.batch_size = int(batch_size) if batch_size is not None else (8 if cuda else 1)
        self.merge = cuda if merge is None else bool(merge)
        self.lanes = max(1, int(lanes)) if lanes is not None else (1 if cuda else min(2, torch.get_num_threads()))
        self.all_threads = torch.get_num_threads()
        self.threads = max(1, self.all_threads // self.lanes)
        self.workers = max(1, int(workers))
        self.pin_memory = cuda if pin_memory is None else bool(pin_memory)
        self.pdfs = bool(pdfs)
        if cuda:
            set_tf32(allow_tf32)

    def __call__(self, images: Iterable) -> Iterator[Any]:
        """Yield one result per image / PDF page, in input order; inputs are read lazily."""
        for _, _, result in self.with_pages(images):
            yield result

    def with_pages(self, images: Iterable) -> Iterator[tuple[str | None, int | None, Any]]:
        """``(source, 0-based page or None, result)`` per image / PDF page, in input order."""
        check_inputs(images)
        inputs = _expand(images, self.pdfs)
        flow = _Flow()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="ptocr-bulk") as pool, \
                ThreadPoolExecutor(self.lanes, thread_name_prefix="ptocr-lane") as lanes:
            prepared: deque[Future] = deque()
            running: deque[Future] = deque()  # in input order; twice the lanes, so none waits
            ahead = (self.lanes + 1) * self.batch_size  # decoded images waiting for a window

            def fill() -> None:
                want = max(0, ahead - len(prepared))
                taken = 0
                for item, image in islice(inputs, want):
                    prepared.append(pool.submit(_prepare, item, image, self.steps))
                    taken += 1
                flow.took(taken, exhausted=taken < want)

            try:
                fill()
                while prepared or running:
                    while prepared and len(running) < 2 * self.lanes:
                        window = [prepared.popleft() for _ in range(min(self.batch_size, len(prepared)))]
                        fill()
                        running.append(lanes.submit(self._window, window, pool, flow))
                    yield from running.popleft().result()
                    fill()
            finally:  # stopped early (Ctrl-C, an error, the caller closing us): queued work is dropped
                for executor in (lanes, pool):
                    executor.shutdown(wait=False, cancel_futures=True)

    def _window(self, window: list[Future], pool: ThreadPoolExecutor, flow: "_Flow") -> list[tuple]:
        try:
            items = [f.result() for f in window]
            ok = [it for it in items if it.error is None]
            self._detect(ok, pool, flow, len(window))
            for stage in self.steps.stages:
                self._crop_stage(stage, [it for it in ok if it.crops], flow, len(window))
        finally:
            flow.done(len(window))
        return [(it.source, it.page_index, FailedImage(it.source, it.error, it.page_index) if it.error is not None
                 else self.steps.assemble(it)) for it in items]

    def _forward(self, model, x: np.ndarray, flow: "_Flow", size: int):
        # This lane thread's intra-op threads, decided per call: the lane's share while other
        # images are in flight, every thread once this window's are the only ones left.
        torch.set_num_threads(self.all_threads if flow.alone(size) else self.threads)
        return model.forward(x, self.pin_memory)

    def _detect(self, items: list[BulkItem], pool: ThreadPoolExecutor, flow: "_Flow", size: int) -> None:
        """Detector calls on images of one network size each; post-processing in the pool
        while the next call computes (the last call's in this lane: nothing is left to overlap)."""
        buckets: dict[tuple, list[BulkItem]] = defaultdict(list)
        for it in items:
            buckets[it.x.shape].append(it)
        chunks = [chunk for bucket in buckets.values() for chunk in _chunks(bucket, self.batch_size)]
        posts = []
        for k, chunk in enumerate(chunks):
            probs = self._forward(self.steps.det, np.stack([it.x for it in chunk]), flow, size)
            if k == len(chunks) - 1:
                for it, prob in zip(chunk, probs):
                    self.steps.boxes_and_crops(it, prob)
            else:
                posts += [pool.submit(self.steps.boxes_and_crops, it, prob) for it, prob in zip(chunk, probs)]
        for p in posts:
            p.result()

    def _crop_stage(self, stage: CropStage, items: list[BulkItem], flow: "_Flow", size: int) -> None:
        """``stage`` over the crops of ``items``, batched as the pipeline batches one image's
        crops; with ``merge``, same-shape batches of different images in one call."""
        out: list[list] = [[None] * len(it.crops) for it in items]
        groups: dict[tuple, list] = defaultdict(list)
        for k, it in enumerate(items):
            for index, batch in stage.batches(it.crops):
                groups[batch.shape[1:] if self.merge else (k, len(groups))].append((k, index, batch))
        for parts in groups.values():
            for call in _calls(parts, CROP_ROWS):
                results = stage.post(self._forward(stage.model, np.concatenate([b for _, _, b in call]), flow, size))
                row = 0
                for k, index, batch in call:
                    for i, res in zip(index, results[row:row + len(batch)]):
                        out[k][i] = res
                    row += len(batch)
        for it, results in zip(items, out):
            stage.finish(it, results)


class _Flow:
    """What the lanes share: how many inputs are taken and not yet through the models, and
    whether the inputs are used up."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending = 0
        self.exhausted = False

    def took(self, count: int, *, exhausted: bool) -> None:
        with self.lock:
            self.pending += count
            self.exhausted = self.exhausted or exhausted

    def done(self, count: int) -> None:
        with self.lock:
            self.pending -= count

    def alone(self, size: int) -> bool:
        """A window of ``size`` inputs is all that is left: no input to take, none elsewhere."""
        with self.lock:
            return self.exhausted and self.pending == size


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


def iter_read(ocr, images: Iterable, *, batch_size: int | None = None, **kw) -> Iterator[OCRResult | FailedImage]:
    """Yield ``ocr.read(image)`` for each of ``images`` (a ``FailedImage`` where an input cannot be
    read), in input order, batched across images (``BulkReader``'s keywords). ``images`` that are
    one input, not a list of them, are refused here, before anything is read."""
    check_inputs(images)
    return BulkReader(ocr, batch_size=batch_size, **kw)(images)


def iter_pipeline(pipeline, images: Iterable, *, batch_size: int | None = None) -> Iterator[OCRResult | FailedImage]:
    """Exactly one item per input (a PDF is not expanded into pages: it fails as an image):
    ``pipeline.iter_many`` where the pipeline has it (``OCR``, ``OCR3``: batched across images);
    else its ``read`` one image at a time, an unreadable input a ``FailedImage`` as well."""
    if hasattr(pipeline, "iter_many"):
        yield from pipeline.iter_many(images, batch_size=batch_size, pdfs=False)
        return
    for image in images:
        try:
            yield pipeline.read(read_uri(image) if is_uri(image) else image)
        except ImageError as e:
            yield FailedImage(source_name(image), str(e))


def read_many(ocr, images: Iterable, *, batch_size: int | None = None, **kw) -> list[OCRResult | FailedImage]:
    """``list(iter_read(...))``."""
    return list(iter_read(ocr, images, batch_size=batch_size, **kw))


class BulkReading:
    """``read_many`` / ``iter_many`` for a pipeline that gives its ``bulk_steps()`` (``OCR``, ``OCR3``)."""

    def read_many(self, images, batch_size: int | None = None, **kw) -> list:
        """Many images (and PDFs: one result per page) at once, batched across them
        (``ptocr.bulk.read_many``); each result is ``read``'s."""
        return read_many(self, images, batch_size=batch_size, **kw)

    def iter_many(self, images, batch_size: int | None = None, **kw):
        """``read_many`` as an iterator, for streams too large for memory (``ptocr.bulk.iter_read``)."""
        return iter_read(self, images, batch_size=batch_size, **kw)


def compile_for_fixed_shapes(ocr, mode: str = "reduce-overhead") -> None:
    """``torch.compile`` each of ``ocr``'s bulk models (``OCR``, ``OCR3``) for the fixed shapes
    bucketing produces (in place). On CUDA, ``"reduce-overhead"`` records CUDA graphs: one graph
    per input shape, made at its first call; shapes past dynamo's recompile limit run uncompiled."""
    for p in ocr.bulk_steps().models:
        p.model = torch.compile(p.model, mode=mode, dynamic=False)

