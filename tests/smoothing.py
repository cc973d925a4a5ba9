"""``smooth_alpha``: the temporal smoothing of a batch of alpha without the refine, as the
temporal stage runs it (``AlphaSmoother.prior`` then ``AlphaSmoother.blend``, frame by frame)."""
from __future__ import annotations

import torch

from alphagan_video.config import TemporalConfig
from alphagan_video.temporal.smoothing import AlphaSmoother, TemporalState


def smooth_alpha(alpha: torch.Tensor, image: torch.Tensor, trimap: torch.Tensor, state: TemporalState,
                 cfg: TemporalConfig) -> tuple[torch.Tensor, TemporalState]:
    """alpha (B,1,H,W) float [0,1], image (B,3,H,W) float [0,1] continuing ``state``, trimap
    (B,1,H,W) {0,0.5,1} (only unknown pixels are blended) -> (smoothed alpha -- unchanged when
    smoothing is off --, the state to carry on; the given one is not modified)."""
    smoother = AlphaSmoother(cfg, state)
    out = []
    for i in range(alpha.shape[0]):
        img = image[i : i + 1]
        out.append(smoother.blend(img, alpha[i : i + 1], smoother.prior(img), trimap[i : i + 1]))
    return (torch.cat(out, 0) if smoother.enabled else alpha), smoother.state
