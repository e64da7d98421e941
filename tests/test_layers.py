"""The house's layers: imports point one way and never in a circle.

runtime (``ptocr``) <- conversion (``converter``) <- verification (``verification``) <- ``tools``.
The runtime reaches the converter through one door only (``ptocr.conversion``, inside its
functions); nothing in the wheel imports verification or tools. Imports inside functions count
like the others: a loop hidden in a function is still a loop.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("ptocr", "converter", "verification", "tools")
# What each layer may import (its own modules and the layers below it).
ALLOWED = {
    "ptocr": {"ptocr"},
    "converter": {"ptocr", "converter"},
    "verification": {"ptocr", "converter", "verification"},
    "tools": {"ptocr", "converter", "verification", "tools"},
}
RUNTIME_DOOR = "ptocr.conversion"  # the runtime's one entry to the converter


def _modules() -> dict[str, Path]:
    found = {}
    for layer in LAYERS:
        for path in sorted((REPO / layer).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(module: str, path: Path, known: set[str]) -> list[tuple[str, bool, int]]:
    """(imported module of the repo, inside a function?, line) for each import in ``path``."""
    is_package = path.name == "__init__.py"
    out = []

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, in_function, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".") if is_package else module.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for a in child.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{base}.{a.name}"
                    out.append((sub if sub in known else base, in_function, child.lineno))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # annotations only: never runs
            visit(child, nested)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return [(m, lazy, line) for m, lazy, line in out if m.split(".")[0] in LAYERS]


def _is_type_checking(test) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _graph() -> dict[str, list[tuple[str, bool, int]]]:
    modules = _modules()
    return {m: _imports(m, p, set(modules)) for m, p in modules.items()}


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return cycles


def test_cycle_finder_finds_a_loop_through_a_function_level_import():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"a"}}) == [["a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = _graph()
    edges = {m: {t for t, _, _ in imports if t in graph and t != m} | ({m} if any(t == m for t, _, _ in imports) else set())
             for m, imports in graph.items()}
    assert find_cycles(edges) == []


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_down_the_layers(layer):
    wrong = [f"{m}:{line} imports {t}" for m, imports in _graph().items() if m.split(".")[0] == layer
             for t, lazy, line in imports if t.split(".")[0] not in ALLOWED[layer]
             and not (m == RUNTIME_DOOR and t.startswith("converter.") and lazy)]
    assert wrong == []


def test_the_runtime_reaches_the_converter_through_one_door_only():
    graph = _graph()
    users = sorted({m for m, imports in graph.items() if m.split(".")[0] == "ptocr"
                    for t, _, _ in imports if t.split(".")[0] == "converter"})
    assert users == [RUNTIME_DOOR]
    assert all(lazy for t, lazy, _ in graph[RUNTIME_DOOR] if t.startswith("converter"))


def test_no_module_imports_another_modules_private_names():
    private = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LAYERS:
                private += [f"{module}: from {node.module} import {a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    assert private == []


def test_the_wheel_ships_the_runtime_and_the_converter_only():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(include) == ["converter*", "ptocr*"]
