"""Shared test fixtures."""

from __future__ import annotations

import json
import os
import random
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # plain `pytest` (not `python -m pytest`) from anywhere
    sys.path.insert(0, str(REPO))


def pytest_configure(config):
    # Under pytest-xdist (pyproject's addopts), the workers share the cores: torch's OpenMP
    # teams sized for the whole machine would preempt each other at every barrier.
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@contextmanager
def local_ray_cluster(num_cpus: int = 2):
    """``ray.init`` of a local cluster whose actors import this checkout and the tests' modules (the
    failure stand-ins live there), one intra-op thread each; shut down after."""
    import ray

    path = os.pathsep.join([str(REPO), str(REPO / "tests")])
    ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    try:
        yield
    finally:
        ray.shutdown()


def compile_paddleocr(root: Path, relpath: str, names, ns: dict) -> dict:
    """Run only the named top-level classes / functions of the PaddleOCR source file
    ``root / relpath`` in ``ns`` (the tests' reference: PaddleOCR's own code, its imports stood in
    for by what ``ns`` holds); returns ``ns``."""
    import ast
    import warnings

    with warnings.catch_warnings():  # PaddleOCR's sources have invalid escape sequences
        warnings.simplefilter("ignore")
        tree = ast.parse((root / relpath).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            exec(compile(ast.Module(body=[node], type_ignores=[]), str(root / relpath), "exec"), ns)
    return ns


@contextmanager
def intra_op_threads(count: int):
    """torch's intra-op threads set to ``count`` inside the block, restored after. One thread in
    the pipeline tests: on a busy 2-core runner two OpenMP threads competing with another process
    make the small recognizer batches ~10x slower (and a CLI child runs at OMP_NUM_THREADS=1)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def converted_folders(shared_dir: Path, out: Path, folders: dict[str, str]) -> dict[str, Path]:
    """``{key: Paddle folder name}`` of ``shared_dir/paddle_models`` -> ``{key: .safetensors}`` in ``out``."""
    from ptocr.conversion import convert_once

    return {key: convert_once(shared_dir / "paddle_models" / folder, out / f"{folder}.safetensors")
            for key, folder in folders.items()}


# The PaddleOCR 3.x pipeline's models in ../shared: v5 mobile det / rec, the x0.25 textline classifier.
V5_MOBILE_FOLDERS = {"det": "PP-OCRv5_mobile_det_infer", "rec": "PP-OCRv5_mobile_rec_infer",
                     "textline": "PP-LCNet_x0_25_textline_ori_infer"}


@pytest.fixture(scope="session")
def v5_models(shared_dir, tmp_path_factory) -> dict[str, Path]:
    """``V5_MOBILE_FOLDERS`` converted once per test process (the OCR3 suites share them)."""
    return converted_folders(shared_dir, tmp_path_factory.mktemp("v5_mobile_models"), V5_MOBILE_FOLDERS)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's pipeline runs (``intra_op_threads``' reason)."""
    with intra_op_threads(1):
        yield


def det_params(ocr) -> dict:
    """An OCR3's detection steps as paddlex reports them (a result's ``text_det_params``)."""
    pre, post = ocr.det_pre, ocr.det_post
    return {"limit_side_len": pre.limit_side_len, "limit_type": pre.limit_type, "thresh": post.thresh,
            "max_side_limit": pre.max_side_limit, "box_thresh": post.box_thresh, "unclip_ratio": post.unclip_ratio}


def v5_ocr3(v5_models: dict, **options):
    """``ptocr.OCR3`` over the converted v5 models, built as a 3.x script builds PaddleOCR: model
    folders by 3.x's names, document orientation and unwarping off; ``options``: more of 3.x's."""
    from ptocr.pipeline3 import OCR3

    return OCR3(text_detection_model_dir=v5_models["det"], text_recognition_model_dir=v5_models["rec"],
                textline_orientation_model_dir=v5_models["textline"], use_doc_orientation_classify=False,
                use_doc_unwarping=False, **options)


def seed_python_and_numpy(seed: int) -> None:
    """Seed the two global generators PaddleOCR's augmentations draw from (python's, numpy's)."""
    random.seed(seed)
    np.random.seed(seed)


def det_label(boxes, texts) -> str:
    """A PaddleOCR detection label: the JSON list of ``{"transcription", "points"}``."""
    return json.dumps([{"transcription": t, "points": b} for b, t in zip(boxes, texts)])


@contextmanager
def recorded_batches(predictor):
    """The shape of every batch ``predictor``'s model is called on inside the ``with`` block."""
    shapes: list[tuple[int, ...]] = []
    forward = predictor.forward

    def recording(batch, *a):
        shapes.append(tuple(batch.shape))
        return forward(batch, *a)

    predictor.forward = recording
    try:
        yield shapes
    finally:
        del predictor.forward


def assert_same_state(a, b, keys=None) -> None:
    """State dicts ``a`` and ``b`` are equal tensor for tensor, dtype and shape included
    (on ``keys`` only, when given)."""
    import numpy as np

    if keys is None:
        assert a.keys() == b.keys()
        keys = a.keys()
    for k in keys:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert np.array_equal(a[k].numpy(), b[k].numpy()), k


def assert_labels_as_paddleocr(ours, theirs, texts, keys=("label", "length")) -> int:
    """A ptocr label encoder ``ours`` against PaddleOCR's class ``theirs`` on each text: the texts
    PaddleOCR drops (its op returns None) refused (``accepts`` False, a PtocrError "cannot be
    encoded"), the others giving the same ``keys`` arrays, values and dtypes. Returns how many
    texts were kept."""
    from ptocr.errors import PtocrError

    kept = 0
    for text in texts:
        want = theirs({"label": text, "image": None})  # MultiLabelEncode reads "image" too
        assert ours.accepts(text) == (want is not None), text
        if want is None:
            with pytest.raises(PtocrError, match="cannot be encoded"):
                ours(text)
            continue
        kept += 1
        got = ours(text)
        for key in keys:
            assert np.asarray(got[key]).dtype == np.asarray(want[key]).dtype, (text, key)
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{text!r} {key}")
    return kept


def shared_path() -> Path:
    """The shared data folder: $PTOCR_SHARED, else <repo>/../shared (one setting, see verification.shared)."""
    from verification.shared import default_shared

    return default_shared()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder (real Paddle models); skips the test when it is absent."""
    d = shared_path()
    if not (d / "paddle_models").is_dir():
        pytest.skip(f"shared data not found at {d} (set PTOCR_SHARED to the folder holding paddle_models/)")
    return d


@pytest.fixture(scope="session")
def paddleocr_src() -> Path:
    """An installed PaddleOCR 2.x source tree (or $PTOCR_PADDLEOCR_SRC), whose own pre- and
    post-processing code the tests run as the reference; skips the test when there is none."""
    import importlib.util
    import os

    env = os.environ.get("PTOCR_PADDLEOCR_SRC")
    if env:
        root = Path(env)
    else:
        spec = importlib.util.find_spec("paddleocr")  # locates without importing (needs paddle)
        if spec is None or not spec.submodule_search_locations:
            pytest.skip("paddleocr 2.x sources not found (pip install --no-deps paddleocr==2.10.0)")
        root = Path(list(spec.submodule_search_locations)[0])
    if not (root / "tools" / "infer" / "predict_det.py").is_file():
        pytest.skip(f"{root} is not a paddleocr 2.x source tree")
    return root


@pytest.fixture
def loopback_only(monkeypatch):
    """Any connection to a host other than 127.0.0.1 fails the test (pip too: no index); the
    runner's own proxy settings, which would route 127.0.0.1 elsewhere, are taken away."""
    import socket

    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a test tried to reach {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
