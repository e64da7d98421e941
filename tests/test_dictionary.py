"""Dictionaries are read as PaddleOCR reads them and must fit the head."""

import warnings

import pytest

from ptocr.dictionary import builtin_dictionary, parse_dictionary, read_dictionary
from ptocr.errors import DictionaryError


def test_classes_are_blank_characters_space():
    d = parse_dictionary("a\nb\n", use_space_char=True)
    assert d.classes == ["blank", "a", "b", " "]
    assert d.num_classes == 4
    assert parse_dictionary("a\nb", use_space_char=False).classes == ["blank", "a", "b"]


def test_lines_keep_inner_spaces_and_strip_only_line_ends():
    d = parse_dictionary("a\r\n \nb\n", use_space_char=False)
    assert d.characters == ("a", " ", "b")


def test_builtin_ppocr_keys_fits_v4_head():
    d = builtin_dictionary("ppocr_keys_v1.txt", use_space_char=True)
    assert d.num_classes == 6625
    d.check_fits(6625)


def test_mismatch_names_counts_and_hints_space_setting():
    d = parse_dictionary("a\nb\nc\n", use_space_char=False, source="x.txt")
    with pytest.raises(DictionaryError, match=r"x.txt .*3 characters \+ blank = 4 classes.*5 classes.*use_space_char=True"):
        d.check_fits(5)


def test_unreadable_dictionaries_are_clear_errors(tmp_path):
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(DictionaryError, match="not UTF-8"):
        read_dictionary(binary, True)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DictionaryError, match="empty"):
        read_dictionary(empty, True)
    with pytest.raises(DictionaryError, match="cannot read"):
        read_dictionary(tmp_path / "missing.txt", True)


def test_a_byte_order_mark_is_kept_as_paddleocr_keeps_it_with_a_warning(tmp_path):
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf0\n1\n")
    with pytest.warns(UserWarning, match="byte order mark"):
        d = read_dictionary(bom, False)
    assert d.characters == ("\ufeff0", "1")  # PaddleOCR's CTCLabelDecode reads the same classes
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"0\n1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_dictionary(plain, False).characters == ("0", "1")


def test_the_hand_copied_v5_dictionaries_keep_their_exact_code_points():
    # en_/ta_/te_ppocrv5_dict.txt were copied from text, where NFC folds the ohm and angstrom
    # signs (U+2126, U+212B) into omega and A-ring (U+03A9, U+00C5), duplicating two classes.
    # Their symbol block is the other v5 language dictionaries' (th's, taken from a release's yml).
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "ptocr" / "dicts"

    def lines(name):
        return (folder / name).read_text(encoding="utf-8").split("\n")[:-1]

    th = lines("th_ppocrv5_dict.txt")
    for name, skipped in (("ta_ppocrv5_dict.txt", None), ("te_ppocrv5_dict.txt", "\u0966")):  # te has no U+0966
        chars = lines(name)
        assert len(chars) == len(set(chars)), name
        block = [c for c in th[:441] if c != skipped]
        assert chars[:len(block)] == block, name
    en = lines("en_ppocrv5_dict.txt")
    assert len(en) == len(set(en)) == 436
    assert {"\u2126", "\u212b", "\u03a9", "\u00c5"} <= set(en)
