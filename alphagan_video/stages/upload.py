"""The upload stage: decoded frames to the device (the first stage of every chain)."""
from __future__ import annotations

import numpy as np
import torch

from alphagan_video.engine import Stage, Work
from alphagan_video.types import FrameBatch


def frames_to_tensor(batch: FrameBatch, device: torch.device) -> torch.Tensor:
    """FrameBatch (B,H,W,3) uint8/uint16 -> (B,3,H,W) float32 in [0,1] on ``device``."""
    array = torch.from_numpy(np.ascontiguousarray(batch.rgb))
    scale = 255.0 if batch.rgb.dtype == np.uint8 else 65535.0
    if array.dtype == torch.uint16:  # torch has limited uint16 ops: widen first
        array = array.to(torch.int32)
    if device.type == "cuda":
        # Pinned (page-locked) staging memory lets the copy run asynchronously; the integer
        # frames travel (1-4 bytes/sample, not 4) and become float on the GPU. The caching host
        # allocator keeps the pinned block alive until the copy has finished.
        array = array.pin_memory().to(device, non_blocking=True)
        return (array.permute(0, 3, 1, 2).float() / scale).contiguous(memory_format=torch.channels_last)
    return (array.to(device).permute(0, 3, 1, 2).float() / scale).contiguous()


class UploadStage(Stage):
    """Decoded frames -> ``work.image`` on the device."""

    name = "upload"

    def __init__(self, device: torch.device):
        self.device = device

    def __call__(self, work: Work) -> Work:
        work.image = frames_to_tensor(work.batch, self.device)
        return work


__all__ = ["UploadStage", "frames_to_tensor"]
