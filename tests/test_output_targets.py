"""An output path that is a link writes its target; one that is a device or a FIFO is refused
(renaming a file over it would replace the node: ``--json /dev/stdout`` run as root)."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

from ptocr.atomic import OutputError, write_atomically, write_outputs
from ptocr.cli import main

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")


def test_a_link_keeps_being_a_link_and_its_target_gets_the_data(tmp_path):
    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("old", encoding="utf-8")
    link.symlink_to(target)
    write_atomically(link, "new")
    assert link.is_symlink() and target.read_text(encoding="utf-8") == "new"
    write_outputs([(link, b"newer")])
    assert link.is_symlink() and target.read_bytes() == b"newer"


def test_a_fifo_is_refused_and_left_as_it_was(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for write in (lambda: write_atomically(fifo, "x"), lambda: write_outputs([(fifo, b"x")])):
        with pytest.raises(OutputError, match="not a regular file"):
            write()
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    linked = tmp_path / "to_fifo"
    linked.symlink_to(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        write_atomically(linked, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "to_fifo"]  # no temporary file left


def test_ocr_refuses_a_json_output_that_is_a_device_before_any_work(tmp_path, monkeypatch, shared_dir):
    monkeypatch.setenv("PTOCR_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("PTOCR_OFFLINE", "1")  # nothing fetched: the refusal comes first
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    image = str(shared_dir / "images" / "scenes" / "1.jpg")
    run = CliRunner().invoke(main, ["ocr", image, "--pipeline", "ch_PP-OCRv4", "--json", str(fifo)])
    assert run.exit_code == 2 and "not a regular file" in run.output and "--json - writes to stdout" in run.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and "Traceback" not in run.output
