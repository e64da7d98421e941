"""Regenerate tests/fixtures/paddleocr37_model_names.json: the (det, rec) paddleocr 3.7's
``PaddleOCR(lang=, ocr_version=)`` runs for every language code and version.

    pip download --no-deps paddleocr==3.7.0 -d /tmp/wheels
    python -m tools.paddleocr3_model_names --wheel /tmp/wheels/paddleocr-3.7.0-py3-none-any.whl

Dev only. The wheel is read, not installed (importing paddleocr needs paddlex and Paddle): this
takes ``_utils/langs.py`` whole and, from ``_pipelines/ocr.py``, ``_SUPPORTED_OCR_VERSIONS``,
the ``_PPOCRV6_*`` sets and the ``_get_ocr_model_names`` method's own code, and calls it for
every code 3.7 knows (and two it does not) under every version. ``null``: 3.7's "No models are
available" error. tests/test_paddleocr3_model_names.py checks ptocr's choice of zoo models
(``ptocr.paddleocr3_options.paddleocr3_model_names``) against each.
"""

from __future__ import annotations

import argparse
import ast
import json
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "paddleocr37_model_names.json"
UNKNOWN_CODES = ("xx", "kannada")  # not codes of 3.7: its None, None for them


def paddleocr37_namespace(wheel: Path) -> dict:
    """langs.py's names plus ocr.py's version list, v6 sets and ``_get_ocr_model_names``."""
    with zipfile.ZipFile(wheel) as z:
        langs = z.read("paddleocr/_utils/langs.py").decode()
        ocr = z.read("paddleocr/_pipelines/ocr.py").decode()
    ns: dict = {}
    exec(compile(langs, "paddleocr/_utils/langs.py", "exec"), ns)  # noqa: S102 (dev tool, pinned wheel)
    kept = []
    for node in ast.parse(ocr).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.startswith(("_PPOCRV6", "_SUPPORTED"))
                                                for t in node.targets):
            kept.append(node)
        if isinstance(node, ast.ClassDef) and node.name == "PaddleOCR":
            kept += [f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "_get_ocr_model_names"]
    exec(compile(ast.Module(body=kept, type_ignores=[]), "paddleocr/_pipelines/ocr.py", "exec"), ns)  # noqa: S102
    # Codes the method itself names ("korean", "ka", ...; also its group labels "latin", ...,
    # which 3.7 refuses as codes: more rows to check), beside langs.py's sets.
    method = next(f for f in kept if isinstance(f, ast.FunctionDef))
    ns["_named_in_method"] = {c.value for c in ast.walk(method) if isinstance(c, ast.Constant)
                              and isinstance(c.value, str) and "PP-OCR" not in c.value}
    return ns


def table(ns: dict) -> dict:
    codes = set(ns["_named_in_method"])
    for name, value in ns.items():
        if name.endswith("_LANGS") and isinstance(value, (set, frozenset)):
            codes |= value
    rows = []
    for lang in [None, *sorted(codes), *UNKNOWN_CODES]:
        for version in [None, *ns["_SUPPORTED_OCR_VERSIONS"]]:
            det, rec = ns["_get_ocr_model_names"](None, lang, version)
            rows.append({"lang": lang, "ocr_version": version, "models": None if det is None else [det, rec]})
    return {"paddleocr": "3.7.0", "made_by": "python -m tools.paddleocr3_model_names", "rows": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, required=True, help="paddleocr-3.7.0-py3-none-any.whl")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    data = table(paddleocr37_namespace(args.wheel))
    rows = ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in data["rows"])
    head = json.dumps({k: v for k, v in data.items() if k != "rows"}, ensure_ascii=False)[:-1]
    args.out.write_text(f'{head}, "rows": [\n{rows}\n]}}\n', encoding="utf-8")  # a row a line
    print(f"{args.out}: {len(data['rows'])} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
