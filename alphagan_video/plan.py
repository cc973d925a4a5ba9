"""The run plan: every setting of a run that follows from its config, its input and its device,
decided once (``plan_run``) and then only read -- by the chain builder (``pipeline.build_chain``),
the run report and, for what needs no model, the CLI's preflight.

Before, each of these was worked out where it was used, some more than once: the mask spec
string split in six places, the trimap band re-derived for the report, the prior scale
validated three times, the refine solver decided at the start and again on every frame, and the
writer's plane capability pushed into the output stage after the chain was built.

Two values cannot be fixed by ``plan_run`` itself, and the plan says so:

* the CUDA batch size (``ModelConfig.auto_batch``) is measured from free GPU memory after the
  model has loaded (``RunPlan.with_measured_batch``; ``RunPlan.measure_batch`` says whether);
* the planes the writer takes are known from ``io.writer.plan_output`` (the extension, codec
  and kind), so the plan fixes them when it is given the output path; the writer itself opens
  last, after the chain, so that it refuses an existing OUTPUT only once every input check has
  passed, and takes the planes the plan said it would.

No torch at import: the CLI's preflight reads ``plan_mask`` and ``check_band`` before torch loads.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from alphagan_video.config import PipelineConfig, RefineConfig
from alphagan_video.errors import ParameterError
from alphagan_video.masks.spec import MaskSpec, parse_mask_spec
from alphagan_video.types import VideoInfo

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class RunPlan:
    """What one run of a config on one input and device does, fixed before any frame.

    device: where the run's tensors live (``device.resolve_device``).
    mask: the parsed mask spec; None when the user gave trimaps (no mask source runs).
    trimap: ``"user"`` (the user's trimaps), ``"auto"`` (evidence trimaps, ``trimap.auto_trimap``)
        or ``"band"`` (the AlphaGAN band); band_px: the band's total width at this frame size
        (the configured one, 0 = binary; else ``trimap.default_band_px``).
    prior_scale: the generator's working scale (``config.prior_scale_for``).
    refine: the refine's effective settings (``RefineConfig.effective_for``), checked
        (``refine.check_refine_config``); None = refine off.
    solver: the refine's solve method on this device (``refine.solver_method``: "pcg", "cg" or
        "direct"), decided whether the refine is on or not (a bad choice fails either way).
    batch_size: frames per batch the run reads; workers: the refine's prepare workers (one per
        frame of a batch, at most one per core). measure_batch: the batch size is still to be
        measured from free GPU memory once the model has loaded (``with_measured_batch``).
    has_color / has_alpha: what the output holds (from ``OutputConfig.kind``).
    device_planes: the output stage converts to 10-bit YCbCr(A) planes on the device (CUDA and
        an output that takes them, ``io.writer.takes_planes``); False when no output path was given.
    """

    device: "torch.device"
    mask: Optional[MaskSpec]
    trimap: str
    band_px: int
    prior_scale: float
    refine: Optional[RefineConfig]
    solver: str
    batch_size: int
    workers: int
    measure_batch: bool
    has_color: bool
    has_alpha: bool
    device_planes: bool
    chunked: bool = False

    @property
    def auto_trimap(self) -> bool:
        """Evidence trimaps (``trimap.auto_trimap``) rather than the AlphaGAN band alone."""
        return self.trimap == "auto"

    def with_measured_batch(self, measured: int) -> "RunPlan":
        """This plan with the CUDA batch size measured after the model loaded: it sets the refine's
        workers and, unless the run is chunked (a farm chunk keeps the configured batch grid, which
        its context alignment relies on), the batch size the run reads."""
        return dataclasses.replace(self, batch_size=self.batch_size if self.chunked else measured,
                                   workers=_workers(measured), measure_batch=False)


def _workers(batch_size: int) -> int:
    """One prepare worker per frame of a batch, at most one per core: the frames of a batch are
    prepared side by side while the generator runs."""
    return min(batch_size, os.cpu_count() or 1)


def plan_mask(cfg: PipelineConfig) -> Optional[MaskSpec]:
    """The run's parsed mask spec; None with user trimaps (the mask source is not used)."""
    if cfg.trimap.trimap_path is not None:
        return None
    return parse_mask_spec(cfg.mask.source)


def trimap_band(cfg: PipelineConfig, info: VideoInfo) -> tuple[int, bool]:
    """(band width in px, evidence trimaps?) for a run of ``info``'s size. The configured band
    when there is one -- 0 is a binary trimap, not "automatic" -- else the default band scaled
    with the resolution, with evidence trimaps unless ``cfg.trimap.auto`` is off."""
    from alphagan_video.trimap import default_band_px

    if cfg.trimap.band_px is not None:
        return cfg.trimap.band_px, False
    return default_band_px(info.height, info.width), cfg.trimap.auto


def check_band(cfg: PipelineConfig, width: int, height: int) -> None:
    """A configured trimap band fits a width x height frame (the CLI refuses a wider one)."""
    band = cfg.trimap.band_px
    if band is not None and band > max(width, height):
        raise ParameterError.about("trimap.band_px", band, f"wider than the {width}x{height} frame; "
                                   f"give at most {max(width, height)} pixels")


def _refine_plan(cfg: PipelineConfig, device: "torch.device") -> tuple[Optional[RefineConfig], str]:
    """(the effective, checked refine settings or None when off, the solve method)."""
    from alphagan_video.refine import check_refine_config, solver_method

    solver = solver_method(cfg.refine.solver, device)  # a bad choice fails here, refine on or off
    if not cfg.refine.enabled:
        return None, solver
    # Known-region expansion only trusts a trimap the user gave (RefineConfig.expand_mask_trimaps).
    refine = cfg.refine.effective_for(user_trimap=cfg.trimap.trimap_path is not None)
    check_refine_config(refine)
    return refine, solver


def plan_run(cfg: PipelineConfig, info: VideoInfo, device: "torch.device", *,
             output_path: Optional[str | os.PathLike] = None, chunked: bool = False) -> RunPlan:
    """The ``RunPlan`` of ``cfg`` on a video described by ``info`` on ``device`` (resolved).

    output_path: where the run writes, to fix ``device_planes`` (None: they stay off).
    chunked: a farm chunk (``matte_video``'s ``context``): it reads the configured batch size.
    Assumes ``config.check_config(cfg)`` has passed. Raises ParameterError / MaskSourceError for
    settings that cannot run (solver, refine settings, mask spec)."""
    from alphagan_video.config import prior_scale_for

    refine, solver = _refine_plan(cfg, device)
    mask = plan_mask(cfg)
    band_px, auto = trimap_band(cfg, info)
    trimap = "user" if mask is None else "auto" if auto else "band"
    has_color, has_alpha = cfg.output.kind != "alpha", cfg.output.kind in ("rgba", "alpha")
    device_planes = False
    if device.type == "cuda" and output_path is not None and has_color:
        from alphagan_video.io.writer import plan_output, takes_planes

        plan = plan_output(output_path, cfg.output, has_color=has_color, has_alpha=has_alpha)
        device_planes = takes_planes(plan, 4 if has_alpha else 3)
    measure = device.type == "cuda" and cfg.model.auto_batch
    return RunPlan(device, mask, trimap, band_px, prior_scale_for(cfg, device.type), refine, solver,
                   cfg.model.batch_size, _workers(cfg.model.batch_size), measure, has_color, has_alpha,
                   device_planes, chunked)


__all__ = ["RunPlan", "check_band", "plan_mask", "plan_run", "trimap_band"]
