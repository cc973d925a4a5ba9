"""The generator stage: RGB + trimap -> alpha (``generator.scale``, ``generator.tiling``)."""
from __future__ import annotations

from typing import Optional

import torch

from alphagan_video.device import autocast_for
from alphagan_video.engine import Stage, Work
from alphagan_video.generator.threads import forward_threads
from alphagan_video.generator.tiling import frames_per_call_for


class GeneratorStage(Stage):
    """``work.image`` + ``work.trimap`` -> ``work.alpha`` (B,1,H,W) float32 [0,1] (known regions
    not yet clamped). tiling: "off" | "on" | "auto" (``generator.tiling.infer_alpha``); scale:
    working scale in (0, 1] (``generator.scale.infer_alpha_at_scale``; a run passes its plan's
    ``RunPlan.prior_scale``, checked once with the config by ``config.check_config``); threads:
    OpenMP threads of the forward on the CPU (``generator.threads.generator_threads``), None =
    the process's setting. One frame per forward on the CPU (``tiling.frames_per_call_for``)."""

    name = "model"

    def __init__(self, model: torch.nn.Module, device: torch.device, tiling: str, mixed_precision: bool,
                 scale: float = 1.0, threads: Optional[int] = None):
        self.model = model
        self.tiling = tiling
        self.autocast = autocast_for(device, mixed_precision)
        # One frame per forward on the CPU: same alphas, half the activations of a pair.
        self.frames_per_call = frames_per_call_for(device)
        # The working scale (scale.infer_alpha_at_scale): the run plan's, from a checked config.
        self.scale = float(scale)
        # Beside the refine's prepare workers the forward runs on the cores they leave (1 of 2):
        # a wider OpenMP team would wait on (and spin against) the workers (generator.threads).
        self.threads = threads

    def __call__(self, work: Work) -> Work:
        from alphagan_video.generator.scale import infer_alpha_at_scale

        with forward_threads(self.threads):
            work.alpha = infer_alpha_at_scale(self.model, work.image, work.trimap, self.scale, tiling=self.tiling,
                                              autocast=self.autocast, frames_per_call=self.frames_per_call)
        return work
