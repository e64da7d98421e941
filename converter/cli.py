"""``ptocr-convert``: convert a Paddle model folder or checkpoint to safetensors.

Exit codes: 0 converted; 2 bad input (unreadable or foreign files, wrong --arch, a
dictionary that does not fit, an existing output); 1 an internal error (a bug: please
report it with the traceback); 130, 143, 129 stopped by Ctrl-C, SIGTERM, SIGHUP (nothing
left at --dst: ``ptocr.interrupts``).
"""

from __future__ import annotations

import sys
import time

import click
from safetensors import SafetensorError

from ptocr.atomic import failure_reason
from ptocr.errors import PtocrError
from ptocr.interrupts import InterruptibleCommand

EXIT_BAD_INPUT = 2


@click.command(cls=InterruptibleCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--src", required=True, type=click.Path(),
              help="A Paddle model folder (Paddle 2 or 3) or its files' prefix (DIR/inference), a .pdparams "
                   "checkpoint, an .onnx file or a transformers folder.")
@click.option("--dst", required=True, type=click.Path(dir_okay=False), help="Output .safetensors file.")
@click.option("--arch", default=None,
              help="An architecture (see --list) or a zoo model name (it brings its dictionary and "
                   "settings); detected from the source when omitted.")
@click.option("--dict", "dict_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Character dictionary for recognizers (default: the first that fits the head of: the "
                   "source's own (inference.yml, ONNX metadata), the zoo's for the model it is named after, "
                   "the one beside it, the architecture's).")
@click.option("--use-space-char/--no-use-space-char", default=None,
              help="Whether the head has a final space class (default: the architecture's).")
@click.option("--submodel", default=None, help="Distillation sub-model to take (default: Student), or the key of the state dict "
                   "to take from a checkpoint dict holding several ({'model': ..., 'ema': ...}).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--print-map", is_flag=True, help="Print the Paddle -> PyTorch name map.")
@click.option("--list", "list_archs", is_flag=True, is_eager=True, expose_value=False,
              callback=lambda ctx, _, v: _list(ctx) if v else None, help="List known architectures and exit.")
def main(src, dst, arch, dict_path, use_space_char, submodel, force, print_map):
    """Convert a PaddleOCR model to a PyTorch safetensors file (paddlepaddle not needed)."""
    from converter.convert import convert
    from converter.writer import check_destination, write_converted

    if not src:  # Path("") is the working folder: an unset variable would convert whatever is there
        click.echo("ptocr-convert: error: --src is empty: give a Paddle model folder or file", err=True)
        sys.exit(EXIT_BAD_INPUT)
    try:
        t0 = time.perf_counter()
        # the output's place first (the dictionary's too, even for a model without one: see the
        # writer): no conversion only to learn it cannot be written
        check_destination(dst, force=force)
        conv = convert(src, arch, dictionary=dict_path, use_space_char=use_space_char, submodel=submodel)
        if arch is None:
            click.echo(f"detected architecture: {conv.arch_name}" + (f" ({conv.form})" if conv.form else ""))
        if print_map:
            click.echo(conv.mapping.report())
        dic_text = conv.dictionary.text() if conv.dictionary is not None else None
        try:
            written = write_converted(conv.state_dict, conv.config, dic_text, dst, force=force)
        except (OSError, SafetensorError) as e:  # the output side (unwritable folder, disk full): not a bug
            _write_failed(dst, e)
    except PtocrError as e:
        click.echo(f"ptocr-convert: error: {e}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    n_dropped = len(conv.mapping.dropped)
    click.echo(
        f"{conv.source.format} {conv.source.path} -> {written.weights}\n"
        f"  {len(conv.state_dict)} tensors, {n_dropped} source tensors dropped by rule, "
        f"sha256 {written.sha256}, {time.perf_counter() - t0:.2f} s"
    )
    for note in conv.source.notes:
        click.echo(f"  note: {note}")


def _write_failed(dst: str, e: OSError | SafetensorError) -> None:
    """An output that cannot be written: one line naming the file and why, exit 2. The writer
    has left nothing behind."""
    click.echo(f"ptocr-convert: error: cannot write {dst}: {failure_reason(e)}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _list(ctx):
    from ptocr.architectures import ARCHITECTURES, aliases_of

    for name, spec in sorted(ARCHITECTURES.items()):
        also = ", ".join(aliases_of(name))
        click.echo(f"{name:32s} {spec['task']}" + (f"  (also: {also})" if also else ""))
    ctx.exit(0)


if __name__ == "__main__":
    main()
