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

from collections.abc import Callable, Iterator
from functools import partial

import numpy as np

from ptocr.bulk import iter_pipeline
from ptocr.jsonl_results import encode, record
from ptocr.pipeline import OCR

__all__ = ["OCRBatchPredictor", "run_on_ray"]


# Rows per map_batches call when no batch size is given: enough to fill a GPU window.
RAY_ROWS = 8


class OCRBatchPredictor:
    """``build``: a function of no arguments that returns the ``OCR`` (pickled to the actors);
    or the models as ``OCR`` takes them (``det``, ``rec``, ``cls``, ``device``, ``dtype``).
    ``column``: the batch column holding the image paths / URIs."""

    def __init__(self, build: Callable[[], OCR] | None = None, *, det=None, rec=None, cls=None, device=None,
                 dtype=None, batch_size: int | None = None, column: str = "image"):
        if build is None:
            build = partial(OCR, det, rec, cls, device=device, dtype=dtype)
        self.ocr = build()
        self.batch_size = None if batch_size is None else int(batch_size)  # None: BulkReader's default
        self.column = column

    def __call__(self, batch: dict) -> dict:
        names = [str(n) for n in batch[self.column]]
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
    import ray

    if not names:
        return
    if not ray.is_initialized():
        ray.init(address=None if address == "local" else address, logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False  # ptocr draws its own
    ds = ray.data.from_items([{"image": n} for n in names])
    ds = ds.map_batches(OCRBatchPredictor, fn_constructor_args=(build,), fn_constructor_kwargs={"batch_size": batch_size},
                        batch_size=batch_size or RAY_ROWS, batch_format="numpy", concurrency=actors, num_gpus=gpus)
    for row in ds.iter_rows():
        yield str(row["image"]), str(row["line"]), (str(row["error"]) or None)
