"""ONNX Runtime as the reference for models converted from ONNX files.

The converter reads ONNX files without onnxruntime; the proof runs the same file with it
(CPU execution provider, the default graph optimizations, as a user of the file runs it)
and compares. ``OrtModel`` wraps a session as a callable ``N x C x H x W`` tensor -> tensor,
so ptocr's own predictors and pipeline can run the official ONNX file in place of the
converted model (the end-to-end comparison: same pre- and post-processing, only the
network differs).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch


def ort_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def ort_session(path: str | os.PathLike, *, threads: int = 2, optimized: bool = True):
    """A CPU InferenceSession of ``path`` (``optimized``: ORT's default graph optimizations)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimized:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ort_outputs(path: str | os.PathLike, inputs: Sequence[np.ndarray], *, threads: int = 2,
                optimized: bool = True) -> list[np.ndarray]:
    """The file's first output for each input (float32 N x C x H x W)."""
    session = ort_session(path, threads=threads, optimized=optimized)
    name = session.get_inputs()[0].name
    return [session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0] for x in inputs]


class OrtModel(torch.nn.Module):
    """An ONNX file run by ONNX Runtime, callable like a ptocr network (float32 tensors in
    and out), so that ptocr's predictors can run it (``OrtModel(path)`` in place of
    ``predictor.model``)."""

    def __init__(self, path: str | os.PathLike, *, threads: int = 2):
        super().__init__()
        self.path = str(path)
        self.session = ort_session(path, threads=threads)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: arr})[0])


def ort_predictor(onnx_path: str | os.PathLike, config: dict, dictionary=None, *, threads: int = 2):
    """ptocr's predictor for ``config``'s task (its pre- and post-processing, from a converted
    model's config and dictionary) with ONNX Runtime running ``onnx_path`` as its network."""
    from ptocr.predictors import make_predictor

    return make_predictor(OrtModel(onnx_path, threads=threads), config, dictionary, where=str(onnx_path))
