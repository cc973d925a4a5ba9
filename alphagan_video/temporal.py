"""Temporal smoothing of alpha with explicit state carried across batches.

This is the simple, photometrically gated version: where a pixel's colour did not change
from the previous frame, the previous (already smoothed) alpha is blended in; where it
changed (motion, lighting), the current alpha is kept, so moving edges are not ghosted.
Known trimap regions are never touched. A scene cut (large mean frame difference) resets
the state. The state is a plain dataclass so chunked runs can warm it up on context frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from alphagan_video.config import TemporalConfig

# Mean absolute RGB difference (0..1) above which two frames are treated as a cut.
CUT_THRESHOLD = 0.2
# Colour change (0..1, mean over RGB) at which the blend weight has fallen to exp(-1).
PHOTOMETRIC_SIGMA = 0.03


@dataclass
class TemporalState:
    """prev_image: (1,3,H,W) float [0,1]; prev_alpha: (1,1,H,W) float [0,1]; both None at start."""

    prev_image: Optional[torch.Tensor] = None
    prev_alpha: Optional[torch.Tensor] = None
    cuts: int = 0


def is_cut(prev_image: torch.Tensor, image: torch.Tensor) -> bool:
    """True when two (1,3,H,W) frames differ so much they cannot be the same shot."""
    return float((image - prev_image).abs().mean()) > CUT_THRESHOLD


def smooth_alpha(
    alpha: torch.Tensor,
    image: torch.Tensor,
    trimap: torch.Tensor,
    state: TemporalState,
    cfg: TemporalConfig,
) -> tuple[torch.Tensor, TemporalState]:
    """Blend each frame's alpha with the previous frame's where the image is static.

    Args:
        alpha: (B,1,H,W) float [0,1], per-frame alpha (known regions already clamped).
        image: (B,3,H,W) float [0,1], the frames.
        trimap: (B,1,H,W) float {0,0.5,1}.
        state: carried from the previous batch (not modified; a new state is returned).
        cfg: strength in [0,1] scales the maximum blend weight.
    Returns:
        (smoothed alpha (B,1,H,W), new state).
    """
    if not cfg.enabled or cfg.strength <= 0:
        return alpha, TemporalState(image[-1:].clone(), alpha[-1:].clone(), state.cuts)
    out = []
    prev_image, prev_alpha, cuts = state.prev_image, state.prev_alpha, state.cuts
    unknown = trimap == 0.5
    for i in range(alpha.shape[0]):
        a, img = alpha[i : i + 1], image[i : i + 1]
        if prev_image is not None and prev_image.shape == img.shape and not is_cut(prev_image, img):
            change = (img - prev_image).abs().mean(dim=1, keepdim=True)
            weight = cfg.strength * torch.exp(-((change / PHOTOMETRIC_SIGMA) ** 2))
            blended = weight * prev_alpha + (1.0 - weight) * a
            a = torch.where(unknown[i : i + 1], blended, a)
        elif prev_image is not None:
            cuts += 1
        out.append(a)
        prev_image, prev_alpha = img, a
    return torch.cat(out, 0), TemporalState(prev_image.clone(), prev_alpha.clone(), cuts)
