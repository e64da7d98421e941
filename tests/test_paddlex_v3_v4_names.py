"""PaddleX's releases of the PP-OCRv3 and v4 networks (PP-OCRv4_mobile_det, korean_PP-OCRv3_mobile_rec,
...), which PaddleOCR 3.x runs for ``ocr_version="PP-OCRv3"`` / ``"PP-OCRv4"`` and ``lang="ka"``.

They are Paddle 3 (PIR) programs, which ``../shared`` does not hold: here each is made from the
same network's Paddle 2 release by Paddle's own translator (``verification.pir_translation``:
same ops, order and weights, no layer names), with an inference.yml as PaddleX writes it. Each
must convert, by graph alignment and the model name in its inference.yml alone, to exactly the
tensors of the Paddle 2 release's conversion; and ``OCR3(ocr_version="PP-OCRv4")`` must load the
two by name from their official origin (a mirror on 127.0.0.1) and read what the Paddle 2
folders read.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch

from ptocr.architectures import canonical_name
from ptocr.conversion import convert_paddle
from ptocr.manifest import load_manifest
from ptocr.zoo import UnpinnedOriginWarning
from verification.loopback import closed_port, mirror_path, official_archive, serve_folder

REPO = Path(__file__).resolve().parents[1]
# Every PaddleX release of a v3 / v4 network in the zoo -> the zoo's Paddle 2 release of the same network
SIBLINGS = {
    "PP-OCRv3_mobile_det": "ch_PP-OCRv3_det", "PP-OCRv4_mobile_det": "ch_PP-OCRv4_det",
    "PP-OCRv4_server_det": "ch_PP-OCRv4_server_det", "PP-OCRv3_mobile_rec": "ch_PP-OCRv3_rec",
    **{f"{code}_PP-OCRv3_mobile_rec": f"{code}_PP-OCRv3_rec" for code in (
        "en", "korean", "japan", "chinese_cht", "te", "ka", "ta", "latin", "arabic", "cyrillic", "devanagari")},
    "PP-OCRv4_mobile_rec": "ch_PP-OCRv4_rec", "en_PP-OCRv4_mobile_rec": "en_PP-OCRv4_rec",
    "PP-OCRv4_server_rec": "ch_PP-OCRv4_server_rec", "PP-OCRv4_server_rec_doc": "ch_PP-OCRv4_server_rec",
    # the seal text detectors: the v4 detectors' networks, giving polygons (tests/test_seal_pipeline.py)
    "PP-OCRv4_mobile_seal_det": "ch_PP-OCRv4_det", "PP-OCRv4_server_seal_det": "ch_PP-OCRv4_server_det",
}
# Those converted here, from their sibling's Paddle 2 release under ../shared (trained weights in
# paddle_models/, else the program in paddle_graphs/, seeded)
CONVERTED = ("PP-OCRv3_mobile_det", "PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec", "PP-OCRv4_server_det",
             "PP-OCRv4_server_rec", "en_PP-OCRv4_mobile_rec", "PP-OCRv3_mobile_rec", "korean_PP-OCRv3_mobile_rec",
             "PP-OCRv4_mobile_seal_det")
# PaddleX's inference.yml of the same kind of model, whose name (and dictionary) are replaced
YML_OF_TASK = {"det": "paddle_models/PP-OCRv5_mobile_det_infer", "rec": "paddle_models/PP-OCRv5_mobile_rec_infer"}


def _inference_yml(shared: Path, name: str, dictionary: list[str] | None) -> str:
    import yaml

    entry = load_manifest().models[name]
    doc = yaml.safe_load((shared / YML_OF_TASK[entry["task"]] / "inference.yml").read_text(encoding="utf-8"))
    doc["Global"]["model_name"] = name
    if entry["task"] == "det":  # the seal detector's DBPostProcess, as PaddleOCR's *_seal_det.yml exports it
        doc["PostProcess"].update(entry["postprocess"])
    if dictionary is not None:
        doc["PostProcess"]["character_dict"] = dictionary
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def test_each_release_is_its_siblings_network_dictionary_and_languages():
    """The manifest says what the tests below cannot see for the releases not converted here: the
    same architecture, dictionary and languages as the Paddle 2 release of the network (the
    document recognizer excepted: its own dictionary of 15,629 characters; the seal detectors
    give polygons), from PaddleX's origins."""
    models = load_manifest().models
    paddlex_v3_v4 = {n for n, e in models.items() if e["source"]["format"] == "paddle3_pir" and re.search("PP-OCRv[34]", n)
                     and e["parity"].get("against") == "architecture"}  # not PP-OCRv3_server_det: its own network
    assert paddlex_v3_v4 == set(SIBLINGS)
    for name, sibling in SIBLINGS.items():
        ours, theirs = models[name], models[sibling]
        assert canonical_name(ours["architecture"]) == canonical_name(theirs["architecture"]), name
        assert (ours["task"], ours["languages"]) == (theirs["task"], theirs["languages"]), name
        if name != "PP-OCRv4_server_rec_doc":
            assert ours["dictionary"] == theirs["dictionary"], name
        src = ours["source"]
        assert src["format"] == "paddle3_pir" and src["folder"] == f"{name}_infer" and src["hub_repo"] == f"PaddlePaddle/{name}"
        assert src["url"].endswith(f"/paddlex/official_inference_model/paddle3.0.0/{name}_infer.tar")
        assert ours["parity"]["against"] == "architecture"
    assert models["PP-OCRv4_server_rec_doc"]["dictionary"]["file"] == "ppocrv4_doc_dict.txt"
    for name in ("PP-OCRv4_mobile_seal_det", "PP-OCRv4_server_seal_det"):  # PaddleOCR's *_seal_det.yml
        assert models[name]["postprocess"] == {"thresh": 0.2, "box_thresh": 0.6, "unclip_ratio": 0.5,
                                               "box_type": "poly"}, name


def _paddle2_release(shared: Path, name: str) -> Path:
    folder = load_manifest().models[SIBLINGS[name]]["source"]["folder"]
    trained = shared / "paddle_models" / folder
    return trained if (trained / "inference.pdiparams").is_file() else shared / "paddle_graphs" / folder


@pytest.fixture(scope="module")
def releases(shared_dir, tmp_path_factory) -> dict:
    """PaddleX name -> (its sibling's Paddle 2 release, seeded where ../shared has the program only;
    the PIR folder translated from it, named as PaddleX names its release; the Paddle 2 release's
    conversion)."""
    if importlib.util.find_spec("paddle") is None:
        pytest.skip("paddlepaddle is not installed (the parity extra): no translator to make the PIR programs")
    from verification.seeding import seed_folder

    out = tmp_path_factory.mktemp("paddlex_v3_v4")
    pairs, args = {}, []
    for name in CONVERTED:
        src = _paddle2_release(shared_dir, name)
        if not src.is_dir():
            pytest.skip(f"{src} not found")
        if not (src / "inference.pdiparams").is_file():
            src = seed_folder(src, out / "seeded" / src.name)
        pairs[name] = (src, out / "pir" / f"{name}_infer")
        args += [str(src), str(pairs[name][1])]
    done = subprocess.run([sys.executable, "-m", "verification.pir_translation", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    found = {}
    for name, (src, pir) in pairs.items():
        p2 = convert_paddle(src, SIBLINGS[name])
        dictionary = list(p2.dictionary.characters) if p2.dictionary is not None else None
        (pir / "inference.yml").write_text(_inference_yml(shared_dir, name, dictionary), encoding="utf-8")
        found[name] = (src, pir, p2)
    return found


@pytest.mark.parametrize("name", sorted(CONVERTED))
def test_the_pir_release_converts_to_the_paddle2_releases_tensors(releases, name):
    _, pir, want = releases[name]
    got = convert_paddle(pir)  # no --arch: inference.yml's model name picks the zoo entry
    entry = load_manifest().models[name]
    assert got.source.format == "paddle3_pir" and not got.source.structured  # placed by the graph
    assert got.arch_name == want.arch_name == canonical_name(entry["architecture"])
    assert got.state_dict.keys() == want.state_dict.keys()
    for key, value in want.state_dict.items():
        assert torch.equal(got.state_dict[key], value), key
    if entry["task"] == "rec":
        assert got.dictionary.characters == want.dictionary.characters
    # the release's own post-processing, read from its inference.yml (the seal detector's polygons;
    # its weights here are the v4 detector's, which identify that release, not this one)
    assert {k: got.config["postprocess"][k] for k in entry["postprocess"]} == entry["postprocess"]


def test_a_pir_release_under_another_models_name_is_placed_by_its_graph(releases, tmp_path):
    """The v4 mobile recognizer's program whose inference.yml says korean_PP-OCRv3_mobile_rec (another
    network): the name does not fit the graph, so the converter detects the network and says so."""
    _, pir, p2 = releases["PP-OCRv4_mobile_rec"]
    bad = tmp_path / "PP-OCRv4_mobile_rec_infer"
    shutil.copytree(pir, bad)
    yml = (bad / "inference.yml").read_text(encoding="utf-8")
    (bad / "inference.yml").write_text(yml.replace("model_name: PP-OCRv4_mobile_rec",
                                                   "model_name: korean_PP-OCRv3_mobile_rec"), encoding="utf-8")
    got = convert_paddle(bad)
    assert got.arch_name == "ch_PP-OCRv4_rec"
    assert any("names the model korean_PP-OCRv3_mobile_rec" in note for note in got.source.notes)
    assert all(torch.equal(got.state_dict[k], v) for k, v in p2.state_dict.items())


def test_ocr3_ocr_version_v4_loads_the_paddlex_names_from_their_origin(releases, shared_dir, tmp_path, monkeypatch,
                                                                       loopback_only):
    from ptocr.pipeline3 import OCR3

    root = tmp_path / "mirror"
    models = load_manifest().models
    for name in ("PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec"):
        official_archive(releases[name][1], mirror_path(root, models[name]["source"]["url"]))
    scene = sorted((shared_dir / "images" / "scenes").glob("*.jpg"))[0]
    with serve_folder(root) as mirror:
        monkeypatch.setenv("PTOCR_MIRROR", mirror)
        monkeypatch.setenv("PTOCR_ZOO", str(tmp_path / "zoo"))
        monkeypatch.setenv("PTOCR_CACHE", str(tmp_path / "cache"))
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")  # the mirror is the one origin
        for var in ("HF_HUB_OFFLINE", "PTOCR_OFFLINE", "PTOCR_REQUIRE_PINNED"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # read once, at import
        with pytest.warns(UnpinnedOriginWarning):  # the repo's manifest pins no file of these yet
            by_version = OCR3(ocr_version="PP-OCRv4", use_textline_orientation=False)
    assert sorted(p.name for p in (tmp_path / "zoo").iterdir()) == ["PP-OCRv4_mobile_det", "PP-OCRv4_mobile_rec"]
    by_folders = OCR3(text_detection_model_dir=releases["PP-OCRv4_mobile_det"][0],
                      text_recognition_model_dir=releases["PP-OCRv4_mobile_rec"][0],
                      use_textline_orientation=False)
    got, want = by_version.predict(str(scene))[0], by_folders.predict(str(scene))[0]
    assert len(want["rec_texts"]) > 3 and got["rec_texts"] == want["rec_texts"]
    assert np.array_equal(np.asarray(got["rec_scores"]), np.asarray(want["rec_scores"]))
    assert np.array_equal(np.asarray(got["dt_polys"]), np.asarray(want["dt_polys"]))
