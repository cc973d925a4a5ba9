"""Serial coarse-mask pre-pass: per-frame prompts so chunks need no history.

Which mask sources need it:

- ``person``, ``plate:PATH``, ``file:PATH`` and user trimaps (``TrimapConfig.trimap_path``): every frame's mask depends on
  that frame only. Chunks need nothing.
- ``chroma``: a plain run detects the screen colour on the first frame it sees, which for a
  chunk is another frame. ``create_job`` measures the key colour and tolerance once, on frame 0
  of the clip (``fill_chroma_key``, one decoded frame), and stores them in the job's settings
  (``MaskConfig.chroma_key`` / ``chroma_tolerance``): every chunk then keys identically to an
  unchunked run with ``MaskConfig.chroma_key`` set to that colour.
- ``sam``: propagates from the prompted first frame (previous mask's box + logits), so a chunk
  starting at frame 4000 has nothing to start from. Run this pre-pass once, serially, over the
  whole clip: it runs the SAM source exactly as a normal run would and writes, for every frame,
  the bounding box of that frame's mask in the prompts-JSON format ``MaskConfig.prompts_json``
  reads (``{"<frame>": {"box": [x0, y0, x1, y1]}}``). The farm job then runs the ``sam`` source
  with that file as its prompts: every frame is prompted with its own box, independent of every other frame, so
  chunked and unchunked runs with that file are identical. (It is a different, history-free
  way of prompting than the propagation of a plain run: masks can differ slightly from a plain
  single-machine run without the file.)

The pre-pass costs one mask pass (SAM's image encoder per frame; no matting model, no
encoding), serially: it is the part of a SAM job a farm cannot split.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from alphagan_video.config import PipelineConfig
from alphagan_video.farm.files import FarmUsageError, write_json_atomic


@dataclass
class PrepassReport:
    output: str
    frames: int
    boxes: int
    empty: list[int]


def fill_chroma_key(input_path: str | os.PathLike, cfg: PipelineConfig) -> PipelineConfig:
    """``cfg`` with ``mask.chroma_key`` and ``mask.chroma_tolerance`` fixed from frame 0 of INPUT
    when the mask source is ``chroma`` and either is unset; any other ``cfg`` unchanged.

    A user's ``mask.chroma_key`` is kept and only the tolerance is measured around it, exactly as
    an unchunked run with that key measures it on its first frame.
    Raises MaskSourceError when frame 0 shows no screen at its border (as a plain run would).
    """
    import dataclasses

    from alphagan_video.io import open_input
    from alphagan_video.plan import plan_mask
    from alphagan_video.masks.chroma import chroma_settings, key_from_rgb
    from alphagan_video.stages.upload import frames_to_tensor

    mask = cfg.mask
    spec = plan_mask(cfg)  # None with user trimaps: no mask source runs
    if spec is None or spec.name != "chroma":
        return cfg
    if mask.chroma_key is not None and mask.chroma_tolerance is not None:
        return cfg
    with open_input(input_path) as reader:
        batch = next(iter(reader.iter_batches(1, start=0, stop=1)), None)
    if batch is None:
        raise FarmUsageError(f"{input_path}: no video frames could be decoded")
    frame = frames_to_tensor(batch, torch.device("cpu"))[0]
    if mask.chroma_key is None:
        key, tolerance = chroma_settings(frame)
    else:
        key = mask.chroma_key
        tolerance = key_from_rgb(key, frame, mask.chroma_tolerance).low
    tolerance = mask.chroma_tolerance if mask.chroma_tolerance is not None else tolerance
    return dataclasses.replace(cfg, mask=dataclasses.replace(mask, chroma_key=tuple(key), chroma_tolerance=tolerance))


def mask_box(mask: torch.Tensor, threshold: float, margin: float = 0.0) -> Optional[list[float]]:
    """Bounding box [x0, y0, x1, y1] (pixels, x1/y1 exclusive) of ``mask`` (H,W) float > threshold,
    grown by ``margin`` times its size on each side and clipped; None when empty."""
    from alphagan_video.masks.sam import padded_box

    box = padded_box(mask > threshold, margin)
    return None if box is None else [round(v, 2) for v in box]


def run_prepass(
    input_path: str | os.PathLike,
    output_json: str | os.PathLike,
    cfg: PipelineConfig,
    *,
    overwrite: bool = False,
    progress: Optional[Callable[[int, Optional[int]], None]] = None,
) -> PrepassReport:
    """Run ``cfg.mask`` serially over INPUT and write per-frame box prompts to ``output_json``.

    Frames whose mask is empty get no entry (the SAM source then propagates into them from the
    previous frame, as in a plain run, or fails with SubjectLostError naming the frame).
    User prompts from ``cfg.mask.prompts_json`` are kept verbatim for their frames.
    """
    from alphagan_video.device import resolve_device
    from alphagan_video.engine import run
    from alphagan_video.io import open_input
    from alphagan_video.masks import build_mask_source
    from alphagan_video.stages.upload import UploadStage
    from alphagan_video.stages.mask import MaskStage

    output_json = os.fspath(output_json)
    if os.path.exists(output_json) and not overwrite:
        raise FarmUsageError.naming(f"output exists: {output_json}; pass output.overwrite or choose another name",
                                    "output.overwrite")
    if not os.path.isdir(os.path.dirname(os.path.abspath(output_json))):
        raise FarmUsageError(f"output directory of {output_json} does not exist; create it first")
    user_entries: dict = {}
    if cfg.mask.prompts_json is not None:
        with open(cfg.mask.prompts_json, encoding="utf-8") as fh:
            user_entries = {int(k): v for k, v in json.load(fh).items()}
    device = resolve_device(cfg.model.device)
    boxes: dict[int, list[float]] = {}
    empty: list[int] = []

    def collect(work) -> None:  # the sink: one frame's box (batches of one frame)
        box = mask_box(work.soft[0, 0], cfg.mask.threshold)
        if box is None:
            empty.append(work.batch.index[0])
        else:
            boxes[work.batch.index[0]] = box

    with open_input(input_path) as reader:
        # The mask source alone, unstabilised, one frame at a time, as a plain run's source sees it.
        stages = [UploadStage(device), MaskStage(build_mask_source(cfg.mask, reader.info, device))]
        try:
            frames = run(reader.iter_batches(1), stages, collect, overlap=False, progress=progress,
                         total=reader.info.frame_count).frames
        finally:
            for stage in stages:
                stage.close()
    entries: dict[str, dict] = {}
    for index in range(frames):
        if index in user_entries:
            entries[str(index)] = user_entries[index]
        elif index in boxes:
            entries[str(index)] = {"box": boxes[index]}
    if not entries:
        raise FarmUsageError(f"the mask pre-pass found the subject on no frame of {input_path}; check the prompts")
    write_json_atomic(output_json, entries)
    return PrepassReport(output_json, frames, len(boxes), empty)


__all__ = ["PrepassReport", "fill_chroma_key", "mask_box", "run_prepass"]
