"""PFHeadLocal, the DB head of the PP-OCRv4 server detector (PaddleOCR
``ppocr/modeling/heads/det_db_head.py``): a DBHead whose shrink map is refined by a small
local module (``cbn_layer``).

The ``binarize`` branch runs as in DBHead, keeping its half-resolution feature ``f`` (after
the transposed conv, BN and ReLU). ``f`` is upsampled x2 (nearest), concatenated AFTER the
shrink map (``[shrink, f]``, 1 + C/4 channels), then ``cbn_layer``: 3x3 conv-BN-ReLU
(``last_3``) and a biased 1x1 conv to one channel (``last_1``), sigmoid -> the refined
("cbn") map.

The inference program fetches two maps: output 0 is the cbn map and output 1 the average
``0.5 * (shrink + cbn)``. PaddleOCR's ``tools/infer/predict_det.py`` (2.x) reads output 0
only, so in eval this head returns the cbn map (``output="cbn"``, the default); build it
with ``output="mean"`` for the averaged map, or ``output="both"`` for ``(cbn, mean)``.

Training returns PaddleOCR's dict: ``maps`` = cat([cbn, threshold, binary]) where
``binary`` is the step function of (shrink, threshold), plus ``distance_maps`` (= cbn) and
``cbn_maps`` (= binary) under PaddleOCR's (crossed) keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ptocr.errors import ArchitectureError
from ptocr.models.heads.db_head import DBHead, NoThresholdBranch
from ptocr.models.layers import ConvBNAct
from ptocr.models.registry import register


class LocalModule(nn.Module):
    """``cbn_layer``: 3x3 conv-BN-ReLU ``last_3`` (children ``conv`` / ``bn``, as PaddleOCR
    names them) and a biased 1x1 conv ``last_1`` on ``[init_map, x]``: the refined map's logits."""

    def __init__(self, in_c: int, mid_c: int):
        super().__init__()
        self.last_3 = ConvBNAct(in_c + 1, mid_c, 3, act="relu")
        self.last_1 = nn.Conv2d(mid_c, 1, 1)

    def forward(self, x, init_map):
        return self.last_1(self.last_3(torch.cat([init_map, x], dim=1)))


_OUTPUTS = ("cbn", "mean", "both")


@register("head")
class PFHeadLocal(DBHead):
    """Args:
        in_channels: channels of the neck output.
        k: steepness of the training-time step function.
        mode: "large" (local module width C/4, PP-OCRv4 server det) or "small" (C/8).
        with_thresh: build the threshold branch (training checkpoints hold it, inference
            programs do not).
        output: what eval returns, see the module docstring.
    """

    def __init__(self, in_channels: int, k: int = 50, mode: str = "small",
                 with_thresh: bool = True, output: str = "cbn"):
        super().__init__(in_channels, k=k, with_thresh=with_thresh)
        if mode not in ("large", "small"):
            raise ArchitectureError(f"PFHeadLocal: mode must be 'large' or 'small', got {mode!r}")
        if output not in _OUTPUTS:
            raise ArchitectureError(f"PFHeadLocal: output must be one of {_OUTPUTS}, got {output!r}")
        self.mode, self.output = mode, output
        q = in_channels // 4
        self.cbn_layer = LocalModule(q, q if mode == "large" else in_channels // 8)

    def _binarize(self, x):
        # DBHead's binarize branch, also returning its half-resolution feature.
        b = self.binarize
        f = F.relu(b.conv_bn1(b.conv1(x)))
        f = F.relu(b.conv_bn2(b.conv2(f)))
        return torch.sigmoid(b.conv3(f)), f

    def forward(self, x):
        shrink_maps, f = self._binarize(x)
        up = F.interpolate(f, scale_factor=2, mode="nearest")
        cbn_maps = torch.sigmoid(self.cbn_layer(up, shrink_maps))
        if not self.training:
            if self.output == "cbn":
                return cbn_maps
            mean = 0.5 * (shrink_maps + cbn_maps)
            return mean if self.output == "mean" else (cbn_maps, mean)
        if self.thresh is None:
            raise NoThresholdBranch("PFHeadLocal(with_thresh=False), an inference program's, has no "
                                    "threshold branch to train")
        threshold_maps = self.thresh(x)
        binary_maps = self.step_function(shrink_maps, threshold_maps)
        return {
            "maps": torch.cat([cbn_maps, threshold_maps, binary_maps], dim=1),
            "distance_maps": cbn_maps,
            "cbn_maps": binary_maps,
        }
