"""Grayscale morphology on soft masks (B,1,H,W) float in [0,1], on any device."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _cv2_apply(m: torch.Tensor, k: int, op: str) -> torch.Tensor:
    import cv2
    import numpy as np

    kernel = np.ones((k, k), np.uint8)
    fn = cv2.dilate if op == "dilate" else cv2.erode
    a = m[:, 0].float().contiguous().numpy()
    # BORDER_REPLICATE: the frame edge neither grows nor eats the mask
    return torch.from_numpy(np.stack([fn(x, kernel, borderType=cv2.BORDER_REPLICATE) for x in a]))[:, None]


def _max_sep(m: torch.Tensor, k: int) -> torch.Tensor:
    """Separable k x k max with replicated borders (rows then columns: O(k), not O(k^2))."""
    r = k // 2
    m = F.max_pool2d(F.pad(m, (r, r, 0, 0), mode="replicate"), kernel_size=(1, k), stride=1)
    return F.max_pool2d(F.pad(m, (0, 0, r, r), mode="replicate"), kernel_size=(k, 1), stride=1)


def dilate(m: torch.Tensor, k: int) -> torch.Tensor:
    """Max over a k x k square (k odd). On the CPU cv2 does it (~100x faster than
    stride-1 max_pool2d at 1080p with k=11)."""
    if k <= 1:
        return m
    if m.device.type == "cpu":
        return _cv2_apply(m, k, "dilate")
    return _max_sep(m, k)


def erode(m: torch.Tensor, k: int) -> torch.Tensor:
    """Min over a k x k square (k odd)."""
    if k <= 1:
        return m
    if m.device.type == "cpu":
        return _cv2_apply(m, k, "erode")
    return -_max_sep(-m, k)


def open_close(m: torch.Tensor, k: int) -> torch.Tensor:
    """Opening (removes specks smaller than k) then closing (fills holes smaller than k)."""
    m = dilate(erode(m, k), k)
    return erode(dilate(m, k), k)


def scale_kernel(height: int, width: int, fraction: float = 0.01, minimum: int = 3) -> int:
    """An odd kernel size proportional to the frame (``fraction`` of the short side)."""
    k = max(minimum, int(round(min(height, width) * fraction)))
    return k if k % 2 else k + 1


def median3(m: torch.Tensor) -> torch.Tensor:
    """3x3 median of (B,1,H,W) float32: removes noise without moving edges (a box blur of a
    difference map grows the mask by its radius wherever the subject differs strongly)."""
    if m.device.type == "cpu":
        import cv2
        import numpy as np

        # cv2 is ~200x faster than unfold+median on CPU (about 4 ms vs 780 ms at 1080p)
        a = m[:, 0].float().contiguous().numpy()
        return torch.from_numpy(np.stack([cv2.medianBlur(x, 3) for x in a]))[:, None]
    return _median3_torch(m)


def _median3_torch(m: torch.Tensor) -> torch.Tensor:
    """Device-agnostic 3x3 median with replicated borders (same result as cv2.medianBlur)."""
    out = []
    for x in m:  # one frame at a time: unfold holds 9 copies of the plane
        u = F.unfold(F.pad(x[None].float(), (1, 1, 1, 1), mode="replicate"), 3)
        out.append(u.median(dim=1).values.view(1, *x.shape[-2:]))
    return torch.stack(out)
