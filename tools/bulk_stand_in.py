"""The PP-OCRv5 server pipeline for throughput figures, where its trained weights are out of reach.

Issue #28 asks for the v5 server pipeline's bulk throughput (60 scenes/s on one H200), but
../shared holds the PP-OCRv5 server programs without weights (``paddle_graphs/``). Time does not
depend on the weights' values, what the networks are given does: a seeded server detector's map
is speckle, which gives no box (or thousands), so the recognizer would see nothing like a real
page's crops. Here each network runs in full on what the real pipeline gives it:

* the server detector and recognizer are the real programs with seeded, calibrated weights
  (``verification.suite.prepare``, as the parity suite makes them; their trained weights where
  ``paddle_models/`` has them), the textline orientation model the trained
  ``PP-LCNet_x0_25_textline_ori``;
* the detector runs the server network on every input and then answers with the trained
  ``PP-OCRv5_mobile_det``'s map of that input (computed once, in float32 on the CPU, before the
  timing), so DB post-processing, the crops, the textline model and the recognizer get the
  boxes of real text. Only the server detector's values are discarded, not its time: its
  output is still copied to the host, as the pipeline's is.

The texts read are the seeded recognizer's, i.e. meaningless; only the time is the figure.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

import ptocr
from ptocr.pipeline3 import OCR3
from ptocr.predictors import DetPredictor

__all__ = ["SERVER_MODELS", "StandInDetector", "v5_server_pipeline"]

SERVER_MODELS = {"det": "PP-OCRv5_server_det", "rec": "PP-OCRv5_server_rec"}  # zoo names (_server_folder)
MAP_DETECTOR = "PP-OCRv5_mobile_det_infer"  # trained, under paddle_models/
TEXTLINE = "PP-LCNet_x0_25_textline_ori_infer"


def input_key(x: np.ndarray) -> str:
    """A network input's identity (C x H x W): its shape and a sparse sample of its values, so
    that looking a map up costs microseconds, not a hash of megabytes."""
    sample = np.ascontiguousarray(x[:, ::7, ::7], dtype=np.float32)
    return f"{x.shape}:{hashlib.blake2b(sample.tobytes(), digest_size=16).hexdigest()}"


class StandInDetector(DetPredictor):
    """Runs ``timed``'s network on every batch and returns the maps ``remember`` stored for its
    inputs (another detector's maps of the same inputs)."""

    def __init__(self, timed: DetPredictor):
        super().__init__(timed.model, timed.config, device=timed.device, dtype=timed.dtype)
        self.maps: dict[str, np.ndarray] = {}
        self.calls = 0  # network calls, so a test can see that the timed network ran

    def remember(self, x: np.ndarray, prob: np.ndarray) -> None:
        self.maps[input_key(x)] = prob

    def forward(self, batch: np.ndarray, pin_memory: bool = False) -> np.ndarray:
        timed = super().forward(batch, pin_memory)
        self.calls += 1
        try:
            maps = np.stack([self.maps[input_key(x)] for x in batch])
        except KeyError:
            raise KeyError("an input with no stand-in map: remember() each input before timing") from None
        if maps.shape != timed.shape:
            raise ValueError(f"stand-in maps {maps.shape} against the timed network's {timed.shape}")
        return maps


def _server_folder(shared: Path, workdir: Path, name: str) -> Path:
    """The Paddle folder of the zoo model ``name`` in ``shared``, as the parity suite prepares it
    from there: its trained weights where ``paddle_models/`` has them, else its program under
    ``paddle_graphs/`` with seeded, calibrated weights written in ``workdir``."""
    from verification.suite import prepare, suite

    entry = next(e for e in suite(shared) if e.model == name)
    folder = prepare(entry, shared, workdir)
    if not (folder / "inference.pdiparams").is_file():
        raise FileNotFoundError(f"{name}: no weights at {folder}, and no program of it under {shared / 'paddle_graphs'}")
    return folder


def v5_server_pipeline(shared: Path, workdir: Path, images: list[str], *, device: str = "cpu",
                       dtype: str = "float32") -> OCR3:
    """PaddleOCR 3.x's v5 server pipeline (document steps off, textline orientation on) whose
    detector stands in (``StandInDetector``) with the v5 mobile detector's maps of ``images``."""
    folders = {task: _server_folder(shared, workdir, name) for task, name in SERVER_MODELS.items()}
    det = StandInDetector(ptocr.load(folders["det"], device=device, dtype=dtype))
    ocr = OCR3(det, folders["rec"], shared / "paddle_models" / TEXTLINE, use_textline_orientation=True,
               use_doc_orientation_classify=False, use_doc_unwarping=False, device=device, dtype=dtype)
    reference = ptocr.load(shared / "paddle_models" / MAP_DETECTOR)  # float32, CPU
    steps = ocr.bulk_steps()
    for image in images:
        x, _ = steps.det_input(steps.load(image)[0])
        det.remember(x, reference.forward(x[None])[0])
    return ocr
