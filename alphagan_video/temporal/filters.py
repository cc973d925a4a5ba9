"""Per-pixel filters of the temporal stages on (1,C,H,W) float tensors: warps (whole-frame or
at chosen pixels only), box mean and local maximum (OpenCV on the CPU), and the support of a
trimap's unknown pixels."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F


def warp(t: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear",
         at: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``t`` (1,C,H,W) sampled at ``grid`` (1,H,W,2) -> (1,C,H,W) float32. ``at``: optional flat
    indices (N,) int64 of the only output pixels wanted; the others are 0. grid_sample computes
    every output pixel from its own grid position alone, so the wanted ones are bit-identical to
    a whole-frame warp at a fraction of its cost (the unknown band is a few % of a frame)."""
    if at is None:
        return F.grid_sample(t.float(), grid, mode=mode, padding_mode="border", align_corners=True)
    height, width = grid.shape[1:3]
    points = grid.reshape(1, 1, height * width, 2)[:, :, at]
    sampled = F.grid_sample(t.float(), points, mode=mode, padding_mode="border", align_corners=True)
    out = torch.zeros((1, t.shape[1], height * width), dtype=torch.float32, device=t.device)
    out[:, :, at] = sampled[:, :, 0]
    return out.view(1, t.shape[1], height, width)


def unknown_support(trimap: torch.Tensor, reach: int) -> tuple[torch.Tensor, torch.Tensor]:
    """trimap (1,1,H,W) {0,0.5,1} -> ((1,1,H,W) bool unknown pixels, (N,) int64 flat indices of
    the pixels within ``reach`` px (Chebyshev) of one: every pixel the prior's filters read
    when they compute a value at an unknown pixel)."""
    unknown = trimap == 0.5
    if reach and unknown.device.type == "cpu":  # cv2 dilates a uint8 map ~50x faster than max_pool2d
        import cv2

        grown = cv2.dilate(unknown[0, 0].numpy().view(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8))
        near = torch.from_numpy(grown)
    elif reach:
        near = F.max_pool2d(unknown.float(), 2 * reach + 1, stride=1, padding=reach) > 0
    else:
        near = unknown
    return unknown, near.reshape(-1).nonzero()[:, 0]


def per_channel(t: torch.Tensor, op: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """Apply an (H,W) float32 -> (H,W) OpenCV filter to every channel of a (1,C,H,W) CPU tensor."""
    src = t.float().contiguous().numpy()
    return torch.from_numpy(np.stack([op(c) for c in src[0]])[None])


def box_mean(t: torch.Tensor, k: int) -> torch.Tensor:
    """(1,C,H,W) float32 -> same shape: mean over k x k (k odd), edges replicated. On the CPU
    with OpenCV (a single-threaded torch pooling of a 1080p map costs ~25 ms, cv2.blur ~1 ms)."""
    if t.device.type == "cpu":
        import cv2

        return per_channel(t, lambda c: cv2.blur(c, (k, k), borderType=cv2.BORDER_REPLICATE))
    p = k // 2
    return F.avg_pool2d(F.pad(t.float(), (p, p, p, p), mode="replicate"), k, stride=1)


def local_max(t: torch.Tensor, k: int) -> torch.Tensor:
    """(1,C,H,W) float32 -> same shape: maximum over k x k (k odd), outside pixels ignored."""
    if t.device.type == "cpu":
        import cv2

        kernel = np.ones((k, k), np.uint8)
        return per_channel(t, lambda c: cv2.dilate(c, kernel, borderType=cv2.BORDER_REPLICATE))
    return F.max_pool2d(t.float(), k, stride=1, padding=k // 2)


def scatter_mask(at: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(1,1,H,W) float32: 1 at the flat indices ``at``, 0 elsewhere (shaped as ``like``)."""
    mask = torch.zeros(like.shape[-2] * like.shape[-1], dtype=torch.float32, device=like.device)
    mask[at] = 1.0
    return mask.view(1, 1, *like.shape[-2:])


__all__ = ["box_mean", "local_max", "per_channel", "scatter_mask", "unknown_support", "warp"]
