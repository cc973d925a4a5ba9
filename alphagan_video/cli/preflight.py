"""Fail fast: every check that needs no model (options, mask spec and side files, INPUT probed,
OUTPUT's extension, kind, codec, folder and existing file, the trimap band against the frame, the
batch size against the memory available) runs in ``_preflight`` before torch is imported, so
bad invocations answer in well under a second or two."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import click

from alphagan_video.config import PipelineConfig, check_config
from alphagan_video.errors import ParameterError, ResourceLimitError
from alphagan_video.memory import available_memory, estimate_peak_memory, frames_that_fit

if TYPE_CHECKING:
    from alphagan_video.masks.spec import MaskSpec


def _check_config(cfg: PipelineConfig) -> "Optional[MaskSpec]":
    """Option values that are wrong whatever the input (the library checks them again later).
    Returns the parsed mask spec (None with user trimaps: no mask source runs)."""
    check_config(cfg)
    for param, path in (("model.checkpoint", cfg.model.checkpoint), ("mask.prompts_json", cfg.mask.prompts_json)):
        if path is not None and not Path(path).is_file():
            what = "is not a file" if Path(path).exists() else "not found"
            raise ParameterError.about(param, path, f"{what}; pass an existing file")
    if cfg.trimap.trimap_path is not None:
        return None  # the mask source is not used
    from alphagan_video.plan import plan_mask  # no torch: the run plan's own mask spec

    spec = plan_mask(cfg)
    if spec.name == "sam" and cfg.mask.sam_checkpoint is not None and not Path(cfg.mask.sam_checkpoint).is_file():
        raise ParameterError.about("mask.sam_checkpoint", cfg.mask.sam_checkpoint,
                                   "not found; pass the official segment-anything checkpoint (.pth)")
    return spec


def _check_side_input(path: str, param: str, value, max_pixels: Optional[int]) -> None:
    """A mask, plate or trimap medium (the setting ``param`` = ``value``): readable, within the
    pixel budget (sizes are checked by its reader)."""
    from alphagan_video.errors import InputMediaError, MaskSourceError
    from alphagan_video.io.reader import open_input

    try:
        with open_input(path, max_pixels=max_pixels):
            pass
    except InputMediaError as exc:
        error = MaskSourceError.about(param, value, str(exc))
        error.mentions = exc.mentions  # the reader's own hints (the pixel budget)
        raise error from None


def _check_band(cfg: PipelineConfig, width: int, height: int) -> None:
    """The trimap band fits a width x height frame (``plan.check_band``)."""
    from alphagan_video.plan import check_band

    check_band(cfg, width, height)


def _check_against_input(cfg: PipelineConfig, info, frames: Optional[tuple[int, int]],
                         spec: "Optional[MaskSpec]", *, device_here: bool = True) -> None:
    """The model-free checks that need INPUT's probe (``info``) or the environment, made before
    the model loads: ``--device`` exists here (``device.check_device``; not when ``device_here``
    is False: a farm job's workers may have the GPU this machine lacks), a composite's
    ``--background`` parses, ``--frames`` starts inside the clip, and masks / plates / trimaps
    have the frame size and (for the frames the run reads) enough frames. ``spec``: the run's
    mask spec (``_check_config``; None with user trimaps)."""
    from alphagan_video.device import check_device
    from alphagan_video.errors import InputMediaError, MaskSourceError

    if device_here:
        check_device(cfg.model.device)
    if cfg.output.kind == "composite":
        from alphagan_video.foreground.background import parse_background

        parse_background(cfg.output.background, 1, 1)
    count = info.frame_count if info.kind != "image" else 1
    if frames is not None and count is None and info.kind == "video":  # no count in the header
        from alphagan_video.io.reader import open_input

        with open_input(info.path) as reader:
            start_exists = reader.count_frames(frames[0] + 1)
        if start_exists is not None and start_exists <= frames[0]:
            count = start_exists  # all of INPUT's frames were counted: refused below
    if frames is not None and count is not None and frames[0] >= count:
        raise InputMediaError.about("frames", f"{frames[0]}-{frames[1]}",
                                    f"{info.path} has {count} frame(s) (0-{count - 1}); give a range inside it")
    side = [(str(cfg.trimap.trimap_path), "trimap.trimap_path", str(cfg.trimap.trimap_path))] \
        if cfg.trimap.trimap_path is not None else []
    if not side and spec is not None and spec.takes_path:
        side.append((spec.arg, "mask.source", spec.text))
    needed = count if frames is None else (None if count is None else min(count, frames[1] + 1))
    from alphagan_video.io.companion import MediaInStep

    for path, param, value in side:
        media = MediaInStep(path, value, info, param=param)  # refuses another frame size
        try:
            # A header without a frame count (Matroska) is counted by demuxing, no decode:
            # the side file up to what the run needs, then, when INPUT's own header has no
            # count either, INPUT up to one frame past the side file's length.
            have = media.info.frame_count
            if not media.single and have is None:
                have = media.count_frames(needed)
            reads = f"0-{needed - 1}" if needed is not None else None
            if not media.single and needed is None and have is not None and info.kind == "video":
                needed, exact = _frames_read(info, frames, have + 1)  # have + 1 at most: enough to refuse
                reads = None if needed is None else f"0-{needed - 1}" + ("" if exact else " or more")
            if not media.single and needed is not None and have is not None and have < needed:
                raise MaskSourceError.about(param, value, f"{path} has {have} frame(s) but frame {have} is needed "
                                            f"(the run reads frames {reads} of {info.path}); supply one at "
                                            "least as long as the video (or a single image)")
        finally:
            media.close()


def _frames_read(info, frames: Optional[tuple[int, int]], limit: int) -> tuple[Optional[int], bool]:
    """How many leading frames of INPUT (whose header states no count) the run reads, counting
    INPUT's packets no further than ``limit``; ``frames``: the run's ``--frames`` range. Returns
    (that count or None when INPUT cannot be demuxed, whether it is exact: False when counting
    stopped at ``limit`` and the run may read more)."""
    from alphagan_video.io.reader import open_input

    with open_input(info.path) as reader:
        count = reader.count_frames(limit)
    if count is None:
        return None, False
    if frames is not None and frames[1] + 1 <= count:
        return frames[1] + 1, True
    return count, count < limit


def _fit_batch(cfg: PipelineConfig, width: int, height: int, *, adjustable: bool,
               warn: bool, available: Optional[int] = None) -> PipelineConfig:
    """Lower the batch size (with a message) when its estimated peak memory exceeds what is
    available; refuse (ResourceLimitError) when even one frame does not fit or the batch size is
    fixed (farm jobs: it sets the chunk grid)."""
    available = available_memory() if available is None else available
    batch = cfg.model.batch_size
    if available is None or estimate_peak_memory(width, height, batch) <= available:
        return cfg
    gib = lambda n: f"{n / 2**30:.1f} GiB"  # noqa: E731
    fits = frames_that_fit(width, height, available)
    if fits < 1 or not adjustable:
        raise ResourceLimitError(
            f"{width}x{height} frames at batch size {batch} need about "
            f"{gib(estimate_peak_memory(width, height, batch))} of memory, {gib(available)} is available"
            + ("; lower --batch-size" if fits >= 1 else "; scale the input down or use a machine with more memory")
        )
    if warn:
        click.echo(f"alphagan-video: note: --batch-size lowered from {batch} to {fits}: {width}x{height} frames at "
                   f"batch size {batch} need about {gib(estimate_peak_memory(width, height, batch))} of memory, "
                   f"{gib(available)} is available", err=True)
    model = dataclasses.replace(cfg.model, batch_size=int(fits), auto_batch=False)
    return dataclasses.replace(cfg, model=model)


def _remove_stale(directory: str, warn: bool) -> None:
    """Remove temporaries of killed runs (their process is gone) from ``directory`` and say so."""
    from alphagan_video._atomic import remove_stale_temporaries

    for path, pid in remove_stale_temporaries(directory):
        if warn:
            click.echo(f"alphagan-video: note: removed {path}, a temporary left by process {pid}, "
                       "which is no longer running", err=True)


def _preflight(input_path: str, output_path: Optional[str], cfg: PipelineConfig, *, max_pixels: Optional[int],
               warn: bool = True, adjustable_batch: bool = True, check_output: bool = True,
               frames: Optional[tuple[int, int]] = None, device_here: bool = True) -> PipelineConfig:
    """Every check that needs no model, before torch is imported (fail in well under a second).

    Options, mask spec and side files; INPUT probed (frame 0 decoded, the declared frame size
    checked against ``max_pixels`` first); OUTPUT: extension, kind, codec, folder, existing file;
    ``--trimap-band`` against the frame; the batch size against the memory available (lowered
    with a message, or refused). Stale temporaries of killed runs beside OUTPUT are removed.
    Returns the config to run (batch size possibly lowered)."""
    from alphagan_video.io.reader import open_input
    from alphagan_video.io.writer import check_output as check_output_target

    spec = _check_config(cfg)
    with open_input(input_path, max_pixels=max_pixels) as reader:
        info = reader.info
    _check_band(cfg, info.width, info.height)
    if cfg.trimap.trimap_path is not None:
        _check_side_input(str(cfg.trimap.trimap_path), "trimap.trimap_path", cfg.trimap.trimap_path, max_pixels)
    elif spec is not None and spec.takes_path:
        _check_side_input(spec.arg, "mask.source", spec.text, max_pixels)
    # device, background, --frames, side media sizes and lengths
    _check_against_input(cfg, info, frames, spec, device_here=device_here)
    if output_path is not None:
        _remove_stale(os.path.dirname(os.path.abspath(output_path)), warn)
        if check_output:
            check_output_target(output_path, info, cfg.output)
    return _fit_batch(cfg, info.width, info.height, adjustable=adjustable_batch, warn=warn)
