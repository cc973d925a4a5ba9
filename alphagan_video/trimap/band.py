"""The AlphaGAN trimap of a coarse mask: a band of unknown pixels around its contour.

The routine is AlphaGAN's: binarise the mask, dilate and erode it with an *elliptical*
structuring element (OpenCV's ``MORPH_ELLIPSE``), unknown = dilated minus eroded. The torch
implementation here runs on any device and equals ``cv2.dilate`` / ``cv2.erode`` with
``cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2r+1, 2r+1))`` and OpenCV's default borders
(pixels outside the image never dilate the mask and never erode it).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from alphagan_video.errors import UserInputError

from .codes import _check_b1hw

#: Unknown-band width as a fraction of the frame's short side (see :func:`default_band_px`).
BAND_FRACTION = 0.02
#: Smallest default band width in pixels.
MIN_BAND_PX = 4


def ellipse_kernel(size: int) -> np.ndarray:
    """OpenCV's ``MORPH_ELLIPSE`` structuring element of shape (size, size), uint8 {0, 1}.

    Same formula as ``cv2.getStructuringElement`` (``imgproc/src/morph.dispatch.cpp``), so the
    torch morphology below needs no OpenCV; the tests check equality with OpenCV.

    >>> ellipse_kernel(3)
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]], dtype=uint8)
    """
    if size < 1:
        raise UserInputError(f"ellipse kernel size must be >= 1, got {size}")
    r = size // 2
    c = size // 2
    inv_r2 = 1.0 / (r * r) if r else 0.0
    kernel = np.zeros((size, size), dtype=np.uint8)
    for i in range(size):
        dy = i - r
        if abs(dy) <= r:
            # OpenCV's saturate_cast<int>(double) rounds half to even, like Python's round().
            dx = int(round(c * math.sqrt((r * r - dy * dy) * inv_r2)))
            j1 = max(c - dx, 0)
            j2 = min(c + dx + 1, size)
            kernel[i, j1:j2] = 1
    return kernel


def _row_half_widths(radius: int) -> list[int]:
    """Half-width of each row (dy = -radius..radius) of the (2r+1)-ellipse; rows are symmetric runs."""
    kernel = ellipse_kernel(2 * radius + 1)
    return [int(row.sum()) // 2 for row in kernel]


def _binary_dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilate a bool (B, 1, H, W) mask by the (2r+1)x(2r+1) ellipse; outside the image is False.

    The ellipse is a stack of centred horizontal runs, so dilation = OR over rows dy of the
    horizontally dilated mask (run half-width w(dy)) shifted by dy. Horizontal runs grow one
    pixel at a time, giving O(r) boolean passes instead of an O(r^2) convolution (a 45x45
    kernel at 2160p would otherwise cost ~17 G multiply-adds per frame).
    """
    if radius <= 0:
        return mask.clone()
    height, width = mask.shape[-2:]
    r = radius
    padded = torch.nn.functional.pad(mask, (r, r, r, r), value=False)
    widths = _row_half_widths(r)
    # horiz: for every padded row, the OR over columns x-w..x+w, restricted to output columns.
    horiz = padded[..., :, r : r + width].clone()
    current = 0
    out = torch.zeros_like(mask)
    for w in sorted(set(widths)):
        while current < w:
            current += 1
            horiz |= padded[..., :, r + current : r + current + width]
            horiz |= padded[..., :, r - current : r - current + width]
        for row, row_w in enumerate(widths):
            if row_w == w:  # row index = dy + r
                out |= horiz[..., row : row + height, :]
    return out


def _binary_erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Erode a bool (B, 1, H, W) mask by the ellipse; outside the image counts as foreground
    (OpenCV's default erode border), so masks touching the frame edge do not shrink there."""
    return ~_binary_dilate(~mask, radius)


def make_trimap(mask: torch.Tensor, band_px: int, threshold: float = 0.5) -> torch.Tensor:
    """AlphaGAN trimap from a coarse mask.

    Foreground = ``mask > threshold``. The mask is dilated by ``ceil(band_px / 2)`` and eroded by
    ``floor(band_px / 2)`` pixels with elliptical elements; unknown = dilated minus eroded, so the
    unknown band is ``band_px`` wide in total across a straight edge (the extra pixel of an odd
    band goes outside, where coarse masks usually miss hair). Deterministic.

    Args:
        mask: (B, 1, H, W) float in [0, 1] (or bool), any device.
        band_px: total unknown-band width in pixels, >= 0 (0 gives a binary trimap).
        threshold: binarisation threshold in [0, 1).

    Returns:
        trimap: (B, 1, H, W) float (mask's float dtype, else float32) in {0, 0.5, 1}, on the
        mask's device.

    Raises:
        UserInputError: wrong shape, negative band, threshold out of range.

    Example:
        >>> m = torch.zeros(1, 1, 5, 5); m[..., 1:4, 1:4] = 1
        >>> (make_trimap(m, 2)[0, 0] * 2).int().tolist()
        [[0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 2, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]]
    """
    _check_b1hw("make_trimap", "mask", mask)
    if isinstance(band_px, bool) or not isinstance(band_px, (int, np.integer)) or band_px < 0:
        raise UserInputError(f"make_trimap: band_px must be an integer >= 0, got {band_px!r}")
    if not 0.0 <= float(threshold) < 1.0:
        raise UserInputError(f"make_trimap: threshold must be in [0, 1), got {threshold!r}")
    fg = mask if mask.dtype == torch.bool else mask > threshold
    dilated = _binary_dilate(fg, (int(band_px) + 1) // 2)
    eroded = _binary_erode(fg, int(band_px) // 2)
    dtype = mask.dtype if mask.is_floating_point() else torch.float32
    trimap = dilated.to(dtype) * 0.5
    trimap[eroded] = 1.0
    return trimap


def default_band_px(height: int, width: int) -> int:
    """Default unknown-band width: 2 % of the short side, at least 4 pixels.

    Gives 10 px at 480p (854x480), 22 px at 1080p, 43 px at 2160p; 4 px below 200 px.

    >>> default_band_px(1080, 1920), default_band_px(480, 854), default_band_px(2160, 3840)
    (22, 10, 43)
    """
    if height < 1 or width < 1:
        raise UserInputError(f"default_band_px: frame size must be >= 1x1, got {width}x{height}")
    return max(MIN_BAND_PX, int(round(BAND_FRACTION * min(height, width))))


__all__ = ["BAND_FRACTION", "MIN_BAND_PX", "default_band_px", "ellipse_kernel", "make_trimap"]
