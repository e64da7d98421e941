"""Downloading one file over HTTP(S) into a folder, hashing it as it arrives.

The bytes go to a temporary name and are renamed only when complete (the length the server
announced, if any), so an interrupted download never looks like a finished one. The progress
bar is huggingface_hub's (its look and its ``HF_HUB_DISABLE_PROGRESS_BARS`` switch), the same
as Hub downloads show.

``PTOCR_MIRROR=<base URL>`` fetches every official archive from that base instead, keeping the
path of the official URL after its host (``https://host/PP-OCRv3/x.tar`` ->
``<base>/PP-OCRv3/x.tar``): for air-gapped or regional mirrors (``file://`` works too).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from ptocr.errors import PtocrError, first_line
from ptocr.version import __version__

ENV_MIRROR = "PTOCR_MIRROR"
# No official archive comes near this; a server streaming without end is cut off here.
MAX_DOWNLOAD_BYTES = 4 << 30
TIMEOUT_S = 60
# A download slower than this over a whole TIMEOUT_S window is given up: a server or proxy that
# trickles a byte now and then never trips the per-read timeout, and would hang a load for days.
MIN_BYTES_PER_S = 10_000
# A host that does not answer a TCP connect within this long is treated as out of reach.
PROBE_TIMEOUT_S = 5
PROXY_PORTS = {"http": 80, "https": 443, "socks5": 1080, "socks5h": 1080, "socks4": 1080}

__all__ = ["DownloadError", "ENV_MIRROR", "download", "mirrored", "unanswered", "unreachable"]


class DownloadError(PtocrError):
    """A download failed, was cut short or was not the file asked for."""


def mirrored(url: str) -> str:
    """``url`` on ``$PTOCR_MIRROR`` when set (its path kept), else ``url``."""
    base = os.environ.get(ENV_MIRROR, "").strip()
    if not base:
        return url
    return base.rstrip("/") + urlsplit(url).path


def unreachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why ``url``'s host cannot be reached (name not resolved, connection refused or timed
    out), or None when it accepts a TCP connection. Clients with their own retry loops
    (huggingface_hub backs off for ~25 s per file) are asked only once this says yes."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None  # file:// and the like: nothing to probe
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    label = f"{host}:{port}"
    if (proxy := _proxy_for(parts.scheme, host)) is not None:
        # The clients connect to the proxy the environment names (HTTPS_PROXY ...), not to the
        # host, which may not even resolve here: probe the proxy.
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        try:
            host, port = p.hostname, p.port or PROXY_PORTS.get(p.scheme, 80)
        except ValueError:  # a malformed port: the client says so itself
            return None
        if not host:
            return None
        label = f"the proxy {host}:{port} (for {label})"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return f"cannot reach {label} ({e.strerror or type(e).__name__})"
    return None


def unanswered(url: str, timeout: float | None = None) -> str | None:
    """Why ``url`` gets no HTTP answer within ``timeout`` (a server or proxy that accepts the
    connection and then stalls, or answers 5xx), or None when it answers (a 404 included: the
    client then says what is missing). Asked before a client with its own retry loop:
    huggingface_hub spent 6.5 minutes retrying a stalled endpoint before giving up."""
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    request = urllib.request.Request(url, method="HEAD", headers={"User-Agent": f"ptocr/{__version__}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler())  # the proxies the environment names now
    try:
        with opener.open(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as e:  # it answers; only a server in trouble counts (not 501 for HEAD)
        return f"{url} answers HTTP {e.code}" if e.code in (500, 502, 503, 504) else None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        if not isinstance(reason, (TimeoutError, ConnectionError)):
            # a certificate urllib does not trust (huggingface_hub has its own), a garbled reply:
            # the server is there; huggingface_hub decides
            return None
        return f"no HTTP answer from {url} within {timeout:g} s ({first_line(str(reason)) or type(e).__name__})"


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment names for ``scheme``://``host`` (``*_PROXY``, ``NO_PROXY``), or None."""
    proxies = urllib.request.getproxies()
    proxy = proxies.get(scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


def download(url: str, dst: Path, *, max_bytes: int = MAX_DOWNLOAD_BYTES, progress: bool = True) -> str:
    """Download ``url`` to the new file ``dst``; returns its sha256. Nothing is left at ``dst``
    (nor at its temporary name) when it fails."""
    tmp = dst.with_name(f".{dst.name}.part")
    request = urllib.request.Request(url, headers={"User-Agent": f"ptocr/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            status = getattr(response, "status", None)
            if status is not None and status != 200:
                raise DownloadError(f"{url}: HTTP {status}")
            kind = response.headers.get("Content-Type", "") or ""
            if kind.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
                raise DownloadError(f"{url}: the server sent an HTML page (Content-Type {kind}), "
                                    "not the archive: a wrong URL or mirror, or a login / error page")
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > max_bytes:
                raise DownloadError(f"{url}: {total} bytes, over the cap of {max_bytes}")
            digest, got = _stream(response, tmp, total, max_bytes, url, progress)
        if total is not None and got != total:
            raise DownloadError(f"{url}: truncated download ({got} of {total} bytes)")
        os.replace(tmp, dst)
    except _LocalWriteError as e:  # our disk (full, read-only): not the server's doing
        _unlink(tmp)
        raise e.error from None
    except urllib.error.HTTPError as e:
        _unlink(tmp)
        raise DownloadError(f"{url}: HTTP {e.code} {first_line(str(e.reason))}") from None  # a redirect loop's is 3 lines
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        # HTTPException: the connection dropped inside a chunked body (IncompleteRead), a garbled reply
        _unlink(tmp)
        reason = getattr(e, "reason", None) or e
        raise DownloadError(f"{url}: download failed ({reason})") from None
    except BaseException:
        _unlink(tmp)
        raise
    return digest


def _stream(response, tmp: Path, total: int | None, max_bytes: int, url: str, progress: bool):
    from huggingface_hub.utils import tqdm

    h = hashlib.sha256()
    got = 0
    try:
        f = open(tmp, "wb", buffering=0)  # unbuffered: a full disk fails in write, never later in close
    except OSError as e:
        raise _LocalWriteError(e) from None
    read = getattr(response, "read1", response.read)  # read1: what has come, not a full MB
    window_start, window_bytes = time.monotonic(), 0
    with f, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                 desc=Path(urlsplit(url).path).name, disable=not progress) as bar:
        while chunk := read(1 << 20):
            got += len(chunk)
            window_bytes += len(chunk)
            elapsed = time.monotonic() - window_start
            if elapsed >= TIMEOUT_S:
                if window_bytes < MIN_BYTES_PER_S * elapsed:
                    raise DownloadError(f"{url}: too slow ({window_bytes} bytes in the last {elapsed:.0f} s, "
                                        f"under {MIN_BYTES_PER_S // 1000} kB/s): a stalled server or connection")
                window_start, window_bytes = time.monotonic(), 0
            if got > max_bytes:
                raise DownloadError(f"{url}: more than the cap of {max_bytes} bytes")
            h.update(chunk)
            try:
                f.write(chunk)
            except OSError as e:
                raise _LocalWriteError(e) from None
            bar.update(len(chunk))
    return h.hexdigest(), got


class _LocalWriteError(Exception):
    """An OSError of writing the download here (``error``), told apart from the server's."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
