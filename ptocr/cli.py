"""The ``ptocr`` command.

Exit codes: 0 ok; 2 bad input (unreadable image or model, unknown name); 1 internal error.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
import sys
from importlib import resources
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import NoReturn

import click
from safetensors import SafetensorError

from ptocr import allocator, bulk_cli, reading_record
from ptocr.api import load
from ptocr.architectures import TASKS
from ptocr.demo_inputs import demo_inputs, network_input_size
from ptocr.errors import ImageError, PtocrError, first_line
from ptocr.export import (FORMATS, OPSET, SUFFIXES, TRANSFORMERS, CheckerMissing, check_export, example_input,
                          export_transformers)
from ptocr.export import export as do_export
from ptocr.jsonl_results import encode
from ptocr.loading import is_name
from ptocr.manifest import READY, list_models, load_manifest
from ptocr.atomic import (blocked_output, failure_reason, nearest_existing, replace_folder, temp_beside,
                          temp_folder_beside, write_atomically, written_path)
from ptocr.bundles import build_pipeline
from ptocr.interrupts import InterruptibleGroup
from ptocr.pdf import is_paged, parse_pages
from ptocr.pipeline import OCR
from ptocr.pipeline3 import OCR3, PADDLEOCR3_DEFAULTS, STEP_SWITCHES
from ptocr.result3 import OCR3Result
from ptocr.origins import origins_of
from ptocr.places import hub_endpoint
from ptocr.zoo import WEIGHTS, hf_cache_dir, offline, plan_publish, zoo_dir
from ptocr.zoo import publish as do_publish

EXIT_BAD_INPUT = 2


@click.group(cls=InterruptibleGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """PaddleOCR's PP-OCR models in PyTorch."""
    allocator.keep_freed_memory()  # each image's tensors reuse the last one's memory


def _fail(message: str) -> NoReturn:
    click.echo(f"ptocr: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _os_fail(e: OSError, writing: str | os.PathLike | None = None) -> NoReturn:
    """An OSError of the files given (unreadable, unwritable, a full disk) as the one-line error
    of bad input, exit 2: ``writing``, the output it was writing, else the file it names."""
    reason = e.strerror or str(e)
    if writing is None:
        _fail(f"{e.filename}: {reason}" if e.filename is not None else reason)
    where = ""  # the folder it could not make, say; not the temporary file beside the output
    if e.filename is not None and Path(os.fsdecode(e.filename)).parent != Path(writing).parent:
        where = f" ({os.fsdecode(e.filename)})"
    _fail(f"cannot write {os.fspath(writing)}: {reason}{where}")


def _check_output_file(path: str, option: str) -> None:
    """Before any work: ``path`` is no folder or device, and its folder (a link's target's)
    exists and takes new files (what ``write_atomically`` needs)."""
    target = written_path(path)
    if not target.parent.is_dir():
        _fail(f"{option} {path}: the folder {target.parent} "
              + ("is not a folder" if target.parent.exists() else "does not exist"))
    _check_writable_folder(target.parent, path, option)
    # Its folder is fine by now: what may stand there is a device, or a folder (export's DST may be one).
    if target.is_dir():
        if option == "--json":
            _fail(f"{option} {path}: it is a folder")
    elif (why := blocked_output(target)) is not None:
        _fail(f"{option} {path}: {why}" + ("; --json - writes to stdout" if option == "--json" else ""))


def _check_output_folder(path: str, option: str) -> None:
    """Before any work: the folder ``path`` (made when absent) can be made and written in."""
    folder = nearest_existing(path)
    if not folder.is_dir():
        _fail(f"{option} {path}: {folder} is not a folder")
    _check_writable_folder(folder, path, option)


def _check_writable_folder(folder: Path, path: str, option: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        _fail(f"{option} {path}: cannot write in the folder {folder}: not writable")


def _echo_lines(name: str, lines) -> None:
    # A file name that is not UTF-8 (lone surrogates) as \u escapes: a strict stdout cannot take it.
    click.echo(f"{name.encode('utf-8', 'backslashreplace').decode('utf-8')}: {len(lines)} lines")
    for line in lines:
        x, y = line.box[0]
        click.echo(f"  ({x:.0f},{y:.0f}) {line.score:.3f}  {line.text}")


def _build_ocr(det, rec, cls, models, device=None, dtype=None, compile=False, *, bundle=None, doc_ori=None,
               doc_unwarp=None, lang=None, settings=None):
    """The pipeline of ``bundle`` (default: PaddleOCR 3.x's PP-OCRv5, else the fallback with a
    notice) with the given models in place of its parts, found by the zoo's resolver."""
    def log(message):
        click.echo(message, err=True)

    return build_pipeline(bundle, det=det, rec=rec, cls=cls, doc_ori=doc_ori, doc_unwarp=doc_unwarp, lang=lang,
                          zoo=models, log=log, notice=log, device=device, dtype=dtype, compile=compile,
                          **(settings or {}))


def _setting_defaults() -> dict[str, object]:
    """The settings ``--set`` takes and their defaults, whose types the values must have: the
    pipelines' keyword arguments (OCR's drop_score, OCR3's step switches, optimize) and PaddleOCR
    3.x's settings."""
    defaults: dict[str, object] = {}
    for pipeline in (OCR, OCR3):
        for name, p in inspect.signature(pipeline.__init__).parameters.items():
            if p.kind is p.KEYWORD_ONLY and name not in _OWN_OPTIONS:
                defaults[name] = p.default
    return defaults | PADDLEOCR3_DEFAULTS


# Keyword arguments of the pipelines that the command sets with options of their own.
_OWN_OPTIONS = {"device": "--device", "dtype": "--dtype", "compile": "--compile", "det": "--det", "rec": "--rec",
                "cls": "--cls", "textline": "--cls", "doc_ori": "--doc-ori", "doc_unwarp": "--doc-unwarp",
                "lang": "--lang", "zoo": "--models"}


def _expected(key: str, default: object) -> tuple[Callable[[object], bool], str] | None:
    """(test, description) of the values ``key`` takes, by its default's type; None: any."""
    if key in STEP_SWITCHES:  # None: the step runs when its model is given
        return (lambda v: v is None or isinstance(v, bool)), "true, false or null"
    if isinstance(default, bool):
        return (lambda v: isinstance(v, bool)), "true or false"
    if isinstance(default, int):
        return (lambda v: isinstance(v, int) and not isinstance(v, bool)), "an integer, e.g. 960"
    if isinstance(default, float):
        return (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                "a finite number, e.g. 0.5")
    if isinstance(default, str):
        return (lambda v: isinstance(v, str)), f"text, e.g. {default}"
    return None


def _setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--set``: the value as JSON reads it (0.5, 960, true), else the text;
    refused unless of the type of the setting's default (checked before any model is loaded;
    unknown keys are named by the pipeline, with the ones it knows)."""
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE, e.g. text_det_box_thresh=0.5", param_hint="--set")
    if key in _OWN_OPTIONS:
        raise click.BadParameter(f"{key} is not a pipeline setting: give it with {_OWN_OPTIONS[key]}",
                                 param_hint="--set")
    try:  # True / False / None as Python writes them too
        parsed = json.loads({"true": "true", "false": "false", "none": "null"}.get(value.lower(), value))
    except (ValueError, RecursionError):
        parsed = value
    defaults = _setting_defaults()
    expected = _expected(key, defaults[key]) if key in defaults else None
    if expected is not None and not expected[0](parsed):
        raise click.BadParameter(f"{key}={value}: expected {expected[1]}", param_hint="--set")
    return key, parsed


def _read_each(pipeline, image: str, pages: list[int] | None = None) -> Iterator[tuple[str, object]]:
    """(name, result) as each is read: an image's name, or ``file.pdf#N`` (1-based) per page of a
    PDF or TIFF, one page at a time (a long document is never held whole; a page that cannot be
    read raises after the pages before it were given). One image is ``read``, never the
    pipeline's call, which takes a folder or a list too and gives a list of results."""
    if not is_paged(image):
        yield image, pipeline.read(image)
        return
    for result in pipeline.iter_pages(image, pages):
        yield f"{image}#{result.page_index + 1}", result


def _as_json(result):
    """PaddleOCR 3.x pipelines: its result fields (``rec_texts``, ``rec_polys``...); 2.x: lines."""
    return result.to_paddleocr() if isinstance(result, OCR3Result) else result.to_dict()


def _dump_json(results: dict) -> str:
    """{image: [line, ...]} with one line per text line (PaddleOCR 3.x results: one line per
    field): readable and diffable."""
    dumps = encode  # a file name that is not UTF-8 (lone surrogates) as \u escapes, as in --out's lines

    def block(image, value):
        if isinstance(value, dict):
            return f" {dumps(image)}: {{" + ",".join(f"\n  {dumps(k)}: {dumps(v)}" for k, v in value.items()) + "\n }"
        return f" {dumps(image)}: [" + ",".join(f"\n  {dumps(line)}" for line in value) + ("\n ]" if value else "]")

    blocks = [block(image, value) for image, value in results.items()]
    return "{" + ",".join("\n" + b for b in blocks) + ("\n}" if blocks else "}")


_MODELS_OPTION = click.option(
    "--models", type=click.Path(file_okay=False), default=None,
    help="Local zoo folder the default models are read from and converted into (default: $PTOCR_ZOO).")


@main.command()
@click.argument("image", required=False, type=click.Path(dir_okay=False))
@_MODELS_OPTION
def demo(image, models):
    """Read IMAGE (or PDF) with the default bundle (PP-OCRv5_server: what PaddleOCR 3.x runs
    for PP-OCRv5), fetched from its official origins and converted on first use; where those
    cannot be reached, with ch_PP-OCRv4 (saying why).

    Without IMAGE it reads the embedded demo scene.
    """
    try:
        ocr = _build_ocr(None, None, None, models)
        if image is None:
            with resources.as_file(resources.files("ptocr") / "assets" / "demo_scene.jpg") as path:
                _echo_lines(str(path), ocr(path))
        else:
            for name, lines in _read_each(ocr, image):
                _echo_lines(name, lines)
    except PtocrError as e:
        _fail(str(e))


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--pipeline", "bundle", metavar="NAME",
              help="A bundle of the zoo, and with it its pipeline rules: PP-OCRv5_server (default, PaddleOCR 3.x), "
                   "PP-OCRv5_mobile, ch_PP-OCRv4 (PaddleOCR 2.x), ... (`ptocr list`).")
@click.option("--det", metavar="M", help="Detector: a converted .safetensors, a Paddle model folder or a zoo name.")
@click.option("--rec", metavar="M", help="Recognizer: a converted .safetensors, a Paddle model folder or a zoo name.")
@click.option("--cls", metavar="M", help="Direction classifier (3.x bundles: textline orientation model), or 'none'.")
@click.option("--doc-ori", metavar="M", help="Document orientation model (PaddleOCR 3.x bundles), e.g. PP-LCNet_x1_0_doc_ori.")
@click.option("--doc-unwarp", metavar="M",
              help="Document unwarping model (PaddleOCR 3.x bundles), e.g. UVDoc; --set use_doc_unwarping=true "
                   "takes the zoo's.")
@click.option("--lang", metavar="CODE", help="PaddleOCR 3.x language code (fr, korean, ru, ...): the recognizer 3.x runs for it.")
@click.option("--pages", metavar="LIST", help="PDF and TIFF pages to read, 1-based: 1,3-5 (default all); a document that lacks one of them "
                   "is reported as unreadable, its other pages unread.")
@click.option("--word-boxes", is_flag=True,
              help="PaddleOCR 3.x bundles: each line's words and their boxes too (text_word, text_word_boxes).")
@click.option("--set", "settings", metavar="KEY=VALUE", multiple=True,
              help="A pipeline setting by PaddleOCR's name, repeatable: text_det_box_thresh=0.5, "
                   "text_det_limit_side_len=960, text_rec_score_thresh=0.5 (3.x); drop_score=0.3, "
                   "det_db_box_thresh=0.5, rec_batch_num=8 (2.x: PaddleOCR 2.10's option names).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write {image: [{box, text, score, angle}]} (PaddleOCR 3.x bundles: {image: its result fields}) "
                   "to this file ('-' for stdout); PDF pages as file.pdf#N.")
@click.option("--vis", type=click.Path(file_okay=False), help="Save a drawing of each result as DIR/<name>.png (a PDF or TIFF page: DIR/<name>_p<N>.png).")
@click.option("--device", default=None, help="torch device (cpu, cuda, cuda:1, ...).")
@click.option("--dtype", default=None, help="float32 (default), float16, bfloat16.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the models: faster per image after a first image that compiles them (about a minute per model on 2 cores).")
@_MODELS_OPTION
@bulk_cli.bulk_options
def ocr(images, bundle, det, rec, cls, doc_ori, doc_unwarp, lang, pages, word_boxes, settings, json_out, vis, device,
        dtype, compile_, models, **bulk):
    """Read the text lines of each IMAGE or PDF (PaddleOCR's PP-OCR pipelines, in PyTorch).

    Models left out are the bundle's (--pipeline; default PP-OCRv5_server, PaddleOCR 3.x's
    PP-OCRv5 pipeline, or ch_PP-OCRv4 where its weights cannot be reached), fetched as `ptocr
    demo` fetches them. Exit codes: 0 ok, 2 bad input (some image, PDF or model unusable; the
    others are still read and written), 1 internal error, 130 / 143 / 129 stopped by Ctrl-C /
    SIGTERM / SIGHUP.

    IMAGES may be folders (their image, PDF and TIFF files, searched recursively) and lists
    (.txt, .lst or .list: one path or folder per line). With --out (bulk mode, doc/bulk.md) the results go to a JSON-lines file
    that a rerun resumes.
    """
    settings = dict(map(_setting, settings)) | ({"return_word_box": True} if word_boxes else {})
    if bulk["bulk_out"] is not None:
        if json_out or vis:
            _fail("--out writes JSON lines as it goes; --json and --vis are for reading without it")
        try:
            # What decides what a page reads (not --device, --batch-size, --pages, --ray: doc/bulk.md), recorded
            # beside the results; a rerun with other choices is refused before any model is built.
            reading = reading_record.choices(pipeline=bundle, det=det, rec=rec, cls=cls, doc_ori=doc_ori,
                                             doc_unwarp=doc_unwarp, lang=lang, settings=settings, dtype=dtype)
            failed = bulk_cli.run(images, lambda: _build_ocr(det, rec, cls, models, device, dtype, compile_,
                                                             bundle=bundle, doc_ori=doc_ori, doc_unwarp=doc_unwarp,
                                                             lang=lang, settings=settings),
                                  device=device, pages=parse_pages(pages) if pages is not None else None, reading=reading, **bulk)
        except (PtocrError, ValueError) as e:
            _fail(str(e))
        except OSError as e:
            _os_fail(e)
        sys.exit(EXIT_BAD_INPUT if failed else 0)
    # The outputs' folders before any work: no OCR run only to find it cannot be saved.
    if json_out and json_out != "-":
        _check_output_file(json_out, "--json")
    if vis:
        _check_output_folder(vis, "--vis")
    try:
        page_list = parse_pages(pages) if pages is not None else None  # --pages "": refused, not every page
        images = bulk_cli.expand_inputs(images)  # folders -> their files, as with --out
        inputs = _file_ids(images)  # no output may replace one: refused before any work
        if json_out and json_out != "-" and _file_ids([json_out]) & inputs:
            _fail(f"--json {json_out}: it is one of the inputs; give another file")
        if vis and _file_ids([Path(vis) / f"{Path(image).stem}.png" for image in images]) & inputs:
            _fail(f"--vis {vis}: a picture would replace one of the inputs; give another folder")
        pipeline = _build_ocr(det, rec, cls, models, device, dtype, compile_, bundle=bundle, doc_ori=doc_ori,
                              doc_unwarp=doc_unwarp, lang=lang, settings=settings)
    except (PtocrError, ValueError) as e:
        _fail(str(e))
    except OSError as e:
        _os_fail(e)

    results, failed, vis_names = {}, [], set()
    quiet = json_out == "-"
    hidden = len(images) < 2 or not sys.stderr.isatty()
    with click.progressbar(images, label="ocr", file=sys.stderr, hidden=hidden) as bar:
        for image in bar:
            try:
                for name, page in _read_each(pipeline, image, page_list):
                    results[name] = _as_json(page)  # the JSON only: a page's image is dropped with it
                    if not quiet:
                        _echo_lines(name, page)
                    if vis:
                        stem = Path(image).stem + (name[len(image):].replace("#", "_p") if name != image else "")
                        while stem in vis_names:  # same stem from different folders
                            stem += "_"
                        vis_names.add(stem)
                        if _file_ids([Path(vis) / f"{stem}.png"]) & inputs:  # a page's or a renamed picture
                            _fail(f"--vis {vis}: {stem}.png would replace one of the inputs; give another folder")
                        _save_visualization(page, Path(vis) / f"{stem}.png")
            except ImageError as e:  # the pages read before it are kept
                click.echo(f"{'' if hidden else chr(10)}ptocr: error: {e}", err=True)  # off the bar's line
                failed.append(image)

    if json_out:
        text = _dump_json(results)
        if json_out == "-":
            click.echo(text)
        else:
            try:
                write_atomically(json_out, text + "\n")
            except OSError as e:
                _os_fail(e, json_out)
    if failed:
        click.echo(f"ptocr: {len(failed)} of {len(images)} inputs could not be read", err=True)
        sys.exit(EXIT_BAD_INPUT)


def _file_ids(paths) -> set[tuple[int, int]]:
    """The (device, inode) of each of ``paths`` that exists: the same file under any name or link."""
    ids = set()
    for path in paths:
        try:
            st = os.stat(path)
        except (OSError, ValueError):  # missing (a URI), unreadable, a NUL in the name
            continue
        ids.add((st.st_dev, st.st_ino))
    return ids


def _save_visualization(page, path: Path) -> None:
    """``page.save_visualization(path)`` (written whole or not at all); exit 2 where it cannot be."""
    try:
        page.save_visualization(path)
    except OSError as e:
        _os_fail(e, path)


@main.command("list")
@click.argument("pattern", required=False)
@click.option("--task", type=click.Choice(list(TASKS)), default=None, help="Only models of this task.")
def list_cmd(pattern, task):
    """List the zoo's models and bundles (PATTERN: a glob such as '*_rec', or a substring).

    The last column says where a model's weights come from: local (converted, in the local zoo
    folder), hub (ptocr's published file), origin (the official release, converted on first
    use), pending (not loadable yet). Offline (PTOCR_OFFLINE / HF_HUB_OFFLINE), hub and origin
    say "offline: cached only": what earlier downloads left in the caches is still used."""
    try:
        manifest = load_manifest()
        names = list_models(pattern, task=task)
        bundles = [] if task else [b for b in list_models(pattern, include_bundles=True) if b in manifest.bundles]
    except PtocrError as e:
        _fail(str(e))
    zoo = zoo_dir()
    for name in names:
        e = manifest.models[name]
        langs = ",".join(e["languages"]) or "-"
        click.echo(f"{name:34} {e['task']:6} {e['architecture']:30} {langs:8} {_availability(e, zoo / name)}")
    for name in bundles:
        parts = " + ".join(f"{t}={m}" for t, m in manifest.bundle(name).items())
        click.echo(f"{name:34} bundle {parts} ({manifest.bundle_rules(name)} rules)")
    if not names and not bundles:
        click.echo(f"no model matches {pattern!r}", err=True)
        sys.exit(EXIT_BAD_INPUT)


def _availability(entry: dict, folder: Path) -> str:
    """Where ``ptocr.load`` gets the model's weights first (``ptocr list``'s last column); the
    local file's hash is checked on load, not here."""
    if entry.get("status", READY) != READY:
        return "pending"
    if (folder / WEIGHTS).is_file():
        return "local"
    where = "hub" if entry["hub"].get("sha256") else "origin"
    return f"{where} (offline: cached only)" if offline() else where


@main.command()
@click.argument("name")
def info(name):
    """Show a zoo model's (or bundle's) manifest entry and where its weights would come from.
    NAME is a name of the zoo (`ptocr list`), not a file or folder."""
    try:
        manifest = load_manifest()
        if name in manifest.bundles:
            click.echo(json.dumps({"bundle": name, "pipeline": manifest.bundle_rules(name),
                                   "parts": manifest.bundle(name)}, indent=2))
            return
        if name not in manifest.models:  # the manifest's own error offers files and folders, which info does not take
            close = [] if os.path.exists(name) else manifest.suggest(name)
            what = "is a folder" if os.path.isdir(name) else "is a file" if os.path.exists(name) else \
                "is not a model or bundle of the zoo"
            _fail(f"{name!r} {what}: ptocr info takes the name of a zoo model or bundle"
                  + (f"; did you mean {', '.join(close)}?" if close else "") + " (`ptocr list` shows them)")
        entry = manifest.model_entry(name)
    except PtocrError as e:
        _fail(str(e))
    click.echo(json.dumps({name: entry.data}, indent=2, ensure_ascii=False))
    local = zoo_dir() / name / WEIGHTS
    click.echo(f"local zoo folder: {local} ({'present' if local.is_file() else 'absent'})")
    click.echo(f"Hugging Face cache: {hf_cache_dir()}  (offline: {offline()})")
    hub = entry.hub
    click.echo(f"ptocr's Hub repo: {hub['repo_id']}@{hub['revision']}"
               + ("" if hub.get("sha256") else " (not published yet)"))
    for k, origin in enumerate(origins_of(entry), 1):
        click.echo(f"origin {k}: {origin.describe()}" + ("" if origin.pinned else " (no pinned hash: trusted on first use)"))


@main.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the folders and list what would be sent; send nothing.")
@click.option("--token", default=None, help="Hugging Face token (default: huggingface_hub's login).")
@click.option("--private", is_flag=True, help="Create the repos private.")
def publish(folders, dry_run, token, private):
    """Upload zoo folders staged by tools/build_zoo.py (one per model) to the Hugging Face Hub.

    Each folder's name is the model's; its repo id and revision tag come from the manifest,
    and its model.safetensors must have the manifest's sha256 (recorded by the zoo build,
    which stages only models whose parity passed). Creates the repo, uploads the folder and
    tags that commit with the manifest's revision. A tag is never moved: one that holds the
    same weights already is skipped (a rerun), one that holds other weights stops the run.
    """
    try:
        plans = plan_publish(folders)
    except PtocrError as e:
        _fail(str(e))
    for plan in plans:
        click.echo(f"{plan.name} -> {hub_endpoint()}/{plan.repo_id} tag {plan.revision} "
                   f"(model.safetensors sha256 {plan.sha256})")
        for rel, size in plan.files:
            click.echo(f"  {rel:40} {size:>12,d} bytes")
    if dry_run:
        click.echo(f"dry run: {len(plans)} repo(s) would be created, uploaded and tagged; nothing sent")
        return
    try:
        do_publish(plans, token=token, private=private, log=click.echo)
    except PtocrError as e:
        _fail(str(e))


def _config_command(name: str):
    """A command taking PaddleOCR's -c CONFIG.yml -o KEY=VALUE ... (tools/train.py's, tools/eval.py's)."""
    def decorate(f):
        f = click.argument("more", nargs=-1, metavar="[KEY=VALUE]...")(f)
        f = click.option("-o", "--opt", "overrides", multiple=True, metavar="KEY=VALUE",
                         help="Override a config value as PaddleOCR's -o does (Global.epoch_num=10); repeatable.")(f)
        f = click.option("-c", "--config", "config", required=True, type=click.Path(dir_okay=False),
                         help="A PaddleOCR training config (.yml), e.g. configs/rec/PP-OCRv4/ch_PP-OCRv4_rec.yml.")(f)
        return main.command(name)(f)
    return decorate


def _run_config(run, config, overrides, more) -> None:
    """``run(config, overrides)``, its errors as one line (exit 2)."""
    stray = [m for m in more if "=" not in m]
    if stray:  # PaddleOCR's -o takes several KEY=VALUE after it; anything else is a mistake
        _fail(f"unexpected argument {stray[0]!r}: overrides are KEY=VALUE (-o Global.epoch_num=10)")
    try:
        run(config, [*overrides, *more])
    except PtocrError as e:
        _fail(first_line(e))
    except OSError as e:
        _os_fail(e)


@_config_command("train")
def train_cmd(config, overrides, more):
    """Fine-tune as PaddleOCR's tools/train.py: ptocr train -c CONFIG.yml -o Key.sub=value ...

    Checkpoints (latest, best_accuracy, iter_epoch_N) go to Global.save_model_dir as .safetensors
    model files ptocr.load reads, with their optimizer state beside them (doc/training.md)."""
    from ptocr.training.trainer import train

    _run_config(train, config, overrides, more)


@_config_command("eval")
def eval_cmd(config, overrides, more):
    """Evaluate as PaddleOCR's tools/eval.py: ptocr eval -c CONFIG.yml -o Global.checkpoints=output/best_accuracy

    The model of Global.checkpoints (a ptocr train checkpoint) or Global.pretrained_model over the
    config's Eval data; prints the metric (acc / norm_edit_dis, precision / recall / hmean) and fps."""
    from ptocr.training.trainer import evaluate_config

    _run_config(evaluate_config, config, overrides, more)


@main.command()
@click.argument("model")
@click.argument("dst", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="onnx",
              show_default=True,
              help="aoti: an AOTInductor package (DST must end in .pt2), compiled ahead of time for this CPU. "
                   "transformers: a Hugging Face transformers checkpoint folder DST (PP-OCRv5 mobile and server, "
                   "PP-OCRv6 and UVDoc models).")
@click.option("--dynamic/--static", default=True, show_default=True,
              help="Free batch and spatial axes (det: H, W; rec: W) or the traced shape only.")
@click.option("--input-shape", default=None, metavar="NxCxHxW",
              help="With --static: the one input shape it takes, e.g. 6x3x48x192 (default: one image "
                   "of the model's input size; det 640 x 640).")
@click.option("--opset", type=int, default=None, help=f"ONNX opset [default: {OPSET}].")
@click.option("--force", is_flag=True, help="Replace DST if it exists (only once the new export has passed its check).")
def export(model, dst, fmt, dynamic, input_shape, opset, force):
    """Export MODEL (a name, .safetensors or Paddle folder) to DST and check it against PyTorch.

    The check runs the export (ONNX Runtime for ONNX) and the PyTorch model on real inputs: the
    embedded demo scene and text lines cut from it, pre-processed as the model's config says, at
    sizes and batch sizes other than the traced ones (a static export: resized to its one
    shape); exit 1 if they differ by more than 1e-4. A static aoti
    export is compiled with frozen weights (prepacked for oneDNN), for where the input shape is
    fixed, e.g. the direction classifier at the pipeline's batch size. A static torchscript
    export is frozen too, for PyTorch's oneDNN Graph fuser (torch.jit.enable_onednn_fusion(True)),
    and is also checked through it: the classifier's fastest CPU path. The export is written beside
    DST and put in its place only once it has passed the check: a failed one leaves DST as it was.
    """
    _check_export_target(model, dst, fmt, force)  # before the model loads
    if fmt == TRANSFORMERS:
        given = [flag for flag, changed in (("--static", not dynamic), ("--input-shape", input_shape is not None),
                                            ("--opset", opset is not None)) if changed]
        if given:
            _fail(f"{', '.join(given)}: a transformers checkpoint holds weights, not a traced graph; drop them")
        return _export_transformers(model, dst)
    if fmt == "onnx" and opset is not None:
        low, high = _onnx_opsets()
        if not low <= opset <= high:
            _fail(f"--opset {opset}: the ONNX exporter writes opsets {low} to {high}")
    staged = None
    try:
        predictor = load(model)
        shape = _shape(input_shape) if input_shape else None
        try:
            staged = temp_beside(dst, suffix=Path(dst).suffix)  # the exporters go by the name's ending
            do_export(predictor.model, predictor.config, staged, fmt, dynamic=dynamic,
                      opset=OPSET if opset is None else opset, input_shape=shape,
                      dictionary=getattr(predictor, "dictionary", None))
        except OSError as e:
            _os_fail(e, dst)
        static_shape = None if dynamic else shape or tuple(example_input(predictor.config).shape)
        xs = demo_inputs(predictor.config, static_shape)
        worst = check_export(staged, fmt, predictor.model, xs, name=dst)
        fused = _onednn_graph_check(staged, dst, predictor.model, xs) if fmt == "torchscript" and not dynamic else None
        shapes = ", ".join(sorted({"x".join(map(str, x.shape)) for x in xs}))
        click.echo(f"{dst}: {fmt}, max |delta| vs PyTorch {worst:.2e} on {len(xs)} inputs from the demo scene "
                   f"({shapes})")
        if isinstance(fused, str):
            click.echo(f"oneDNN Graph cannot run it ({fused}): load it without torch.jit.enable_onednn_fusion(True)")
        elif fused is not None:
            click.echo(f"with torch.jit.enable_onednn_fusion(True) (fused oneDNN partitions): max |delta| {fused:.2e}")
            worst = max(worst, fused)
        if worst > _EXPORT_TOLERANCE:
            _mismatch(dst)
        try:
            os.replace(staged, dst)
        except OSError as e:
            _os_fail(e, dst)
    except PtocrError as e:
        _fail(str(e))
    except OSError as e:
        _os_fail(e)
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)


# How far an export's outputs may be from PyTorch's on the check's inputs.
_EXPORT_TOLERANCE = 1e-4


def _check_export_target(model: str, dst: str, fmt: str, force: bool) -> None:
    """What ``export`` can tell before loading the model: a pipeline is not one model, DST's folder
    takes files, an existing DST needs --force (a transformers checkpoint is a folder, others a file)."""
    if is_name(model) and model in load_manifest().bundles:
        _fail(f"{model} is a pipeline; export its parts (det, rec, cls) one by one (`ptocr info {model}` names them)")
    path = Path(dst)
    if fmt == "aoti" and path.suffix != SUFFIXES["aoti"]:
        _fail(f"{dst}: an AOTInductor package must be named *{SUFFIXES['aoti']}")
    if path.exists() or path.is_symlink():
        if path.is_dir() != (fmt == TRANSFORMERS):
            _fail(f"{dst} is a {'folder' if path.is_dir() else 'file'}; "
                  + ("a transformers checkpoint is a folder" if fmt == TRANSFORMERS else "give the file to write"))
        if not force:
            _fail(f"{dst} already exists; pass --force to replace it")
        if path.is_dir() and any(path.iterdir()) and not all((path / f).is_file() for f in ("config.json",
                                                                                            "model.safetensors")):
            _fail(f"{dst} is a folder that holds no transformers checkpoint (config.json and model.safetensors); "
                  "--force replaces only a checkpoint folder")  # not a folder of someone's other files
    _check_output_file(dst, "DST")


def _mismatch(dst: str) -> NoReturn:
    click.echo(f"ptocr: error: the export does not match PyTorch; {dst} not written", err=True)
    sys.exit(1)


def _export_transformers(model: str, dst: str) -> None:
    """``export --format transformers``: the fused model as a transformers checkpoint folder,
    checked with transformers' own classes where transformers is installed, then put in place."""
    staged = None
    try:
        predictor = load(model, optimize=False)
        try:
            staged = temp_folder_beside(dst)  # export_transformers replaces it (force) with the checkpoint
            export_transformers(predictor.model, predictor.config, getattr(predictor, "dictionary", None), staged,
                                force=True)
        except (OSError, SafetensorError) as e:  # SafetensorError: save_file's own I/O errors (a full disk)
            _os_fail(e if isinstance(e, OSError) else OSError(failure_reason(e)), dst)
        xs = demo_inputs(predictor.config, None)
        if predictor.config["task"] == "unwarp":  # transformers' UVDocModel takes pages already resampled
            xs = [x for x in xs if tuple(x.shape[2:]) == network_input_size(predictor.config)]
        try:
            worst = check_export(staged, TRANSFORMERS, predictor.model, xs, name=dst)
            click.echo(f"{dst}: transformers checkpoint, max |delta| vs PyTorch {worst:.2e} on {len(xs)} inputs "
                       "from the demo scene (transformers' own classes)")
        except CheckerMissing as e:  # written, saying why it is unchecked; any other failure: not written
            worst = 0.0
            click.echo(f"{dst}: transformers checkpoint written, not checked ({e})")
        if worst > _EXPORT_TOLERANCE:
            _mismatch(dst)
        try:
            replace_folder(staged, dst)
        except OSError as e:
            _os_fail(e, dst)
    except PtocrError as e:
        _fail(str(e))
    except OSError as e:
        _os_fail(e)
    finally:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)




def _onednn_graph_check(path, name: str, model, xs) -> float | str:
    """A static TorchScript export through PyTorch's oneDNN Graph fuser: its max |delta| vs
    PyTorch, or the fuser's error (it refuses some models)."""
    try:
        return check_export(path, "torchscript", model, xs, onednn_graph=True, name=name)
    except RuntimeError as e:
        return f"{type(e).__name__}: {first_line(e)[:120]}"


def _onnx_opsets() -> tuple[int, int]:
    """The ONNX opsets torch.onnx's TorchScript-based exporter (the one ptocr.export uses) writes."""
    try:
        from torch.onnx import _constants
        return _constants.ONNX_MIN_OPSET, _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    except (ImportError, AttributeError):  # a torch that moved them: its own check then speaks
        return 1, 10**6


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise PtocrError(f"--input-shape: expected NxCxHxW, e.g. 6x3x48x192; got {text!r}") from None


if __name__ == "__main__":
    main()
