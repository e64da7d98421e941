"""The evaluation loop of PaddleOCR's ``tools/program.py`` (``eval``), shared by ``ptocr train``
(every ``eval_batch_step``) and ``ptocr eval`` (``tools/eval.py``): the network over the Eval
loader, its output post-processed and scored by the config's metric, and the fps.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ptocr.dictionary import Dictionary
from ptocr.errors import PtocrError
from ptocr.models.heads.pfhead_local import PFHeadLocal
from ptocr.training.amp import MixedPrecision

__all__ = ["Scorer", "run_evaluation", "to_device", "paddle_eval_maps"]


def to_device(batch: dict, device: torch.device, mode: str = "Train") -> dict:
    if not isinstance(batch["image"], torch.Tensor):  # collate left images of different sizes as a list
        raise PtocrError(f"{mode}: the images of one batch differ in size (e.g. RecResizeImg eval_mode); set "
                         f"{mode}.loader.batch_size_per_card: 1")
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


@contextmanager
def paddle_eval_maps(net: nn.Module):
    """PaddleOCR's evaluation reads its det head's ``maps``: PFHeadLocal's is the mean of its shrink
    and refined maps, whatever map ptocr's entry returns for inference (its ``output``)."""
    head = getattr(net, "head", None)
    if not isinstance(head, PFHeadLocal):
        yield
        return
    output, head.output = head.output, "mean"
    try:
        yield
    finally:
        head.output = output


@dataclass
class Scorer:
    """A batch's network output, post-processed, into a metric: det boxes against the batch's
    polygons, rec texts against the labels decoded back from the batch's CTC indices, cls labels."""

    task: str
    post: object
    dictionary: Dictionary | None = None
    label_list: list | None = None

    def __call__(self, out: np.ndarray, batch: dict, metric) -> None:
        if self.task == "det":
            for i, (boxes, _scores) in enumerate(self.post(out, np.asarray(batch["shape"]))):
                metric.update(boxes, np.asarray(batch["polys"][i]), np.asarray(batch["ignore_tags"][i]))
        elif self.task == "rec":
            classes = self.dictionary.classes
            label = batch["label_ctc"] if "label_ctc" in batch else batch["label"]
            labels = ["".join(classes[j] for j in row[:n]) for row, n in zip(label.tolist(), batch["length"].tolist())]
            metric.update(self.post(out), labels)
        else:
            metric.update(self.post(out), [self.label_list[int(i)] for i in batch["label"]])


def run_evaluation(net: nn.Module, loader, device: torch.device, scorer: Scorer, metric,
                   precision: MixedPrecision = MixedPrecision()) -> dict[str, float]:
    """tools/program.py ``eval``: ``metric`` over ``loader`` (``net`` left in eval mode), and fps.
    A MultiHead recognizer's eval forward is its CTC branch alone, as PaddleOCR's. With
    ``Global.use_amp`` (``precision``), the forward runs under autocast, as PaddleOCR's eval."""
    net.eval()
    frames, spent = 0, 0.0
    with torch.no_grad(), paddle_eval_maps(net):
        for batch in loader:
            start = time.time()
            with precision.autocast(device):
                out = net(to_device(batch, device, "Eval")["image"])
            out = out.float().cpu().numpy()
            spent += time.time() - start
            scorer(out, batch, metric)
            frames += len(batch["image"])
    result = metric.get_metric()
    result["fps"] = frames / spent if spent > 0 else 0
    return result
