"""The order of Arabic texts, as each original pipeline gives it.

An Arabic recognizer reads a line left to right: its raw text is in visual order. PaddleOCR 2.x
reverses it (``pred_reverse``) when the dictionary path holds "arabic"; PaddleOCR 3.x (paddlex
3.7) leaves that off and runs python-bidi's ``get_display`` over the texts of its two Arabic
recognizers. The recognizers here are the real Arabic programs of ../shared with seeded weights;
the class probabilities are made to spell one visual line, so that the two rules differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ptocr
from ptocr.pipeline import OCR
from ptocr.pipeline3 import BIDI_RECOGNIZERS, OCR3
from ptocr.postprocess import CTCLabelDecode, reverse_rtl
from verification.seeding import seed_folder

DICTS = Path(ptocr.__file__).parent / "dicts"
# What the model sees, left to right: Latin, digits, then the Arabic word سلام drawn right to left.
VISUAL = "abc 12 مالس"


def _spelling(classes: list[str], text: str) -> np.ndarray:
    """1 x T x C probabilities whose greedy CTC decoding is ``text`` (a blank between steps)."""
    steps = [classes.index(c) for c in text]
    probs = np.full((1, 2 * len(steps), len(classes)), 0.001, np.float32)
    for t, k in enumerate(steps):
        probs[0, 2 * t, k] = 0.9
        probs[0, 2 * t + 1, 0] = 0.9
    return probs


@pytest.fixture(scope="module")
def arabic(shared_dir, tmp_path_factory):
    """Seeded copies of the two Arabic recognizer programs, in folders named as released (the
    converter takes the zoo model's dictionary and settings from the name)."""
    out = {}
    for name in ("arabic_PP-OCRv3_rec", "arabic_PP-OCRv5_mobile_rec"):
        program = shared_dir / "paddle_graphs" / f"{name}_infer"
        if not program.is_dir():
            pytest.skip(f"program not found: {program}")
        out[name] = seed_folder(program, tmp_path_factory.mktemp("arabic") / f"{name}_infer")
    return out


@pytest.fixture(scope="module")
def v5_det(shared_dir):
    folder = shared_dir / "paddle_models" / "PP-OCRv5_mobile_det_infer"
    if not folder.is_dir():
        pytest.skip(f"model not found: {folder}")
    return ptocr.load(folder)


def test_the_two_rules_differ_on_a_mixed_line():
    chars = ["blank", *sorted(set(VISUAL))]
    probs = _spelling(chars, VISUAL)
    assert CTCLabelDecode(chars)(probs)[0][0] == VISUAL
    assert CTCLabelDecode(chars, reverse=True)(probs)[0][0] == reverse_rtl(VISUAL) == "سلامabc 12 "
    # Unicode's algorithm: a left-to-right paragraph (its first strong letter is Latin) keeps
    # "abc 12 " and turns the right-to-left run back into reading order.
    assert CTCLabelDecode(chars, bidi=True)(probs)[0][0] == "abc 12 سلام"
    with pytest.raises(ValueError, match="choose one"):
        CTCLabelDecode(chars, reverse=True, bidi=True)


def test_recognizers_carry_their_own_pipelines_rule(arabic):
    v3 = ptocr.load(arabic["arabic_PP-OCRv3_rec"])  # a PaddleOCR 2.x release: arabic_dict.txt
    assert v3.config["postprocess"] == {"reverse": True}
    v5 = ptocr.load(arabic["arabic_PP-OCRv5_mobile_rec"])  # a PaddleOCR 3.x release
    assert v5.config["postprocess"] == {"reverse": False, "bidi": True}
    assert (v3.post.reverse, v3.post.bidi, v5.post.reverse, v5.post.bidi) == (True, False, False, True)
    from converter.convert import convert

    # PaddleX's release of the v3 network (a 3.x release, Paddle 3 files): 3.x's rule, whatever the dictionary says
    v3x = convert(arabic["arabic_PP-OCRv3_rec"], "arabic_PP-OCRv3_mobile_rec")
    assert v3x.config["postprocess"] == {"reverse": False, "bidi": True}


def test_a_users_dictionary_path_decides_as_in_paddleocr_2(shared_dir, tmp_path):
    from converter.convert import convert

    program = shared_dir / "paddle_graphs" / "arabic_PP-OCRv3_rec_infer"
    if not program.is_dir():
        pytest.skip(f"program not found: {program}")
    folder = seed_folder(program, tmp_path / "my_model")  # a name the zoo does not know
    renamed = tmp_path / "keys.txt"
    renamed.write_bytes((DICTS / "arabic_dict.txt").read_bytes())
    assert convert(folder, "ch_PP-OCRv3_rec", dictionary=DICTS / "arabic_dict.txt").config["postprocess"] == {
        "reverse": True}
    assert convert(folder, "ch_PP-OCRv3_rec", dictionary=renamed).config["postprocess"] == {}


@pytest.mark.parametrize("name", ["arabic_PP-OCRv3_rec", "arabic_PP-OCRv5_mobile_rec"])
def test_each_pipeline_orders_as_its_original(arabic, v5_det, name):
    rec = ptocr.load(arabic[name])
    probs = _spelling(rec.dictionary.classes, VISUAL)
    ocr3 = OCR3(v5_det, rec)
    assert name in BIDI_RECOGNIZERS
    assert ocr3.rec_texts(probs)[0][0] == "abc 12 سلام"
    # The 2.x pipeline decodes with the recognizer's own rule.
    expected2 = reverse_rtl(VISUAL) if name == "arabic_PP-OCRv3_rec" else "abc 12 سلام"
    assert [res[0] for res in OCR(v5_det, rec).rec.post(probs)] == [expected2]


def test_other_recognizers_keep_the_raw_order_in_3x(shared_dir, v5_det):
    folder = shared_dir / "paddle_models" / "PP-OCRv5_mobile_rec_infer"
    if not folder.is_dir():
        pytest.skip(f"model not found: {folder}")
    rec = ptocr.load(folder)
    text = "abc 12"
    probs = _spelling(rec.dictionary.classes, text)
    assert OCR3(v5_det, rec).rec_texts(probs)[0][0] == text


def test_manifest_refuses_both_rules(tmp_path):
    import json

    from ptocr.manifest import validate

    data = json.loads((Path(__file__).resolve().parents[1] / "weights_manifest.json").read_text(encoding="utf-8"))
    data["models"]["arabic_PP-OCRv5_mobile_rec"]["postprocess"] = {"reverse": True, "bidi": True}
    assert any("choose one" in p for p in validate(data))
    data["models"]["arabic_PP-OCRv5_mobile_rec"]["postprocess"] = {"bidi": "yes"}
    assert any("true or false" in p for p in validate(data))
