"""The run plan (``plan.plan_run``): what it fixes for a config, an input and a device, and that a
run decides each of those once."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from alphagan_video.config import (
    MaskConfig, ModelConfig, OutputConfig, PipelineConfig, RefineConfig, TrimapConfig,
)
from alphagan_video.errors import MaskSourceError, ParameterError
from alphagan_video.masks import MaskSpec
from alphagan_video.plan import RunPlan, check_band, plan_mask, plan_run
from alphagan_video.types import VideoInfo
from tests.e2e import tiny_checkpoint, trimap_images, write_gray_sequence  # noqa: F401 - a fixture
from tests.media import make_video

CPU, CUDA = torch.device("cpu"), torch.device("cuda")  # a device object; nothing runs on it here


def info_for(width: int = 640, height: int = 360) -> VideoInfo:
    from fractions import Fraction

    return VideoInfo(path="in.mp4", kind="video", width=width, height=height, time_base=Fraction(1, 25),
                     frame_rate=Fraction(25), frame_count=10, pix_fmt="yuv420p", bit_depth=8)


def test_default_run_on_the_cpu():
    plan = plan_run(PipelineConfig(), info_for(), CPU)
    assert plan.mask == MaskSpec("person") and plan.trimap == "auto" and plan.auto_trimap
    assert plan.band_px == 7  # trimap.default_band_px(360, 640)
    assert plan.prior_scale == 0.5 and plan.solver == "direct"
    # A trimap derived from a mask: no known-region expansion (RefineConfig.expand_mask_trimaps).
    assert plan.refine == dataclasses.replace(RefineConfig(), expand=0)
    assert (plan.batch_size, plan.measure_batch, plan.device_planes) == (2, False, False)
    assert (plan.has_color, plan.has_alpha) == (True, True)


def test_user_trimaps_band_and_refine_off(tmp_path):
    user = plan_run(PipelineConfig(trimap=TrimapConfig(trimap_path=tmp_path / "t.png")), info_for(), CPU)
    assert user.mask is None and user.trimap == "user" and not user.auto_trimap
    assert user.refine == RefineConfig()  # the user's trimap earns the expansion
    band = plan_run(PipelineConfig(trimap=TrimapConfig(band_px=0)), info_for(), CPU)
    assert (band.trimap, band.band_px) == ("band", 0)
    off = PipelineConfig(refine=RefineConfig(enabled=False, solver="pcg"), output=OutputConfig(kind="alpha"))
    plan = plan_run(off, info_for(), CPU)
    assert plan.refine is None and plan.prior_scale == 1.0 and plan.solver == "pcg"
    assert (plan.has_color, plan.has_alpha) == (False, True)


def test_bad_settings_fail_in_the_plan_refine_on_or_off():
    with pytest.raises(ParameterError, match="refine.solver"):
        plan_run(PipelineConfig(refine=RefineConfig(enabled=False, solver="lu")), info_for(), CPU)
    with pytest.raises(ParameterError, match="refine.weighting"):
        plan_run(PipelineConfig(refine=RefineConfig(weighting="odd")), info_for(), CPU)
    with pytest.raises(MaskSourceError, match="plate needs a path"):
        plan_run(PipelineConfig(mask=MaskConfig(source="plate")), info_for(), CPU)
    with pytest.raises(ParameterError, match="wider than the 64x48 frame"):
        check_band(PipelineConfig(trimap=TrimapConfig(band_px=65)), 64, 48)
    check_band(PipelineConfig(), 2, 2)  # the default band is never refused
    assert plan_mask(PipelineConfig(mask=MaskConfig(source="File:m.png"))) == MaskSpec("file", "m.png")


def test_cuda_plan_fixes_planes_from_the_output_and_batch_after_the_model():
    rgba = PipelineConfig(model=ModelConfig(batch_size=3))
    plan = plan_run(rgba, info_for(), CUDA, output_path="out.mov")
    assert plan.device_planes and plan.solver == "pcg" and plan.prior_scale == 1.0 and plan.measure_batch
    measured = plan.with_measured_batch(8)
    assert measured.batch_size == 8 and not measured.measure_batch and measured.workers >= 1
    chunk = plan_run(rgba, info_for(), CUDA, output_path="out.mov", chunked=True).with_measured_batch(8)
    assert chunk.batch_size == 3  # a farm chunk keeps the configured batch grid
    assert not plan_run(rgba, info_for(), CUDA).device_planes  # no output path: no planes
    assert not plan_run(rgba, info_for(), CUDA, output_path="out.mkv").device_planes  # FFV1: RGB frames
    alpha = PipelineConfig(output=OutputConfig(kind="alpha"))
    assert not plan_run(alpha, info_for(), CUDA, output_path="out.mov").device_planes
    assert not plan_run(rgba, info_for(), CPU, output_path="out.mov").device_planes
    no_auto = dataclasses.replace(rgba, model=ModelConfig(batch_size=3, auto_batch=False))
    assert not plan_run(no_auto, info_for(), CUDA).measure_batch


def test_a_run_checks_its_refine_settings_and_decides_its_solver_once(tmp_path, tiny_checkpoint, monkeypatch):
    """Not once per frame: the plan checks the effective refine settings and decides the solve
    method; the refine's per-frame calls take the method and check nothing again."""
    import alphagan_video.refine as refine
    import alphagan_video.refine.api as api
    from alphagan_video.pipeline import matte_video

    calls = {"check": 0, "solver": 0}

    def counted(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    check, solver = counted("check", api.check_refine_config), counted("solver", api.solver_method)
    for module in (api, refine):
        monkeypatch.setattr(module, "check_refine_config", check)
        monkeypatch.setattr(module, "solver_method", solver)
    clip = make_video(str(tmp_path / "in.mp4"), width=64, height=48, frames=5)
    trimaps = write_gray_sequence(tmp_path / "tri", trimap_images(clip.mask, radius=3), "t_%04d.png")
    cfg = PipelineConfig(trimap=TrimapConfig(trimap_path=Path(trimaps)),
                         model=ModelConfig(checkpoint=Path(tiny_checkpoint), batch_size=2))
    report = matte_video(clip.path, tmp_path / "out.mov", cfg)
    assert report.frames == 5 and report.seconds["refine"] > 0
    # solver_method: the plan's decision, and check_refine_config's own validation of the choice.
    assert calls == {"check": 1, "solver": 2}


def test_plan_is_frozen():
    plan = plan_run(PipelineConfig(), info_for(), CPU)
    assert isinstance(plan, RunPlan)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.band_px = 3  # type: ignore[misc]
