"""The mask stages: ``MaskStage`` (a mask source's soft mask, stabilised over time) and
``UserTrimapStage`` (trimaps the user made, which replace the mask and trimap stages)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from alphagan_video.config import TemporalConfig
from alphagan_video.engine import Stage, Work
from alphagan_video.temporal.smoothing import TemporalTrack
from alphagan_video.types import VideoInfo


class MaskStage(Stage):
    """``work.image`` -> ``work.soft`` (the source's foreground probability) and ``work.mask``
    (stabilised so the unknown band does not jump when the subject is still; see
    ``temporal.stabilize_mask``). ``track`` None: no stabilisation, ``mask`` = ``soft``.

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


class UserTrimapStage(Stage):
    """User trimaps (a video, an image sequence or a single image) read in step with the frames
    -> ``work.trimap`` (B,1,H,W) float32 {0, 0.5, 1} on ``device``."""

    name = "mask"

    def __init__(self, path: Path, info: VideoInfo, device: torch.device):
        from alphagan_video.masks import MediaInStep

        self.device = device
        self._media = MediaInStep(str(path), str(path), info, param="trimap.trimap_path")

    def read(self, index: list[int]) -> torch.Tensor:
        """The trimaps of frames ``index`` -> (B,1,H,W) float32 {0,0.5,1} on the device."""
        from alphagan_video.trimap import trimap_from_uint8

        gray = self._media.frames(index).mean(-1)  # (B,H,W) float [0,1]
        levels = np.round(gray * 255.0).astype(np.uint8)
        trimaps = np.stack([trimap_from_uint8(t) for t in levels]).astype(np.float32)
        return torch.from_numpy(trimaps)[:, None].to(self.device)

    def __call__(self, work: Work) -> Work:
        work.trimap = self.read(work.batch.index)
        return work

    def close(self) -> None:
        self._media.close()
