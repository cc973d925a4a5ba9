"""The mask stage: a mask source's soft mask, stabilised over time."""
from __future__ import annotations

from typing import Optional

import torch

from alphagan_video.config import TemporalConfig
from alphagan_video.engine import Stage, Work
from alphagan_video.temporal.smoothing import TemporalTrack


class MaskStage(Stage):
    """``work.image`` -> ``work.soft`` (the source's foreground probability) and ``work.mask``
    (stabilised so the unknown band does not jump when the subject is still; see
    ``temporal.smoothing.stabilize_mask``). ``track`` None: no stabilisation, ``mask`` = ``soft``.

    source: a mask source (``masks.build_mask_source``): called with ((B,3,H,W) image, frame
    indices) -> (B,1,H,W) float [0,1]; closed by ``close``.
    """

    name = "mask"

    def __init__(self, source, temporal: Optional[TemporalConfig] = None, track: Optional[TemporalTrack] = None):
        self.source = source
        self.temporal = temporal
        self.track = track

    def __call__(self, work: Work) -> Work:
        from alphagan_video.temporal.smoothing import stabilize_mask

        with torch.inference_mode():
            work.soft = self.source(work.image, work.batch.index)
        if self.track is None:
            work.mask = work.soft
        else:
            work.mask, self.track.state = stabilize_mask(work.soft, work.image, self.track.state, self.temporal)
        return work

    def close(self) -> None:
        self.source.close()
