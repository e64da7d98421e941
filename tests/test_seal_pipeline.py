"""PaddleOCR 3.x's OCR pipeline with text_type "seal" (paddlex's SealOCR): polygons, sorted by
their top, each crop rectified along its curve, no rec_boxes.

The reference (tests/fixtures/pipeline_reference/ppocrv5_mobile_seal.json) is paddlex 3.7.2's own
pipeline on the 17 real scenes, over ../shared's trained v5 mobile detector made to give polygons
(its inference.yml stating ``box_type: poly``, verification/poly_detector.py; ../shared has no seal
detector, whose network is the v4 detectors') and the v5 mobile recognizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import det_params

from ptocr.errors import PtocrError
from ptocr.pipeline3 import OCR3, SEAL_DEFAULTS, SEAL_MODELS, seal_parts
from verification.poly_detector import poly_detector_folder

REPO = Path(__file__).resolve().parents[1]
REFERENCES = REPO / "tests" / "fixtures" / "pipeline_reference"
REFERENCE = REFERENCES / "ppocrv5_mobile_seal.json"  # the 17 scenes
# a synthetic round seal (tools/synthetic_seal.py): text along arcs, which the scenes barely have
ARC_REFERENCE = REFERENCES / "ppocrv5_mobile_seal_arc.json"
SCORE_TOLERANCE = 1e-3  # as the general pipeline's comparison (tests/test_pipeline.py)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def poly_det(shared_dir, reference, tmp_path_factory) -> Path:
    """The reference's detector folder, converted: box_type poly read from its inference.yml."""
    from ptocr.conversion import convert_once

    work = tmp_path_factory.mktemp("seal_det")
    folder = reference["model_folders"]["text_detection"]
    copy = poly_detector_folder(shared_dir / "paddle_models" / folder, work / folder)
    return convert_once(copy, work / "det.safetensors")


@pytest.fixture(scope="module")
def seal_ocr(poly_det, v5_models) -> OCR3:
    return OCR3(poly_det, v5_models["rec"], text_type="seal")


def test_the_reference_is_paddlex_seal_pipeline(reference):
    assert reference["text_type"] == "seal" and reference["paddlex"].startswith("3.7.")
    config = reference["settings"]["paddlex_config"]
    assert config["text_type"] == "seal"
    assert config["SubModules"]["TextRecognition"]["batch_size"] == SEAL_DEFAULTS["text_recognition_batch_size"] == 1
    assert len(reference["images"]) == 17 and sum(map(len, reference["images"].values())) > 300
    # polygons, not quads: the seal path is what was recorded
    assert max(len(line["poly"]) for lines in reference["images"].values() for line in lines) > 8


def test_a_detector_stating_poly_converts_to_polygons_and_general_refuses_it(poly_det, v5_models):
    ocr = OCR3(poly_det, v5_models["rec"], text_type="seal")
    assert ocr.det.post.box_type == "poly" and ocr.det_post.box_type == "poly"
    with pytest.raises(PtocrError, match="text_type='seal'"):
        OCR3(poly_det, v5_models["rec"])
    with pytest.raises(PtocrError, match="text_type must be one of general, seal"):
        OCR3(poly_det, v5_models["rec"], text_type="stamp")
    with pytest.raises(PtocrError, match="return_word_box"):
        OCR3(poly_det, v5_models["rec"], text_type="seal", return_word_box=True)


def test_seal_defaults_are_the_ones_paddlex_ran_with(seal_ocr, reference):
    assert det_params(seal_ocr) == reference["effective_args"]["text_det_params"]
    assert seal_ocr.settings == SEAL_DEFAULTS and seal_ocr.textline is None


def _outline_bound(poly: np.ndarray, ratio: float) -> float:
    """How far one map pixel flipped at the threshold can move a polygon's outline (image px):
    the contour moves by a map pixel (1 / ratio), each approxPolyDP outline lies within its
    epsilon (0.2 % of the perimeter) of its contour, and both are rounded to whole pixels."""
    perimeter = float(np.linalg.norm(np.diff(np.vstack([poly, poly[:1]]), axis=0), axis=1).sum())
    return 1.0 / ratio + 2 * 0.002 * perimeter + 1.0


def _images(reference: dict, shared_dir: Path) -> dict[str, Path]:
    if "inputs" in reference:  # files of this repository
        return {Path(p).name: REPO / p for p in reference["inputs"]}
    return {name: shared_dir / reference["images_folder"] / name for name in reference["images"]}


def test_the_arc_reference_reaches_the_rectifier():
    """Of the synthetic seal's lines, some are straightened by the rectifier (the scenes' are
    nearly all rectangles): the comparison below covers that path end to end."""
    from ptocr.transforms.seal_crop import poly_crop

    ref = json.loads(ARC_REFERENCE.read_text(encoding="utf-8"))
    page = cv2.imread(str(REPO / ref["inputs"][0]))
    branches = [poly_crop(page, np.asarray(line["poly"], np.int32), return_branch=True)[1]
                for line in ref["images"]["seal_arc.png"]]
    assert sum(b.startswith("curved_") for b in branches) >= 3, branches
    assert {"curved_horizontal", "curved_vertical"} <= set(branches), branches


@pytest.mark.parametrize("name", [REFERENCE.name, ARC_REFERENCE.name])
def test_seal_scenes_match_paddlex(seal_ocr, shared_dir, one_thread, name):
    """Every line: identical text, score within 1e-3, in paddlex's order; its polygon the same
    points, or, rarely, an outline within what one map pixel flipped at the
    threshold moves it. That happens where Paddle's float32 rounding straddles the threshold:
    japan_2.jpg line 23, map pixel (379, 401) is 0.19998 in Paddle, 0.20003 in ptocr's float32 and
    float64 alike, and approxPolyDP keeps two more corners. No rec_boxes; text_type seal."""
    from shapely.geometry import Polygon

    reference = json.loads((REFERENCES / name).read_text(encoding="utf-8"))
    paths = _images(reference, shared_dir)
    problems, total, other_outlines, worst_score = [], 0, [], 0.0
    for image, expected in reference["images"].items():
        got = seal_ocr(paths[image])
        ratio = min(seal_ocr.det_pre(got.image)[1][2:])
        if len(got) != len(expected):
            problems.append(f"{image}: {len(got)} lines, paddlex {len(expected)}")
        for k, (line, exp) in enumerate(zip(got, expected)):
            total += 1
            poly, want = np.asarray(line.box, dtype=np.float64), np.asarray(exp["poly"], dtype=np.float64)
            if not np.array_equal(poly, want):
                gap = Polygon(poly).exterior.hausdorff_distance(Polygon(want).exterior)
                other_outlines.append(f"{image}#{k}: {len(poly)} vs {len(want)} points, outline {gap:.2f} px off")
                if gap > _outline_bound(want, ratio):
                    problems.append(other_outlines[-1])
            if line.text != exp["text"]:
                problems.append(f"{image}#{k}: {line.text!r} vs {exp['text']!r}")
            worst_score = max(worst_score, abs(line.score - exp["score"]))
        paddle = got.to_paddleocr()
        assert paddle["text_type"] == "seal" and paddle["rec_boxes"] == [] and got["rec_boxes"].size == 0
    print(f"\n{name}: {total - len(problems)}/{total} lines match, other outlines: {other_outlines}, "
          f"max score gap {worst_score:.2e}")
    assert not problems, "\n".join(problems)
    assert total == sum(map(len, reference["images"].values()))
    assert len(other_outlines) <= total // 100, other_outlines  # threshold flips are rare, not the rule
    assert worst_score <= SCORE_TOLERANCE


def test_bulk_reading_takes_the_seal_steps(seal_ocr, reference, shared_dir, one_thread):
    """read_many batches through the same quads / crop steps: the same lines as read."""
    paths = [shared_dir / reference["images_folder"] / name for name in ("1.jpg", "00009282.jpg")]
    for one, many in zip(map(seal_ocr, paths), seal_ocr.read_many(paths)):
        assert many.texts == one.texts and many.text_type == "seal"
        assert [np.asarray(a.box).tolist() for a in many] == [np.asarray(a.box).tolist() for a in one]


def test_a_seal_result_prints_and_draws_its_polygons(seal_ocr, shared_dir, one_thread, capsys):
    got = seal_ocr(shared_dir / "images" / "scenes" / "1.jpg")
    assert sorted(len(line.box) for line in got) == [20, 37]  # polygons of their own lengths
    shown = got.str["res"]  # paddlex keeps seal polygons as a list of arrays
    assert [p.shape for p in shown["rec_polys"]] == [(20, 2), (37, 2)] and shown["text_type"] == "seal"
    got.print()
    assert "土地整治" in capsys.readouterr().out
    image = got.visualize()
    h, w = got.image.shape[:2]
    assert image.shape == (h, 2 * w, 3)
    inside = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inside, [np.asarray(got[0].box, np.int32)], 1)
    changed = np.any(image[:, :w] != got.image, axis=2)  # the drawn image, left half
    assert changed[inside == 1].mean() > 0.9 and changed[inside == 0].mean() < 0.5


def test_a_detector_yml_with_a_bad_box_type_is_refused(shared_dir, reference, tmp_path):
    from converter.errors import FormatError
    from ptocr.conversion import convert_once

    folder = reference["model_folders"]["text_detection"]
    copy = poly_detector_folder(shared_dir / "paddle_models" / folder, tmp_path / folder)
    yml = copy / "inference.yml"
    yml.write_text(yml.read_text(encoding="utf-8").replace("box_type: poly", "box_type: circle"), encoding="utf-8")
    with pytest.raises(FormatError, match=r"inference.yml: PostProcess: box_type must be .quad. or .poly."):
        convert_once(copy, tmp_path / "det.safetensors")
    assert not (tmp_path / "det.safetensors").exists()


def test_cli_reads_seal_text_and_switching_a_step_off_fetches_nothing(poly_det, v5_models, shared_dir, tmp_path,
                                                                     monkeypatch):
    """``ptocr ocr --set text_type=seal``; ``use_textline_orientation=false`` with the default bundle
    does not look for its textline model (an empty zoo, offline: looking would fail)."""
    from click.testing import CliRunner

    from ptocr.cli import main

    monkeypatch.setenv("PTOCR_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    image = str(shared_dir / "images" / "scenes" / "1.jpg")
    args = ["ocr", image, "--det", str(poly_det), "--rec", str(v5_models["rec"]), "--set", "use_textline_orientation=false"]
    runner = CliRunner()
    seal = runner.invoke(main, [*args, "--set", "text_type=seal"])
    assert seal.exit_code == 0, seal.output
    assert "2 lines" in seal.output and "土地整治" in seal.output
    general = runner.invoke(main, args)
    assert general.exit_code == 2 and "--set text_type=seal" in general.output
    # no model given: SealRecognition's, not the default bundle's nor the 2.x fallback's
    chosen = runner.invoke(main, ["ocr", image, "--set", "text_type=seal"])
    assert chosen.exit_code != 0 and "no usable weights for PP-OCRv4_server_seal_det" in chosen.output
    assert "instead" not in chosen.output


def test_seal_fills_the_parts_not_given_as_sealrecognition():
    assert seal_parts(None, None, None, None, {}) == (*SEAL_MODELS, False)
    assert seal_parts("d", None, None, None, {}) == ("d", SEAL_MODELS[1], False)
    assert seal_parts(None, None, None, None, {"text_recognition_model_dir": "r"}) == (SEAL_MODELS[0], None, False)
    assert seal_parts(None, None, "t", None, {}) == (*SEAL_MODELS, None)  # a textline model given: it runs
    assert seal_parts(None, None, None, True, {}) == (*SEAL_MODELS, True)
    with pytest.raises(PtocrError, match="lang choose general ones"):
        seal_parts(None, None, None, None, {"lang": "fr"})


def test_with_no_model_given_seal_loads_sealrecognitions_models(tmp_path, monkeypatch):
    """OCR3(text_type="seal") asks the zoo for SealRecognition's detector first (an empty zoo,
    offline: the error names what it looked for)."""
    from ptocr.zoo import WeightsNotFoundError

    monkeypatch.setenv("PTOCR_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="no usable weights for PP-OCRv4_server_seal_det"):
        OCR3(text_type="seal")
    with pytest.raises(WeightsNotFoundError, match="no usable weights for PP-OCRv6_medium_det"):
        OCR3()  # the general type keeps PaddleOCR 3.x's choice
