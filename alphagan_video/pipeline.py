"""The wiring: a ``PipelineConfig`` -> the chain of stages (``build_chain``), and files in ->
files out (``matte_video``) through the one run loop (``engine.run``):

    decode -> upload -> mask (or user trimaps) -> trimap -> [refine prepare] -> generator
           -> temporal (+ refine solve) -> coverage -> output -> encode (the window's frames)

What the run does with its settings is decided once, before any frame, by the run plan
(``plan.plan_run``: band, trimap mode, prior scale, refine settings and solver, batch size,
output planes); the chain is built from it and the report reads it.

This order is declared here only (``build_chain``); the stages (``stages/``) are thin adapters
over the methods (``masks``, ``trimap``, ``generator``, ``refine``, ``temporal``,
``foreground``). The mask, refine-prepare and temporal stages share one ``TemporalSolve``.

Memory is bounded by the batch size and the queue depth, not the clip length. Library code
never prints; progress goes to an optional callback.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch

from alphagan_video.config import PipelineConfig, check_config
from alphagan_video.device import cuda_free_memory, resolve_device
from alphagan_video.engine import ProgressCallback, RunTally, Window, run
from alphagan_video.errors import InputMediaError
from alphagan_video.engine import Stage
from alphagan_video.foreground.compose import parse_background, render_output
from alphagan_video.generator import prepare_generator
from alphagan_video.generator.threads import generator_threads
from alphagan_video.plan import RunPlan, plan_run
from alphagan_video.stages.coverage import CoverageStage, coverage_warnings
from alphagan_video.stages.generator import GeneratorStage
from alphagan_video.stages.mask import MaskStage
from alphagan_video.stages.output import OutputStage
from alphagan_video.stages.refine import RefinePrepareStage
from alphagan_video.stages.temporal import TemporalStage
from alphagan_video.stages.trimap import TrimapStage
from alphagan_video.stages.upload import UploadStage, frames_to_tensor
from alphagan_video.stages.user_trimap import UserTrimapStage
from alphagan_video.temporal.solve import TemporalSolve
from alphagan_video.types import VideoInfo


@dataclass
class RunReport:
    """What a run did; the CLI serialises it for its JSON report."""

    input: str
    output: str
    frames: int = 0
    width: int = 0
    height: int = 0
    device: str = ""
    model: dict = field(default_factory=dict)
    mask_source: str = ""
    output_description: str = ""
    settings: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    #: Written frames whose matte is empty (no pixel above 0.5) or full (no pixel below).
    empty_frames: list = field(default_factory=list)
    full_frames: list = field(default_factory=list)
    #: One-line warnings for the user (the CLI prints them; in its strict mode they exit 2).
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


#: Peak GPU bytes per frame pixel assumed when sizing CUDA batches: a float32 CPU forward of
#: the resnet18 generator peaks at ~630 bytes/pixel (measured on 768x768, RSS), fp16 autocast
#: about halves the activations; the rest covers the other stages' full-resolution tensors
#: (image, trimap, alpha, foreground, temporal state). Not measured on a GPU.
CUDA_BYTES_PER_PIXEL = 700
#: Most frames per automatically sized CUDA batch (latency and host memory stay bounded).
MAX_AUTO_BATCH = 16


def cuda_batch_size(device: torch.device, height: int, width: int, fraction: float = 0.5) -> int:
    """Frames per batch that fit in ``fraction`` of the GPU's free memory, in [1, MAX_AUTO_BATCH]."""
    free = cuda_free_memory(device)
    per_frame = CUDA_BYTES_PER_PIXEL * height * width
    return int(max(1, min(MAX_AUTO_BATCH, (free * fraction) // per_frame)))


@dataclass
class StageChain:
    """The stages of one run, built from a config for one stream (``build_chain``); a context
    manager that closes every stage (mask readers, the refine's worker, torch threads).

    plan: the run plan the stages were built from (``plan.plan_run``; its batch size measured on
    CUDA); mask_stage: the mask stage (None with user trimaps), which reports what its source
    did (``MaskStage.report``)."""

    stages: list[Stage]
    plan: RunPlan
    meta: object  # model.checkpoint.CheckpointMeta: path, variant, norm, sha256
    mask_description: str
    coverage: CoverageStage
    output: OutputStage
    mask_stage: Optional[MaskStage] = None

    @property
    def device(self) -> torch.device:
        return self.plan.device

    @property
    def batch_size(self) -> int:
        return self.plan.batch_size

    @property
    def has_color(self) -> bool:
        return self.plan.has_color

    @property
    def has_alpha(self) -> bool:
        return self.plan.has_alpha

    def close(self) -> None:
        for stage in self.stages:
            stage.close()

    def __enter__(self) -> "StageChain":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _open_mask(cfg: PipelineConfig, plan: RunPlan, info: VideoInfo):
    """The run's mask input -> (the user-trimap stage or the mask source, its description). Both
    hold files or interpreters until ``close()``."""
    if plan.mask is None:
        path = cfg.trimap.trimap_path
        return UserTrimapStage(Path(path), info, plan.device), f"user trimaps from {path}"
    from alphagan_video.masks import build_mask_source, describe_mask_source

    return (build_mask_source(cfg.mask, info, plan.device, plan.mask),
            describe_mask_source(cfg.mask, plan.mask))


def _plan_for(cfg: PipelineConfig, info: VideoInfo, output_path, chunked: bool) -> RunPlan:
    """Settings checked, the device picked and the run planned (``plan_run``): before the model."""
    check_config(cfg)
    return plan_run(cfg, info, resolve_device(cfg.model.device), output_path=output_path, chunked=chunked)


def build_chain(info: VideoInfo, cfg: PipelineConfig = PipelineConfig(), *,
                output_path: Optional[str | os.PathLike] = None, chunked: bool = False) -> StageChain:
    """Every stage of a run of ``info``'s frames with ``cfg``, in order (see the module docstring).
    Settings are checked, the run planned (``plan.plan_run``; ``output_path`` and ``chunked`` as
    there), the model loaded and the CUDA batch size measured here, before any frame."""
    from alphagan_video.model import load_generator

    plan = _plan_for(cfg, info, output_path, chunked)
    device = plan.device
    background = None
    if cfg.output.kind == "composite":
        background = torch.from_numpy(
            parse_background(cfg.output.background, info.height, info.width)).permute(2, 0, 1)[None].to(device)
    model, meta = load_generator(cfg.model.checkpoint, variant=cfg.model.variant)
    model = prepare_generator(model, device, cfg.model.compile)
    if plan.measure_batch:  # free GPU memory is only known with the model loaded
        plan = plan.with_measured_batch(cuda_batch_size(device, info.height, info.width))
    opened, description = _open_mask(cfg, plan, info)
    try:
        solve = TemporalSolve(cfg.temporal, plan.refine, device, plan.workers, plan.solver)
    except BaseException:
        opened.close()
        raise
    mask_stage = None if plan.mask is None else MaskStage(opened, solve)
    mask_stages = [opened] if mask_stage is None else [mask_stage, TrimapStage(plan.band_px, plan.auto_trimap)]
    stages: list[Stage] = [UploadStage(device), *mask_stages]
    if plan.refine is not None:
        stages.append(RefinePrepareStage(solve))
    # The temporal stage releases the float image while the work queues for the render lane; the
    # output stage rebuilds it from the decoded frames the same way the upload stage made it.
    coverage, output = CoverageStage(), OutputStage(cfg.output.kind, background, plan.device_planes,
                                                    image_of=lambda batch: frames_to_tensor(batch, device))
    # The generator's alpha is only the solve's prior when the refine is on: then it may run at a
    # reduced working scale (ModelConfig.prior_scale); without the refine it is the product.
    # The generator's forward leaves the refine's prepare workers their cores (generator.threads).
    threads = generator_threads(device, plan.workers if plan.refine is not None else 0)
    stages += [GeneratorStage(model, device, cfg.model.tiling, cfg.model.mixed_precision, plan.prior_scale,
                              threads),
               TemporalStage(solve), coverage, output]
    return StageChain(stages, plan, meta, description, coverage, output, mask_stage)


def _new_report(input_path, output_path, info: VideoInfo, chain: StageChain, cfg: PipelineConfig,
                frame_range, context) -> RunReport:
    from alphagan_video.io.writer import describe_output

    meta, plan = chain.meta, chain.plan
    return RunReport(
        input=str(input_path), output=str(output_path), width=info.width, height=info.height,
        device=str(plan.device),
        model={"path": str(meta.path), "variant": meta.variant, "norm": meta.norm, "sha256": meta.sha256},
        mask_source=chain.mask_description,
        output_description=describe_output(output_path, cfg.output, has_color=plan.has_color,
                                           has_alpha=plan.has_alpha),
        settings={"batch_size": plan.batch_size, "trimap_band_px": plan.band_px, "trimap": plan.trimap,
                  "temporal": cfg.temporal.enabled, "temporal_strength": cfg.temporal.strength,
                  "refine": cfg.refine.enabled, "tiling": cfg.model.tiling,
                  "generator_scale": plan.prior_scale, "output_kind": cfg.output.kind,
                  "frame_range": list(frame_range) if frame_range else None,
                  "context": context, "overlap": cfg.overlap},
    )


def _finish_report(report: RunReport, tally: RunTally, chain: StageChain, window: Window) -> None:
    """Frames, seconds, coverage and its warnings, what the mask source reports (a plate's
    registration): from the finished run."""
    report.frames = tally.frames
    report.seconds = dict(tally.seconds)
    written = lambda frames: sorted(f for f in set(frames) if window.holds(f))  # noqa: E731
    report.empty_frames = written(chain.coverage.empty_frames)
    report.full_frames = written(chain.coverage.full_frames)
    report.warnings = coverage_warnings(report.empty_frames, report.full_frames, report.frames,
                                        chain.mask_description)
    if chain.mask_stage is not None:
        report.settings.update(chain.mask_stage.report())
        report.warnings += chain.mask_stage.warnings()  # e.g. a plate that does not fit


def matte_video(
    input_path: str | Path,
    output_path: str | Path,
    cfg: PipelineConfig = PipelineConfig(),
    progress: Optional[ProgressCallback] = None,
    frame_range: Optional[tuple[int, int]] = None,
    context: Optional[int] = None,
    before_publish: Optional[Callable[[RunReport], Optional[Callable[[], None]]]] = None,
) -> RunReport:
    """Matte INPUT into OUTPUT. See ``PipelineConfig`` for every setting.

    Args:
        frame_range: (first, last) inclusive 0-based frame indices to process; None = all.
        context: chunk mode for render farms. None = plain run. An int K >= 0:
            the K frames before ``first`` are processed and discarded, which warms up every
            stateful stage (temporal smoothing, mask propagation) exactly as an unchunked run
            would have it; and batches are aligned to the unchunked run's grid (multiples of
            the batch size from frame 0: the warm-up start is rounded down, the end rounded up
            and the extra frames discarded), so batched computations see the same batches.
            Only frames first..last are written, with their original timestamps.
        before_publish: called with the finished report (``seconds["total"]`` included) once
            OUTPUT is complete in its temporary, just before it is moved into place: side files
            (the CLI's JSON report) staged there are published together with OUTPUT: it may return
            their renames, run once OUTPUT is in place; an exception fails the run with no OUTPUT.
    Raises:
        UserInputError (and subclasses) for bad input/options; other AlphaGANVideoError for
        internal failures. On any failure no file is left at ``output_path``.
    """
    from alphagan_video.io import open_input, open_output

    started = time.perf_counter()
    window = Window.of(frame_range, context, cfg.model.batch_size)
    if frame_range is not None:
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, trim_audio=True))
    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(open_input(input_path))
        info = reader.info
        # Chunked runs keep the configured batch grid (context alignment above relies on it); on
        # CUDA the RGB -> 10-bit YCbCr conversion runs on the GPU when the output takes it.
        chain = stack.enter_context(build_chain(info, cfg, output_path=output_path, chunked=context is not None))
        # Open the writer last: every check that can fail on the input has been made, and the
        # writer refuses an existing OUTPUT before any frame is processed.
        writer = stack.enter_context(open_output(output_path, info, cfg.output, has_color=chain.has_color,
                                                 has_alpha=chain.has_alpha, frame_range=frame_range))
        batch_size = chain.batch_size
        report = _new_report(input_path, output_path, info, chain, cfg, frame_range, context)
        total = info.frame_count
        if total is not None and frame_range is not None:
            total = max(0, min(total, window.stop) - window.start)

        def sink(work) -> None:
            if len(work.output):
                writer.write(work.output)

        tally = run(reader.iter_batches(batch_size, start=window.read_start, stop=window.read_stop), chain.stages,
                    sink, overlap=cfg.overlap, window=window, progress=progress, total=total)
        if tally.frames == 0:
            raise InputMediaError(f"{input_path}: no video frames could be decoded"
                                  + (f" in the range {window.start}-{window.stop - 1}" if frame_range else ""))
        _finish_report(report, tally, chain, window)
        repaired = [i for i in reader.repaired_timestamps
                    if i >= window.start and (window.stop is None or i < window.stop)]
        if repaired:
            report.warnings.append(
                f"{input_path}: {len(repaired)} frame(s) carried a timestamp not after the previous frame's "
                f"(first: frame {repaired[0]}); they were written one nominal frame duration after the previous frame "
                "(remux the input to fix its timestamps)")
        if before_publish is not None:
            def publishing() -> Optional[Callable[[], None]]:
                _total_seconds(report, started)
                return before_publish(report)
            writer.before_publish = publishing
    if "total" not in report.seconds:
        _total_seconds(report, started)
    return report


def _total_seconds(report: RunReport, started: float) -> None:
    report.seconds["total"] = time.perf_counter() - started
    report.seconds = {k: round(v, 4) for k, v in report.seconds.items()}


__all__ = ["CUDA_BYTES_PER_PIXEL", "MAX_AUTO_BATCH", "RunReport", "StageChain", "build_chain", "check_config",
           "coverage_warnings", "cuda_batch_size", "frames_to_tensor", "matte_video", "parse_background",
           "render_output"]
