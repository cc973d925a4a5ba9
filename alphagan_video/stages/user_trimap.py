"""The user-trimap stage: trimaps the user made, which replace the mask and trimap stages."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from alphagan_video.engine import Stage, Work
from alphagan_video.types import VideoInfo


class UserTrimapStage(Stage):
    """User trimaps (a video, an image sequence or a single image) read in step with the frames
    -> ``work.trimap`` (B,1,H,W) float32 {0, 0.5, 1} on ``device``. Reported as ``trimap``: it
    stands in for the mask and trimap stages and its time is the time the trimaps took."""

    name = "trimap"

    def __init__(self, path: Path, info: VideoInfo, device: torch.device):
        from alphagan_video.io.companion import MediaInStep

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
