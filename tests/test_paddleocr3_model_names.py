"""OCR3's ``lang`` / ``ocr_version`` pick the models paddleocr 3.7 picks, for every code it knows
and every version (tests/fixtures/paddleocr37_model_names.json, written by
``python -m tools.paddleocr3_model_names`` from 3.7's own ``_get_ocr_model_names``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ptocr.errors import PtocrError
from ptocr.languages import GENERATION_GROUPS, bundle_parts, generation_of, recognizer_for
from ptocr.manifest import load_manifest
from ptocr.paddleocr3_options import VERSION_BUNDLES, paddleocr3_model_names

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "paddleocr37_model_names.json").read_text(encoding="utf-8"))
ROWS = FIXTURE["rows"]


def test_the_fixture_covers_every_version_and_the_v3_v4_groups():
    assert {r["ocr_version"] for r in ROWS} == {None, *VERSION_BUNDLES}
    picked = {tuple(r["models"]) for r in ROWS if r["models"]}
    assert ("PP-OCRv3_mobile_det", "devanagari_PP-OCRv3_mobile_rec") in picked
    assert ("PP-OCRv4_mobile_det", "en_PP-OCRv4_mobile_rec") in picked
    assert sum(r["models"] is None for r in ROWS) > 100  # v4 and v6 refuse most codes


@pytest.mark.parametrize("version", [None, *VERSION_BUNDLES])
def test_models_as_paddleocr_3_7_picks_them(version):
    """Where 3.7 picks (det, rec), ptocr picks the same zoo models; where it has none ("No models
    are available"), ptocr refuses with a PtocrError."""
    wrong = []
    for row in (r for r in ROWS if r["ocr_version"] == version):
        try:
            got = list(paddleocr3_model_names(row["lang"], version))
        except PtocrError as e:
            got = None
            assert f"no {version or 'PP-OCRv'}" in str(e) or "not one of PaddleOCR 3.x's language codes" in str(e), e
        if got != row["models"]:
            wrong.append((row["lang"], got, row["models"]))
    assert not wrong, wrong[:10]


def test_every_model_3_7_picks_is_a_zoo_model():
    known = load_manifest().models
    missing = sorted({m for r in ROWS if r["models"] for m in r["models"]} - set(known))
    assert not missing


def test_each_paddleocr3_bundle_has_a_generation_with_rules():
    manifest = load_manifest()
    for bundle in manifest.bundles:
        if manifest.bundle_rules(bundle) == "paddleocr3":
            assert generation_of(manifest.bundle(bundle)["rec"]) in GENERATION_GROUPS
    assert bundle_parts("PP-OCRv3_mobile", "uk")["rec"] == "cyrillic_PP-OCRv3_mobile_rec"  # no East Slavic in v3
    assert bundle_parts("PP-OCRv5_mobile", "uk")["rec"] == "eslav_PP-OCRv5_mobile_rec"
    with pytest.raises(PtocrError, match="no PP-OCRv4 model for it.*PP-OCRv3 or PP-OCRv5"):
        bundle_parts("PP-OCRv4_mobile", "korean")
    with pytest.raises(PtocrError, match="names no PP-OCR generation"):
        generation_of("my_rec")
    with pytest.raises(PtocrError, match="not a PP-OCR generation"):
        recognizer_for("ch", "x", "PP-OCRv7")


def test_a_language_name_is_answered_with_its_code():
    """3.x's codes mix ISO codes and names of its own; a language's name gets its code, not the
    nearest spelling ("kannada" is "ka", while "kaa" is Karakalpak)."""
    from ptocr.languages import _KNOWN_CODES, LANGUAGE_NAMES, recognizer_for

    assert {code for codes in LANGUAGE_NAMES.values() for code in codes} <= _KNOWN_CODES
    with pytest.raises(PtocrError, match=r"'kannada' is not one of .*; did you mean ka\?"):
        recognizer_for("kannada", "PP-OCRv5_server_rec")
    with pytest.raises(PtocrError, match=r"did you mean rs_latin, rs_cyrillic\?"):
        recognizer_for("Serbian", "PP-OCRv5_server_rec")
    with pytest.raises(PtocrError, match=r"did you mean kaa"):  # not a name: the nearest codes
        recognizer_for("kaaa", "PP-OCRv5_server_rec")
