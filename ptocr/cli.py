"""The ``ptocr`` command.

Exit codes: 0 ok; 2 bad input (unreadable image or model, unknown name); 1 internal error.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path

import click

from ptocr import allocator
from ptocr.api import load
from ptocr.demo_inputs import demo_inputs
from ptocr.errors import ImageError, PtocrError
from ptocr.export import FORMATS, TRANSFORMERS, check_export, example_input, export_transformers
from ptocr.export import export as do_export
from ptocr.manifest import READY, list_models, load_manifest
from ptocr.pipeline import OCR, official_model_files
from ptocr.zoo import hf_cache_dir, offline, plan_publish, zoo_dir
from ptocr.zoo import publish as do_publish

EXIT_BAD_INPUT = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """PaddleOCR's PP-OCR models in PyTorch."""
    allocator.keep_freed_memory()  # each image's tensors reuse the last one's memory


def _fail(message: str) -> None:
    click.echo(f"ptocr: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _echo_lines(name: str, lines) -> None:
    click.echo(f"{name}: {len(lines)} lines")
    for line in lines:
        x, y = line.box[0]
        click.echo(f"  ({x:.0f},{y:.0f}) {line.score:.3f}  {line.text}")


def _build_ocr(det, rec, cls, models, device=None, dtype=None, compile=False):
    """OCR from the given models; the default bundle's (found by the zoo's resolver) fill the gaps."""
    if det is None or rec is None or cls is None:
        official = official_model_files(models, log=lambda m: click.echo(m, err=True))
        det, rec, cls = det or official["det"], rec or official["rec"], cls or official["cls"]
    return OCR(det, rec, None if cls == "none" else cls, device=device, dtype=dtype, compile=compile)


def _dump_json(results: dict) -> str:
    """{image: [line, ...]} with one line per text line: readable and diffable."""
    def dumps(v):
        return json.dumps(v, ensure_ascii=False)

    blocks = [
        f" {dumps(image)}: [" + ",".join(f"\n  {dumps(line)}" for line in lines) + ("\n ]" if lines else "]")
        for image, lines in results.items()
    ]
    return "{" + ",".join("\n" + b for b in blocks) + ("\n}" if blocks else "}")


_MODELS_OPTION = click.option(
    "--models", type=click.Path(file_okay=False), default=None,
    help="Local zoo folder the default models are read from and converted into (default: $PTOCR_ZOO).")


@main.command()
@click.argument("image", required=False, type=click.Path(dir_okay=False))
@_MODELS_OPTION
def demo(image, models):
    """Read IMAGE with the default bundle (ch_PP-OCRv4), fetched from its official origins and
    converted on first use.

    Without IMAGE it reads the embedded demo scene.
    """
    try:
        ocr = _build_ocr(None, None, None, models)
        if image is None:
            with resources.as_file(resources.files("ptocr") / "assets" / "demo_scene.jpg") as path:
                image, lines = str(path), ocr(path)
        else:
            lines = ocr(Path(image))
    except PtocrError as e:
        _fail(str(e))
    _echo_lines(image, lines)


@main.command()
@click.argument("images", nargs=-1, required=True, type=click.Path())
@click.option("--det", metavar="M", help="Detector: a converted .safetensors or a Paddle model folder.")
@click.option("--rec", metavar="M", help="Recognizer: a converted .safetensors or a Paddle model folder.")
@click.option("--cls", metavar="M", help="Direction classifier: .safetensors, Paddle folder, or 'none'.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write {image: [{box, text, score, angle}]} to this file ('-' for stdout).")
@click.option("--vis", type=click.Path(file_okay=False), help="Save a drawing of each result as DIR/<name>.png.")
@click.option("--device", default=None, help="torch device (cpu, cuda, cuda:1, ...).")
@click.option("--dtype", default=None, help="float32 (default), float16, bfloat16.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the models: faster per image after a first one that compiles (tens of seconds).")
@_MODELS_OPTION
def ocr(images, det, rec, cls, json_out, vis, device, dtype, compile_, models):
    """Read the text lines of each IMAGE (PaddleOCR's PP-OCR system, in PyTorch).

    Models left out are the official PP-OCRv4 mobile det / rec and v2.0 classifier, as
    `ptocr demo` fetches them. Exit codes: 0 ok, 2 bad input (some image or model unusable;
    the others are still read and written), 1 internal error.
    """
    try:
        pipeline = _build_ocr(det, rec, cls, models, device, dtype, compile_)
    except (PtocrError, ValueError) as e:
        _fail(str(e))

    results, failed, vis_names = {}, [], set()
    quiet = json_out == "-"
    hidden = len(images) < 2 or not sys.stderr.isatty()
    with click.progressbar(images, label="ocr", file=sys.stderr, hidden=hidden) as bar:
        for image in bar:
            try:
                result = pipeline(image)
            except ImageError as e:
                click.echo(f"{'' if hidden else chr(10)}ptocr: error: {e}", err=True)  # off the bar's line
                failed.append(image)
                continue
            results[image] = result.to_dict()
            if not quiet:
                _echo_lines(image, result)
            if vis:
                name = Path(image).stem
                while name in vis_names:  # same stem from different folders
                    name += "_"
                vis_names.add(name)
                result.save_visualization(Path(vis) / f"{name}.png")

    if json_out:
        text = _dump_json(results)
        if json_out == "-":
            click.echo(text)
        else:
            Path(json_out).write_text(text + "\n", encoding="utf-8")
    if failed:
        click.echo(f"ptocr: {len(failed)} of {len(images)} inputs could not be read", err=True)
        sys.exit(EXIT_BAD_INPUT)


@main.command("list")
@click.argument("pattern", required=False)
@click.option("--task", type=click.Choice(["det", "rec", "cls"]), default=None, help="Only models of this task.")
def list_cmd(pattern, task):
    """List the zoo's models and bundles (PATTERN: a glob such as '*_rec', or a substring)."""
    try:
        manifest = load_manifest()
        names = list_models(pattern, task=task)
        bundles = [] if task else [b for b in list_models(pattern, include_bundles=True) if b in manifest.bundles]
    except PtocrError as e:
        _fail(str(e))
    for name in names:
        e = manifest.models[name]
        state = "pending" if e.get("status", READY) != READY else (
            "built" if e["hub"].get("sha256") else "not built")
        langs = ",".join(e["languages"]) or "-"
        click.echo(f"{name:34} {e['task']:4} {e['architecture']:30} {langs:8} {state}")
    for name in bundles:
        parts = " + ".join(f"{t}={m}" for t, m in manifest.bundles[name].items())
        click.echo(f"{name:34} bundle {parts}")
    if not names and not bundles:
        click.echo(f"no model matches {pattern!r}", err=True)
        sys.exit(EXIT_BAD_INPUT)


@main.command()
@click.argument("name")
def info(name):
    """Show a zoo model's (or bundle's) manifest entry and where its weights would come from."""
    try:
        manifest = load_manifest()
        if name in manifest.bundles:
            click.echo(json.dumps({"bundle": name, "parts": manifest.bundle(name)}, indent=2))
            return
        entry = manifest.model_entry(name)
    except PtocrError as e:
        _fail(str(e))
    click.echo(json.dumps({name: entry.data}, indent=2, ensure_ascii=False))
    click.echo(f"local zoo folder: {zoo_dir() / name}")
    click.echo(f"Hugging Face cache: {hf_cache_dir()}  (offline: {offline()})")


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
    tags that commit with the manifest's revision.
    """
    try:
        plans = plan_publish(folders)
    except PtocrError as e:
        _fail(str(e))
    for plan in plans:
        click.echo(f"{plan.name} -> https://huggingface.co/{plan.repo_id} tag {plan.revision} "
                   f"(model.safetensors sha256 {plan.sha256})")
        for rel, size in plan.files:
            click.echo(f"  {rel:40} {size:>12,d} bytes")
    if dry_run:
        click.echo(f"dry run: {len(plans)} repo(s) would be created, uploaded and tagged; nothing sent")
        return
    do_publish(plans, token=token, private=private, log=click.echo)


@main.command()
@click.argument("model")
@click.argument("dst", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="onnx",
              show_default=True,
              help="aoti: an AOTInductor package (DST must end in .pt2), compiled ahead of time for this CPU. "
                   "transformers: a Hugging Face transformers checkpoint folder DST (PP-OCRv6 models).")
@click.option("--dynamic/--static", default=True, show_default=True,
              help="Free batch and spatial axes (det: H, W; rec: W) or the traced shape only.")
@click.option("--input-shape", default=None, metavar="NxCxHxW",
              help="With --static: the one input shape it takes, e.g. 6x3x48x192 (default: one image "
                   "of the model's input size; det 640 x 640).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
def export(model, dst, fmt, dynamic, input_shape, opset):
    """Export MODEL (a name, .safetensors or Paddle folder) to DST and check it against PyTorch.

    The check runs the export (ONNX Runtime for ONNX) and the PyTorch model on real inputs: the
    embedded demo scene and text lines cut from it, pre-processed as the model's config says, at
    sizes and batch sizes other than the traced ones (a static export: resized to its one
    shape); exit 1 if they differ by more than 1e-4. A static aoti
    export is compiled with frozen weights (prepacked for oneDNN), for where the input shape is
    fixed, e.g. the direction classifier at the pipeline's batch size. A static torchscript
    export is frozen too, for PyTorch's oneDNN Graph fuser (torch.jit.enable_onednn_fusion(True)),
    and is also checked through it: the classifier's fastest CPU path.
    """
    if fmt == TRANSFORMERS:
        return _export_transformers(model, dst)
    try:
        predictor = load(model)
        if not hasattr(predictor, "model"):
            _fail(f"{model} is a pipeline; export its parts (det, rec, cls) one by one")
        shape = _shape(input_shape) if input_shape else None
        path = do_export(predictor.model, predictor.config, dst, fmt, dynamic=dynamic, opset=opset, input_shape=shape)
        static_shape = None if dynamic else shape or tuple(example_input(predictor.config).shape)
        xs = demo_inputs(predictor.config, static_shape)
        worst = check_export(path, fmt, predictor.model, xs)
        fused = _onednn_graph_check(path, predictor.model, xs) if fmt == "torchscript" and not dynamic else None
    except PtocrError as e:
        _fail(str(e))
    shapes = ", ".join(sorted({"x".join(map(str, x.shape)) for x in xs}))
    click.echo(f"{path}: {fmt}, max |delta| vs PyTorch {worst:.2e} on {len(xs)} inputs from the demo scene ({shapes})")
    if isinstance(fused, str):
        click.echo(f"oneDNN Graph cannot run it ({fused}): load it without torch.jit.enable_onednn_fusion(True)")
    elif fused is not None:
        click.echo(f"with torch.jit.enable_onednn_fusion(True) (fused oneDNN partitions): max |delta| {fused:.2e}")
        worst = max(worst, fused)
    if worst > 1e-4:
        click.echo("ptocr: error: the export does not match PyTorch", err=True)
        sys.exit(1)


def _export_transformers(model: str, dst: str) -> None:
    """``export --format transformers``: the fused model as a transformers checkpoint folder,
    checked with transformers' own classes where transformers is installed."""
    try:
        predictor = load(model, optimize=False)
        if not hasattr(predictor, "model"):
            _fail(f"{model} is a pipeline; export its parts (det, rec, cls) one by one")
        path = export_transformers(predictor.model, predictor.config, getattr(predictor, "dictionary", None), dst)
        xs = demo_inputs(predictor.config, None)
        try:
            worst = check_export(path, TRANSFORMERS, predictor.model, xs)
        except PtocrError as e:
            click.echo(f"{path}: transformers checkpoint written, not checked ({e})")
            return
    except PtocrError as e:
        _fail(str(e))
    click.echo(f"{path}: transformers checkpoint, max |delta| vs PyTorch {worst:.2e} on {len(xs)} inputs "
               "from the demo scene (transformers' own classes)")
    if worst > 1e-4:
        click.echo("ptocr: error: the export does not match PyTorch", err=True)
        sys.exit(1)


def _onednn_graph_check(path, model, xs) -> float | str:
    """A static TorchScript export through PyTorch's oneDNN Graph fuser: its max |delta| vs
    PyTorch, or the fuser's error (it refuses some models)."""
    try:
        return check_export(path, "torchscript", model, xs, onednn_graph=True)
    except RuntimeError as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise PtocrError(f"--input-shape: expected NxCxHxW, e.g. 6x3x48x192; got {text!r}") from None


if __name__ == "__main__":
    main()
