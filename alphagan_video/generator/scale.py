"""The generator at a reduced working scale, for when its alpha is only the refine's prior.

With the refine on (the default), the product's alpha is a matting-Laplacian solve over the
unknown band in which the generator's alpha enters as a weak data term (``RefineConfig.mu``,
3e-5): the band's detail -- strands, soft edges -- comes from the image through the Laplacian,
and the generator only steers the solve where the image alone is ambiguous. That steer does not
need full resolution, and on the CPU the full-resolution generator is the largest single cost of
a frame (1.7 s of a 1080p frame on 2 cores; half the side is a quarter of the pixels). So with the refine
on the generator can run on a downscaled frame (``ModelConfig.prior_scale``) and its alpha is
upsampled back to the frame as the prior. With the refine off the generator's alpha *is* the
product, and it always runs at full resolution.

Down- and upscaling:
- the image is area-averaged (``F.interpolate(mode="area")``, the anti-aliased reduction);
- the trimap is area-averaged too and re-quantised conservatively: a working pixel is known only
  when every frame pixel under it is known with the same label, otherwise it is unknown (so the
  generator sees every place the solve will solve, and a thin band never vanishes);
- the working alpha is upsampled bilinearly to the frame and the frame's own known regions are
  clamped, exactly as at full resolution.

Working sizes never go below :data:`MIN_WORKING_SIDE` on the short side: the generator was
trained on 256-320 px crops, and a frame reduced below that scale would show it structures
smaller than any it was trained on (the scale is raised for small frames instead).
"""
from __future__ import annotations

from typing import ContextManager, Optional

import torch
import torch.nn.functional as F
from torch import nn

from alphagan_video.config import check_prior_scale
from alphagan_video.trimap import clamp_known

#: The working frame's short side is never reduced below this many pixels (the generator's
#: training crops are 256-320 px; see the module docstring).
MIN_WORKING_SIDE = 320


def working_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) the generator runs at for a ``height`` x ``width`` frame at ``scale``:
    both sides times ``scale`` (rounded), but the short side not below :data:`MIN_WORKING_SIDE`
    (nor above the frame's own). ``scale`` 1 gives the frame's size."""
    scale = check_prior_scale(scale)
    short = min(height, width)
    scale = max(scale, min(1.0, MIN_WORKING_SIDE / short))
    if scale >= 1.0:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def downscale_trimap(trimap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B,1,H,W) trimap in {0, 0.5, 1} -> (B,1,h,w) trimap in {0, 0.5, 1} at ``size``: a working
    pixel is 0 (1) only when the frame pixels it averages are all 0 (all 1); otherwise 0.5."""
    mean = F.interpolate(trimap.float(), size=size, mode="area")
    # Area means of {0, 0.5, 1} are exactly 0 or 1 only for uniform cells; float32 sums of up to
    # a few hundred values are exact to ~1e-6, hence the tolerance.
    return torch.where(mean >= 1.0 - 1e-4, 1.0, torch.where(mean <= 1e-4, 0.0, 0.5))


def infer_alpha_at_scale(
    model: nn.Module,
    image: torch.Tensor,
    trimap: torch.Tensor,
    scale: float,
    *,
    tiling: str = "off",
    autocast: Optional[ContextManager] = None,
    frames_per_call: Optional[int] = None,
) -> torch.Tensor:
    """The generator's alpha for a batch, computed at :func:`working_size` and upsampled.

    Args:
        model: the generator (as for ``tiling.infer_alpha``).
        image: (B,3,H,W) float in [0,1]; trimap: (B,1,H,W) float in {0, 0.5, 1}.
        scale: working scale in (0, 1]; 1 (or a frame too small to reduce) = ``infer_alpha``
            on the frame itself.
        tiling, autocast, frames_per_call: passed to ``tiling.infer_alpha`` (on the working frame).
    Returns:
        (B,1,H,W) float32 in [0,1] on ``image``'s device, known regions clamped to ``trimap``.
    """
    from alphagan_video.generator.tiling import infer_alpha

    height, width = image.shape[-2:]
    size = working_size(height, width, scale)
    if size == (height, width):
        return infer_alpha(model, image, trimap, tiling=tiling, autocast=autocast, frames_per_call=frames_per_call)
    small_image = F.interpolate(image, size=size, mode="area")
    if image.is_contiguous(memory_format=torch.channels_last):
        small_image = small_image.contiguous(memory_format=torch.channels_last)
    small_trimap = downscale_trimap(trimap.to(image.device), size)
    small_alpha = infer_alpha(model, small_image, small_trimap, tiling=tiling, autocast=autocast,
                              frames_per_call=frames_per_call)
    alpha = F.interpolate(small_alpha, size=(height, width), mode="bilinear", align_corners=False)
    return clamp_known(alpha.clamp(0.0, 1.0), trimap.to(alpha.device).float())


__all__ = ["MIN_WORKING_SIDE", "downscale_trimap", "infer_alpha_at_scale", "working_size"]
