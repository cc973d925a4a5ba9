"""The generator stage and the one place a loaded generator is made ready for a device."""
from __future__ import annotations

import torch

from alphagan_video.device import autocast_for
from alphagan_video.errors import ParameterError
from alphagan_video.stages.base import Stage, Work


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile`` the generator (``ModelConfig.compile``). Shapes vary (tiles, last short
    batch, full frames), so dynamic shapes are allowed; the first batches of each shape pay the
    compilation. Attributes such as ``stride`` stay readable through the wrapper."""
    try:
        return torch.compile(model, dynamic=True)
    except Exception as e:  # noqa: BLE001 - compilation is optional; report why it is unavailable
        raise ParameterError.about("model.compile", True,
                                   f"torch.compile is unavailable here ({e}); run without it") from None


def prepare_generator(model: torch.nn.Module, device: torch.device, compile: bool = False) -> torch.nn.Module:
    """A loaded generator moved to ``device`` in eval mode, channels-last, optionally compiled."""
    model = model.to(device).eval()
    # NHWC suits tensor cores and oneDNN alike (CPU resnet18 on 800x600: 0.39 s vs 0.48 s in
    # fp32, measured); frames_to_tensor hands over channels-last images too.
    model = model.to(memory_format=torch.channels_last)
    return compile_model(model) if compile else model


class GeneratorStage(Stage):
    """``work.image`` + ``work.trimap`` -> ``work.alpha`` (B,1,H,W) float32 [0,1] (known regions
    not yet clamped). tiling: "off" | "on" | "auto" (``tiling.infer_alpha``); scale: working scale
    in (0, 1] (``scale.infer_alpha_at_scale``; the pipeline passes ``ModelConfig.prior_scale`` when
    the refine is on, 1 otherwise)."""

    name = "model"

    def __init__(self, model: torch.nn.Module, device: torch.device, tiling: str, mixed_precision: bool,
                 scale: float = 1.0):
        from alphagan_video.config import check_prior_scale

        self.model = model
        self.tiling = tiling
        self.autocast = autocast_for(device, mixed_precision)
        self.scale = check_prior_scale(scale)  # working scale (scale.infer_alpha_at_scale)

    def __call__(self, work: Work) -> Work:
        from alphagan_video.stages.s3_generator.scale import infer_alpha_at_scale

        work.alpha = infer_alpha_at_scale(self.model, work.image, work.trimap, self.scale, tiling=self.tiling,
                                          autocast=self.autocast)
        return work
