"""Audit of export and bulk OCR: a classifier exported at its own input size, the export check
seeing NaN, shapes and options an export cannot take refused as errors, the oneDNN Graph fuser's
refusal reported; a folder holding a file name that is not UTF-8 read to the end and resumed,
--pages honoured with --out, a list file's byte order mark dropped."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
from torch import nn

from ptocr.errors import PtocrError
from ptocr.export import check_export, example_input, export
from ptocr.transforms.cls import cls_preprocess

TOLERANCE = 1e-4


def test_textline_classifier_exports_at_its_own_size(shared_dir, tmp_path):
    """PP-LCNet's config gives ``size`` (80 x 160), not ``image_shape``: the export must take the
    crops the pipeline feeds it, dynamic (any batch) and static (its one shape) alike."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from converter.convert import convert
    from ptocr.transforms import load_image

    conv = convert(shared_dir / "paddle_models" / "PP-LCNet_x0_25_textline_ori_infer")
    pre = cls_preprocess(conv.config["preprocess"])
    crops = [load_image(p) for p in sorted((shared_dir / "images" / "words" / "en").iterdir())[:3]]
    xs = [pre.batch(crops), pre(crops[0])[None]]
    path = export(conv.model, conv.config, tmp_path / "tl.onnx", "onnx")
    assert check_export(path, "onnx", conv.model, xs) <= TOLERANCE
    static = export(conv.model, conv.config, tmp_path / "tl1.onnx", "onnx", dynamic=False)
    dims = [d.dim_value for d in onnx.load(str(static)).graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, *pre.image_shape] == list(example_input(conv.config).shape)


class _Sqrt(nn.Module):
    def forward(self, x):
        return x.sqrt()  # NaN for the negative inputs


class _AbsSqrt(nn.Module):
    def forward(self, x):
        return x.abs().sqrt()


def test_check_export_counts_nan_as_a_mismatch(tmp_path):
    config = {"task": "cls", "preprocess": {"image_shape": [3, 8, 16]}}
    path = export(_Sqrt(), config, tmp_path / "sqrt.pt", "torchscript")
    x = example_input(config, batch=2).numpy()
    assert check_export(path, "torchscript", _AbsSqrt(), [x]) > TOLERANCE  # NaN where PyTorch has numbers
    assert check_export(path, "torchscript", _Sqrt(), [x]) == 0.0  # NaN in the same places: a match


def _cls_model():
    from ptocr.architectures import get_architecture
    from ptocr.models.build import build_model

    arch = get_architecture("ch_ppocr_mobile_v2.0_cls")
    return build_model(arch["model"]), arch


@pytest.mark.parametrize("shape, message", [((6, 1, 48, 192), "takes 3 channels"),
                                            ((1, 3, 8, 8), "does not take inputs of shape 1x3x8x8")])
def test_an_input_shape_the_model_cannot_take_is_a_ptocr_error(tmp_path, shape, message):
    """``ptocr export --static --input-shape`` with such a shape: exit 2 and a line, not a traceback."""
    model, arch = _cls_model()
    with pytest.raises(PtocrError, match=message):
        export(model, arch, tmp_path / "cls.pt", "torchscript", dynamic=False, input_shape=shape)
    assert not list(tmp_path.iterdir())


def test_a_recognizer_input_height_its_neck_cannot_take_is_a_ptocr_error(tmp_path):
    # 96 pixels high leaves a feature map of height 2, which the SVTR neck (Im2Seq) refuses.
    from ptocr.architectures import get_architecture
    from ptocr.models.build import build_model

    arch = get_architecture("ch_PP-OCRv4_rec")
    with pytest.raises(PtocrError, match="does not take inputs of shape 2x3x96x320 .*height 1"):
        export(build_model(arch["model"]), arch, tmp_path / "rec.pt", "torchscript", dynamic=False,
               input_shape=(2, 3, 96, 320))
    assert not list(tmp_path.iterdir())


def test_an_opset_is_refused_outside_onnx(tmp_path):
    model, arch = _cls_model()
    with pytest.raises(PtocrError, match="opset is for ONNX"):
        export(model, arch, tmp_path / "cls.pt", "torchscript", opset=13)
    assert not list(tmp_path.iterdir())


def _unreadable_pipeline():
    """A pipeline every input of which fails to load: the bulk engine calls no model."""
    from ptocr.transforms import load_image

    steps = SimpleNamespace(models=[], stages=[], load=lambda image: (load_image(image), None))
    return SimpleNamespace(bulk_steps=lambda: steps)


def test_a_file_name_that_is_not_utf8_does_not_stop_the_run(tmp_path):
    """A folder holding a Latin-1 file name: its line is written (as \\u escapes) and the run goes
    on to the next input; a rerun finds every input done."""
    from ptocr import bulk_cli

    odd = tmp_path / os.fsdecode(b"caf\xe9.png")
    try:
        odd.write_bytes(b"not an image")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system does not take a non-UTF-8 file name")
    (tmp_path / "z.png").write_bytes(b"not an image either")
    out = tmp_path / "results.jsonl"
    assert bulk_cli.run([str(tmp_path)], _unreadable_pipeline, bulk_out=str(out)) == 2
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["image"] for r in records] == [str(odd), str(tmp_path / "z.png")]
    assert all("error" in r for r in records)
    assert bulk_cli.run([str(tmp_path)], _unreadable_pipeline, bulk_out=str(out)) == 0  # all done: nothing read
    assert out.read_text(encoding="utf-8").count("\n") == 2


def _failing_load(image):
    from ptocr.errors import ImageError

    raise ImageError("not read here")


def test_bulk_run_reads_only_the_pages_asked_for(tmp_path):
    """``ptocr ocr doc.pdf --pages 2 --out r.jsonl`` reads page 2 only, as without --out (each page
    once), and a rerun with more pages reads only the new ones."""
    from test_pdf import PAGES, write_pdf

    from ptocr import bulk_cli

    pdf = write_pdf(tmp_path / "two.pdf", PAGES)
    steps = SimpleNamespace(models=[], stages=[], load=_failing_load)  # no model: every page a failed line
    build = lambda: SimpleNamespace(bulk_steps=lambda: steps)  # noqa: E731
    out = tmp_path / "r.jsonl"
    assert bulk_cli.run([str(pdf)], build, bulk_out=str(out), pages=[2, 2]) == 1
    assert [json.loads(line)["page"] for line in out.read_text(encoding="utf-8").splitlines()] == [2]
    assert bulk_cli.run([str(pdf)], build, bulk_out=str(out), pages=[1, 2]) == 1
    assert [json.loads(line)["page"] for line in out.read_text(encoding="utf-8").splitlines()] == [2, 1]


def test_a_page_that_cannot_be_rendered_fails_alone(tmp_path, monkeypatch):
    """A PDF page PDFium cannot render (here: page 1, too large) is that page's error line, not the
    document's: the pages after it are read, and a rerun does not take the PDF as done."""
    from test_pdf import PAGES, write_pdf

    from ptocr import bulk_cli, pdf

    real, calls = pdf.render_scale, []

    def first_too_large(size, *args):
        calls.append(size)
        if len(calls) == 1:
            raise pdf.PdfError("a 99999 x 99999 pt page is too large to render")
        return real(size, *args)

    monkeypatch.setattr(pdf, "render_scale", first_too_large)
    doc = write_pdf(tmp_path / "two.pdf", PAGES)
    read = []
    steps = SimpleNamespace(models=[], stages=[], load=lambda image: (read.append(image.shape), _failing_load(image)))
    build = lambda: SimpleNamespace(bulk_steps=lambda: steps)  # noqa: E731
    out = tmp_path / "r.jsonl"
    assert bulk_cli.run([str(doc)], build, bulk_out=str(out)) == 2
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(line.get("page"), "cannot be rendered" in line["error"]) for line in lines] == [(1, True), (2, False)]
    assert "two.pdf" in lines[0]["error"] and len(read) == 1  # page 2 was rendered and read


def test_onednn_graph_refusal_is_reported_not_an_export_failure(tmp_path, monkeypatch):
    """The fuser may refuse a model: ``ptocr export`` then says so and keeps the (checked) export,
    which needs the fuser's RuntimeError, not check_export's PtocrError."""
    from contextlib import contextmanager

    from ptocr import cli, export as export_module

    @contextmanager
    def refusing():
        raise RuntimeError("oneDNN Graph: unsupported pattern")
        yield

    model, arch = _cls_model()
    model.eval()
    path = export(model, arch, tmp_path / "cls.pt", "torchscript", dynamic=False)
    xs = [example_input(arch).numpy()]
    assert check_export(path, "torchscript", model, xs) <= TOLERANCE
    monkeypatch.setattr(export_module, "onednn_fusion", refusing)
    assert "unsupported pattern" in cli._onednn_graph_check(path, str(path), model, xs)


def test_a_list_with_a_byte_order_mark_names_its_first_image(tmp_path):
    from ptocr.bulk_cli import expand_inputs

    listing = tmp_path / "list.txt"
    listing.write_bytes("\ufeffa.jpg\r\nb.jpg\r\n".encode("utf-8"))  # as Windows Notepad saves it
    assert expand_inputs([str(listing)]) == ["a.jpg", "b.jpg"]
