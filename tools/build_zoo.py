"""Build the model zoo: convert every manifest model whose Paddle original is here, prove its
parity on real images, and stage a hub-ready folder per model that passes.

    python -m tools.build_zoo [--paddle-models DIR] [--images DIR] [--out DIR]
                              [--manifest weights_manifest.json] [--only NAME ...]

For each model of the manifest (pending entries are skipped) whose ``source.folder`` is in
the Paddle models folder (``--paddle-models``, ``$PTOCR_PADDLE_MODELS``, else
``../shared/paddle_models``):

1. check its ``inference.pdiparams`` against ``source.pdiparams_sha256``;
2. convert it as the manifest says (architecture, dictionary, use_space_char) and check the
   converted head against ``arguments``;
3. run ``verification.parity.check_parity`` against Paddle on the entry's ``parity.images``
   (folders under ``--images``, at most ``parity.max_images`` images); a model whose parity
   fails is refused: nothing is staged for it and the manifest is not touched;
4. stage ``<out>/<name>/``: ``model.safetensors``, ``config.json``, the dictionary,
   ``parity.json`` and a ``README.md`` model card;
5. record ``hub.sha256`` and ``parity.result`` in the manifest.

``<out>`` defaults to the local zoo folder ``ptocr.load`` reads (``$PTOCR_ZOO``, else
``~/.cache/ptocr/zoo``). Upload the staged folders with ``ptocr publish``.
Needs paddlepaddle (``pip install -e ".[parity]"``). Exit code 1 if any model was refused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from converter.convert import convert
from converter.writer import write_converted
import ptocr
from ptocr.checkpoint import file_sha256
from ptocr.errors import PtocrError
from ptocr.manifest import (
    PENDING,
    ModelEntry,
    load_manifest,
    manifest_path,
    write_manifest,
)
from ptocr.zoo import WEIGHTS, zoo_dir
from verification.parity import check_parity
from verification.shared import default_shared

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
ENV_PADDLE_MODELS = "PTOCR_PADDLE_MODELS"


@dataclass
class BuildResult:
    staged: dict[str, Path] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def default_paddle_models() -> Path:
    env = os.environ.get(ENV_PADDLE_MODELS)
    if env:
        return Path(env)
    return default_shared() / "paddle_models"


def default_images() -> Path:
    return default_shared() / "images"


def parity_images(entry: ModelEntry, images_root: Path) -> list[Path]:
    found: list[Path] = []
    for folder in entry.parity["images"]:
        d = images_root / folder
        if d.is_dir():
            found += sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    limit = entry.parity.get("max_images")
    return found[:limit] if limit else found


def build_zoo(paddle_models, out, *, manifest: str | os.PathLike | None = None, images=None,
              only=None, check=None, threads: int = 2, update_manifest: bool = True,
              progress: bool = True, log=print) -> BuildResult:
    """Stage every available model (see the module doc). ``check``: the parity function
    (default ``verification.parity.check_parity``; tests of the folder layout may replace it)."""
    check = check or check_parity
    paddle_models, out = Path(paddle_models), Path(out)
    images = Path(images) if images is not None else default_images()
    man_path = Path(manifest) if manifest is not None else manifest_path()
    man = load_manifest(man_path)
    data = json.loads(json.dumps(man.data))  # a copy to update
    names = sorted(man.models) if not only else list(only)
    unknown = [n for n in names if n not in man.models]
    if unknown:
        raise SystemExit(f"not in the manifest {man_path}: {', '.join(unknown)}")
    out.mkdir(parents=True, exist_ok=True)
    result = BuildResult()

    todo = []
    for name in names:
        entry = man.model_entry(name)
        if entry.status == PENDING:
            result.skipped[name] = f"pending: {entry.pending_reason}"
        elif not (paddle_models / entry.source["folder"]).is_dir():
            result.skipped[name] = f"no Paddle source {paddle_models / entry.source['folder']}"
        else:
            todo.append(entry)

    bar = _progress(todo, progress)
    for entry in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(entry.name)
        try:
            staged, report = _build_one(entry, paddle_models, out, images, check, threads)
        except Exception as e:  # noqa: BLE001 - one model's failure must not stop the others
            result.refused[entry.name] = f"{type(e).__name__}: {e}"
            _write(log, bar, f"REFUSED {entry.name}: {type(e).__name__}: {e}")
            continue
        if staged is None:
            result.refused[entry.name] = f"parity failed: {report.summary()}"
            _write(log, bar, f"REFUSED {entry.name}: parity failed: {report.summary()}")
            continue
        result.staged[entry.name] = staged
        _write(log, bar, f"staged {entry.name} -> {staged}  {report.summary()}")
        if update_manifest:
            m = data["models"][entry.name]
            m["hub"]["sha256"] = file_sha256(staged / WEIGHTS)
            m["parity"]["result"] = _result_record(report)
            write_manifest(data, man_path)
    for name, why in result.skipped.items():
        log(f"skipped {name}: {why}")
    return result


def _progress(items, enabled):
    if not enabled:
        return items
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return items
    return tqdm(items, desc="zoo", unit="model")


def _write(log, bar, msg):
    if hasattr(bar, "write") and log is print:
        bar.write(msg)
    else:
        log(msg)


def _build_one(entry: ModelEntry, paddle_models: Path, out: Path, images_root: Path, check, threads):
    folder = paddle_models / entry.source["folder"]
    want = entry.source.get("pdiparams_sha256")
    weights = folder / "inference.pdiparams"
    if want and weights.is_file() and file_sha256(weights) != want:
        raise PtocrError(f"{weights} has sha256 {file_sha256(weights)}, the manifest says {want}: "
                         "not the official weights")
    dic = entry.dictionary
    dict_path = None
    if dic is not None:
        dict_path = Path(__file__).resolve().parents[1] / "ptocr" / "dicts" / dic["file"]
    conv = convert(folder, entry.architecture, dictionary=dict_path,
                   use_space_char=None if dic is None else dic["use_space_char"])
    for part, args in entry.arguments.items():
        for key, value in args.items():
            got = (conv.config["model"].get(part) or {}).get(key)
            if got != value:
                raise PtocrError(f"{entry.name}: converted model has {part}.{key} = {got!r}, "
                                 f"the manifest's arguments say {value!r}")
    conv.config["preprocess"] = {**conv.config.get("preprocess", {}), **entry.preprocess}
    conv.config["postprocess"] = {**conv.config.get("postprocess", {}), **entry.postprocess}
    conv.config["zoo"] = {"name": entry.name, "repo_id": entry.hub["repo_id"], "revision": entry.hub["revision"]}
    imgs = parity_images(entry, images_root)
    if not imgs:
        raise PtocrError(f"{entry.name}: no parity images in {images_root} / {entry.parity['images']}")
    report = check(folder, imgs, conversion=conv, name=entry.name, threads=threads)
    if not report.ok:
        return None, report
    return _stage(entry, conv, report, out, imgs, images_root), report


def _stage(entry: ModelEntry, conv, report, out: Path, imgs, images_root: Path) -> Path:
    final = out / entry.name
    tmp = out / f".{entry.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        text = conv.dictionary.text() if conv.dictionary is not None else None
        written = write_converted(conv.state_dict, conv.config, text, tmp / WEIGHTS)
        os.replace(written.config, tmp / "config.json")
        if written.dictionary is not None:
            os.replace(written.dictionary, tmp / entry.dictionary["file"])
        record = _result_record(report)
        record["cases"] = [
            {"image": c.name, "max_abs": c.max_abs, "exact": c.exact, "fp32": c.fp32, "agree": c.agree,
             "detail": c.detail} for c in report.cases]
        record["images"] = [p.relative_to(images_root).as_posix() if p.is_relative_to(images_root) else p.name
                            for p in imgs]
        (tmp / "parity.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(model_card(entry, conv, report, written.sha256), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _result_record(report) -> dict:
    try:
        paddle_version = version("paddlepaddle")
    except PackageNotFoundError:
        paddle_version = None
    return {
        "ok": bool(report.ok),
        "max_abs": float(report.max_abs),
        "exact": float(report.exact),
        "fp32": float(report.fp32),
        "tolerance": float(report.tolerance),
        "agreed": f"{report.agreed}/{len(report.cases)}",
        "agreement": report.agreement_kind,
        "source_kind": report.source_kind,
        "converter_version": ptocr.__version__,
        "torch": torch.__version__.split("+")[0],
        "paddlepaddle": paddle_version,
        "platform": platform.machine(),
    }


def model_card(entry: ModelEntry, conv, report, sha256: str) -> str:
    """The hub repo's README.md: front matter, source, license, architecture, parity, usage."""
    src, hub, name = entry.source, entry.hub, entry.name
    langs = entry.languages
    front = ["---", "license: apache-2.0", "library_name: ptocr", "pipeline_tag: image-to-text",
             "tags:", "- ocr", "- paddleocr", "- pp-ocr", "- pytorch", "- safetensors", f"- {entry.task}"]
    if langs:
        front += ["language:"] + [f"- {lang}" for lang in langs]
    front.append("---")
    task_words = {"det": "text detection", "rec": "text recognition", "cls": "text direction classification"}
    dic = entry.dictionary
    usage_call = {
        "det": 'result = model("scene.jpg")  # boxes and scores',
        "rec": 'text, score = model("word.png")',
        "cls": 'label, score = model("line.png")  # "0" or "180"',
    }[entry.task]
    lines = [
        *front, "",
        f"# {name} (PyTorch)", "",
        (f"PaddleOCR's official **{name}** {task_words[entry.task]} model, converted to PyTorch by "
        "ptocr and checked against the Paddle original on real images."), "",
        "## Source", "",
        f"- Original: `{src['folder']}` ({src['format']}), {src['url']}",
        f"- Paddle weights sha256 (`inference.pdiparams`): `{src.get('pdiparams_sha256') or 'not recorded'}`",
        "- License: Apache-2.0 (PaddleOCR, Copyright PaddlePaddle Authors); this conversion keeps that license.", "",
        "## Architecture", "",
        f"- ptocr architecture `{conv.arch_name}`" + (f" (form: {conv.form})" if conv.form else ""),
        (f"- backbone `{conv.config['model']['backbone'].get('name')}`, "
        f"neck `{(conv.config['model'].get('neck') or {}).get('name')}`, "
        f"head `{conv.config['model']['head'].get('name')}`"),
    ]
    if dic is not None:
        lines.append(f"- dictionary `{dic['file']}` ({len(conv.dictionary.characters)} characters, "
                     f"use_space_char={dic['use_space_char']}; {conv.config['model']['head'].get('num_classes')} classes)")
    lines += [
        "",
        "## Parity with Paddle", "",
        f"On {len(report.cases)} real images ({', '.join(entry.parity['images'])}):", "",
        "| measure | value |", "|---|---|",
        f"| max \\|Δ\\| of outputs, PyTorch fp32 vs Paddle fp64 | {report.max_abs:.2e} (tolerance {report.tolerance:.0e}) |",
        f"| max \\|Δ\\|, PyTorch fp64 vs Paddle fp64 | {report.exact:.1e} |",
        f"| max \\|Δ\\|, PyTorch fp32 vs Paddle Inference fp32 | {report.fp32:.2e} |",
        f"| {report.agreement_kind or 'agreement'} | {report.agreed}/{len(report.cases)} |", "",
        "Per-image figures: `parity.json`.", "",
        "## Files", "",
        f"- `model.safetensors` (sha256 `{sha256}`): weights; its metadata holds the config"
        + (" and the dictionary" if dic else "") + ", so it loads alone",
        "- `config.json`: architecture, pre- and post-processing",
    ]
    if dic is not None:
        lines.append(f"- `{dic['file']}`: the character dictionary")
    lines += [
        "",
        "## Usage", "",
        "```python",
        "import ptocr",
        "",
        f'model = ptocr.load("{name}")  # from {hub["repo_id"]} at revision {hub["revision"]}, sha256-checked',
        usage_call,
        "```", "",
        "Or with a file downloaded by hand: `ptocr.load(\"model.safetensors\")`.", "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.build_zoo", description=__doc__.splitlines()[0])
    p.add_argument("--paddle-models", type=Path, default=None,
                   help=f"folder of Paddle model folders (default ${ENV_PADDLE_MODELS} or ../shared/paddle_models)")
    p.add_argument("--images", type=Path, default=None, help="images root (default ../shared/images)")
    p.add_argument("--out", type=Path, default=None, help="zoo folder to stage into (default $PTOCR_ZOO)")
    p.add_argument("--manifest", type=Path, default=None, help="manifest to read and update (default: ptocr's)")
    p.add_argument("--only", nargs="+", default=None, help="models to build (default: all available)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-update-manifest", action="store_true")
    args = p.parse_args(argv)
    res = build_zoo(args.paddle_models or default_paddle_models(), args.out or zoo_dir(),
                    manifest=args.manifest, images=args.images, only=args.only, threads=args.threads,
                    update_manifest=not args.no_update_manifest)
    print(f"{len(res.staged)} staged, {len(res.refused)} refused, {len(res.skipped)} skipped")
    for name, why in res.refused.items():
        print(f"  refused {name}: {why}")
    return 1 if res.refused else 0


if __name__ == "__main__":
    sys.exit(main())
