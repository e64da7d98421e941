"""Dictionaries are read as PaddleOCR reads them and must fit the head."""

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
