"""End-to-end OCR against the official PaddleOCR pipelines: 2.10 (``OCR``) and 3.x (``OCR3``).

The references (tests/fixtures/pipeline_reference/*.json) are what ``PaddleOCR(...).ocr(path,
cls=True)`` (2.10) and ``PaddleOCR(...).predict(path)`` (paddleocr 3.7) returned on
../shared/images/scenes with the same model folders, written by
tools/make_pipeline_reference.py; CI has no paddleocr runtime, only those files.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import converted_folders, det_params, intra_op_threads

import ptocr
from ptocr.errors import PtocrError
from ptocr.pipeline import OCR
from ptocr.pipeline3 import OCR3

FIXTURES = Path(__file__).parent / "fixtures" / "pipeline_reference"
REFERENCE = FIXTURES / "ppocrv4_mobile.json"
# PaddleOCR 3.x (PP-OCRv5 mobile det + rec, PP-LCNet_x0_25 textline orientation), with and
# without the textline orientation step.
V5_REFERENCES = ("ppocrv5_mobile_textline.json", "ppocrv5_mobile.json")
# As the 3.x test below: every line identical, corners within 1 px (measured here: 345/345
# identical, 0 px; 1 px leaves room for a rounding tie at a box edge on another CPU).
BOX_TOLERANCE_PX = 1.0


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def model_files(shared_dir, reference, tmp_path_factory) -> dict[str, Path]:
    """The reference's three Paddle folders, converted once to .safetensors."""
    return converted_folders(shared_dir, tmp_path_factory.mktemp("pipeline_models"),
                             {arg.split("_")[0]: folder for arg, folder in reference["models"].items()})


@pytest.fixture(scope="module")
def ocr(model_files):
    with intra_op_threads(1):
        yield OCR(model_files["det"], model_files["rec"], model_files["cls"])


def _max_corner_gap(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def test_defaults_equal_paddleocr(ocr, reference):
    """ptocr's configs give the settings PaddleOCR 2.10 ran with for PP-OCRv4."""
    args = reference["effective_args"]
    det_pre, det_post = ocr.det.pre, ocr.det.post
    assert (det_pre.limit_side_len, det_pre.limit_type) == (args["det_limit_side_len"], args["det_limit_type"])
    assert (det_post.thresh, det_post.box_thresh, det_post.unclip_ratio) == (
        args["det_db_thresh"], args["det_db_box_thresh"], args["det_db_unclip_ratio"])
    assert (det_post.use_dilation, det_post.score_mode, det_post.box_type) == (
        args["use_dilation"], args["det_db_score_mode"], args["det_box_type"])
    shape = tuple(int(v) for v in args["rec_image_shape"].split(","))
    assert (ocr.rec.pre.image_shape, ocr.rec.pre.batch_size) == (shape, args["rec_batch_num"])
    shape = tuple(int(v) for v in args["cls_image_shape"].split(","))
    assert (ocr.cls.pre.image_shape, ocr.cls.pre.batch_size) == (shape, args["cls_batch_num"])
    assert (ocr.cls.thresh, ocr.cls.post.labels) == (args["cls_thresh"], args["label_list"])
    assert ocr.drop_score == args["drop_score"]
    assert ocr.rec.dictionary.classes[-1] == " "  # use_space_char
    assert args["use_space_char"] is True


def test_scenes_match_paddleocr(ocr, reference, shared_dir):
    """Same lines, in the same order: every line with identical text and its box within 1 px."""
    total = same_text = 0
    worst_gap, worst_score, problems = 0.0, 0.0, []
    images = reference["images"]
    assert len(images) == 17
    for name, expected in images.items():
        got = ocr(shared_dir / reference["images_folder"] / name)
        total += max(len(got), len(expected))
        if len(got) != len(expected):
            problems.append(f"{name}: {len(got)} lines, PaddleOCR {len(expected)}")
        for k, (line, ref) in enumerate(zip(got, expected)):
            gap = _max_corner_gap(line.box, ref["box"])
            worst_gap = max(worst_gap, gap)
            if gap > BOX_TOLERANCE_PX:
                problems.append(f"{name}#{k}: box {line.box} vs {ref['box']} ({gap:.1f} px)")
            if line.text == ref["text"]:
                same_text += 1
                worst_score = max(worst_score, abs(line.score - ref["score"]))
            else:
                problems.append(f"{name}#{k}: {line.text!r} vs {ref['text']!r}")
    print(f"\npipeline vs PaddleOCR 2.10: {same_text}/{total} lines with identical text, "
          f"max box corner gap {worst_gap:g} px, max score gap {worst_score:.2e}")
    assert not problems, "\n".join(problems)
    assert same_text == total == sum(map(len, images.values()))
    # Same text from the same crops: the CTC scores differ only by fp32 noise.
    assert worst_score < 1e-3


@pytest.fixture(scope="module")
def small_scene(shared_dir) -> Path:
    return shared_dir / "images" / "scenes" / "ger_1.jpg"


@pytest.fixture(scope="module")
def small_result(ocr, small_scene):
    return ocr(small_scene)


def _as_lines(result):
    return [(line.box, line.text) for line in result]


def test_input_kinds_read_alike(ocr, small_scene, small_result):
    """Path, BGR array, BGRA, 16-bit and gray inputs of the same pixels read alike."""
    bgr = cv2.imread(str(small_scene))
    assert len(small_result) > 0
    rgba = np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])
    many = ocr([bgr, rgba, bgr.astype(np.uint16) * 257])
    assert isinstance(many, list) and [_as_lines(r) for r in many] == [_as_lines(small_result)] * 3
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert _as_lines(ocr(gray)) == _as_lines(ocr(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)))


def test_pil_input(ocr, small_scene, small_result):
    image = pytest.importorskip("PIL.Image")
    pil = image.fromarray(cv2.imread(str(small_scene))[:, :, ::-1])  # PIL images are RGB
    assert _as_lines(ocr(pil)) == _as_lines(small_result)


def test_result_json_and_angle(small_result, small_scene):
    assert small_result.source == str(small_scene)
    data = json.loads(small_result.to_json())
    assert [d["text"] for d in data] == small_result.texts
    assert all(len(d["box"]) == 4 and all(len(p) == 2 for p in d["box"]) for d in data)
    assert all(d["angle"] in (0, 180) and 0.5 <= d["score"] <= 1 for d in data)


def test_visualization(small_result, tmp_path):
    with warnings.catch_warnings():  # without a CJK font a warning is expected, not an error
        warnings.simplefilter("ignore")
        path = small_result.save_visualization(tmp_path / "vis")
    img = cv2.imread(str(path))
    h, w = small_result.image.shape[:2]
    assert path.suffix == ".png" and img.shape == (h, 2 * w, 3)
    right = img[:, w:]
    assert (right < 128).any() and (right == 255).mean() > 0.5  # text drawn on a white panel


def test_ocr_rejects_wrong_task(model_files):
    with pytest.raises(PtocrError, match="not a det model"):
        OCR(model_files["rec"], model_files["rec"])
    with pytest.raises(PtocrError, match="expected a predictor"):
        OCR(42, model_files["rec"])


def test_predictors_accepted_and_exported(ocr):
    again = ptocr.OCR(det=ocr.det, rec=ocr.rec, cls=None)
    assert again.det is ocr.det and again.cls is None


def test_cli_ocr(model_files, small_scene, tmp_path):
    from click.testing import CliRunner

    from ptocr.cli import main

    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    models = ["--det", str(model_files["det"]), "--rec", str(model_files["rec"]), "--cls", str(model_files["cls"])]
    out = tmp_path / "out.json"
    runner = CliRunner()
    with intra_op_threads(1):
        ok = runner.invoke(main, ["ocr", str(small_scene), "--pipeline", "ch_PP-OCRv4", *models, "--json", str(out),
                                  "--vis", str(tmp_path / "v")])
        badrun = runner.invoke(main, ["ocr", str(bad), "--pipeline", "ch_PP-OCRv4", *models])
    assert ok.exit_code == 0, ok.output
    data = json.loads(out.read_text(encoding="utf-8"))
    assert list(data) == [str(small_scene)] and data[str(small_scene)][0]["text"]
    assert (tmp_path / "v" / "ger_1.png").is_file()
    assert badrun.exit_code == 2
    assert "not_an_image.jpg" in badrun.stderr and "Traceback" not in badrun.output


# ---- PaddleOCR 3.x's pipeline (PP-OCRv5) ----

V5_CORNER_TOLERANCE_PX = 1.0
V5_SCORE_TOLERANCE = 1e-3


def _load_reference(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def v5_files(shared_dir, tmp_path_factory) -> dict[str, Path]:
    """The 3.x reference's Paddle folders (the same in both fixtures), converted once."""
    ref = _load_reference(V5_REFERENCES[0])
    return converted_folders(shared_dir, tmp_path_factory.mktemp("pipeline3_models"), ref["model_folders"])


def _ocr3(files, textline: bool, **kw) -> OCR3:
    return OCR3(files["text_detection"], files["text_recognition"],
                files["textline_orientation"] if textline else None, **kw)


def test_v5_references_say_how_they_were_made():
    for name in V5_REFERENCES:
        ref = _load_reference(name)
        assert (ref["paddleocr"], ref["paddlepaddle"]) == ("3.7.0", "3.3.1") and ref["paddlex"].startswith("3.7.")
        s = ref["settings"]
        assert s["textline_orientation_batch_size"] == 1 and s["enable_mkldnn"] is False and s["device"] == "cpu"
        assert s["use_doc_orientation_classify"] is False and s["use_doc_unwarping"] is False
        assert s["use_textline_orientation"] is name.endswith("_textline.json")
        assert len(ref["images"]) == 17


@pytest.mark.parametrize("name", V5_REFERENCES)
def test_v5_defaults_equal_paddleocr3(v5_files, name):
    """OCR3's settings are the ones PaddleOCR 3.x reported running with."""
    ref = _load_reference(name)
    ocr = _ocr3(v5_files, ref["settings"]["use_textline_orientation"])
    assert det_params(ocr) == ref["effective_args"]["text_det_params"]
    assert ocr.settings["text_rec_score_thresh"] == ref["effective_args"]["text_rec_score_thresh"]
    assert ref["effective_args"]["model_settings"] == {
        "use_doc_preprocessor": False, "use_textline_orientation": ref["settings"]["use_textline_orientation"]}


def test_v5_settings_for_one_call(v5_files, shared_dir, one_thread):
    """``ocr(image, **settings)`` (PaddleOCR 3.x's per-call predict keywords) reads with them
    once; ``with_settings`` shares the models; the pipeline itself is left as it was."""
    ocr = _ocr3(v5_files, False)
    image = shared_dir / "images" / "scenes" / "ger_1.jpg"
    base = ocr(image)
    strict = ocr(image, text_det_box_thresh=0.8, text_rec_score_thresh=0.95)
    assert 0 < len(strict) < len(base) and all(line.score >= 0.95 for line in strict)
    assert strict.settings["text_det_params"]["box_thresh"] == 0.8
    assert ocr.settings["text_det_box_thresh"] == 0.6 and ocr(image).texts == base.texts
    worded = ocr.with_settings(return_word_box=True)
    assert worded.det is ocr.det and worded.rec is ocr.rec and worded.settings["return_word_box"]
    assert worded(image).text_word is not None and ocr(image).text_word is None
    with pytest.raises(PtocrError, match="unknown settings"):
        ocr(image, text_det_thres=0.5)


def test_v5_step_switches_as_paddleocr3(v5_files, shared_dir, one_thread):
    """PaddleOCR 3.x's use_textline_orientation / use_doc_orientation_classify /
    use_doc_unwarping, at construction and per call: False skips the step, True needs its model
    (unwarping: never available)."""
    image = shared_dir / "images" / "scenes" / "japan_1.jpg"
    full = _ocr3(v5_files, True)
    without = _ocr3(v5_files, False)
    once = full(image, use_textline_orientation=False, use_doc_unwarping=False)
    assert once.texts == without(image).texts and set(once.textline_orientation_angles) == {-1}
    assert full.textline is not None and set(full(image).textline_orientation_angles) <= {0, 1}
    built = OCR3(v5_files["text_detection"], v5_files["text_recognition"], v5_files["textline_orientation"],
                 use_textline_orientation=False)
    assert built.textline is None
    with pytest.raises(PtocrError, match="use_textline_orientation=True needs a textline orientation model"):
        OCR3(v5_files["text_detection"], v5_files["text_recognition"], use_textline_orientation=True)
    with pytest.raises(PtocrError, match="use_doc_orientation_classify=True needs a document orientation model"):
        full(image, use_doc_orientation_classify=True)
    with pytest.raises(PtocrError, match="use_doc_unwarping=True needs a document unwarping model"):
        full(image, use_doc_unwarping=True)


def test_v5_word_boxes_match_paddleocr3(v5_files, shared_dir, one_thread):
    """return_word_box=True: every line's words identical to PaddleOCR 3.x's, each word's quad
    within the lines' corner tolerance (the fixture: the textline reference's run with word boxes)."""
    ref = _load_reference("ppocrv5_mobile_textline_words.json")
    assert ref["settings"]["return_word_box"] is True
    ocr = _ocr3(v5_files, True, return_word_box=True)
    problems, words, worst_gap = [], 0, 0.0
    for image, expected in ref["images"].items():
        got = ocr(shared_dir / ref["images_folder"] / image)
        assert len(got.text_word) == len(got.text_word_region) == len(got) == len(expected), image
        for k, (have, quads, exp) in enumerate(zip(got.text_word, got.text_word_region, expected)):
            words += len(exp["words"])
            if have != exp["words"] or len(quads) != len(exp["word_quads"]):
                problems.append(f"{image}#{k}: {have} vs {exp['words']}")
            elif quads:
                worst_gap = max(worst_gap, _max_corner_gap(quads, exp["word_quads"]))
    print(f"\nword boxes: {words} words, {len(problems)} lines differ, max corner gap {worst_gap:g} px")
    assert not problems, "\n".join(problems)
    assert words > 1000 and worst_gap <= V5_CORNER_TOLERANCE_PX
    paddle = got.to_paddleocr()  # the JSON fields PaddleOCR 3.x writes with word boxes
    assert paddle["return_word_box"] is True and list(paddle)[-2:] == ["text_word_boxes", "text_word"]
    assert paddle["text_word_boxes"][0] == [[int(v) for v in (*np.min(q, axis=0), *np.max(q, axis=0))]
                                            for q in np.asarray(got.text_word_region[0])]


@pytest.mark.parametrize("name", V5_REFERENCES)
def test_v5_scenes_match_paddleocr3(v5_files, shared_dir, one_thread, name):
    """Every line: identical text, corners within 1 px, score within 1e-3, same angle, same order."""
    ref = _load_reference(name)
    ocr = _ocr3(v5_files, ref["settings"]["use_textline_orientation"])
    problems, total, worst_gap, worst_score = [], 0, 0.0, 0.0
    for image, expected in ref["images"].items():
        got = ocr(shared_dir / ref["images_folder"] / image)
        if len(got) != len(expected):
            problems.append(f"{image}: {len(got)} lines, PaddleOCR 3.x {len(expected)}")
        for k, (line, exp, poly, box, angle) in enumerate(zip(
                got, expected, got.rec_polys, got.rec_boxes, got.textline_orientation_angles)):
            total += 1
            gap = max(_max_corner_gap(poly, exp["poly"]), _max_corner_gap(box, exp["box"]))
            worst_gap = max(worst_gap, gap)
            if gap > V5_CORNER_TOLERANCE_PX:
                problems.append(f"{image}#{k}: quad {poly} vs {exp['poly']}")
            if (line.text, angle) != (exp["text"], exp["angle"]):
                problems.append(f"{image}#{k}: {line.text!r} angle {angle} vs {exp['text']!r} angle {exp['angle']}")
            worst_score = max(worst_score, abs(line.score - exp["score"]))
    print(f"\n{name}: {total - len(problems)}/{total} lines identical, max corner gap {worst_gap:g} px, "
          f"max score gap {worst_score:.2e}")
    assert not problems, "\n".join(problems)
    assert total == sum(map(len, ref["images"].values()))
    assert worst_score <= V5_SCORE_TOLERANCE


def test_v5_each_line_gets_its_own_angle_at_any_batch_size(v5_files, shared_dir, one_thread):
    """paddlex 3.7.0-3.7.2 give a textline batch its first line's angle; here batch size 6
    reads exactly as batch size 1 (the reference's), on images mixing turned and upright lines."""
    ref = _load_reference("ppocrv5_mobile_textline.json")
    mixed = [name for name, lines in ref["images"].items() if len({line["angle"] for line in lines}) > 1]
    assert mixed, "the reference has no image mixing 0 and 180 degree lines"
    one = _ocr3(v5_files, True, textline_orientation_batch_size=1)
    six = _ocr3(v5_files, True, textline_orientation_batch_size=6)
    for name in mixed[:3]:
        path = shared_dir / ref["images_folder"] / name
        a, b = one(path), six(path)
        assert b.textline_orientation_angles == a.textline_orientation_angles == [x["angle"] for x in ref["images"][name]]
        assert b.texts == a.texts


def test_v5_result_has_paddleocr3_fields(v5_files, small_scene, one_thread):
    result = _ocr3(v5_files, True)(small_scene)
    data = result.to_paddleocr()
    for key in ("input_path", "page_index", "model_settings", "dt_polys", "text_det_params", "text_type",
                "textline_orientation_angles", "text_rec_score_thresh", "rec_texts", "rec_scores", "rec_polys",
                "rec_boxes"):
        assert key in data, key
    assert data["rec_texts"] == result.texts and data["input_path"] == str(small_scene)
    assert all(len(b) == 4 and b[0] <= b[2] and b[1] <= b[3] for b in data["rec_boxes"])
    assert json.loads(json.dumps(data)) == data  # plain JSON


def test_unknown_settings_and_unwarping_without_its_model_are_refused_clearly(v5_files):
    with pytest.raises(PtocrError, match="use_doc_unwarping=True needs a document unwarping model"):
        _ocr3(v5_files, False, use_doc_unwarping=True)
    with pytest.raises(PtocrError, match="unknown settings"):
        _ocr3(v5_files, False, text_det_tresh=0.2)


def test_doc_orientation_turns_a_rotated_page_back(v5_files, shared_dir, small_scene, one_thread, tmp_path):
    """With a doc-orientation classifier (here a stub that always answers 180), the page is
    turned (PaddleX's affine turn, one pixel off an exact flip) before detection."""
    from ptocr.predictors import ClsPredictor
    from ptocr.transforms.rotate import rotate_image

    class Always180(ClsPredictor):
        def __init__(self):  # no model: only the answer matters to the pipeline
            self.task = "cls"

        def __call__(self, image):
            return ("180", 1.0)

    flipped = cv2.rotate(cv2.imread(str(small_scene)), cv2.ROTATE_180)
    turned = _ocr3(v5_files, True, doc_ori=Always180())(flipped)
    assert turned.doc_angle == 180 and turned.to_paddleocr()["doc_preprocessor_res"]["angle"] == 180
    upright = rotate_image(flipped, 180)
    assert np.array_equal(turned.image, upright)
    assert turned.texts == _ocr3(v5_files, True)(upright).texts
    assert {"EPPING", "Germany"} <= set(turned.texts)  # read the right way up


def test_v5_odd_inputs(v5_files, one_thread):
    """A tiny blank image (padded before detection) reads as no lines; a classifier that is not
    a document orientation model is refused by name."""
    from ptocr.predictors import ClsPredictor

    ocr = _ocr3(v5_files, True)
    empty = ocr(np.full((20, 30, 3), 255, np.uint8))
    assert len(empty) == 0 and empty.to_paddleocr()["rec_texts"] == [] and empty.rec_boxes == []

    class TextlineAnswer(ClsPredictor):
        def __init__(self):
            pass

        def __call__(self, image):
            return ("0_degree", 0.99)

    with pytest.raises(PtocrError, match="not an angle"):
        _ocr3(v5_files, True, doc_ori=TextlineAnswer())(np.full((64, 64, 3), 255, np.uint8))


def test_cli_ocr_v5_default_rules_with_given_models(v5_files, small_scene, tmp_path, one_thread):
    """No --pipeline: the default bundle's rules (PaddleOCR 3.x) with the given parts; the JSON
    holds PaddleOCR 3.x's fields, and equals what OCR3 returns."""
    from click.testing import CliRunner

    from ptocr.cli import main

    models = ["--det", str(v5_files["text_detection"]), "--rec", str(v5_files["text_recognition"])]
    out = tmp_path / "out.json"
    run = CliRunner().invoke(main, ["ocr", str(small_scene), *models, "--cls",
                                    str(v5_files["textline_orientation"]), "--json", str(out)])
    assert run.exit_code == 0, run.output
    data = json.loads(out.read_text(encoding="utf-8"))[str(small_scene)]
    expected = _ocr3(v5_files, True)(small_scene).to_paddleocr()
    assert data == json.loads(json.dumps(expected))
    assert data["model_settings"] == {"use_doc_preprocessor": False, "use_textline_orientation": True}
    none = CliRunner().invoke(main, ["ocr", str(small_scene), *models, "--cls", "none", "--json", "-"])
    assert none.exit_code == 0, none.output
    assert json.loads(none.stdout)[str(small_scene)]["textline_orientation_angles"] == [-1] * len(data["rec_texts"])
