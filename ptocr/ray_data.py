"""Bulk OCR on a Ray cluster with Ray Data (``pip install 'ptocr[ray]'``); ray is imported only
inside the functions here, so ptocr works without it.

``OCRBatchPredictor`` is a callable class for ``ray.data.Dataset.map_batches``: each actor
builds its ``OCR`` once, on the GPU Ray gives it (``num_gpus=1``: Ray sets the actor's
``CUDA_VISIBLE_DEVICES``, so ``device="cuda"`` is that GPU), and reads each batch of image
paths / URIs with ``ptocr.bulk``. It returns the JSON lines of ``ptocr.jsonl_results``, so a
cluster run writes the same file as ``ptocr ocr --out`` on one machine::

    ds = ray.data.from_items([{"image": p} for p in paths])
    ds = ds.map_batches(OCRBatchPredictor, fn_constructor_kwargs={"det": ..., "rec": ..., "cls": ...,
                        "device": "cuda"}, batch_size=16, compute=ray.data.ActorPoolStrategy(size=4), num_gpus=1)

``run_on_ray`` is what ``ptocr ocr --ray`` runs.
"""

from __future__ import annotations

import os
import re
import socket
import warnings
from collections.abc import Callable, Iterator
from functools import partial

import numpy as np

from ptocr.bulk import iter_pipeline
from ptocr.errors import PtocrError, first_line
from ptocr.jsonl_results import encode, record
from ptocr.pipeline import OCR

__all__ = ["OCRBatchPredictor", "run_on_ray"]


# Rows per map_batches call when no batch size is given: enough to fill a GPU window.
RAY_ROWS = 8
# Batches per input block. A task reads a whole block, so a block is what a dead worker, a retry
# or Ctrl-C costs; from_items' default (200 blocks) makes that 5000 images in a run of a million.
BLOCK_BATCHES = 16
# Tries of a task whose worker dies (segfault, OOM kill, os._exit in a decoder). Ray Data's
# default (max_task_retries=-1) retries it forever: an image that kills its reader hangs the run.
RAY_TRIES = 3


class OCRBatchPredictor:
    """``build``: a function of no arguments that returns the ``OCR`` (pickled to the actors);
    or the models as ``OCR`` takes them (``det``, ``rec``, ``cls``, ``device``, ``dtype``).
    ``column``: the batch column holding the image paths / URIs. ``cwd``: the folder relative
    paths (of images and models) are read from: an actor starts in its raylet's folder, not the
    driver's (``run_on_ray`` gives the driver's). ``catch``: an exception while reading a batch
    comes back in a ``failure`` column of its rows instead of failing the task (``run_on_ray``:
    a failed task is taken for a dead worker)."""

    def __init__(self, build: Callable[[], OCR] | None = None, *, det=None, rec=None, cls=None, device=None,
                 dtype=None, batch_size: int | None = None, column: str = "image", cwd: str | None = None,
                 catch: bool = False):
        if cwd is not None and os.path.isdir(cwd):  # no such folder on this node: relative paths fail per image
            os.chdir(cwd)  # the actor's own process
        if build is None:
            build = partial(OCR, det, rec, cls, device=device, dtype=dtype)
        self.ocr = build()
        self.batch_size = None if batch_size is None else int(batch_size)  # None: BulkReader's default
        self.column = column
        self.catch = catch

    def __call__(self, batch: dict) -> dict:
        if not self.catch:
            return self._read(batch)
        try:
            return self._read(batch) | {"failure": np.array([""] * len(batch[self.column]), dtype=object)}
        except Exception as e:  # noqa: BLE001 - handed to the driver, which stops with it
            names = [str(v) for v in batch.get(self.column, [])]
            failure = f"{type(e).__name__}: {first_line(e)}"
            return {"image": np.array(names, dtype=object), "line": np.array([""] * len(names), dtype=object),
                    "error": np.array([""] * len(names), dtype=object),
                    "failure": np.array([failure] * len(names), dtype=object)}

    def _read(self, batch: dict) -> dict:
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
               actors: int = 1, gpus: float = 0.0, tries: int | None = None) -> Iterator[tuple[str, str, str | None]]:
    """Read ``names`` on the Ray cluster at ``address`` ("local": start one here; ignored when
    ray is already initialized in this process) with ``actors`` model copies, each with
    ``gpus`` GPUs. Yields ``(name, JSON line, error or None)`` as results arrive (not in input
    order), each name once.

    A batch whose worker dies ``tries`` (default ``RAY_TRIES``) times is read again one image
    per task, so that only the image that kills its reader is lost; it gets an error line. An exception in the
    workers (not an unreadable image: a model's) stops the run with a PtocrError, as on one
    machine."""
    if not names:
        return
    ray = _ray()
    if not ray.is_initialized():
        _check_reachable(address)
        # "local": a new local cluster, as documented, even where RAY_ADDRESS names another
        ray.init(address=address, logging_level="WARNING")
    _check_gpus(ray, actors, gpus)
    rows, tries = batch_size or RAY_ROWS, tries or RAY_TRIES
    names = list(dict.fromkeys(names))
    seen: set[str] = set()
    yield from _fresh(_read(ray, names, build, batch_size, rows, actors, gpus, tries), seen)
    left = [n for n in names if n not in seen]
    if left and rows > 1:  # the images of the batches whose workers died, one per task
        yield from _fresh(_read(ray, left, build, batch_size, 1, actors, gpus, tries), seen)
    for name in names:
        if name not in seen:
            error = (f"{name}: the Ray worker reading it died {tries} times (a crash or an out-of-memory "
                     "kill in its decoder or the models; the raylet's log says which)")
            yield name, encode({"image": name, "error": error}), error


def _fresh(rows: Iterator[tuple[str, str, str | None]], seen: set[str]) -> Iterator[tuple[str, str, str | None]]:
    """``rows`` of names not in ``seen`` (a retried task may give its rows again), added to it."""
    for row in rows:
        if row[0] not in seen:
            seen.add(row[0])
            yield row


def _ray():
    try:
        import ray.data  # ray itself with its data extra (pyarrow, pandas)
    except ImportError as e:  # the CLI's one-line error, not a traceback
        raise PtocrError(f"--ray needs Ray Data: pip install 'ptocr[ray]' ({e})") from None
    return ray


def _read(ray, names: list[str], build, batch_size, rows: int, actors: int, gpus: float,
          tries: int) -> Iterator[tuple[str, str, str | None]]:
    """One Ray Data pass over ``names``, ``rows`` per task call; the rows of a task whose worker
    died ``tries`` times are left out (Ray Data's ``max_errored_blocks``)."""
    blocks = _blocks(len(names), rows, actors)
    ds = ray.data.from_items([{"image": n} for n in names], override_num_blocks=blocks)
    with warnings.catch_warnings():  # max_task_retries has no named parameter in 2.60, ray_remote_args is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = _map(ray, ds, build, batch_size, rows, min(actors, blocks), gpus, tries)
    # The dataset's own copy of the DataContext: a script that runs ray keeps its settings.
    ds.context.enable_progress_bars = False  # ptocr draws its own
    ds.context.max_errored_blocks = -1  # the workers catch exceptions: a failed task is a dead worker
    for row in ds.iter_rows():
        if row["failure"]:
            raise PtocrError(f"{row['image']}: the Ray workers failed: {row['failure']}")
        yield str(row["image"]), str(row["line"]), (str(row["error"]) or None)


def _blocks(count: int, rows: int, actors: int) -> int:
    """Input blocks for ``count`` names: at most ``BLOCK_BATCHES`` batches each, and enough
    (up to one batch each) to give every actor work."""
    return min(-(-count // rows), max(-(-count // (rows * BLOCK_BATCHES)), 4 * actors))


def _map(ray, ds, build, batch_size, rows: int, actors: int, gpus: float, tries: int):
    # One task at a time per actor when narrowing down: a task queued behind a poison image would
    # die with it, and spend its tries.
    pool = ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1 if rows == 1 else None)
    return ds.map_batches(OCRBatchPredictor, fn_constructor_args=(build,),
                          fn_constructor_kwargs={"batch_size": batch_size, "cwd": os.getcwd(), "catch": True},
                          batch_size=rows, batch_format="numpy", compute=pool, num_gpus=gpus,
                          max_restarts=-1, max_task_retries=tries - 1)


def _check_reachable(address: str) -> None:
    """A cluster address (host:port, ray://host:port) that nothing answers on is an error here:
    ray.init would retry it for minutes."""
    match = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address)
    if match is None:  # "local", "auto", RAY_ADDRESS's own forms: ray.init's to judge
        return
    host, port = match.group(1), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as e:
        raise PtocrError(f"--ray: nothing answers at {address} ({e.strerror or e}); give the address of a "
                         "running cluster's head (ray start --head prints it), or --ray alone for a local one"
                         ) from None


def _check_gpus(ray, actors: int, gpus: float) -> None:
    """``actors`` x ``gpus`` GPUs that the cluster cannot have is an error here: Ray would wait
    for them forever. On an autoscaling cluster what counts is what the autoscaler may add (its
    node types' maximum, as Ray Data itself reads it), not the GPUs up now."""
    if gpus <= 0:
        return
    wanted = actors * gpus
    have = ray.cluster_resources().get("GPU", 0)
    if have < wanted:
        have = max(have, _autoscaler_gpus())
    if have < wanted:
        fit = int(have // gpus)
        hint = f"give --actors {fit} or fewer" if fit else "join a cluster with GPUs, or leave out --device cuda"
        raise PtocrError(f"--ray: the cluster has {have:g} GPUs, and --actors {actors} with --device cuda asks "
                         f"for {actors} x {gpus:g} = {wanted:g}: {hint}")


def _autoscaler_gpus() -> float:
    try:
        from ray._private.state import state  # private, as Ray Data's own use of it: absent -> 0

        limits = state.get_max_resources_from_cluster_config() or {}
    except Exception:  # noqa: BLE001 - no autoscaler config readable: only the GPUs up now count
        return 0.0
    return float(limits.get("GPU", 0))
