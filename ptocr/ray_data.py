"""Bulk OCR on a Ray cluster with Ray Data (``pip install 'ptocr[ray]'``); ray is imported only
inside the functions here, so ptocr works without it.

``OCRBatchPredictor`` is a callable class for ``ray.data.Dataset.map_batches``: each actor
builds its ``OCR`` once, on the GPU Ray gives it (``num_gpus=1``: Ray sets the actor's
``CUDA_VISIBLE_DEVICES``, so ``device="cuda"`` is that GPU), and reads each batch of image
paths / URIs with ``ptocr.bulk``. It returns the JSON lines of ``ptocr.jsonl_results`` (without
``"path"``, which the driver adds: ``ptocr ocr --ray`` writes the same file as ``ptocr ocr --out``
on one machine)::

    ds = ray.data.from_items([{"image": p} for p in paths])
    ds = ds.map_batches(OCRBatchPredictor, fn_constructor_kwargs={"det": ..., "rec": ..., "cls": ...,
                        "device": "cuda"}, batch_size=16, compute=ray.data.ActorPoolStrategy(size=4), num_gpus=1)

Ray Data's defaults are safe here: Ray restarts an actor whose process dies and retries its
task forever, and the actor keeps a journal on its node's disk of what it was reading, so an
image that kills its reader ``tries`` times gets an error row instead of being read again.

A path that the actor's node does not have (a mount missing there) is an error row like a
deleted file's, but its ``missing`` column names what the node lacks (and ``node`` the node):
only a machine that sees the paths can tell the two apart. ``run_on_ray``'s driver does: where
it has the image, or the folder the node lacks, the run stops naming both, and nothing is
recorded for those images; else the row is the image's error, as on one machine.

``run_on_ray`` is what ``ptocr ocr --ray`` runs.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from hashlib import sha1
from pathlib import Path

import numpy as np

from ptocr.bulk import is_uri, iter_pipeline
from ptocr.errors import PtocrError, first_line
from ptocr.interrupts import kept_signal_handlers
from ptocr.jsonl_results import encode, record
from ptocr.pipeline import OCR

__all__ = ["OCRBatchPredictor", "run_on_ray"]


# Rows per map_batches call when no batch size is given: enough to fill a GPU window.
RAY_ROWS = 8
# Batches per input block. A task reads a whole block, so a block is what a dead worker, a retry
# or Ctrl-C costs; from_items' default (200 blocks) makes that 5000 images in a run of a million.
BLOCK_BATCHES = 16
# Deaths of an actor's process that one image (or building the models) may cause before it
# counts as failed: a retry after a first death reads the batch one image at a time.
RAY_TRIES = 3
# The start of a failure that is the models', not an image's: the driver names no image for it.
BUILD_FAILED = "cannot build the models"


class OCRBatchPredictor:
    """``build``: a function of no arguments that returns the ``OCR`` (pickled to the actors);
    or the models as ``OCR`` takes them (``det``, ``rec``, ``cls``, ``device``, ``dtype``).
    ``column``: the batch column holding the image paths / URIs. ``cwd``: the folder relative
    paths (of images and models) are read from: an actor starts in its raylet's folder, not the
    driver's (``run_on_ray`` gives the driver's). ``catch``: an exception while building the
    models or reading a batch comes back in a ``failure`` column of its rows instead of failing
    the actor or the task (``run_on_ray`` stops with it). ``tries``: deaths of the actor's
    process that one image, or building the models, may cause (Ray restarts it each time):
    then the image gets an error row, or the models a ``PtocrError`` (a ``failure`` with
    ``catch``).

    Columns returned: ``image``, ``line`` (the JSON line), ``error`` ("" when read), ``missing``
    (for an error row whose path this node does not have: the shallowest part of it missing
    here, absolute; else "") and ``node`` (this node's hostname); ``failure`` with ``catch``."""

    def __init__(self, build: Callable[[], OCR] | None = None, *, det=None, rec=None, cls=None, device=None,
                 dtype=None, batch_size: int | None = None, column: str = "image", cwd: str | None = None,
                 catch: bool = False, tries: int = RAY_TRIES):
        if cwd is not None and os.path.isdir(cwd):  # no such folder on this node: it is what relative paths lack
            os.chdir(cwd)  # the actor's own process
        self.cwd = cwd
        self.node = socket.gethostname()
        if build is None:
            build = partial(OCR, det, rec, cls, device=device, dtype=dtype)
        self.batch_size = None if batch_size is None else int(batch_size)  # None: BulkReader's default
        self.column = column
        self.catch = catch
        self.tries = max(1, int(tries))
        self.journals = _journal_folder()
        self.failure = ""
        try:
            self.ocr = self._build(build)
        except Exception as e:
            if not catch:
                raise
            self.failure = f"{BUILD_FAILED} on {self.node}: {type(e).__name__}: {first_line(e)}"

    def _build(self, build: Callable[[], OCR]) -> OCR:
        """``build()``, each start journaled: Ray restarts an actor whose process dies while
        building (killed for memory, a crash in a native library) again and again."""
        if self.journals is None:
            return build()
        journal = _Journal(self.journals / "build")
        died = len(journal.entries())
        if died >= self.tries:
            raise PtocrError(f"the Ray worker died {died} times while building them (out of memory? a crash in "
                             "a native library? the raylet's log says which)")
        journal.add("start")
        ocr = build()
        journal.remove()
        return ocr

    def __call__(self, batch: dict) -> dict:
        if self.failure:
            return _failed(batch, self.column, self.failure, self.node)
        if not self.catch:
            return self._read(batch)
        try:
            return self._read(batch) | {"failure": np.array([""] * len(batch[self.column]), dtype=object)}
        except Exception as e:  # noqa: BLE001 - handed to the driver, which stops with it
            return _failed(batch, self.column, f"{type(e).__name__}: {first_line(e)}", self.node)

    def _read(self, batch: dict) -> dict:
        names = self._names(batch)
        journal = None if self.journals is None else _Journal(self.journals / sha1("\0".join(names).encode(
            "utf-8", "surrogatepass")).hexdigest())
        if journal is not None and journal.path.exists():  # a retry: this batch's reader died
            rows = list(self._one_by_one(names, journal))
        else:
            rows = list(self._batched(names, journal))
        if journal is not None:
            journal.remove()
        return {"image": np.array(names, dtype=object),
                "line": np.array([line for line, _ in rows], dtype=object),
                "error": np.array([error for _, error in rows], dtype=object),
                "missing": np.array([self._missing_here(n) if error else "" for n, (_, error) in zip(names, rows)],
                                    dtype=object),
                "node": np.array([self.node] * len(names), dtype=object)}

    def _missing_here(self, name: str) -> str:
        """The shallowest part of ``name``'s path that this node does not have; "" for a URI
        of another store (its missing object is the image's error) or a path that is here."""
        path = _local_path(name)
        if path is None:
            return ""
        return _shallowest_missing(os.path.join(self._relative_base(), path))

    def _relative_base(self) -> str:
        """The folder a relative path's missing part is looked for from: this actor's own (the
        driver's, ``cwd``, where this node has it); ``cwd`` where this node lacks it, as that is
        what the path lacks here (not a file under the raylet's folder, where the actor stayed)."""
        if self.cwd is not None and not os.path.isdir(self.cwd):
            return self.cwd
        return os.getcwd()

    def _names(self, batch: dict) -> list[str]:
        if self.column not in batch:
            raise PtocrError(f"OCRBatchPredictor: no column {self.column!r} in the batch (columns: "
                             f"{', '.join(map(str, batch))}); give column=")
        values = list(batch[self.column])
        wrong = next((v for v in values if not isinstance(v, (str, os.PathLike))), None)
        if wrong is not None:  # str() of decoded pixels (ray.data.read_images) or bytes would be read as a path
            raise PtocrError(f"OCRBatchPredictor reads image paths / URIs; column {self.column!r} holds "
                             f"{type(wrong).__name__} values")
        return [os.fspath(n) for n in values]

    def _batched(self, names: list[str], journal: _Journal | None) -> Iterator[tuple[str, str]]:
        """(line, error) of each name, read in windows; the journal (where there is one) holds
        each result as it comes, for a retry after a death to start from."""
        if journal is not None:
            journal.add("batch")
        for name, result in zip(names, iter_pipeline(self.ocr, names, batch_size=self.batch_size)):
            row = _row(record(name, result))
            if journal is not None:
                journal.add("done", name, *row)
            yield row

    def _one_by_one(self, names: list[str], journal: _Journal) -> Iterator[tuple[str, str]]:
        """The retry of a batch whose reader died: the results journaled before, then each
        other image alone, its start journaled; an image that was being read at ``tries``
        deaths (the batch's one included) gets an error instead of another."""
        entries = journal.entries()
        done = {e[1]: (e[2], e[3]) for e in entries if e[0] == "done"}
        started = Counter(e[1] for e in entries if e[0] == "start")
        for name in names:
            if name not in done:
                died = started[name] + 1
                if died >= self.tries:
                    error = (f"{name}: the Ray worker reading it died {died} times (a crash or an out-of-memory "
                             "kill in its decoder or the models; the raylet's log says which)")
                    done[name] = (encode({"image": name, "error": error}), error)
                else:
                    journal.add("start", name)
                    done[name] = _row(record(name, next(iter(iter_pipeline(self.ocr, [name], batch_size=1)))))
                journal.add("done", name, *done[name])
            yield done[name]


class _Journal:
    """One JSON list a line in a file on the actor's node: what it was doing when its process
    died, for the restarted actor (Ray replays its constructor and retries its task, which
    cannot tell otherwise) to read."""

    def __init__(self, path: Path):
        self.path = path

    def add(self, *entry) -> None:
        with open(self.path, "a", encoding="utf-8", errors="surrogatepass") as f:
            f.write(json.dumps(entry) + "\n")  # one write, flushed at close: a process death keeps it

    def entries(self) -> list[list]:
        try:
            text = self.path.read_text(encoding="utf-8", errors="surrogatepass")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _journal_folder() -> Path | None:
    """This actor's journal folder on its node; None outside a Ray actor."""
    try:
        import ray

        # is_initialized first: get_runtime_context() would start a Ray instance in a plain process
        actor = ray.get_runtime_context().get_actor_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - no ray, or not in a worker: nothing restarts this process
        return None
    if actor is None:
        return None
    folder = Path(tempfile.gettempdir()) / "ptocr-ray" / actor  # an actor keeps its id through restarts
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _row(rec: dict) -> tuple[str, str]:
    return encode(rec), rec.get("error", "")


def _failed(batch: dict, column: str, failure: str, node: str) -> dict:
    """The rows of ``batch``, each with ``failure``."""
    names = [str(v) for v in batch.get(column, [])]
    empty = np.array([""] * len(names), dtype=object)
    return {"image": np.array(names, dtype=object), "line": empty, "error": empty, "missing": empty,
            "node": np.array([node] * len(names), dtype=object),
            "failure": np.array([failure] * len(names), dtype=object)}


def _local_path(name: str) -> str | None:
    """The file system path of ``name`` on the machine that reads it: a path as given, a
    ``file://`` URI's path; None for other URIs (s3://, gs://, http://: the same store for all)."""
    if not is_uri(name):
        return name
    if not name.lower().startswith("file:"):
        return None
    try:
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(name)
    except (ImportError, OSError, ValueError):  # not a URI pyarrow reads: the image's own error
        return None
    return path if isinstance(filesystem, fs.LocalFileSystem) else None


def _lacks(path: str) -> bool:
    """Whether this machine has nothing at ``path`` (not: cannot read it, or a file on the way)."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    return False


def _shallowest_missing(path: str) -> str:
    """The shallowest part of absolute ``path`` that this machine lacks (a mount point, a
    folder, the file itself); "" when it has the path."""
    if not _lacks(path):
        return ""
    while True:
        parent = os.path.dirname(path)
        if parent == path or not _lacks(parent):
            return path
        path = parent


def run_on_ray(names: list[str], build: Callable[[], OCR], *, address: str = "local", batch_size: int | None = None,
               actors: int = 1, gpus: float = 0.0, tries: int | None = None) -> Iterator[tuple[str, str, str | None]]:
    """Read ``names`` on the Ray cluster at ``address`` ("local": start one here; ignored when
    ray is already initialized in this process) with ``actors`` model copies, each with
    ``gpus`` GPUs. Yields ``(name, JSON line, error or None)`` as results arrive (not in input
    order), each name once.

    An image whose reader dies ``tries`` times (default ``RAY_TRIES``; ``OCRBatchPredictor``
    counts them) gets an error line; the rest of its batch is read. An exception in the workers
    (not an unreadable image: a model's, or building the models) stops the run with a one-line
    PtocrError, as on one machine. So does an image that a node lacks while this machine has it
    (or what the node lacks of its path): the node cannot see the driver's files, and the image
    is not yielded, so that a rerun reads it; one missing here too is its own error row."""
    if not names:
        return
    ray = _ray()
    if not ray.is_initialized():
        _check_reachable(address)
        # "local": a new local cluster, as documented, even where RAY_ADDRESS names another
        with kept_signal_handlers():  # ray.init's SIGTERM handler exits 15 without unwinding
            ray.init(address=address, logging_level="WARNING")
    _check_gpus(ray, actors, gpus)
    names = list(dict.fromkeys(names))
    yield from _fresh(_read(ray, names, build, batch_size, batch_size or RAY_ROWS, actors, gpus, tries or RAY_TRIES))


def _fresh(rows: Iterator[tuple[str, str, str | None]]) -> Iterator[tuple[str, str, str | None]]:
    """``rows``, each name once (a retried task may give its rows again)."""
    seen: set[str] = set()
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
    """One Ray Data pass over ``names``, ``rows`` per task call."""
    blocks = _blocks(len(names), rows, actors)
    ds = ray.data.from_items([{"image": n} for n in names], override_num_blocks=blocks)
    ds = _map(ray, ds, build, batch_size, rows, min(actors, blocks), gpus, tries)
    # The dataset's own copy of the DataContext: a script that runs ray keeps its settings.
    ds.context.enable_progress_bars = False  # ptocr draws its own
    for row in ds.iter_rows():
        if row["failure"]:
            raise PtocrError(_failure_message(str(row["image"]), str(row["failure"])))
        if row["missing"] and _seen_here(str(row["image"]), str(row["missing"])):
            # Not the image's error: a rerun must read it, so it is not yielded (written) at all.
            raise PtocrError(_unseen_message(str(row["image"]), str(row["missing"]), str(row["node"])))
        yield str(row["image"]), str(row["line"]), (str(row["error"]) or None)


def _seen_here(name: str, missing: str) -> bool:
    """Whether this machine (the driver) has the image that a node lacked, or what that node
    lacks of its path (a mount point, a folder): then the node does not see what the driver
    sees. Neither: the image is gone (a stale list), its error is its result."""
    path = _local_path(name)
    return (path is not None and os.path.exists(path)) or os.path.exists(missing)


def _unseen_message(name: str, missing: str, node: str) -> str:
    if is_uri(name) or os.path.isabs(name):
        folder = missing if os.path.isdir(missing) else os.path.dirname(missing)
        what = f"cannot see {folder} as this machine does: there is no {missing} there ({name})"
    else:
        what = (f"cannot see {name} as this machine does: relative paths are read from {os.getcwd()} here, and "
                f"there it has no {missing}")
    return (f"--ray: the Ray node {node} {what}; nothing is recorded for the images it could not see: make "
            "them visible there (a mount missing?) or leave that node out, and run again")


def _failure_message(name: str, failure: str) -> str:
    if failure.startswith(BUILD_FAILED):  # no image's fault
        return f"--ray: the Ray workers {failure}"
    return f"{name}: the Ray workers failed: {failure}"


def _blocks(count: int, rows: int, actors: int) -> int:
    """Input blocks for ``count`` names: at most ``BLOCK_BATCHES`` batches each, and enough
    (up to one batch each) to give every actor work."""
    return min(-(-count // rows), max(-(-count // (rows * BLOCK_BATCHES)), 4 * actors))


def _map(ray, ds, build, batch_size, rows: int, actors: int, gpus: float, tries: int):
    # Ray Data's own fault tolerance (actors restarted, tasks retried) with named parameters
    # only: ray_remote_args (max_task_retries, max_restarts) is deprecated in 2.60, going in 2.64.
    return ds.map_batches(OCRBatchPredictor, fn_constructor_args=(build,),
                          fn_constructor_kwargs={"batch_size": batch_size, "cwd": os.getcwd(), "catch": True,
                                                 "tries": tries},
                          batch_size=rows, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors),
                          num_gpus=gpus)


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
