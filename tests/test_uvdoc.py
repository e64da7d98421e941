"""UVDoc, PaddleOCR 3.x's document unwarping (``use_doc_unwarping=True``), against its references.

PaddleX's official ``UVDoc_infer`` program is not in ../shared; ``tests/fixtures/paddle_graphs/UVDoc_infer``
is the same network exported from paddlex 3.7.2's own ``UVDocNet`` by
``tools/export_uvdoc_program.py`` (Paddle 3.3.1, the program without weights). Its weights are seeded and calibrated on real scenes
(``verification.seeding``). Against Paddle Inference it is an entry of the parity suite
(``tests/test_parity.py``, kind "exported": meshes within the parity bound, unwarped uint8 pages the
same but for rounding ties, identical in float64); here:

- the converter finds UVDoc and places every parameter by the graph;
- transformers' ``UVDocModel`` (a test extra), built from the folder ``ptocr export`` writes,
  computes the same mesh, and the folder converts back to the same tensors;
- the 3.x pipeline unwarps after the orientation step and before detection, in bulk reading too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import ptocr
from converter.convert import convert
from ptocr.errors import PtocrError
from ptocr.export import export_transformers
from ptocr.pipeline3 import DOC_UNWARPING_MODEL, OCR3, bundle_doc_parts
from ptocr.postprocess.unwarp import apply_mesh, page_input, to_image
from ptocr.transforms import load_image
from verification.parity import EXACT_TOLERANCE, TOLERANCE
from verification.seeding import seed_and_calibrate

PROGRAM = Path(__file__).parent / "fixtures" / "paddle_graphs" / "UVDoc_infer"
SCENES = ("00009282.jpg", "ger_1.jpg")  # a square page and a wide one, both small


@pytest.fixture(scope="module")
def scenes(shared_dir):
    return [shared_dir / "images" / "scenes" / n for n in SCENES]


@pytest.fixture(scope="module")
def seeded(scenes, tmp_path_factory):
    """The program with seeded weights, batch norms calibrated on the two scenes."""
    return seed_and_calibrate(PROGRAM, tmp_path_factory.mktemp("uvdoc") / "UVDoc_infer", scenes, arch="UVDoc")


@pytest.fixture(scope="module")
def unwarper(seeded):
    return ptocr.load(seeded)


def test_the_converter_finds_uvdoc_and_places_every_parameter(seeded):
    conv = convert(seeded)  # the architecture from inference.yml's model name
    assert conv.arch_name == "UVDoc" and conv.config["task"] == "unwarp"
    state, tensors = conv.model.state_dict(), conv.source.tensors
    placed = {e.target: e.source for e in conv.mapping.entries}
    slope = "head.out_point_positions2D.conv_down.activation.weight"
    np.testing.assert_array_equal(state[slope].numpy(), tensors[placed[slope]])
    assert sum(not k.endswith("num_batches_tracked") for k in state) == len(tensors) == 251


def test_transformers_computes_the_same_mesh_and_reads_back(seeded, scenes, tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers (the test extra) is not installed")
    conv = convert(seeded)
    model = conv.model.eval()
    folder = export_transformers(model, conv.config, None, tmp_path / "tf")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "uvdoc" and config["architectures"] == ["UVDocModel"]
    tm, info = transformers.UVDocModel.from_pretrained(str(folder), local_files_only=True, output_loading_info=True)
    assert not [k for k in info["missing_keys"] if "num_batches" not in k] and not info["unexpected_keys"]
    t64 = copy.deepcopy(tm).double().eval()
    m64 = copy.deepcopy(model).double()
    # transformers' image processor resamples with torch's bilinear weights, PaddleX with Paddle's
    # (ptocr): the networks are compared on a page already at their input size.
    x = torch.from_numpy(page_input(cv2.resize(load_image(scenes[0]), (488, 712))))
    with torch.no_grad():
        assert (tm.eval()(x).last_hidden_state - model(x)).abs().max().item() <= TOLERANCE
        assert (t64(x.double()).last_hidden_state - m64(x.double())).abs().max().item() <= EXACT_TOLERANCE
    back = convert(folder)
    assert back.arch_name == "UVDoc" and back.source.format == "transformers"
    want = model.state_dict()
    for k, v in back.model.state_dict().items():
        torch.testing.assert_close(v, want[k], rtol=0, atol=0, msg=k)


def test_ptocr_export_writes_transformers_and_onnx(seeded, tmp_path):
    """Both exports checked against PyTorch by the command itself (exit 0: within 1e-4); the ONNX
    graph is the network, the page's size free (Paddle's resampling weights computed in the graph)."""
    pytest.importorskip("transformers", reason="transformers (the test extra) is not installed")
    pytest.importorskip("onnxruntime", reason="onnxruntime (the test extra) is not installed")
    from click.testing import CliRunner

    from ptocr.cli import main
    from ptocr.export import run_exported

    res = CliRunner().invoke(main, ["export", str(seeded), str(tmp_path / "tf"), "--format", "transformers"])
    assert res.exit_code == 0 and "transformers checkpoint, max |delta|" in res.output, res.output
    res = CliRunner().invoke(main, ["export", str(seeded), str(tmp_path / "uvdoc.onnx")])
    assert res.exit_code == 0 and "1x3x712x488" in res.output, res.output  # and the scene at its own size
    page = np.random.default_rng(2).random((2, 3, 97, 1500), dtype=np.float32)  # a size nothing was traced at
    with torch.inference_mode():
        want = ptocr.load(seeded).model(torch.from_numpy(page)).numpy()
    assert np.abs(run_exported(tmp_path / "uvdoc.onnx", "onnx", [page])[0] - want).max() <= TOLERANCE


def test_pages_are_scaled_and_cut_as_paddlex_does():
    img = np.random.default_rng(1).integers(0, 256, (5, 7, 3), np.uint8)
    x = page_input(img)
    assert x.dtype == np.float32 and x.shape == (1, 3, 5, 7)
    np.testing.assert_array_equal(x[0].transpose(1, 2, 0), img.astype(np.float32) * np.float32(1 / 255))
    # times float32 255, then cast: truncated, never rounded (PaddleX's DocTrPostProcess)
    page = np.array([0.0, 0.5 / 255, 1.99 / 255, 254.99 / 255, 1.0], np.float32).reshape(1, 1, 5).repeat(3, 0)
    assert to_image(page)[0, :, 0].tolist() == [0, 0, 1, 254, 255]


def test_an_identity_mesh_gives_the_page_back_but_for_the_cut(scenes):
    img = load_image(scenes[1])
    h, w = img.shape[:2]
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, 45, dtype=torch.float64),
                            torch.linspace(-1, 1, 31, dtype=torch.float64), indexing="ij")
    mesh = torch.stack([xs, ys])[None]
    page = torch.from_numpy(page_input(img))
    out = to_image(apply_mesh(page, mesh)[0].numpy())
    assert out.shape == img.shape
    # each pixel samples itself to float32 rounding, and the cast truncates: k or k - 1
    assert set(np.unique(img.astype(int) - out.astype(int))) <= {0, 1}
    assert (apply_mesh(page.double(), mesh).dtype, apply_mesh(page.half(), mesh.half()).dtype) == (
        torch.float64, torch.float32)  # the sampling never runs in half precision


@pytest.fixture(scope="module")
def v5_pair(shared_dir):
    models = shared_dir / "paddle_models"
    if not (models / "PP-OCRv5_mobile_det_infer").is_dir():
        pytest.skip("PP-OCRv5 mobile models not in ../shared")
    return ptocr.load(models / "PP-OCRv5_mobile_det_infer"), ptocr.load(models / "PP-OCRv5_mobile_rec_infer")


def test_the_3x_pipeline_unwarps_before_detecting(v5_pair, unwarper, scenes):
    det, rec = v5_pair
    ocr = OCR3(det, rec, doc_unwarp=unwarper)
    page = unwarper(load_image(scenes[1]))
    result = ocr(scenes[1])
    np.testing.assert_array_equal(result.image, page)
    assert result.texts == OCR3(det, rec)(page).texts
    data = result.to_paddleocr()
    assert data["model_settings"]["use_doc_preprocessor"] is True
    assert data["doc_preprocessor_res"]["model_settings"] == {"use_doc_orientation_classify": False,
                                                              "use_doc_unwarping": True}
    plain = ocr(scenes[1], use_doc_unwarping=False)
    np.testing.assert_array_equal(plain.image, load_image(scenes[1]))
    assert "doc_preprocessor_res" not in plain.to_paddleocr()
    bulk = ocr.read_many(scenes, batch_size=2)
    assert [r.texts for r in bulk] == [ocr(s).texts for s in scenes]
    np.testing.assert_array_equal(bulk[1].image, page)


def test_unwarping_stays_in_float32_in_a_half_precision_pipeline(shared_dir, seeded):
    models = shared_dir / "paddle_models"
    ocr = OCR3(models / "PP-OCRv5_mobile_det_infer", models / "PP-OCRv5_mobile_rec_infer", doc_unwarp=seeded,
               dtype="bfloat16")
    assert (ocr.det.dtype, ocr.doc_unwarp.dtype) == (torch.bfloat16, torch.float32)


def test_unwarping_needs_its_model(v5_pair, unwarper):
    det, rec = v5_pair
    with pytest.raises(PtocrError, match="use_doc_unwarping=True needs a document unwarping model"):
        OCR3(det, rec, use_doc_unwarping=True)
    with pytest.raises(PtocrError, match="use_doc_unwarping=True needs a document unwarping model"):
        OCR3(det, rec).with_settings(use_doc_unwarping=True)
    with pytest.raises(PtocrError, match="is a det model, not a unwarp model"):
        OCR3(det, rec, doc_unwarp=det)
    assert OCR3(det, rec, doc_unwarp=unwarper, use_doc_unwarping=False).doc_unwarp is None
    assert bundle_doc_parts(None, None, {"use_doc_unwarping": True}) == (None, DOC_UNWARPING_MODEL)
    assert bundle_doc_parts("mine", None, {"use_doc_orientation_classify": True}) == ("mine", None)


def test_a_bundle_takes_the_zoos_uvdoc_when_the_switch_is_on(v5_pair, unwarper, monkeypatch):
    """``ptocr.load("PP-OCRv5_mobile", use_doc_unwarping=True)`` as PaddleOCR 3.x's switch: the
    zoo's UVDoc joins the bundle's parts (the parts here stand in for the zoo's downloads)."""
    det, rec = v5_pair
    asked = []

    def by_name(source, task, **kw):
        asked.append((source, task))
        return {"det": det, "rec": rec, "unwarp": unwarper}.get(task)

    monkeypatch.setattr("ptocr.pipeline3.as_predictor", by_name)
    ocr = OCR3.from_pretrained("PP-OCRv5_mobile", use_textline_orientation=False, use_doc_unwarping=True)
    assert ocr.doc_unwarp is unwarper and ("UVDoc", "unwarp") in asked
    assert not [a for a in asked if a[1] == "cls"]  # nor the doc orientation model, left off



def test_bulk_jsonl_says_the_boxes_are_on_the_unwarped_page(v5_pair, unwarper, scenes, tmp_path):
    from ptocr.jsonl_results import record

    det, rec = v5_pair
    result = OCR3(det, rec, doc_unwarp=unwarper)(scenes[1])
    line = record("ger_1.jpg", result)
    assert line["doc_preprocessor"] == {"model_settings": {"use_doc_orientation_classify": False,
                                                           "use_doc_unwarping": True}, "angle": -1}
    assert "doc_preprocessor" not in record("ger_1.jpg", OCR3(det, rec)(scenes[1]))


def test_torch_export_keeps_the_page_size_free(seeded):
    """What ptocr export --format aoti compiles: torch.export with every spatial axis free. Its
    graph must not specialize to the traced page size (the resampling weights follow the page)."""
    model = ptocr.load(seeded, optimize=False).model
    auto = torch.export.Dim.AUTO
    program = torch.export.export(model, (torch.rand(2, 3, 640, 480),), dynamic_shapes=({0: auto, 2: auto, 3: auto},),
                                  strict=False)
    page = torch.rand(2, 3, 97, 1500)
    with torch.inference_mode():
        assert (program.module()(page) - model(page)).abs().max().item() <= TOLERANCE
