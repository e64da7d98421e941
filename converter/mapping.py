"""The mapping engine: Paddle structured names -> PyTorch state-dict keys, strictly.

A table is an ordered list of ``Rule``s (regex -> replacement, or -> dropped). Every source
name runs through the table once: each rule whose pattern matches rewrites the name
(first occurrence), a drop rule ends the chain. The result is an inspectable old -> new
map. Coverage is strict: every source tensor lands on exactly one target key or is
dropped by an explicit rule, every target key is filled, every shape is equal; a failure
names the rules, keys and shapes involved.

Two things hold for every architecture and so live here once: the batch-norm statistics
renames (``SHARED_RULES``) and the Linear weight layout, which is decided by the type of
the target module ([in, out] in Paddle, [out, in] in torch), never by a name suffix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import torch.nn as nn

from converter.errors import MappingError

MAX_LISTED = 12  # keys listed per category in an error message


@dataclass(frozen=True)
class Rule:
    pattern: str
    replacement: str | None  # None: the tensor is deliberately dropped
    reason: str = ""  # why the rule exists (shown in reports)
    # An alternative spelling of a name: applied only to a name the target lacks, and kept
    # only if the target has the result (one table then reads two releases' names).
    alias: bool = False

    def __post_init__(self):
        object.__setattr__(self, "_regex", re.compile(self.pattern))

    @property
    def regex(self) -> re.Pattern:
        return self._regex  # type: ignore[attr-defined]

    def __str__(self) -> str:
        right = "<dropped>" if self.replacement is None else repr(self.replacement)
        return f"{self.pattern!r} -> {right}"


SHARED_RULES: tuple[Rule, ...] = (
    Rule(r"\._mean$", ".running_mean", "Paddle BatchNorm statistic name"),
    Rule(r"\._variance$", ".running_var", "Paddle BatchNorm statistic name"),
)

# Target keys no Paddle tensor fills, with the value they get.
TARGET_DEFAULTS: tuple[tuple[str, Callable[[tuple], np.ndarray]], ...] = (
    (r"\.num_batches_tracked$", lambda shape: np.zeros(shape, dtype=np.int64)),
)

# Named tensor operations a mapping can apply.
OPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear_weight": lambda a: np.ascontiguousarray(a.T),  # Paddle [in, out] -> torch [out, in]
}


@dataclass(frozen=True)
class Target:
    """What the PyTorch side expects: key -> shape, and which keys are Linear weights."""

    shapes: dict[str, tuple[int, ...]]
    linear_weights: frozenset[str] = frozenset()
    dtypes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_module(cls, module: nn.Module) -> "Target":
        # Works on the meta device too: only shapes and module types are read.
        shapes = {k: tuple(v.shape) for k, v in module.state_dict(keep_vars=True).items()}
        dtypes = {k: str(v.dtype).removeprefix("torch.") for k, v in module.state_dict(keep_vars=True).items()}
        linear = frozenset(
            f"{name}.weight" if name else "weight"
            for name, m in module.named_modules()
            if isinstance(m, nn.Linear)
        )
        return cls(shapes, linear, dtypes)


@dataclass(frozen=True)
class Mapped:
    """One line of the old -> new map."""

    source: str
    target: str | None  # None: dropped
    rules: tuple[str, ...]  # the rules that rewrote or dropped it, in order
    op: str | None = None


@dataclass
class MappingResult:
    state_dict: dict[str, np.ndarray]
    entries: list[Mapped]
    defaults: list[str]  # target keys filled by TARGET_DEFAULTS

    @property
    def dropped(self) -> list[Mapped]:
        return [e for e in self.entries if e.target is None]

    def report(self) -> str:
        """The old -> new map, one line per source tensor."""
        lines = []
        for e in self.entries:
            right = "<dropped>" if e.target is None else e.target
            op = f"  [{e.op}]" if e.op else ""
            via = f"  via {'; '.join(e.rules)}" if e.rules else ""
            lines.append(f"{e.source} -> {right}{op}{via}")
        return "\n".join(lines)


def rename(name: str, rules: Iterable[Rule]) -> Mapped:
    """Run one source name through the table."""
    applied = []
    current = name
    for rule in rules:
        if not rule.regex.search(current):
            continue
        applied.append(str(rule))
        if rule.replacement is None:
            return Mapped(name, None, tuple(applied))
        current = rule.regex.sub(rule.replacement, current, count=1)
    return Mapped(name, current, tuple(applied))


def plan(source_names: Iterable[str], rules: Iterable[Rule]) -> list[Mapped]:
    rules = tuple(r for r in rules if not r.alias) + SHARED_RULES
    return [rename(n, rules) for n in source_names]


def _resolve_aliases(e: Mapped, rules: Iterable[Rule], target: Target) -> Mapped:
    """``e`` with the first alias rule whose result the target has, else ``e`` unchanged."""
    if e.target is None or e.target in target.shapes:
        return e
    for rule in rules:
        if rule.alias and rule.regex.search(e.target):
            renamed = rule.regex.sub(rule.replacement, e.target, count=1)
            if renamed in target.shapes:
                return Mapped(e.source, renamed, e.rules + (str(rule),), e.op)
    return e


def apply(
    source: Mapping[str, np.ndarray],
    rules: Iterable[Rule],
    target: Target,
    *,
    what: str = "the source",
) -> MappingResult:
    """Map ``source`` onto ``target`` or raise MappingError listing every problem."""
    rules = tuple(rules)
    entries = [_resolve_aliases(e, rules, target) for e in plan(sorted(source), rules)]
    by_target: dict[str, list[Mapped]] = {}
    out: dict[str, np.ndarray] = {}
    unplaced, shape_errors = [], []
    final_entries = []
    for e in entries:
        if e.target is None:
            final_entries.append(e)
            continue
        by_target.setdefault(e.target, []).append(e)
        if e.target not in target.shapes:
            unplaced.append(e)
            final_entries.append(e)
            continue
        array = np.asarray(source[e.source])
        op = "linear_weight" if e.target in target.linear_weights and array.ndim == 2 else None
        if op:
            array = OPS[op](array)
        e = Mapped(e.source, e.target, e.rules, op)
        final_entries.append(e)
        expected = target.shapes[e.target]
        if tuple(array.shape) != expected:
            shape_errors.append((e, tuple(np.asarray(source[e.source]).shape), expected))
            continue
        out[e.target] = cast_dtype(array, target.dtypes.get(e.target))

    duplicates = {t: es for t, es in by_target.items() if len(es) > 1}
    defaults = []
    missing = []
    for key, shape in target.shapes.items():
        if key in by_target:
            continue
        fill = next((f for pat, f in TARGET_DEFAULTS if re.search(pat, key)), None)
        if fill is None:
            missing.append(key)
        else:
            out[key] = fill(shape)
            defaults.append(key)

    problems = []
    if unplaced:
        problems.append(
            _listing(
                f"{len(unplaced)} source tensors have no place in the target "
                "(no rule maps or drops them)",
                [f"{e.source}" + (f" (renamed to {e.target} via {'; '.join(e.rules)})" if e.rules else "")
                 for e in unplaced],
            )
        )
    if missing:
        problems.append(_listing(f"{len(missing)} target keys are not filled by any source tensor", missing))
    if duplicates:
        problems.append(
            _listing(
                f"{len(duplicates)} target keys are filled more than once",
                [f"{t} <- {', '.join(e.source for e in es)}" for t, es in duplicates.items()],
            )
        )
    if shape_errors:
        problems.append(
            _listing(
                f"{len(shape_errors)} shapes differ",
                [
                    f"{e.source} {list(src)} -> {e.target} expects {list(exp)}"
                    + (f" [after {e.op}]" if e.op else "")
                    + (f" via {'; '.join(e.rules)}" if e.rules else "")
                    for e, src, exp in shape_errors
                ],
            )
        )
    if problems:
        error = MappingError(f"{what} does not match the target architecture:\n" + "\n".join(problems))
        error.mismatches = len(unplaced) + len(missing) + len(duplicates) + len(shape_errors)
        raise error
    return MappingResult(out, final_entries, defaults)


def cast_dtype(array: np.ndarray, dtype: str | None) -> np.ndarray:
    if dtype in (None, "") or array.dtype == np.dtype(dtype):
        return array
    if dtype.startswith("float") and array.dtype.kind == "f":
        return array.astype(dtype)
    if dtype.startswith("int") and array.dtype.kind in "iu":
        return array.astype(dtype)
    raise MappingError(f"cannot store a {array.dtype} tensor in a {dtype} parameter")


def _listing(title: str, items: list[str]) -> str:
    shown = "\n".join(f"    {i}" for i in items[:MAX_LISTED])
    more = f"\n    ... and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return f"  {title}:\n{shown}{more}"
