"""Stand-ins for the official origins on 127.0.0.1, for tests that must not reach the network.

- ``official_archive``: a tar file laid out as PaddleOCR / PaddleX release them
  (``<folder>/inference.*``), built from a ``../shared`` model folder;
- ``serve_folder``: an HTTP server for a folder (a mirror for ``$PTOCR_MIRROR``);
- ``HubServer``: the part of the Hugging Face Hub's HTTP API that ``hf_hub_download`` uses
  (``HEAD`` / ``GET /{repo}/resolve/{revision}/{file}`` with ``X-Repo-Commit``, ``ETag``,
  ``Content-Length``), for ``$HF_ENDPOINT``.
"""

from __future__ import annotations

import hashlib
import http.server
import tarfile
import threading
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ptocr.archives import MODEL_FILES
from ptocr.origins import TRANSFORMERS_FILES

SERVED = MODEL_FILES | set(TRANSFORMERS_FILES)  # a Paddle repo's files, a transformers checkpoint's

COMMIT = "0d63e78e2b680928f6b1747d76a08db6e645efb7"


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

    def do_GET(self):  # noqa: N802
        self._head(True)


@contextmanager
def hub_server(repos: dict[str, Path]):
    """A Hub on 127.0.0.1 serving ``{repo_id: folder}``; yields (endpoint URL, request log)."""
    handler = type("Hub", (_HubHandler,), {"repos": dict(repos), "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    finally:
        server.shutdown()
        server.server_close()
