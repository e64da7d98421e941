"""Bulk OCR on a Ray cluster with Ray Data (``pip install 'ptocr[ray]'``); ray is imported only
inside the functions here, so ptocr works without it.

``OCRBatchPredictor`` is a callable class for ``ray.data.Dataset.map_batches``: each actor
builds its ``OCR`` once, on the GPU Ray gives it (``num_gpus=1``: Ray sets the actor's
``CUDA_VISIBLE_DEVICES``, so ``device="cuda"`` is that GPU), and reads each batch of image
paths / URIs with ``ptocr.bulk``. It returns the JSON lines of ``ptocr.jsonl_results``, so a
cluster run writes the same file as ``ptocr ocr --out`` on one machine::

    ds = ray.data.from_items([{"image": p} for p in paths])
    ds = ds.map_batches(OCRBatchPredictor, fn_constructor_kwargs={"det": ..., "rec": ..., "cls": ...,
                        "device": "cuda"}, batch_size=16, concurrency=4, num_gpus=1)

``run_on_ray`` is what ``ptocr ocr --ray`` runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np

from ptocr.bulk import iter_pipeline
from ptocr.errors import PtocrError
from ptocr.jsonl_results import encode, record
from ptocr.pipeline import OCR

__all__ = ["OCRBatchPredictor", "run_on_ray"]


# Rows per map_batches call when no batch size is given: enough to fill a GPU window.
RAY_ROWS = 8


class OCRBatchPredictor:
    """``build``: a function of no arguments that returns the ``OCR`` (pickled to the actors);
    or the models as ``OCR`` takes them (``det``, ``rec``, ``cls``, ``device``, ``dtype``).
    ``column``: the batch column holding the image paths / URIs. ``cwd``: the folder relative
    paths (of images and models) are read from: an actor starts in its raylet's folder, not the
    driver's (``run_on_ray`` gives the driver's)."""

    def __init__(self, build: Callable[[], OCR] | None = None, *, det=None, rec=None, cls=None, device=None,
                 dtype=None, batch_size: int | None = None, column: str = "image", cwd: str | None = None):
        if cwd is not None and os.path.isdir(cwd):  # no such folder on this node: relative paths fail per image
            os.chdir(cwd)  # the actor's own process
        if build is None:
            build = partial(OCR, det, rec, cls, device=device, dtype=dtype)
        self.ocr = build()
        self.batch_size = None if batch_size is None else int(batch_size)  # None: BulkReader's default
        self.column = column

    def __call__(self, batch: dict) -> dict:
        if self.column not in batch:
            raise PtocrError(f"OCRBatchPredictor: no column {self.column!r} in the batch (columns: "
                             f"{', '.join(map(str, batch))}); give column=")
        values = list(batch[self.column])
        wrong = next((v for v in values if not isinstance(v, (str, os.PathLike))), None)
        if wrong is not None:  # str() of decoded pixels (ray.data.read_images) or bytes would be read as a path
            raise PtocrError(f"OCRBatchPredictor reads image paths / URIs; column {self.column!r} holds "
                             f"{type(wrong).__name__} values")
        names = [os.fspath(n) for n in values]
        records = [record(n, r) for n, r in zip(names, iter_pipeline(self.ocr, names, batch_size=self.batch_size))]
        return {"image": np.array(names, dtype=object),
                "line": np.array([encode(r) for r in records], dtype=object),
                "error": np.array([r.get("error", "") for r in records], dtype=object)}


def run_on_ray(names: list[str], build: Callable[[], OCR], *, address: str = "local", batch_size: int | None = None,
               actors: int = 1, gpus: float = 0.0) -> Iterator[tuple[str, str, str | None]]:
    """Read ``names`` on the Ray cluster at ``address`` ("local": start one here; ignored when
    ray is already initialized in this process) with ``actors`` model copies, each with
    ``gpus`` GPUs. Yields ``(name, JSON line, error or None)`` as results arrive (not in input
    order)."""
    if not names:
        return
    try:
        import ray.data  # ray itself with its data extra (pyarrow, pandas)
    except ImportError as e:  # the CLI's one-line error, not a traceback
        raise PtocrError(f"--ray needs Ray Data: pip install 'ptocr[ray]' ({e})") from None
    if not ray.is_initialized():
        # "local": a new local cluster, as documented, even where RAY_ADDRESS names another
        ray.init(address=address, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False  # ptocr draws its own
    ds = ray.data.from_items([{"image": n} for n in names])
    ds = ds.map_batches(OCRBatchPredictor, fn_constructor_args=(build,),
                        fn_constructor_kwargs={"batch_size": batch_size, "cwd": os.getcwd()},
                        batch_size=batch_size or RAY_ROWS, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=gpus)
    for row in ds.iter_rows():
        yield str(row["image"]), str(row["line"]), (str(row["error"]) or None)
