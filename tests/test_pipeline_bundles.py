"""Bundles and their pipeline rules, PaddleOCR 3.x's language codes, and the default: PP-OCRv5
(PaddleOCR 3.x) where its weights can be had, else ch_PP-OCRv4 with a one-line notice.

No network: the official origins are stand-ins on 127.0.0.1 that have nothing
(verification.loopback), and the parts that must load come from a local zoo folder converted
here from ../shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

import ptocr
from ptocr.bundles import DEFAULT_BUNDLE, FALLBACK_BUNDLE, build_pipeline
from ptocr.checkpoint import file_sha256
from ptocr.conversion import convert_once
from ptocr.errors import PtocrError
from ptocr.languages import LANGUAGE_GROUPS, recognizer_for
from ptocr.manifest import load_manifest, validate, write_manifest
from ptocr.pipeline import OCR
from ptocr.pipeline3 import OCR3
from ptocr.zoo import WeightsNotFoundError
from verification.loopback import serve_folder

REPO = Path(__file__).resolve().parents[1]
ZOO_PARTS = {  # zoo name -> ../shared/paddle_models folder
    "ch_PP-OCRv4_det": "ch_PP-OCRv4_det_infer",
    "ch_PP-OCRv4_rec": "ch_PP-OCRv4_rec_infer",
    "ch_ppocr_mobile_v2.0_cls": "ch_ppocr_mobile_v2.0_cls_infer",
    "PP-OCRv5_mobile_det": "PP-OCRv5_mobile_det_infer",
    "PP-OCRv5_mobile_rec": "PP-OCRv5_mobile_rec_infer",
    "PP-LCNet_x0_25_textline_ori": "PP-LCNet_x0_25_textline_ori_infer",
}


def test_every_bundle_names_its_pipeline_rules():
    manifest = load_manifest()
    rules = {name: manifest.bundle_rules(name) for name in manifest.bundles}
    assert rules["ch_PP-OCRv4"] == rules["ch_ptocr_server_v2"] == "paddleocr2"
    assert rules["PP-OCRv5_server"] == rules["PP-OCRv5_mobile"] == "paddleocr3"
    assert manifest.bundle("PP-OCRv5_server") == {
        "det": "PP-OCRv5_server_det", "rec": "PP-OCRv5_server_rec", "cls": "PP-LCNet_x1_0_textline_ori"}
    assert manifest.bundle("PP-OCRv5_mobile")["det"] == "PP-OCRv5_mobile_det"
    data = json.loads(json.dumps(manifest.data))
    del data["bundles"]["PP-OCRv5_mobile"]["pipeline"]
    data["bundles"]["ch_PP-OCRv4"]["pipeline"] = "paddleocr9"
    problems = "\n".join(validate(data, check_architectures=False))
    assert "bundle PP-OCRv5_mobile: 'pipeline' must name its rules" in problems
    assert "bundle ch_PP-OCRv4: 'pipeline' must name its rules" in problems


def test_languages_map_to_the_v5_recognizers():
    assert recognizer_for("fr", "PP-OCRv5_server_rec") == "latin_PP-OCRv5_mobile_rec"
    assert recognizer_for("german", "PP-OCRv5_server_rec") == "latin_PP-OCRv5_mobile_rec"
    assert recognizer_for("ku", "x") == "latin_PP-OCRv5_mobile_rec"  # Latin is tested before Arabic
    assert recognizer_for("ru", "x") == "eslav_PP-OCRv5_mobile_rec"  # East Slavic before Cyrillic
    assert recognizer_for("bg", "x") == "cyrillic_PP-OCRv5_mobile_rec"
    assert recognizer_for("korean", "x") == "korean_PP-OCRv5_mobile_rec"
    assert recognizer_for("japan", "PP-OCRv5_mobile_rec") == "PP-OCRv5_mobile_rec"
    for lang in ("en", "ta", "te"):  # paddleocr 3.7's own models for them (ocr_version PP-OCRv5 for en)
        assert recognizer_for(lang, "x") == f"{lang}_PP-OCRv5_mobile_rec"
    with pytest.raises(PtocrError, match="did you mean korean"):
        recognizer_for("koren", "x")


def test_a_language_whose_recognizer_a_manifest_lacks_is_refused_with_what_to_do(tmp_path, monkeypatch):
    from ptocr.manifest import write_manifest

    data = json.loads((Path(__file__).resolve().parents[1] / "weights_manifest.json").read_text(encoding="utf-8"))
    del data["models"]["th_PP-OCRv5_mobile_rec"]
    write_manifest(data, tmp_path / "m.json")
    monkeypatch.setenv("PTOCR_MANIFEST", str(tmp_path / "m.json"))
    with pytest.raises(PtocrError, match="th_PP-OCRv5_mobile_rec, which ptocr's zoo does not have"):
        recognizer_for("th", "x")


def test_v6_bundles_keep_their_recognizer_for_the_v6_languages():
    assert recognizer_for("fr", "PP-OCRv6_medium_rec", "PP-OCRv6") == "PP-OCRv6_medium_rec"
    assert recognizer_for("en", "PP-OCRv6_small_rec", "PP-OCRv6") == "PP-OCRv6_small_rec"
    assert recognizer_for("ku", "PP-OCRv6_medium_rec", "PP-OCRv6") == "PP-OCRv6_medium_rec"  # Latin too
    for lang in ("ar", "ru", "korean", "pi"):
        with pytest.raises(PtocrError, match="no PP-OCRv6 model for it"):
            recognizer_for(lang, "PP-OCRv6_medium_rec", "PP-OCRv6")
    with pytest.raises(PtocrError, match="did you mean korean"):
        recognizer_for("koren", "PP-OCRv6_medium_rec", "PP-OCRv6")


def test_lang_follows_the_bundles_generation(monkeypatch):
    """build_pipeline decides by the bundle's recognizer: v6 keeps it for French, v5 swaps in
    the Latin one (the parts are not loaded: resolve is stubbed to record what was asked for)."""
    import ptocr.bundles as bundles

    asked = []

    class Found:
        def __init__(self, name):
            asked.append(name)
            self.path, self.where = name, "stub"

    monkeypatch.setattr(bundles, "resolve", lambda name, zoo=None: Found(name))
    assert bundles._resolve_parts("PP-OCRv6_medium", {}, "fr", None, None)["rec"] == "PP-OCRv6_medium_rec"
    assert bundles._resolve_parts("PP-OCRv5_server", {}, "fr", None, None)["rec"] == "latin_PP-OCRv5_mobile_rec"
    with pytest.raises(PtocrError, match="--pipeline PP-OCRv5_server"):
        bundles._resolve_parts("PP-OCRv6_small", {}, "ar", None, None)
    with pytest.raises(PtocrError, match="2.x bundle"):
        bundles._resolve_parts("ch_PP-OCRv4", {}, "fr", None, None)


def test_every_v5_language_recognizer_of_the_zoo_is_reachable():
    models = load_manifest().models
    in_zoo = {n for n in models if n.endswith("_PP-OCRv5_mobile_rec")}
    mapped = {name for _, name in LANGUAGE_GROUPS if name}
    assert in_zoo <= mapped, sorted(in_zoo - mapped)
    assert all(models[name]["task"] == "rec" for name in mapped & set(models))


@pytest.fixture(scope="module")
def local_zoo(shared_dir, tmp_path_factory) -> Path:
    """A local zoo folder: v4 bundle parts and the v5 mobile parts, each with the trust record
    (``origin.json``) the resolver accepts a converted file by."""
    zoo = tmp_path_factory.mktemp("zoo")
    for name, folder in ZOO_PARTS.items():
        weights = convert_once(shared_dir / "paddle_models" / folder, zoo / name / "model.safetensors")
        (zoo / name / "origin.json").write_text(json.dumps({"model": name, "model_sha256": file_sha256(weights)}))
    return zoo


@pytest.fixture
def no_route(tmp_path, monkeypatch):
    """Every origin is a loopback server holding nothing; no cache; not offline."""
    empty = tmp_path / "nothing"
    empty.mkdir()
    for var, sub in (("HF_HUB_CACHE", "hf"), ("PTOCR_CACHE", "cache"), ("PTOCR_ZOO", "zoo")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("PTOCR_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with serve_folder(empty) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setenv("PTOCR_MIRROR", url)
        yield url


def test_default_falls_back_to_v4_with_a_one_line_notice(local_zoo, no_route):
    notices = []
    ocr = build_pipeline(zoo=local_zoo, notice=notices.append)
    assert isinstance(ocr, OCR) and not isinstance(ocr, OCR3)
    assert len(notices) == 1 and "\n" not in notices[0]
    assert notices[0].startswith(f"ptocr: {DEFAULT_BUNDLE} cannot be used (no usable weights for PP-OCRv5_server_det")
    assert f"reading with {FALLBACK_BUNDLE}" in notices[0]
    assert ": no origin reachable)" in notices[0]


def test_the_fallback_notice_blames_offline_mode_where_it_is_set(local_zoo, no_route, monkeypatch):
    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    notices = []
    build_pipeline(zoo=local_zoo, notice=notices.append)
    assert len(notices) == 1 and ": offline: PTOCR_OFFLINE / HF_HUB_OFFLINE set)" in notices[0], notices


def test_a_chosen_bundle_never_falls_back(local_zoo, no_route):
    with pytest.raises(WeightsNotFoundError, match="PP-OCRv5_server_det"):
        build_pipeline("PP-OCRv5_server", zoo=local_zoo)
    with pytest.raises(WeightsNotFoundError, match="latin_PP-OCRv5_mobile_rec"):
        build_pipeline("PP-OCRv5_mobile", lang="fr", zoo=local_zoo)


def test_cli_demo_keeps_working_without_the_v5_weights(local_zoo, no_route):
    from click.testing import CliRunner

    from ptocr.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = CliRunner().invoke(main, ["demo", "--models", str(local_zoo)])
    finally:
        torch.set_num_threads(threads)
    assert run.exit_code == 0, run.output
    notice = [line for line in run.stderr.splitlines() if "cannot be used" in line]
    assert len(notice) == 1 and FALLBACK_BUNDLE in notice[0]
    assert " lines" in run.stdout and "Traceback" not in run.output


def test_v5_bundle_loads_by_name_as_the_3x_pipeline(local_zoo, shared_dir, tmp_path, monkeypatch):
    """``ptocr.load`` of a 3.x bundle gives OCR3, reading what PaddleOCR 3.x read (the x0.25
    textline model stands in for the bundle's x1.0, whose trained weights are not here)."""
    data = json.loads((REPO / "weights_manifest.json").read_text(encoding="utf-8"))
    data["bundles"]["PP-OCRv5_mobile"]["cls"] = "PP-LCNet_x0_25_textline_ori"
    write_manifest(data, tmp_path / "manifest.json")
    monkeypatch.setenv("PTOCR_MANIFEST", str(tmp_path / "manifest.json"))
    monkeypatch.setenv("PTOCR_ZOO", str(local_zoo))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    ocr = ptocr.load("PP-OCRv5_mobile")
    assert isinstance(ocr, OCR3) and ocr.textline is not None
    ref = json.loads((REPO / "tests/fixtures/pipeline_reference/ppocrv5_mobile_textline.json").read_text())
    assert ocr(shared_dir / "images/scenes/ger_1.jpg").texts == [x["text"] for x in ref["images"]["ger_1.jpg"]]
    with pytest.raises(PtocrError, match="PaddleOCR 3.x's pipeline rules"):
        OCR.from_pretrained("PP-OCRv5_mobile")
    with pytest.raises(PtocrError, match="document orientation is a PaddleOCR 3.x step"):
        build_pipeline("ch_PP-OCRv4", doc_ori="PP-LCNet_x1_0_doc_ori")


def test_cli_word_boxes_for_3x_bundles_only(local_zoo, no_route, shared_dir, tmp_path):
    """``ptocr ocr --word-boxes``: the 3.x JSON gains text_word / text_word_boxes per line; a
    2.x bundle refuses it by name (exit 2, no traceback)."""
    from click.testing import CliRunner

    from ptocr.cli import main

    out = tmp_path / "out.json"
    image = str(shared_dir / "images" / "scenes" / "ger_1.jpg")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = CliRunner().invoke(main, ["ocr", image, "--pipeline", "PP-OCRv5_mobile", "--cls", "none",
                                        "--models", str(local_zoo), "--word-boxes", "--json", str(out)])
        assert run.exit_code == 0, run.output
        res = json.loads(out.read_text(encoding="utf-8"))[image]
        assert res["return_word_box"] is True and len(res["text_word"]) == len(res["rec_texts"]) > 0
        assert ["".join(words) for words in res["text_word"]] == res["rec_texts"]
        assert [len(b) for b in res["text_word_boxes"]] == [len(w) for w in res["text_word"]]
        run = CliRunner().invoke(main, ["ocr", image, "--pipeline", "ch_PP-OCRv4", "--models", str(local_zoo),
                                        "--word-boxes"])
    finally:
        torch.set_num_threads(threads)
    assert run.exit_code == 2 and "ch_PP-OCRv4 follows paddleocr2's rules, which have no setting return_word_box" \
        in run.stderr
    takers = run.stderr.split("(`ptocr ocr --word-boxes` is return_word_box) are taken by the bundles that follow "
                              "its rules: ")[1].split()
    assert {"PP-OCRv5_server,", "PP-OCRv5_mobile,"} <= set(takers) and "ch_PP-OCRv4," not in takers
    assert "Traceback" not in run.output


def test_cli_sets_pipeline_settings_by_paddleocrs_names(local_zoo, no_route, shared_dir, tmp_path):
    """``--set KEY=VALUE``: values read as JSON (0.95 a number); an unknown key, a 2.x bundle
    without that setting and a malformed pair are refused (exit 2, no traceback)."""
    from click.testing import CliRunner

    from ptocr.cli import main

    image = str(shared_dir / "images" / "scenes" / "ger_1.jpg")
    base = ["ocr", image, "--pipeline", "PP-OCRv5_mobile", "--cls", "none", "--models", str(local_zoo)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {}
        for name, extra in (("plain", []), ("strict", ["--set", "text_rec_score_thresh=0.95", "--set",
                                                       "text_det_box_thresh=0.8"])):
            out = tmp_path / f"{name}.json"
            run = CliRunner().invoke(main, base + extra + ["--json", str(out)])
            assert run.exit_code == 0, run.output
            runs[name] = json.loads(out.read_text(encoding="utf-8"))[image]
        bad = [CliRunner().invoke(main, base + ["--set", "text_det_thres=0.5"]),
               CliRunner().invoke(main, ["ocr", image, "--pipeline", "ch_PP-OCRv4", "--models", str(local_zoo),
                                         "--set", "text_det_box_thresh=0.5"]),
               CliRunner().invoke(main, base + ["--set", "text_det_box_thresh"])]
    finally:
        torch.set_num_threads(threads)
    strict, plain = runs["strict"], runs["plain"]
    assert strict["text_det_params"]["box_thresh"] == 0.8 and strict["text_rec_score_thresh"] == 0.95
    assert 0 < len(strict["rec_texts"]) < len(plain["rec_texts"]) and min(strict["rec_scores"]) >= 0.95
    assert all(r.exit_code == 2 and "Traceback" not in r.output for r in bad)
    assert "unknown settings ['text_det_thres']" in bad[0].stderr
    assert "which have no setting text_det_box_thresh" in bad[1].stderr
    assert "expected KEY=VALUE" in bad[2].output


def test_load_takes_a_bundles_language_and_settings(local_zoo, no_route, monkeypatch):
    """``ptocr.load(bundle, lang=..., **settings)`` as ``PaddleOCR(lang=..., **settings)``: the
    language's recognizer in place of the bundle's, the settings on the pipeline; what a single
    model or a 2.x bundle cannot take is refused by name."""
    monkeypatch.setenv("PTOCR_ZOO", str(local_zoo))
    data = json.loads((REPO / "weights_manifest.json").read_text(encoding="utf-8"))
    data["bundles"]["PP-OCRv5_mobile"]["cls"] = "PP-LCNet_x0_25_textline_ori"  # the one here
    path = local_zoo.parent / "manifest_x025.json"
    write_manifest(data, path)
    monkeypatch.setenv("PTOCR_MANIFEST", str(path))
    ocr = ptocr.load("PP-OCRv5_mobile", lang="japan", return_word_box=True, text_det_box_thresh=0.5)
    assert isinstance(ocr, OCR3) and ocr.settings["return_word_box"] is True
    assert ocr.settings["text_det_box_thresh"] == ocr.det_post.box_thresh == 0.5
    with pytest.raises(WeightsNotFoundError, match="latin_PP-OCRv5_mobile_rec"):  # fr's recognizer, not here
        ptocr.load("PP-OCRv5_mobile", lang="fr")
    assert ptocr.load("PP-OCRv5_mobile", use_textline_orientation=False).textline is None
    with pytest.raises(WeightsNotFoundError, match="PP-LCNet_x1_0_doc_ori"):  # 3.x's model for the step, not here
        ptocr.load("PP-OCRv5_mobile", use_doc_orientation_classify=True)
    with pytest.raises(PtocrError, match="unknown settings"):
        ptocr.load("PP-OCRv5_mobile", return_word_boxes=True)
    with pytest.raises(PtocrError, match="no setting return_word_box"):
        ptocr.load("ch_PP-OCRv4", return_word_box=True)
    with pytest.raises(PtocrError, match="2.x bundle"):
        ptocr.load("ch_PP-OCRv4", lang="fr")
    with pytest.raises(PtocrError, match="settings of a pipeline bundle"):
        ptocr.load("PP-OCRv5_mobile_rec", lang="fr")


def test_a_given_recognizer_wins_over_lang_with_a_warning(local_zoo, no_route):
    """PaddleOCR 3.x ignores lang where a recognizer is given, and says so: so does ptocr (it
    used to ignore it silently), also for a language whose recognizer the zoo lacks."""
    rec = local_zoo / "PP-OCRv5_mobile_rec" / "model.safetensors"
    for lang in ("fr", "ta"):
        with pytest.warns(UserWarning, match=f"lang '{lang}' is not used: the recognizer is given"):
            ocr = build_pipeline("PP-OCRv5_mobile", rec=rec, cls="none", lang=lang, zoo=local_zoo)
        assert isinstance(ocr, OCR3) and ocr.textline is None


def test_3x_settings_rule_out_the_2x_fallback(local_zoo, no_route):
    """Asked for a PaddleOCR 3.x setting (word boxes), the default bundle does not fall back to
    2.x rules that lack it: the error says the 3.x weights could not be had."""
    notices = []
    with pytest.raises(WeightsNotFoundError, match=DEFAULT_BUNDLE.replace("_server", "_server_det")):
        build_pipeline(zoo=local_zoo, notice=notices.append, return_word_box=True)
    assert notices == []
    assert isinstance(build_pipeline(zoo=local_zoo, notice=notices.append), OCR) and len(notices) == 1


@pytest.mark.parametrize("bundle, parts, pipeline", [
    ("PP-OCRv5_mobile", {"det": "det.safetensors", "rec": "rec.safetensors"}, "ptocr.OCR3(det=..., rec=..., textline=...)"),
    ("PP-OCRv5_mobile", {"text_detection_model_dir": "det_folder"}, "ptocr.OCR3("),
    ("ch_PP-OCRv4", {"cls": None}, "ptocr.OCR(det=..., rec=..., cls=...)"),
])
def test_own_text_models_for_a_bundle_are_refused_saying_how_to_give_them(bundle, parts, pipeline):
    # ptocr.load(bundle, det=...) raised TypeError "got multiple values for argument 'det'"; refused
    # from the manifest alone, before any model is looked for.
    with pytest.raises(PtocrError, match=f"{bundle}: {', '.join(parts)} would replace the bundle's own models") as info:
        ptocr.load(bundle, **parts)
    assert pipeline in str(info.value)


def test_a_2x_bundle_given_3x_constructor_options_names_the_bundles_that_take_them(local_zoo, no_route):
    with pytest.raises(PtocrError, match=r"which have no setting cpu_threads, text_det_input_shape: PaddleOCR 3\.x's "
                                         r"settings .* are taken by the bundles that follow its rules: .*PP-OCRv5_server"):
        build_pipeline("ch_PP-OCRv4", zoo=local_zoo, cpu_threads=2, text_det_input_shape=(3, 640, 640))
    with pytest.raises(PtocrError) as plain:  # a 2.x name 3.x still takes is no 3.x setting
        build_pipeline("ch_PP-OCRv4", zoo=local_zoo, det_model_dir="x")
    assert "which have no setting det_model_dir" in str(plain.value) and "PaddleOCR 3.x" not in str(plain.value)


def test_a_2x_bundle_refuses_paddleocr_210_options_with_what_to_do_before_fetching(tmp_path, monkeypatch):
    """``ptocr.load("ch_PP-OCRv4", use_gpu=True)`` says what to do instead, as ``OCR(...)`` does,
    before looking for any model (an empty zoo, offline: looking would fail)."""
    monkeypatch.setenv("PTOCR_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    for option, advice in (("use_gpu", "give device='cuda'"), ("precision", "give dtype="),
                           ("enable_mkldnn", "drop it"), ("rec_char_dict_path", "ptocr-convert --dict")):
        with pytest.raises(PtocrError) as e:
            ptocr.load("ch_PP-OCRv4", **{option: True})
        assert f"which have no setting {option} ({option}: " in str(e.value) and advice in str(e.value), e.value
    with pytest.raises(PtocrError, match=r"no setting text_det_box_thresh: PaddleOCR 3.x's settings"):
        ptocr.load("ch_PP-OCRv4", text_det_box_thresh=0.5)  # 3.x's: the bundles that take it
