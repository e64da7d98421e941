"""tools.parity_report keeps the sections of doc/parity.md it does not write itself."""

from tools.onnx_parity_report import END, START
from tools.parity_report import _kept_sections


def test_hand_written_sections_are_kept_and_generated_ones_are_not(tmp_path):
    doc = tmp_path / "parity.md"
    doc.write_text("# Parity\n\nintro\n\n| model |\n|---|\n| a |\n\n"
                   "## PP-OCRv6 against transformers\n\nby hand\n\n| x |\n|---|\n\n"
                   "## Served with their own inference settings\n\n- a: b\n\n"
                   f"{START}\n## Converted from released ONNX files\n\nrows\n{END}\n"
                   "## Pending in the manifest (not in the zoo)\n\n| p |\n", encoding="utf-8")
    hand, block = _kept_sections(doc)
    assert hand == ["## PP-OCRv6 against transformers\n\nby hand\n\n| x |\n|---|"]
    assert block == f"{START}\n## Converted from released ONNX files\n\nrows\n{END}"
    assert _kept_sections(tmp_path / "absent.md") == ([], "")
