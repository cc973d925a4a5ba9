"""What the writer encodes for an output kind: straight (F, a), the matte alone, the foreground,
or the foreground composited over a background (``render_output``, ``parse_background``)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from alphagan_video.config import OUTPUT_KINDS
from alphagan_video.errors import ParameterError

# The background parsers need no torch (the command line checks the background before the model loads).
from alphagan_video.foreground.background import parse_background  # noqa: E402


def render_output(
    kind: str,
    image: torch.Tensor,
    alpha: torch.Tensor,
    foreground: Optional[torch.Tensor],
    background: Optional[torch.Tensor],
) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Build what the writer encodes for one batch.

    Args:
        kind: rgba | alpha | foreground | composite.
        image, foreground: (B,3,H,W) float [0,1]; alpha: (B,1,H,W) float [0,1];
        background: (1,3,H,W) float [0,1] for composite.
    Returns:
        (color (B,H,W,3) float32 straight or None, alpha (B,H,W) float32 or None).
        rgba -> (F, a) straight; alpha -> (None, a); foreground -> (F, None);
        composite -> (a*F + (1-a)*BG, None).
    """
    def to_numpy(t: torch.Tensor) -> np.ndarray:
        return t.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()

    if kind == "alpha":
        return None, to_numpy(alpha)[..., 0]
    if kind not in OUTPUT_KINDS:
        raise ParameterError.about("output.kind", repr(kind), f"expected one of {', '.join(OUTPUT_KINDS)}")
    if foreground is None:
        raise ValueError(f"output kind {kind!r} needs a foreground estimate")
    if kind == "rgba":
        return to_numpy(foreground), to_numpy(alpha)[..., 0]
    if kind == "foreground":
        return to_numpy(foreground), None
    if background is None:
        raise ValueError("composite output needs a background")
    return to_numpy(alpha * foreground + (1 - alpha) * background), None


__all__ = ["parse_background", "render_output"]
