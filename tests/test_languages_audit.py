"""Language codes, decoding and drawing against PaddleOCR 3.7 / PaddleX 3.7.2's facts.

- paddleocr 3.7 ``PaddleOCR._get_ocr_model_names``: "ka" (Kannada) is read with PP-OCRv3 only
  (``ocr_version=None`` picks ka_PP-OCRv3_mobile_rec); PP-OCRv5 and PP-OCRv6 have no model for it.
- paddlex 3.7.2 picks a visualisation font per recognizer (``get_text_rec_vis_font``: arabic.ttf,
  devanagari.ttf, cyrillic.ttf...): one CJK font, or Pillow's Latin one, draws other scripts as boxes.
"""

from __future__ import annotations

import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

from ptocr.errors import DictionaryError, PtocrError
from ptocr.languages import recognizer_for
from ptocr.postprocess import CTCLabelDecode


@pytest.mark.parametrize("bundle_rec, generation", [("PP-OCRv5_server_rec", "PP-OCRv5"),
                                                    ("PP-OCRv6_medium_rec", "PP-OCRv6")])
def test_kannada_is_a_paddleocr3_code_read_by_pp_ocrv3_only(bundle_rec, generation):
    with pytest.raises(PtocrError, match="PP-OCRv3 only") as e:
        recognizer_for("ka", bundle_rec, generation)
    assert "--pipeline PP-OCRv3_mobile)" in str(e.value)  # the zoo's pipeline that reads it
    assert "kaa" not in str(e.value)  # Karakalpak (Cyrillic) is no spelling of it
    assert recognizer_for("ka", "PP-OCRv3_mobile_rec", "PP-OCRv3") == "ka_PP-OCRv3_mobile_rec"


@pytest.mark.parametrize("lang, rec", [
    ("ku", "latin_PP-OCRv5_mobile_rec"),  # in Latin and Arabic: Latin is tested first
    ("uk", "eslav_PP-OCRv5_mobile_rec"),  # in East Slavic and Cyrillic: East Slavic first
    ("kk", "cyrillic_PP-OCRv5_mobile_rec"),
    ("bal", "arabic_PP-OCRv5_mobile_rec"),
    ("bgc", "devanagari_PP-OCRv5_mobile_rec"),
    ("japan", "PP-OCRv5_server_rec"),
])
def test_v5_recognizers_as_paddleocr_3_7_picks_them(lang, rec):
    assert recognizer_for(lang, "PP-OCRv5_server_rec") == rec


def test_an_index_outside_the_characters_is_named():
    decode = CTCLabelDecode(["blank", "a", "b"])
    with pytest.raises(DictionaryError, match="class index -1 outside"):
        decode.decode_indices(np.array([[1, -1]]))


def _fonts(query: str) -> list[str]:
    out = subprocess.run(["fc-list", query, "file"], capture_output=True, text=True, check=False).stdout
    return sorted(line.split(":")[0].strip() for line in out.splitlines()
                  if line.strip().lower().endswith((".ttf:", ".otf:", ".ttf", ".otf")))


@pytest.fixture
def cyrillic_fonts():
    pytest.importorskip("PIL")
    if not shutil.which("fc-list"):
        pytest.skip("fontconfig (fc-list) not installed")
    having = _fonts(":charset=416 428")  # Ж Ш
    if not having:
        pytest.skip("no installed font has Cyrillic glyphs")
    lacking = sorted(set(_fonts(":")) - set(having))
    return having, lacking


def _panel(text: str, font=None) -> np.ndarray:
    from ptocr.visualize import draw_ocr

    image = np.full((60, 200, 3), 200, np.uint8)
    line = SimpleNamespace(box=[[10, 10], [190, 10], [190, 50], [10, 50]], text=text)
    return draw_ocr(image, [line], font=font)[:, 200:]


def test_text_without_a_cjk_font_is_drawn_with_an_installed_font_that_has_it(cyrillic_fonts, monkeypatch):
    import ptocr.visualize as vis

    monkeypatch.delenv("PTOCR_FONT", raising=False)
    monkeypatch.setattr(vis, "find_cjk_font", lambda: None)  # as on a machine without CJK fonts
    # Boxes ("tofu") look alike: two letters drawn alike were not drawn.
    assert (_panel("Ж") != _panel("Ш")).any()


def test_a_line_the_given_font_cannot_draw_falls_back(cyrillic_fonts):
    _, lacking = cyrillic_fonts
    if not lacking:
        pytest.skip("every installed font has Cyrillic glyphs")
    assert (_panel("Ж", font=lacking[0]) != _panel("Ш", font=lacking[0])).any()


def test_the_no_font_warning_names_only_the_characters_drawn_as_boxes(monkeypatch):
    import ptocr.visualize as vis

    monkeypatch.delenv("PTOCR_FONT", raising=False)
    monkeypatch.setattr(vis, "find_cjk_font", lambda: None)
    monkeypatch.setattr(vis, "_font_covering", lambda codes: None)  # no installed font has Cyrillic
    with pytest.warns(UserWarning, match="no font found") as caught:
        _panel("Ab Ж")
    message = str(caught[0].message)
    assert "Ж" in message
    assert "A" not in message.split("(")[1].split(";")[0]  # Pillow's Latin font draws A and b
