"""DBHead, the Differentiable Binarization head of PaddleOCR's detectors (``det_db_head.py``).

Two identical branches upsample the neck's 1/4-scale map x4 back to input size:
``binarize`` -> shrink (probability) map, ``thresh`` -> threshold map. Inference programs run
only ``binarize`` and do not hold the ``thresh`` weights (build with ``with_thresh=False`` to
load them strictly); training also returns the threshold map and the approximate binary map
``1 / (1 + exp(-k (P - T)))``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ptocr.errors import ArchitectureError
from ptocr.models.layers import PaddleBatchNorm2d
from ptocr.models.registry import register


class Head(nn.Module):
    """3x3 conv-BN-ReLU (C -> C/4), 2x2 stride-2 transposed conv-BN-ReLU, 2x2 stride-2
    transposed conv to 1 channel, sigmoid. ``fold_bn``: the batch norms already folded into
    the convs (a biased ``conv1``, no ``conv_bn1`` / ``conv_bn2``), as the released PP-OCRv6
    detector programs hold the head. ``kernel_list``: PaddleOCR's kernel sizes of the three
    convs (the first padded to keep its size), ``[7, 2, 2]`` in PP-OCRv3_server_det."""

    def __init__(self, in_channels: int, fold_bn: bool = False, kernel_list=(3, 2, 2)):
        super().__init__()
        mid = in_channels // 4
        k1, k2, k3 = kernel_list
        self.conv1 = nn.Conv2d(in_channels, mid, k1, padding=k1 // 2, bias=fold_bn)
        self.conv_bn1 = nn.Identity() if fold_bn else PaddleBatchNorm2d(mid)
        self.conv2 = nn.ConvTranspose2d(mid, mid, k2, stride=2)
        self.conv_bn2 = nn.Identity() if fold_bn else PaddleBatchNorm2d(mid)
        self.conv3 = nn.ConvTranspose2d(mid, 1, k3, stride=2)
        # Modules, not F.relu: ptocr.optimize then runs the first in conv1's kernel and the
        # second in place (parameter-free, so no state_dict key changes).
        self.act1 = nn.ReLU()
        self.act2 = nn.ReLU()

    def forward(self, x):
        x = self.act1(self.conv_bn1(self.conv1(x)))
        x = self.act2(self.conv_bn2(self.conv2(x)))
        return torch.sigmoid(self.conv3(x))


class NoThresholdBranch(ArchitectureError):
    """Training mode on a DB head built without its threshold branch (an inference program's);
    ``OCRModel`` adds to it the call that gives the model with one."""


@register("head")
class DBHead(nn.Module):
    """Args:
        in_channels: channels of the neck output.
        k: steepness of the training-time approximate step function.
        with_thresh: build the threshold branch (training checkpoints hold it, inference
            programs do not; eval never runs it).
        fold_bn: the shrink branch's batch norms folded into its convs (``Head``).
        kernel_list: the kernel sizes of each branch's three convs (``Head``).

    Eval: the shrink probability map N x 1 x H x W (the inference program's output).
    Training: ``{"maps": cat([shrink, threshold, binary], 1)}`` as PaddleOCR returns it.
    """

    def __init__(self, in_channels: int, k: int = 50, with_thresh: bool = True, fold_bn: bool = False,
                 kernel_list=(3, 2, 2)):
        super().__init__()
        self.k = k
        self.in_channels = in_channels
        self.out_channels = 1
        self.kernel_list = tuple(kernel_list)
        self.binarize = Head(in_channels, fold_bn, self.kernel_list)
        self.thresh = Head(in_channels, kernel_list=self.kernel_list) if with_thresh else None

    def add_threshold_branch(self) -> Head:
        """A freshly initialised threshold branch where there is none (weights from an inference
        program), on the shrink branch's device and dtype: what training needs."""
        if self.thresh is None:
            like = self.binarize.conv1.weight
            self.thresh = Head(self.in_channels, kernel_list=self.kernel_list).to(device=like.device, dtype=like.dtype)
            self.thresh.train(self.training)
        return self.thresh

    def step_function(self, x, y):
        return torch.reciprocal(1 + torch.exp(-self.k * (x - y)))

    def forward(self, x):
        shrink_maps = self.binarize(x)
        if not self.training:
            return shrink_maps
        if self.thresh is None:
            raise NoThresholdBranch("DBHead(with_thresh=False), an inference program's, has no threshold "
                                    "branch to train")
        threshold_maps = self.thresh(x)
        binary_maps = self.step_function(shrink_maps, threshold_maps)
        return {"maps": torch.cat([shrink_maps, threshold_maps, binary_maps], dim=1)}
