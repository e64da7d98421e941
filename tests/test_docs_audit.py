"""The documentation against the code: what a reader of README.md and doc/*.md would act on.

Each check reads the docs as text and asks the code (imports, ``--help``, the file system), so a
rename, a dropped option or a moved file that the docs still name fails here:

- every dotted name ``ptocr.x.y`` / ``converter.x`` / ``verification.x`` resolves, and every
  ``from ptocr... import a, b`` of a code block imports;
- ``OCR3.x``, ``OCR3Result.x``, ``result.x`` / ``res.x`` name attributes the classes have;
- every ``--option`` on a ``ptocr <command>`` / ``ptocr-convert`` line is in that command's
  ``--help``, the command exists, and every other ``--option`` shown belongs to a ptocr CLI or to
  the ``tools`` / ``verification`` module the docs run (``python -m tools.x --opt``);
- relative links and repository paths (``ptocr/...``, ``tests/...::test_name``) exist, and every
  doc/*.md is reachable by links from README.md;
- every runtime module is in doc/architecture.md's map, every registered architecture in README's
  table, every ``PTOCR_*`` setting the docs name is read somewhere;
- README has exactly two set-up commands and ``.ci/run`` runs its test command exactly;
- README's end-to-end and bulk figures for the Intel Xeon are the ones doc/benchmarks.md holds.
"""

from __future__ import annotations

import importlib
import itertools
import re
import sys
from functools import lru_cache
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # verification/ and tools/ are not in the wheel
    sys.path.insert(0, str(REPO))

DOCS = [REPO / "README.md", *sorted((REPO / "doc").glob("*.md"))]
# Options of other programs the docs show (pip's, gunicorn's, torchrun's).
FOREIGN_OPTIONS = {"--index-url", "--no-deps", "--preload", "--nproc_per_node"}
# PaddleOCR's own files the docs cite (its tools/, not ours).
FOREIGN_PATHS = {"tools/eval.py", "tools/infer/predict_system.py"}


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _where(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def _code_blocks(text: str, lang: str | None = None) -> list[str]:
    """The fenced blocks (of ``lang`` where given: ``python``, ``bash``)."""
    return [body for tag, body in re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M) if lang in (None, tag)]


def _inline_spans(text: str) -> list[str]:
    """`code` spans outside fenced blocks."""
    return re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))


def _shell_snippets(text: str) -> list[str]:
    """Each line of the bash / untagged blocks, and each inline span: where commands are shown."""
    lines = [line for block in _code_blocks(text, "bash") + _code_blocks(text, "") for line in block.splitlines()]
    return lines + _inline_spans(text)


def _resolve(dotted: str):
    """The object a dotted name names: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError as e:
            if e.name is None or not ".".join(parts[:i]).startswith(e.name):
                raise  # a module that exists but fails to import is a failure, not "shorter prefix"
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


# ------------------------------------------------------------------------------------ names


def dotted_name_errors(docs) -> list[str]:
    errors = []
    for path in docs:
        names = set(re.findall(r"(?<![\w./-])((?:ptocr|converter|verification)(?:\.[A-Za-z_]\w*)+)", _text(path)))
        for name in sorted(names):
            try:
                _resolve(name)
            except (ImportError, AttributeError) as e:
                errors.append(f"{_where(path)}: {name}: {type(e).__name__}: {e}")
    return errors


def test_dotted_names_resolve():
    assert not dotted_name_errors(DOCS)


def import_errors(docs) -> list[str]:
    errors = []
    for path in docs:
        for block in _code_blocks(_text(path), "python"):
            for m in re.finditer(r"^\s*from ((?:ptocr|converter|verification)[\w.]*) import ([\w ,]+)", block, re.M):
                module, names = m.groups()
                for item in names.split(","):
                    name = item.split(" as ")[0].strip()
                    try:
                        getattr(importlib.import_module(module), name)
                    except (ImportError, AttributeError) as e:
                        errors.append(f"{_where(path)}: from {module} import {name}: {e}")
    return errors


def test_code_block_imports_resolve():
    assert not import_errors(DOCS)


def attribute_errors(docs) -> list[str]:
    """``Class.attr`` of ptocr's public classes, and ``result.attr`` / ``res.attr`` of results."""
    import dataclasses

    import ptocr

    def has(cls, attr):
        fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
        return hasattr(cls, attr) or attr in fields

    results = (ptocr.OCR3Result, ptocr.OCRResult)
    errors = []
    for path in docs:
        text = _text(path)
        for cls, attr in re.findall(r"(?<![\w.])(OCR3Result|OCRResult|OCR3|OCR|DetPredictor|RecPredictor|ClsPredictor|"
                                    r"UnwarpPredictor)\.([A-Za-z_]\w*)(?![\w.])", text):
            if attr not in {"yaml", "yml", "py"} and not has(getattr(ptocr, cls), attr):
                errors.append(f"{_where(path)}: {cls}.{attr}")
        for var, attr in re.findall(r"(?<![\w.])(result|res)\.([A-Za-z_]\w*)(?![\w.])", text):
            if attr != "py" and not any(has(c, attr) for c in results):  # result.py: a file
                errors.append(f"{_where(path)}: {var}.{attr}")
    return errors


def test_class_and_result_attributes_exist():
    assert not attribute_errors(DOCS)


# ------------------------------------------------------------------------------ command line


@lru_cache(maxsize=None)
def _cli_options() -> tuple[dict[str, set[str]], set[str]]:
    """({ptocr subcommand: its options}, ptocr-convert's options), from their --help."""
    from click.testing import CliRunner

    from converter.cli import main as convert_main
    from ptocr.cli import main as ptocr_main

    runner = CliRunner()

    def options(command, args):
        result = runner.invoke(command, [*args, "--help"])
        assert result.exit_code == 0, result.output
        return set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", result.output)) | {"--help"}

    return {name: options(ptocr_main, [name]) for name in ptocr_main.commands}, options(convert_main, [])


def cli_errors(docs) -> list[str]:
    commands, convert = _cli_options()
    errors = []
    for path in docs:
        for snippet in _shell_snippets(_text(path)):
            for m in re.finditer(r"(?<![\w./-])ptocr(-convert)?(?: +([a-z][\w-]*))?([^#;&|]*)", snippet):
                is_convert, sub, rest = m.groups()
                if is_convert:
                    known, what = convert, "ptocr-convert"
                elif sub in commands:
                    known, what = commands[sub], f"ptocr {sub}"
                else:
                    # `ptocr WORD ...` at the start of a shown command names a subcommand
                    if sub and snippet.lstrip().startswith(f"ptocr {sub}"):
                        errors.append(f"{_where(path)}: no command `ptocr {sub}` ({snippet.strip()[:80]})")
                    continue
                for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
                    if option not in known:
                        errors.append(f"{_where(path)}: {what} has no {option} ({snippet.strip()[:80]})")
    return errors


def test_cli_options_shown_exist():
    assert not cli_errors(DOCS)


@lru_cache(maxsize=None)
def _maintainer_sources() -> str:
    return "".join(_text(p) for d in ("tools", "verification") for p in sorted((REPO / d).glob("*.[ps][yh]")))


def tool_errors(docs) -> list[str]:
    """``python -m tools.x --opt``: the module exists and reads --opt; any other --option shown
    belongs to a ptocr CLI or to a maintainer command."""
    commands, convert = _cli_options()
    every_cli_option = set().union(convert, *commands.values())
    errors = []
    for path in docs:
        text = _text(path)
        for module, rest in re.findall(r"python -m ((?:tools|verification)\.\w+)([^`\n]*)", text):
            file = REPO / (module.replace(".", "/") + ".py")
            if not file.exists():
                errors.append(f"{_where(path)}: python -m {module}: no {_where(file)}")
                continue
            source = _text(file)
            for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
                if option not in source:
                    errors.append(f"{_where(path)}: python -m {module} has no {option}")
        for snippet in _shell_snippets(text):
            for option in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", snippet):
                if option not in every_cli_option | FOREIGN_OPTIONS and option not in _maintainer_sources():
                    errors.append(f"{_where(path)}: {option} is no option of ptocr's commands or tools "
                                  f"({snippet.strip()[:80]})")
    return errors


def test_tool_commands_and_options_exist():
    assert not tool_errors(DOCS)


# ------------------------------------------------------------------------------ files, links


def _links(path: Path) -> list[str]:
    return [u for u in re.findall(r"\]\(([^)\s]+)\)", _text(path)) if not re.match(r"[a-z][\w+.-]*:|#", u)]


def link_errors(docs) -> list[str]:
    errors = []
    for path in docs:
        for url in _links(path):
            if not (path.parent / url.split("#")[0]).exists():
                errors.append(f"{_where(path)}: link {url} leads nowhere")
    return errors


def test_relative_links_resolve():
    assert not link_errors(DOCS)


def unreachable_docs(readme: Path, docs) -> list[str]:
    seen, todo = {readme.resolve()}, [readme]
    while todo:
        page = todo.pop()
        for url in _links(page):
            target = (page.parent / url.split("#")[0]).resolve()
            if target.suffix == ".md" and target.exists() and target not in seen:
                seen.add(target)
                todo.append(target)
    return [_where(p) for p in docs if p.resolve() not in seen]


def test_every_doc_is_linked_from_readme():
    assert not unreachable_docs(REPO / "README.md", DOCS)


def _expand_braces(path: str) -> list[str]:
    """``tests/test_robustness_{readers,pickle}.py`` -> both paths."""
    parts = re.split(r"\{([^{}]*)\}", path)
    choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


def path_errors(docs) -> list[str]:
    """Repository paths in `code` spans: ``ptocr/...``, ``converter/...``, ``verification/...``,
    ``tools/...``, ``tests/...`` (globs and braces expanded, ``::test_name`` looked up)."""
    errors = []
    for path in docs:
        for span in _inline_spans(_text(path)) + _code_blocks(_text(path), "bash"):
            for raw in re.findall(r"(?<![\w./-])((?:ptocr|converter|verification|tools|tests)/[\w./{},*:<>-]*)", span):
                raw = raw.rstrip(".,:;")
                if "<" in raw or raw in FOREIGN_PATHS:
                    continue
                target, _, test = raw.partition("::")
                for candidate in _expand_braces(target):
                    found = sorted(REPO.glob(candidate)) if "*" in candidate else [REPO / candidate]
                    if not found or not found[0].exists():
                        errors.append(f"{_where(path)}: {candidate} does not exist")
                    elif test and not re.search(rf"^def {re.escape(test.split('[')[0])}\(", _text(found[0]), re.M):
                        errors.append(f"{_where(path)}: {candidate} has no {test}")
    return errors


def test_repository_paths_exist():
    assert not path_errors(DOCS)


# ------------------------------------------------------------------------------ maps and tables


def _runtime_table(architecture_md: str) -> str:
    section = architecture_md.split("## The runtime, `ptocr/`", 1)[1].split("\n## ", 1)[0]
    return "\n".join(line.split("|")[1] + "|" + line.split("|")[2] for line in section.splitlines()
                     if line.startswith("| `"))


# Packages whose row in the map names each of their modules.
ENUMERATED_PACKAGES = ("models", "training")


def module_map_errors(architecture_md: str) -> list[str]:
    table = _runtime_table(architecture_md)
    named = set(re.findall(r"`([\w/]+(?:\.py|/))`", table))
    errors = []
    for entry in sorted((REPO / "ptocr").iterdir()):
        if entry.name.startswith(("_", ".")) or entry.name in ("dicts", "assets"):
            continue
        if entry.suffix == ".py" and entry.name not in named:
            errors.append(f"ptocr/{entry.name}")
        elif entry.is_dir() and (entry / "__init__.py").exists() and f"{entry.name}/" not in named:
            errors.append(f"ptocr/{entry.name}/")
    for package in ENUMERATED_PACKAGES:
        row = next(line for line in table.splitlines() if f"`{package}/`" in line)
        for module in sorted((REPO / "ptocr" / package).glob("*.py")):
            if module.name != "__init__.py" and f"`{module.name}`" not in row:
                errors.append(f"ptocr/{package}/{module.name}")
    return errors


def test_every_runtime_module_is_in_the_map():
    missing = module_map_errors(_text(REPO / "doc" / "architecture.md"))
    assert not missing, f"doc/architecture.md's map of ptocr/ lacks {missing}"


def architecture_table_errors(readme: str) -> list[str]:
    import ptocr

    rows = set(re.findall(r"^\| ([\w.-]+) \| (?:cls|det|rec|unwarp) \|", readme, re.M))
    known = set(ptocr.list_architectures())
    return [f"no row for {a}" for a in sorted(known - rows)] + [f"{a} is not registered" for a in sorted(rows - known)]


def test_readme_architecture_table_is_the_registry():
    assert not architecture_table_errors(_text(REPO / "README.md"))


def setting_errors(docs) -> list[str]:
    sources = "".join(_text(p) for d in ("ptocr", "converter", "verification", "tools", "tests")
                      for p in sorted((REPO / d).rglob("*.[ps][yh]")) if p.name != Path(__file__).name)
    names = sorted({n for path in docs for n in re.findall(r"\bPTOCR_[A-Z0-9_]+", _text(path))})
    return [n for n in names if sources.count(n) == 0]


def test_environment_settings_named_are_read():
    assert not setting_errors(DOCS)


# ------------------------------------------------------------------------------ set-up commands


def setup_command_errors(readme: str, ci_run: str) -> list[str]:
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    blocks = [b.strip() for b in _code_blocks(section, "bash")]
    if len(blocks) != 2 or any("\n" in b for b in blocks):
        return [f"README's 'Two commands' has {len(blocks)} bash blocks, each must be one line: {blocks}"]
    main_job, tests = blocks
    errors = []
    if not main_job.endswith("ptocr demo") or "pip install" not in main_job:
        errors.append(f"the main job's command does not install and run `ptocr demo`: {main_job}")
    if "python -m pytest" not in tests:
        errors.append(f"the test command does not run the tests: {tests}")
    ci_lines = [line.strip() for line in ci_run.splitlines() if line.strip() and not line.startswith("#")
                and not line.startswith(("set ", "cd "))]
    if ci_lines != [tests]:
        errors.append(f".ci/run runs {ci_lines}, README's test command is {tests!r}")
    return errors


def test_two_setup_commands_and_ci_runs_the_test_command():
    assert not setup_command_errors(_text(REPO / "README.md"), _text(REPO / ".ci" / "run"))


# ------------------------------------------------------------------------------ quoted figures


def _intel_section(benchmarks: str, name: str) -> str:
    return benchmarks.split(f"<!-- bench:intel_avx512_amx:{name} -->", 1)[1].split(f"<!-- /bench:intel_avx512_amx:{name} -->", 1)[0]


def quoted_figure_errors(readme: str, benchmarks: str) -> list[str]:
    """README quotes the end-to-end and bulk ratios of doc/benchmarks.md's last runs on the Xeon with AMX."""
    e2e = _intel_section(benchmarks, "e2e")
    optimized = re.search(r"^\| ptocr optimized \|[^|]*\|[^|]*\| ([\d.]+) \|", e2e, re.M).group(1)
    compiled = re.search(r"^\| ptocr compiled \|[^|]*\|[^|]*\| ([\d.]+) \|", e2e, re.M).group(1)
    bulk = re.search(r"^\| read_many \|[^|]*\|[^|]*\| ([\d.]+) \|", _intel_section(benchmarks, "bulk"), re.M).group(1)
    errors = []
    quoted = re.search(r"end to end on the scenes, ([\d.]+)x PaddleOCR 2\.10's time for the optimized pipeline "
                       r"and ([\d.]+)x\s+compiled", readme)
    if not quoted or quoted.groups() != (optimized, compiled):
        errors.append(f"README's end-to-end ratios {quoted and quoted.groups()} are not the table's "
                      f"{(optimized, compiled)}")
    quoted_bulk = re.search(r"at one intra-op thread \(([\d.]+)x the per-image\s+loop", readme)
    if not quoted_bulk or float(quoted_bulk.group(1)) != float(bulk):
        errors.append(f"README's bulk speed-up {quoted_bulk and quoted_bulk.group(1)} is not the table's {bulk}")
    return errors


def test_readme_quotes_the_benchmark_tables():
    assert not quoted_figure_errors(_text(REPO / "README.md"), _text(REPO / "doc" / "benchmarks.md"))


# ------------------------------------------------------------------------------ the checks check


def test_the_checks_catch_what_they_check(tmp_path):
    """Each check fails on a doc broken the way it guards against."""
    def doc(text):
        path = tmp_path / "doc.md"
        path.write_text(text, encoding="utf-8")
        return [path]

    assert dotted_name_errors(doc("`ptocr.pipeline3.no_such_name`")) == [
        "doc.md: ptocr.pipeline3.no_such_name: AttributeError: "
        "module 'ptocr.pipeline3' has no attribute 'no_such_name'"]
    assert dotted_name_errors(doc("`ptocr.no_such_module.f`"))
    assert len(import_errors(doc("```python\nfrom ptocr.bulk import FailedImage, NoSuchThing\n```\n"))) == 1
    assert len(attribute_errors(doc("`OCR3.no_such_method()` and `res.no_such_field`, `OCR3.predict`"))) == 2
    assert cli_errors(doc("```bash\nptocr ocr a.png --no-such-option\n```\n"))
    assert cli_errors(doc("`ptocr-convert --src a --dst b --no-such-option`"))
    assert cli_errors(doc("```bash\nptocr nosuchcommand x.png\n```\n"))
    assert not cli_errors(doc("```bash\nptocr ocr a.png --out r.jsonl --ray=ray://h:1  # --not-an-option\n```\n"))
    assert tool_errors(doc("`python -m tools.bench --no-such-option`"))
    assert tool_errors(doc("`python -m tools.no_such_tool`"))
    assert tool_errors(doc("set `--no-such-flag` to go faster"))
    assert link_errors(doc("[gone](no_such_page.md)"))
    assert path_errors(doc("`tests/test_no_such_file.py` and `ptocr/{api,nosuch}.py`")) == [
        "doc.md: tests/test_no_such_file.py does not exist", "doc.md: ptocr/nosuch.py does not exist"]
    assert path_errors(doc("`tests/test_docs_audit.py::test_no_such_test`"))
    assert not path_errors(doc("`tests/test_docs_audit.py::test_relative_links_resolve`, `tests/test_onnx_*.py`"))
    assert unreachable_docs(REPO / "README.md", [*DOCS, *doc("an orphan")])
    architecture = _text(REPO / "doc" / "architecture.md")
    assert module_map_errors(architecture.replace("`inputs.py`", "`inputs`")) == ["ptocr/inputs.py"]
    assert module_map_errors(architecture.replace("`metrics.py`", "metrics")) == ["ptocr/training/metrics.py"]
    readme = _text(REPO / "README.md")
    assert architecture_table_errors(readme.replace("| UVDoc | unwarp |", "| UVDocX | unwarp |"))
    assert setting_errors(doc("`PTOCR_NO_SUCH_SETTING=1`"))
    ci = _text(REPO / ".ci" / "run")
    assert setup_command_errors(readme, ci.replace("python -m pytest", "python -m pytest -x"))
    assert setup_command_errors(readme.replace("&& ptocr demo", "&& ptocr demo\nptocr list"), ci)
    benchmarks = _text(REPO / "doc" / "benchmarks.md")
    assert not quoted_figure_errors(readme, benchmarks)
    assert quoted_figure_errors(re.sub(r"[\d.]+x PaddleOCR 2\.10's", "9.99x PaddleOCR 2.10's", readme), benchmarks)
    assert quoted_figure_errors(re.sub(r"\([\d.]+x the per-image", "(9.99x the per-image", readme), benchmarks)
