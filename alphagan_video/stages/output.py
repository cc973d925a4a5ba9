"""The output stage: foreground colour (``foreground.blur_fusion``) and the arrays the sink
writes (``foreground.compose``)."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

from alphagan_video.engine import Stage, Work
from alphagan_video.foreground.compose import render_output
from alphagan_video.types import FrameBatch, OutputBatch

class OutputStage(Stage):
    """``work.image`` (rebuilt from ``work.batch`` when an earlier stage released it) +
    ``work.alpha`` -> ``work.output`` for output ``kind``: the foreground
    colour (blur fusion) where the kind needs it, then the arrays the sink writes. Stateless,
    so it runs in its own lane, one batch behind the matting.

    background: (1,3,H,W) float [0,1] on the device, for ``composite``.
    device_planes: convert to 10-bit YCbCr(A) codes on the device (the run plan's
        ``plan.RunPlan.device_planes``: CUDA and an output that takes them): only int16 planes
        cross to the host.
    image_of: FrameBatch -> its (B,3,H,W) float image exactly as the upload stage made it
        (``stages.upload.frames_to_tensor``), for work whose image was released while queued.
    """

    name = "foreground"
    lane = "render"
    on_warm_up = False

    def __init__(self, kind: str, background: Optional[torch.Tensor] = None, device_planes: bool = False,
                 image_of: Optional[Callable[[FrameBatch], torch.Tensor]] = None):
        self.kind = kind
        self.image_of = image_of
        self.background = background
        self.device_planes = device_planes

    def __call__(self, work: Work) -> Work:
        from alphagan_video.foreground.blur_fusion import estimate_foreground_band

        batch, image, alpha = work.batch, work.image, work.alpha
        if image is None:  # released at the end of the matting lane (TemporalStage): the same floats again
            if self.image_of is None:
                raise ValueError("the output stage needs work.image, or image_of to rebuild it from work.batch")
            image = self.image_of(batch)
        foreground = estimate_foreground_band(image, alpha) if self.kind != "alpha" else None
        if self.device_planes and self.kind != "alpha":
            work.output = OutputBatch(None, None, batch.pts, batch.index, batch.time_base,
                                      planes=self._device_planes(alpha, foreground))
        else:
            color, out_alpha = render_output(self.kind, image, alpha, foreground, self.background)
            work.output = OutputBatch(color, out_alpha, batch.pts, batch.index, batch.time_base)
        # Only the output goes on to the writer. The work waits in the encoder's queue, and at
        # 1080p the float32 image, alpha and trimap it would keep are ~40 MB a frame.
        work.image = work.alpha = work.trimap = None
        return work

    def _device_planes(self, alpha: torch.Tensor, foreground: torch.Tensor) -> np.ndarray:
        """Output colour (+ alpha) as 10-bit YCbCr(A) codes converted on the device.
        -> (B, 3|4, H, W) uint16."""
        from alphagan_video.io.colour import rgb_to_ycc10_torch

        color = alpha * foreground + (1 - alpha) * self.background if self.kind == "composite" else foreground
        codes = rgb_to_ycc10_torch(color, alpha if self.kind == "rgba" else None)
        return codes.cpu().numpy().view(np.uint16)  # codes are 0..1023: same bits
