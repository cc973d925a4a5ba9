"""Foreground colour estimation (colour decontamination of soft edges).

Writing straight RGBA with RGB = the original plate bakes the old background into hair and
motion blur: over a new background the edge shows a halo of the old one. We estimate the
foreground colour F such that I = a*F + (1-a)*B with the two-pass *blur fusion* estimator of
Forte & Pitie ("Approximate Fast Foreground Colour Estimation", ICIP 2021): a large-radius
pass to get smooth F and B, then a small-radius pass that refines F near the edge. Box sums
use integral images, so the cost does not depend on the radius and it runs on any device.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_EPS = 1e-5


def _box_sum_1d(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sum over a (2r+1) window along ``dim`` with zero padding, via one cumulative sum."""
    size = x.shape[dim]
    pad = [0, 0] * (x.dim() - 1 - (dim % x.dim())) + [radius + 1, radius]
    csum = F.pad(x, pad).cumsum(dim)
    return csum.narrow(dim, 2 * radius + 1, size) - csum.narrow(dim, 0, size)


def _box_sum(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Sum over a (2r+1)^2 window clipped to the image. x: (B,C,H,W) float -> same shape.

    Separable running sums: the cost does not depend on the radius. Zero padding is fine
    because every caller divides two box sums of the same window, so the clipped-window
    normalisation cancels. 1-D running sums stay small enough for float32 accuracy.
    On the CPU, OpenCV's box filter does the same sums ~8x faster than torch's cumsum
    (measured: 23 ms vs 198 ms for 1080p x 3 channels, radius 90, one thread); results agree to
    float32 rounding (relative 5e-7).
    """
    if x.device.type == "cpu" and x.dtype == torch.float32:
        return _box_sum_cv2(x, radius)
    return _box_sum_1d(_box_sum_1d(x, radius, -1), radius, -2)


def _box_sum_cv2(x: torch.Tensor, radius: int) -> torch.Tensor:
    """``_box_sum`` for CPU float32 tensors, one cv2.boxFilter per (frame, channel) plane,
    written straight into the output tensor's memory."""
    import cv2

    x = x.contiguous()
    out = torch.empty_like(x)
    size = (2 * radius + 1, 2 * radius + 1)
    src, dst = x.numpy(), out.numpy()
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            cv2.boxFilter(src[b, c], -1, size, dst=dst[b, c], normalize=False, borderType=cv2.BORDER_CONSTANT)
    return out


def _blur_fusion_pass(
    image: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, alpha: torch.Tensor, radius: int
) -> tuple[torch.Tensor, torch.Tensor]:
    blurred_alpha = _box_sum(alpha, radius)
    blurred_inverse = _box_sum(1.0 - alpha, radius)
    blurred_fg = _box_sum(fg * alpha, radius) / (blurred_alpha + _EPS)
    blurred_bg = _box_sum(bg * (1.0 - alpha), radius) / (blurred_inverse + _EPS)
    # Correct the local means so the compositing equation holds at this pixel.
    fg_new = blurred_fg + alpha * (image - alpha * blurred_fg - (1.0 - alpha) * blurred_bg)
    return fg_new.clamp(0.0, 1.0), blurred_bg


def default_radii(height: int, width: int) -> tuple[int, int]:
    """Large and small blur radii scaled from the paper's (90, 6) at 1080 lines."""
    scale = min(height, width) / 1080.0
    return max(3, round(90 * scale)), max(1, round(6 * scale))


def estimate_foreground(
    image: torch.Tensor, alpha: torch.Tensor, radii: tuple[int, int] | None = None
) -> torch.Tensor:
    """Decontaminated foreground colour.

    Args:
        image: (B,3,H,W) float in [0,1], the original frames.
        alpha: (B,1,H,W) float in [0,1].
        radii: (large, small) box radii in pixels; default scales with resolution.
    Returns:
        (B,3,H,W) float32 in [0,1]: F with I ~= alpha*F + (1-alpha)*B. Where alpha == 1 the
        result equals the image exactly; where alpha == 0 it is a smooth extrapolation of the
        nearby foreground colour (invisible in straight-alpha outputs).
    """
    if radii is None:
        radii = default_radii(image.shape[-2], image.shape[-1])
    image = image.float()
    alpha = alpha.float()
    fg, bg = _blur_fusion_pass(image, image, image, alpha, radii[0])
    fg, _ = _blur_fusion_pass(image, fg, bg, alpha, radii[1])
    # Opaque pixels keep their exact colour (the correction term is already exact there,
    # this removes float rounding).
    return torch.where(alpha >= 1.0, image, fg)


def estimate_foreground_band(
    image: torch.Tensor,
    alpha: torch.Tensor,
    radii: tuple[int, int] | None = None,
    max_area_ratio: float = 0.6,
) -> torch.Tensor:
    """``estimate_foreground`` computed only around the soft (0 < alpha < 1) pixels.

    The estimate at a pixel depends only on pixels within ``large + small`` radii of it, so per
    frame the blur fusion runs on the bounding box of the soft pixels grown by that margin
    (clipped to the frame), and is copied back on the box itself. When the grown box covers
    ``max_area_ratio`` of the frame or more, the whole frame is computed (same answer).

    Args:
        image: (B,3,H,W) float in [0,1]; alpha: (B,1,H,W) float in [0,1].
        radii: (large, small) box radii; default ``default_radii`` of the FULL frame size.
    Returns:
        (B,3,H,W) float32 in [0,1]. Where 0 < alpha < 1: equal to ``estimate_foreground`` of the
        full frame up to float32 rounding. Where alpha == 1 or alpha == 0: the image itself
        (``estimate_foreground`` extrapolates a smooth colour under alpha == 0, which straight
        and premultiplied outputs never show; the plate costs nothing to compute there). Frames
        without soft pixels cost nothing.
    """
    batch, _, height, width = image.shape
    if radii is None:
        radii = default_radii(height, width)
    margin = radii[0] + radii[1]
    image = image.float()
    alpha = alpha.float()
    soft = (alpha > 0) & (alpha < 1)  # (B,1,H,W)
    out = image.clone()
    rows_any = soft[:, 0].any(dim=2).cpu()  # (B,H)
    cols_any = soft[:, 0].any(dim=1).cpu()  # (B,W)
    for b in range(batch):
        ys = torch.nonzero(rows_any[b]).flatten()
        if len(ys) == 0:
            continue
        xs = torch.nonzero(cols_any[b]).flatten()
        y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
        wy0, wy1 = max(0, y0 - margin), min(height, y1 + margin)
        wx0, wx1 = max(0, x0 - margin), min(width, x1 + margin)
        if (wy1 - wy0) * (wx1 - wx0) >= max_area_ratio * height * width:
            wy0, wy1, wx0, wx1 = 0, height, 0, width
        fg = estimate_foreground(image[b : b + 1, :, wy0:wy1, wx0:wx1], alpha[b : b + 1, :, wy0:wy1, wx0:wx1], radii)
        out[b, :, y0:y1, x0:x1] = fg[0, :, y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]
    return torch.where(soft, out, image)
