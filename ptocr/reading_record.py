"""What decided the reading of a bulk results file, recorded beside it, and the check that a
rerun reads as the runs before it did.

``ptocr ocr ... --out results.jsonl`` resumes: a rerun appends what is left. Were the rerun's
models or settings other ones, the file would mix two readings with nothing saying so. So the
run keeps its reading choices (``choices``: ``--pipeline``, ``--det/--rec/--cls/--doc-ori/
--doc-unwarp``, ``--lang``, the ``--set`` settings with ``--word-boxes``, ``--dtype``) in
``results.jsonl.reading.json`` (``record_path``), and ``ReadingRecord`` judges a rerun before
any model is built:

- results there and a record of other choices: refused (``PtocrError`` naming each choice, old
  -> new, and what to do), nothing written;
- results there and the same choices: nothing to write;
- results there without a record (written by a ptocr before it): this run's choices are
  recorded, with one line saying so;
- no results (no file, or an empty one): this run's choices are recorded, replacing a record
  left without results.

The record is written (``ReadingRecord.write``, whole or not at all) just before the run's first
results line, so a run that reads nothing (models that cannot be built) leaves none behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ptocr.atomic import write_atomically
from ptocr.errors import PtocrError

__all__ = ["SUFFIX", "ReadingRecord", "choices", "differences", "record_path"]

SUFFIX = ".reading.json"
_FORMAT = "ptocr bulk reading 1"  # the record's "format": what it is, and its version
_MODEL_OPTIONS = {"pipeline": "--pipeline", "det": "--det", "rec": "--rec", "cls": "--cls", "doc_ori": "--doc-ori",
                  "doc_unwarp": "--doc-unwarp", "lang": "--lang", "dtype": "--dtype"}
_NONE = "none"  # --cls none / --doc-ori none: the step skipped, not a path


def record_path(results: str | os.PathLike) -> Path:
    """The record of ``results``: ``results.jsonl`` -> ``results.jsonl.reading.json``."""
    return Path(os.fspath(results) + SUFFIX)


def _model(source: str | None) -> str | None:
    """A model option's value as it decides the reading: a path in its normalized absolute form
    (the same file from any folder), a zoo name (or ``none``) as given."""
    from ptocr.loading import is_name

    if source is None or source == _NONE or is_name(source):
        return source
    return os.path.abspath(source)


def _dtype(dtype: str | None) -> str | None:
    """``--dtype`` by the torch dtype it means (none given is float32, ``fp16`` is float16); a
    name that means none as given (building the models refuses it)."""
    from ptocr.predictors import as_dtype

    try:
        return str(as_dtype(dtype)).removeprefix("torch.")
    except PtocrError:
        return dtype


def choices(*, pipeline: str | None = None, det: str | None = None, rec: str | None = None,
            cls: str | None = None, doc_ori: str | None = None, doc_unwarp: str | None = None,
            lang: str | None = None, settings: dict | None = None, dtype: str | None = None) -> dict:
    """The reading choices of ``ptocr ocr`` (its options as it takes them; ``settings``: the dict
    it builds from ``--set`` and ``--word-boxes``), as the record keeps and compares them."""
    return {"pipeline": pipeline, "det": _model(det), "rec": _model(rec), "cls": _model(cls),
            "doc_ori": _model(doc_ori), "doc_unwarp": _model(doc_unwarp), "lang": lang,
            "settings": json.loads(json.dumps(settings or {})), "dtype": _dtype(dtype)}


def _shown(value, absent: str = "(not given)") -> str:
    return absent if value is None else value if isinstance(value, str) else json.dumps(value)


def differences(old: dict, new: dict) -> list[str]:
    """Each choice that differs, as ``--rec: OLD -> NEW``."""
    found = [f"{option}: {_shown(old.get(key))} -> {_shown(new.get(key))}"
             for key, option in _MODEL_OPTIONS.items() if old.get(key) != new.get(key)]
    before, after = old.get("settings") or {}, new.get("settings") or {}
    for key in sorted(before.keys() | after.keys()):
        if key not in before or key not in after or before[key] != after[key]:
            option = "--word-boxes (return_word_box)" if key == "return_word_box" else f"--set {key}"
            found.append(f"{option}: {_shown(before.get(key), '(not set)')} -> {_shown(after.get(key), '(not set)')}")
    return found


class ReadingRecord:
    """The record of the results file ``results`` for a run with ``choices`` (``choices()``'s).
    Made before the run opens the results: raises the rerun's refusal; ``write()`` before the
    first results line records the choices where they are not recorded yet."""

    def __init__(self, results: str | os.PathLike, choices: dict):
        self.results, self.path, self.choices = os.fspath(results), record_path(results), choices
        self.note: str | None = None  # the line to show when the record is written
        has_results = os.path.isfile(self.results) and os.path.getsize(self.results) > 0
        old = self._read() if has_results else None
        if old is None:
            self.pending = True
            if has_results:
                self.note = (f"ptocr: {self.results} has no record of the models and settings that read it (written "
                             f"by an older ptocr): recording this run's in {self.path}")
            return
        changed = differences(old, choices)
        if changed:
            raise PtocrError(
                f"{self.results} was read with other models or settings than this run's: {'; '.join(changed)}. "
                f"Appending would mix two readings in one file: give another --out, or remove {self.path} "
                f"to add this run's results to {self.results} anyway")
        self.pending = False

    def _read(self) -> dict | None:
        """The recorded choices; None where there is no record."""
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except OSError as e:
            raise PtocrError(f"cannot read {self.path}, the record of what read {self.results}: "
                             f"{e.strerror or e}") from None
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("choices"), dict):
            raise PtocrError(f"{self.path} is not a record of what read {self.results} (ptocr's {SUFFIX}): "
                             "give another --out, or remove it")
        return data["choices"]

    def write(self) -> str | None:
        """Record the choices, once, where they are not recorded; returns the line to show, if any."""
        if not self.pending:
            return None
        text = json.dumps({"format": _FORMAT, "results": os.path.basename(self.results), "choices": self.choices},
                          indent=1)  # \u escapes: a path that is not UTF-8 is written too
        try:
            write_atomically(self.path, text + "\n")
        except OSError as e:
            raise PtocrError(f"cannot write {self.path}, the record of what reads {self.results}: "
                             f"{e.strerror or e}") from None
        self.pending = False
        note, self.note = self.note, None
        return note
