"""``ptocr ocr DIR_OR_LIST --out results.jsonl``: bulk OCR to a JSON-lines file that a rerun
resumes, on this machine (``ptocr.bulk``) or on a Ray cluster (``--ray``, ``ptocr.ray_data``).
On this machine a PDF is read page by page: one line per page, resumed per page.

The ``ocr`` command takes these options through ``bulk_options`` and hands over to ``run`` when
``--out`` is given; everything else about the models (``--det/--rec/--cls``, ``--device``,
``--dtype``) stays the command's, passed in as the ``build`` function that makes the ``OCR``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from ptocr.bulk import BulkReader, FailedImage, PdfPages, is_uri
from ptocr.errors import PtocrError
from ptocr.inputs import folder_files
from ptocr.interrupts import exit_code
from ptocr.jsonl_results import JsonlResults, encode, record
from ptocr.pdf import is_paged, page_count
from ptocr.reading_record import SUFFIX, ReadingRecord

__all__ = ["LIST_SUFFIXES", "Progress", "bulk_options", "expand_inputs", "run"]

# A file with one of these suffixes is a list: one image path or URI per line.
LIST_SUFFIXES = {".txt", ".lst", ".list"}


def bulk_options(command: Callable) -> Callable:
    """The bulk options of the ``ocr`` command (passed to it as keyword arguments)."""
    options = [
        click.option("--out", "bulk_out", type=click.Path(dir_okay=False), default=None,
                     help="Bulk mode: write one JSON line per image (per page of a PDF) to this file as it goes; "
                          "a rerun with the same file skips the images and pages already in it. The models and "
                          f"settings that read it are recorded in FILE{SUFFIX}, and a rerun with other ones is "
                          "refused. Arguments may be folders (searched recursively) and .txt lists (one path or "
                          "URI per line)."),
        click.option("--batch-size", "bulk_batch_size", type=click.IntRange(min=1), default=None,
                     help="With --out: images per detector batch and crop-merging window "
                          "[default: 8 on CUDA, 1 on the CPU]."),
        click.option("--ray", "bulk_ray", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
                     help="With --out: run on a Ray cluster (ptocr[ray]); without ADDRESS a local one. "
                          "Give it as --ray=ADDRESS, or last."),
        click.option("--actors", "bulk_actors", type=click.IntRange(min=1), default=None,
                     help="With --ray: model copies (Ray actors), each on one GPU when --device is cuda [default: 1]."),
    ]

    @functools.wraps(command)
    def checked(*args, **kw):
        # Refused, not ignored: without --out the command reads here, one image at a time.
        given = [flag for flag, key in (("--batch-size", "bulk_batch_size"), ("--ray", "bulk_ray"),
                                        ("--actors", "bulk_actors")) if kw.get(key) is not None]
        if kw.get("bulk_out") is None and given:
            raise click.UsageError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for bulk mode: give --out too",
                                   click.get_current_context(silent=True))
        if kw.get("bulk_ray") is None and kw.get("bulk_actors") is not None:
            raise click.UsageError("--actors is for --ray (on this machine one model copy reads)",
                                   click.get_current_context(silent=True))
        return command(*args, **kw)

    for option in reversed(options):
        checked = option(checked)
    return checked


def expand_inputs(args) -> list[str]:
    """Folders -> their image files (recursive, sorted); list files -> their lines, a folder
    listed there expanded as on the command line; anything else (a path or a URI) as given. Each
    name once, in first-seen order; none at all is a PtocrError."""
    names: list[str] = []
    for arg in args:
        path = Path(arg)
        if not is_uri(arg) and path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            for line in _list_lines(path):
                names += _expand_one(line)
        else:
            names += _expand_one(arg)
    if not names:
        raise PtocrError("no images found in the given folders and lists")
    return list(dict.fromkeys(names))


def _expand_one(name: str) -> list[str]:
    """A folder's image files, else the name itself (a path or a URI)."""
    return folder_files(name) if not is_uri(name) and Path(name).is_dir() else [name]


def _list_lines(path: Path) -> list[str]:
    """The names of a list file: its lines, without blank ones and ``#`` comments."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a BOM (Notepad's) is not part of a name
    except UnicodeDecodeError as e:
        raise PtocrError(f"{path}: a list of images must be UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise PtocrError(f"{path}: cannot read the list: {e.strerror or e}") from None
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


class Progress:
    """A one-line progress bar on stderr: done / total, images per second, ETA. Redrawn in
    place on a terminal, a line every ``every`` seconds otherwise (logs)."""

    def __init__(self, total: int, skipped: int = 0, file=None, every: float = 10.0):
        self.total, self.skipped, self.done = total, skipped, 0
        self.file = file or sys.stderr
        self.tty = self.file.isatty()
        self.every = 0.2 if self.tty else every
        self.start = self.last = time.perf_counter()

    def text(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = "--:--" if left != left else f"{int(left) // 60:02d}:{int(left) % 60:02d}"
        width = 24
        fill = int(width * self.done / self.total) if self.total else width
        skipped = f" ({self.skipped} done before)" if self.skipped else ""
        return (f"ocr [{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total}{skipped} "
                f"{rate:.2f} images/s ETA {eta}")

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            self.file.write(("\r" if self.tty else "") + self.text() + ("" if self.tty else "\n"))
            self.file.flush()

    def message(self, text: str) -> None:
        """A line above the bar (the bar is redrawn at the next update)."""
        self.file.write(("\r\033[K" if self.tty else "") + text + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.tty:
            self.file.write("\n")
            self.file.flush()


def run(images, build: Callable, *, bulk_out: str, bulk_batch_size: int | None = None, bulk_ray: str | None = None,
        bulk_actors: int | None = None, device=None, pages: list[int] | None = None,
        reading: dict | None = None) -> int:
    """The bulk mode of ``ptocr ocr``; returns the number of inputs (images, PDF pages, PDFs
    that cannot be opened) that could not be read. ``build()`` makes the pipeline (``OCR`` or
    ``OCR3``; in each Ray actor with ``--ray``). ``pages`` (``--pages``, 1-based): the PDF pages
    to read, as without ``--out``; None: all. ``reading``: the choices that decide what a page
    reads (``ptocr.reading_record.choices``), recorded beside the results; a rerun with other
    ones is refused here, before anything is built or written. None: nothing recorded or checked."""
    if bulk_ray is not None and re.fullmatch(r"cuda:0*[1-9]\d*", str(device or "")):
        # Ray gives each actor one GPU (CUDA_VISIBLE_DEVICES): it is cuda:0 there, and cuda:N does not exist.
        raise PtocrError(f"--ray gives each actor its own GPU, which it sees as cuda: give --device cuda, not {device}")
    if os.fspath(bulk_out) == "-":
        raise PtocrError("--out -: the results go to a file, which a rerun resumes; give its name "
                         "(without --out, --json - writes the results to stdout)")
    # A name on the command line that is nothing is a typo: refused before anything is written (its
    # error line would count as done). A missing file named in a list gets its error line; with
    # --ray, a path may exist on the workers only.
    missing = [] if bulk_ray is not None else [arg for arg in images if not is_uri(arg) and not os.path.lexists(arg)]
    if missing:
        raise PtocrError(f"no such file or folder: {', '.join(missing)}; nothing read or written")
    _real_folder.cache_clear()  # folders and links may have changed since an earlier run of this process
    first: dict[str, str] = {}  # each file once, under the spelling first given: a.jpg and /abs/a.jpg are one
    for name in expand_inputs(images):
        first.setdefault(_key(name), name)
    names = list(first.values())
    reading_record = ReadingRecord(bulk_out, reading) if reading is not None else None
    with JsonlResults(bulk_out) as results:  # an empty file it made is removed on closing
        if bulk_ray is not None and any(is_paged(n) for n in names):
            raise PtocrError("--ray reads images only; read PDFs and TIFFs without --ray (one line per page)")
        # Keyed by path: a line of another spelling, or written from another folder, counts as done.
        done = {(_key(name), page) for name, page in results.done}
        todo, count = _todo(names, done, pages)
        bar = Progress(count, skipped=sum(key in first for key, _ in done))
        failed, interrupted = 0, 0  # interrupted: the exit code of the signal that stopped the run

        def recorded() -> None:  # before the first line: what reads this file, where not recorded yet
            if reading_record is not None and reading_record.pending and (note := reading_record.write()):
                bar.message(note)

        try:
            if bulk_ray is not None:
                from ptocr.ray_data import run_on_ray

                for name, line, error in run_on_ray(todo, build, address=bulk_ray, batch_size=bulk_batch_size,
                                                    actors=bulk_actors or 1, gpus=_gpus(device)):
                    recorded()
                    results.write_line(_with_path(line, name))
                    failed += _report(bar, name, error)
            elif todo:
                rows = BulkReader(build(), batch_size=bulk_batch_size).with_pages(todo)
                try:
                    for name, page_index, result in rows:
                        recorded()
                        results.write(record(name, result, page_index, path=_key(name)))
                        failed += _report(bar, name, result.error if isinstance(result, FailedImage) else None)
                finally:
                    rows.close()  # its threads stop now, not while the interpreter shuts down
        except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM: what was read is written whole; a rerun goes on from there
            interrupted = exit_code(e)
        finally:
            bar.close()
    if interrupted:
        held = (f"{bulk_out} holds every result read so far" if os.path.exists(bulk_out)
                else "nothing was read yet")  # stopped before the first result: the empty file is gone
        click.echo(f"ptocr: interrupted; {held}: run the same command again to read the rest", err=True)
        sys.exit(interrupted)
    click.echo(_summary(bar, failed, bulk_out), err=True)
    return failed


def _summary(bar: Progress, failed: int, out: str) -> str:
    """The run's last line: what it read, what failed (their error lines), what was done before."""
    if not bar.total:
        return f"ptocr: nothing left to read: {out} has a line for every input asked for"
    errors = f", {failed} of them could not be read (their lines hold the errors)" if failed else ""
    before = f"; {bar.skipped} read before" if bar.skipped else ""
    return f"ptocr: {bar.done} input{'' if bar.done == 1 else 's'} read into {out}{errors}{before}"


def _key(name: str) -> str:
    """What a result is done under (``jsonl_results``' "path"): a path's absolute form with its
    folder's links and "." / ".." resolved (``imgs/../imgs/a.jpg``, ``../imgs/a.jpg`` from another
    folder and a linked folder's ``a.jpg`` are one file, read once; ``link/../x.jpg`` is the folder
    the link leads to), a URI as given. A link to a file keeps its own name: two names linked to
    one blob (a Hugging Face cache, git-annex, DVC) are two inputs, each with its line."""
    if is_uri(name):
        return name
    folder, base = os.path.split(os.path.join(os.getcwd(), name))
    return os.path.join(_real_folder(folder), base)


@functools.lru_cache(maxsize=1 << 16)
def _real_folder(folder: str) -> str:
    """``os.path.realpath`` of a folder, once per folder a run names (its files share it; on a
    network file system each call costs a round trip per path part). Cleared at each run's start."""
    return os.path.realpath(folder)


def _with_path(line: str, name: str) -> str:
    """A line made as ``record(name, ...)`` makes it (on a Ray actor), with ``name``'s "path"."""
    key = _key(name)
    if key == name:
        return line
    rec = json.loads(line)
    return encode({"image": rec.pop("image"), "path": key, **rec})


def _todo(names: list[str], done: set, pages: list[int] | None = None) -> tuple[list, int]:
    """The inputs not yet in the results (``done``: ``_key``, page) (a PDF as the ``PdfPages``
    still to read, of ``pages`` where given) and how many results they give (a PDF that cannot be
    opened: one, its error)."""
    todo: list = []
    count = 0
    for name in names:
        key = _key(name)
        total = page_count(name) if is_paged(name) and not is_uri(name) else None
        if total is None or (key, None) in done:
            if (key, None) not in done:
                todo.append(name)
                count += 1
            continue
        # Each page once; a page the PDF lacks stays in: reading it reports "no page N", as without --out.
        wanted = range(1, total + 1) if pages is None else dict.fromkeys(pages)
        left = tuple(p for p in wanted if (key, p) not in done)
        if left:
            todo.append(PdfPages(name, left))
            count += len(left)
    return todo, count


def _gpus(device) -> float:
    return 1.0 if device is not None and str(device).startswith("cuda") else 0.0


def _report(bar: Progress, name: str, error: str | None) -> int:
    if error is not None:
        bar.message(f"ptocr: error: {error}")
    bar.update()
    return error is not None
