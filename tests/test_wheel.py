"""The wheel works as `pip install ptocr` installs it: built from the repository, installed
non-editable into a fresh virtual environment, run from a folder outside the checkout.

torch and the other dependencies come from this environment (``--system-site-packages``: no
index is reached); the checkout must not be importable there (cwd elsewhere, no PYTHONPATH),
which the test checks through ``ptocr.__file__`` and the manifest path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from ptocr.manifest import load_manifest
from verification.loopback import mirror_path, official_archive, serve_folder

REPO = Path(__file__).resolve().parents[1]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "weights_manifest.json", "ptocr", "converter")
BUNDLE = ("ch_PP-OCRv4_det", "ch_PP-OCRv4_rec", "ch_ppocr_mobile_v2.0_cls")


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python of a fresh venv with the built wheel installed, a clean environment for it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in BUILD_INPUTS:  # a clean copy: no build/ or egg-info of earlier builds leaks in
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(p, src / name)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                  "-w", str(tmp / "dist"), str(src)])
    wheels = list((tmp / "dist").glob("ptocr-*.whl"))
    if built.returncode != 0 or len(wheels) != 1:
        pytest.skip(f"pip wheel could not build the wheel here (needs setuptools>=68 installed):\n{built.stderr[-2000:]}")
    env_dir = tmp / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # pip of this environment installs into the venv (its --python option); --no-deps: torch,
    # numpy ... are the environment's, seen through --system-site-packages.
    done = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                 "--force-reinstall", str(wheels[0])])
    assert done.returncode == 0, done.stderr
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PTOCR_", "PYTHON"))}
    env.update(PIP_NO_INDEX="1", HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               NO_PROXY="127.0.0.1,localhost", PTOCR_CACHE=str(tmp / "cache"), HF_HUB_CACHE=str(tmp / "hf"))
    outside = tmp / "elsewhere"
    outside.mkdir()
    return python, env, outside, tmp


def test_the_installed_wheel_reads_its_own_manifest(installed):
    python, env, outside, _ = installed
    code = ("import json, ptocr, ptocr.manifest as m; "
            "print(json.dumps([ptocr.__file__, str(m.manifest_path()), ptocr.list_models()]))")
    done = _run([str(python), "-c", code], cwd=outside, env=env)
    assert done.returncode == 0, done.stderr
    where, manifest, names = json.loads(done.stdout.strip().splitlines()[-1])
    venv_dir = str(python.parent.parent)
    assert where.startswith(venv_dir), f"ptocr imported from {where}, not the installed wheel"
    assert manifest.startswith(venv_dir) and manifest.endswith("ptocr/weights_manifest.json")
    assert names == sorted(load_manifest().models)
    ptocr_cli = python.parent / "ptocr"
    listed = _run([str(ptocr_cli), "list"], cwd=outside, env=env)
    assert listed.returncode == 0 and "ch_PP-OCRv4_rec" in listed.stdout and "bundle" in listed.stdout, listed.stderr
    info = _run([str(ptocr_cli), "info", "ch_ptocr_server_v2"], cwd=outside, env=env)
    assert info.returncode == 0 and "ch_ppocr_server_v2.0_rec" in info.stdout, info.stderr


def test_the_installed_wheel_loads_the_bundle_from_a_mirror(installed, shared_dir):
    python, env, outside, tmp = installed
    root = tmp / "mirror"
    man = load_manifest()
    for name in BUNDLE:
        src = man.model_entry(name).source
        official_archive(shared_dir / "paddle_models" / src["folder"], mirror_path(root, src["url"]))
    image = shared_dir / "images/scenes/11.jpg"
    code = ("import sys, ptocr; ocr = ptocr.load('ch_PP-OCRv4'); lines = ocr(sys.argv[1]); "
            "print(len(lines), sum(bool(l.text) for l in lines))")
    with serve_folder(root) as mirror:
        done = _run([str(python), "-c", code, str(image)], cwd=outside,
                    env={**env, "PTOCR_MIRROR": mirror, "PTOCR_ZOO": str(tmp / "zoo")})
    assert done.returncode == 0, done.stderr[-3000:]
    n, with_text = map(int, done.stdout.split()[-2:])
    assert n > 5 and with_text == n
    assert sorted(p.name for p in (tmp / "zoo").iterdir()) == sorted(BUNDLE)
