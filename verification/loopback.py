"""Stand-ins for the official origins on 127.0.0.1, for tests that must not reach the network.

- ``official_archive``: a tar file laid out as PaddleOCR / PaddleX release them
  (``<folder>/inference.*``), built from a ``../shared`` model folder;
- ``serve_folder``: an HTTP server for a folder (a mirror for ``$PTOCR_MIRROR``);
- ``hub_server``: the part of the Hugging Face Hub's HTTP API that ``hf_hub_download`` uses
  (``HEAD`` / ``GET /{repo}/resolve/{revision}/{file}`` with ``X-Repo-Commit``, ``ETag``,
  ``Content-Length``), for ``$HF_ENDPOINT``; and what ``ptocr publish`` asks before it uploads
  (creating a repo that exists, its tags, a file's LFS sha256 at a tag). Uploads are not served.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
import tarfile
import threading
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ptocr.archives import MODEL_FILES
from ptocr.origins import TRANSFORMERS_FILES

SERVED = MODEL_FILES | set(TRANSFORMERS_FILES)  # a Paddle repo's files, a transformers checkpoint's

COMMIT = "0d63e78e2b680928f6b1747d76a08db6e645efb7"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then closed): an unreachable server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mirror_path(root: Path, url: str) -> Path:
    """Where ``url`` lies in a mirror rooted at ``root`` (its path after the host)."""
    return root / urlsplit(url).path.lstrip("/")


def official_archive(folder: Path, dst: Path, top: str | None = None) -> Path:
    """``dst``: a tar of ``folder``'s inference files under ``<top or folder name>/``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dst, "w") as tar:
        for f in sorted(folder.iterdir()):
            if f.name in MODEL_FILES:
                tar.add(f, arcname=f"{top or folder.name}/{f.name}")
    return dst


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


@contextmanager
def serve_folder(root: Path):
    """Serve ``root`` on 127.0.0.1 (a free port); yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _HubHandler(http.server.BaseHTTPRequestHandler):
    repos: dict[str, Path] = {}
    tags: dict[str, list[str]] = {}  # repo -> its tags, each holding the repo's folder as served
    requests: list[str] = []

    def log_message(self, *args):
        pass

    def _file(self) -> Path | None:
        parts = unquote(urlsplit(self.path).path).strip("/").split("/")
        # /{namespace}/{name}/resolve/{revision}/{file}
        if len(parts) != 5 or parts[2] != "resolve":
            return None
        folder = self.repos.get(f"{parts[0]}/{parts[1]}")
        if folder is None or parts[4] not in SERVED or not (folder / parts[4]).is_file():
            return None
        return folder / parts[4]

    def _head(self, send_body: bool) -> None:
        self.requests.append(f"{self.command} {self.path}")
        path = self._file()
        if path is None:
            body = b'{"error":"Entry not found"}'
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        # The Hub's ETag of an LFS file is its sha256 (of others, a git blob hash: any id works).
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if send_body:
            self.wfile.write(data)

    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self._head(False)

    def _json(self, status: int, value) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        parts = unquote(urlsplit(self.path).path).strip("/").split("/")
        if parts[:2] == ["api", "models"] and parts[-1] == "refs":  # /api/models/{repo}/refs
            self.requests.append(f"GET {self.path}")
            tags = self.tags.get("/".join(parts[2:-1]), [])
            return self._json(200, {"branches": [], "converts": [], "tags": [
                {"name": t, "ref": f"refs/tags/{t}", "targetCommit": COMMIT} for t in tags]})
        self._head(True)

    def do_POST(self):  # noqa: N802
        self.requests.append(f"POST {self.path}")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        form = parse_qs(body.decode())
        parts = unquote(urlsplit(self.path).path).strip("/").split("/")
        if parts == ["api", "repos", "create"]:  # the Hub's answer for a repo that exists
            asked = json.loads(body or b"{}")
            repo = f"{asked.get('organization')}/{asked.get('name')}"
            return self._json(409, {"error": "You already created this model repo",
                                    "url": f"http://{self.headers.get('Host')}/{repo}"})
        if parts[:2] == ["api", "models"] and len(parts) == 6 and parts[4] == "paths-info":
            folder = self.repos.get(f"{parts[2]}/{parts[3]}")
            found = []
            for name in form.get("paths", []):
                f = folder / name if folder is not None else None
                if f is not None and f.is_file():
                    data = f.read_bytes()
                    sha = hashlib.sha256(data).hexdigest()
                    found.append({"type": "file", "path": name, "size": len(data), "oid": sha[:40],
                                  "lfs": {"oid": sha, "size": len(data), "pointerSize": 134}})
            return self._json(200, found)
        self._json(404, {"error": "not served by this stand-in"})


@contextmanager
def hub_server(repos: dict[str, Path], tags: dict[str, list[str]] | None = None):
    """A Hub on 127.0.0.1 serving ``{repo_id: folder}`` (and ``{repo_id: [tag, ...]}``); yields
    (endpoint URL, request log)."""
    handler = type("Hub", (_HubHandler,), {"repos": dict(repos), "tags": dict(tags or {}), "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()
