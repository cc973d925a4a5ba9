"""What every stage shares: the per-batch ``Work`` record, the ``Stage`` base class, and the
upload of decoded frames to the device (the first stage of every chain)."""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from alphagan_video.types import FrameBatch, OutputBatch


@dataclass
class Work:
    """One batch of B frames on its way through the stages; each stage fills its fields.

    batch: the decoded frames ((B,H,W,3) uint8/uint16, indices, timestamps).
    warm_up: True for context frames before a chunk: stateful stages see them, output stages
        (``Stage.on_warm_up`` False) and the sink do not.
    image: (B,3,H,W) float32 [0,1] on the device (``UploadStage``).
    soft: (B,1,H,W) float [0,1], the mask source's foreground probability.
    mask: (B,1,H,W) float {0,1}, the temporally stabilised coarse mask.
    trimap: (B,1,H,W) float32 {0, 0.5, 1} (0 background, 0.5 unknown, 1 foreground).
    problems: per frame, a future of the refine's prepared linear system (or None).
    alpha: (B,1,H,W) float32 [0,1]: the generator's, then refined, then smoothed.
    output: what the sink writes (OutputBatch), set by the output stage.
    """

    batch: FrameBatch
    warm_up: bool = False
    image: Optional[torch.Tensor] = None
    soft: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None
    trimap: Optional[torch.Tensor] = None
    problems: Optional[list[Future]] = None
    alpha: Optional[torch.Tensor] = None
    output: Optional[OutputBatch] = None

    @property
    def frames(self) -> int:
        """Frames this work hands to the sink: the output's when there is one, else the batch's."""
        return len(self.output) if self.output is not None else len(self.batch.index)


class Stage:
    """One step of the chain. Subclasses set ``name`` and implement ``__call__``.

    name: the key its seconds are reported under (``RunReport.seconds``).
    lane: consecutive stages of one lane run in one thread when the engine overlaps; stateful
        stages must share a lane with every stage whose state they read.
    on_warm_up: False for stages that only produce output (skipped on warm-up work).
    laps: None = the engine times the stage; a dict = the stage times itself, by name (a stage
        interleaving two steps frame by frame reports each).
    """

    name: str = "stage"
    lane: str = "matte"
    on_warm_up: bool = True
    laps: Optional[dict[str, float]] = None

    def __call__(self, work: Work) -> Work:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the stage holds (readers, threads); called once, after the run."""


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


__all__ = ["Stage", "UploadStage", "Work", "frames_to_tensor"]
