"""UVDoc's pre- and post-processing: page -> network input, predicted mesh -> unwarped page.

PaddleX 3.7 (``image_unwarping``): the BGR page is scaled by 1/255 in float32
(``Normalize(mean=0, std=1, scale=1/255)``: pixel * float32(1/255), not pixel / 255), at its own
size. Its program resamples the 2 x 45 x 31 mesh to the page's size (bilinear, corners aligned,
Paddle's float32 weights)
and samples the page there (``grid_sample``: bilinear, zeros outside, corners aligned); the
result times float32 255 is cast to uint8, which truncates (``DocTrPostProcess``; the two channel
flips that follow it in PaddleX cancel, so the page stays BGR).

The mesh is applied in float32 whatever the network's dtype: a half-precision coordinate is
off by up to a pixel on a page 2,000 pixels wide.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ptocr.models.layers import paddle_bilinear_aligned

_SCALE = np.float32(1.0 / 255.0)


def page_input(img: np.ndarray) -> np.ndarray:
    """BGR uint8 H x W x 3 -> float32 1 x 3 x H x W in [0, 1], as PaddleX scales it."""
    x = img.astype(np.float32) * _SCALE
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def apply_mesh(page: torch.Tensor, mesh: torch.Tensor) -> torch.Tensor:
    """Sample ``page`` (N x C x H x W) through ``mesh`` (N x 2 x h x w, x and y in [-1, 1]), in
    float32 at least (float64 stays float64: the exact reference of parity checks)."""
    dtype = torch.promote_types(torch.promote_types(page.dtype, mesh.dtype), torch.float32)
    page, mesh = page.to(dtype), mesh.to(dtype)
    grid = paddle_bilinear_aligned(mesh, tuple(page.shape[2:]))
    return F.grid_sample(page, grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="zeros", align_corners=True)


def to_image(page: np.ndarray) -> np.ndarray:
    """float 3 x H x W in [0, 1] -> BGR uint8 H x W x 3, truncated as PaddleX casts it."""
    out = page.astype(np.float32).transpose(1, 2, 0) * np.float32(255.0)
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))
