"""Coarse-mask sources: one soft subject mask per frame, the seed of the trimap.

In a run, ``stages.mask.MaskStage`` calls the run's source and stabilises its mask over time;
``stages.mask.UserTrimapStage`` reads the user's own trimaps instead (they replace the mask and
the trimap).

Every source is a stateful callable built once per run by :func:`build_mask_source` and then
called batch after batch, in decode order::

    source = build_mask_source(cfg.mask, info, device)
    try:
        for batch in batches:
            mask = source(frames, batch.index)   # frames (B,3,H,W) float32 [0,1] on device
    finally:
        source.close()

Sources (``MaskConfig.source``):

``person`` (default)
    MediaPipe selfie segmentation (``.tflite`` vendored in ``models/``, Apache-2.0) run with
    ``ai-edge-litert``; works offline right after installation. A second pass looks closer at
    the person, and faces found by MediaPipe's BlazeFace (``masks.faces``) are made certain.
``sam``
    segment-anything with a user-supplied checkpoint, prompted on the first frame (box / points)
    or per frame from a prompts JSON, propagated with the previous mask's box and logits.
``chroma``
    green/blue-screen key; the screen colour is found automatically at the frame border.
``plate:PATH``
    difference against a clean background plate (image, or a video read in step).
``file:PATH``
    the user's own masks (video, image sequence, or one image used for every frame).

Importing this package does not import torch (the sources import it when they are built), so the
CLI checks a mask spec with :func:`parse_mask_spec` (``masks.spec``, the one place a spec string is
read) before anything heavy is loaded.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional, Protocol, runtime_checkable

from alphagan_video.config import MaskConfig
from alphagan_video.masks.spec import (
    MASK_SOURCE_NAMES, MASK_SOURCES_WITH_PATH, MASK_SPEC_FORMS, MaskSpec, parse_mask_spec,
)
from alphagan_video.types import VideoInfo

if TYPE_CHECKING:
    import torch


@runtime_checkable
class MaskSource(Protocol):
    """A coarse-mask source.

    ``__call__(frames, index)``:
        frames: (B,3,H,W) float32 in [0,1] on the source's device, consecutive frames in decode
        order; index: their B zero-based frame indices. Returns (B,1,H,W) float32 soft mask in
        [0,1] on the same device, subject = 1. Any B >= 1; sources keep state between calls.
    ``close()``: release files and interpreters; safe to call twice.
    """

    def __call__(self, frames: torch.Tensor, index: list[int]) -> torch.Tensor: ...

    def close(self) -> None: ...


@runtime_checkable
class ReportingSource(Protocol):
    """A mask source with something to add to the run report (``plate``: how the plate was
    registered to the frames, and a warning when it does not explain the frames). After the run:
    ``report()`` -> {setting: value}; ``warnings`` -> one-line warnings for the user."""

    def report(self) -> dict: ...

    @property
    def warnings(self) -> list[str]: ...


Builder = Callable[[MaskConfig, str, VideoInfo, "torch.device"], MaskSource]


def _build_person(cfg: MaskConfig, arg: str, info: VideoInfo, device: torch.device) -> MaskSource:
    from alphagan_video.masks.person import PersonMaskSource

    return PersonMaskSource(info, device)


def _build_sam(cfg: MaskConfig, arg: str, info: VideoInfo, device: torch.device) -> MaskSource:
    from alphagan_video.masks.sam import SamMaskSource

    return SamMaskSource.from_config(cfg, info, device)


def _build_chroma(cfg: MaskConfig, arg: str, info: VideoInfo, device: torch.device) -> MaskSource:
    from alphagan_video.masks.chroma import ChromaMaskSource

    return ChromaMaskSource(info, device, key_colour=cfg.chroma_key, tolerance=cfg.chroma_tolerance)


def _build_plate(cfg: MaskConfig, arg: str, info: VideoInfo, device: torch.device) -> MaskSource:
    from alphagan_video.masks.plate import PlateMaskSource

    return PlateMaskSource(arg, info, device)


def _build_file(cfg: MaskConfig, arg: str, info: VideoInfo, device: torch.device) -> MaskSource:
    from alphagan_video.masks.file import FileMaskSource

    return FileMaskSource(arg, info, device)


#: name -> builder(cfg, argument, info, device). ``plate`` and ``file`` take a PATH argument.
MASK_SOURCES: dict[str, Builder] = {
    "person": _build_person,
    "sam": _build_sam,
    "chroma": _build_chroma,
    "plate": _build_plate,
    "file": _build_file,
}

#: Official segment-anything model types (``MaskConfig.sam_model``), for messages and the CLI.
SAM_MODELS: tuple[str, ...] = ("vit_b", "vit_l", "vit_h")


def _spec_of(cfg: MaskConfig, spec: Optional[MaskSpec]) -> MaskSpec:
    """The run's parsed spec (its run plan's) or, for a library caller that has none, ``cfg``'s."""
    return parse_mask_spec(cfg.source) if spec is None else spec


def build_mask_source(cfg: MaskConfig, info: VideoInfo, device: torch.device,
                      spec: Optional[MaskSpec] = None) -> MaskSource:
    """Build the mask source named by ``cfg.source`` (parsed: ``spec``, e.g. a run plan's
    ``RunPlan.mask``; None = parse it here) for a video described by ``info``.

    Checks everything that can be checked before decoding (files exist, sizes match, SAM has a
    checkpoint and a prompt) so that a bad option fails at once, not after minutes of work.

    Raises:
        MaskSourceError: bad spec or unusable source (message names the value and the fix).
        CheckpointError: SAM checkpoint missing, corrupt or of another architecture.
    """
    import torch

    spec = _spec_of(cfg, spec)
    return MASK_SOURCES[spec.name](cfg, spec.arg, info, torch.device(device))


def describe_mask_source(cfg: MaskConfig, spec: Optional[MaskSpec] = None) -> str:
    """One human-readable line for logs and reports, e.g. ``sam (vit_b, ckpt.pth, box ...)``;
    ``spec`` as in ``build_mask_source``."""
    spec = _spec_of(cfg, spec)
    name, arg = spec.name, spec.arg
    if name == "person":
        return ("person (MediaPipe selfie segmentation, second pass on the person, BlazeFace face anchors; "
                "bundled, via ai-edge-litert)")
    if name == "sam":
        prompts = []
        if cfg.box is not None:
            prompts.append("box " + ",".join(f"{v:g}" for v in cfg.box))
        if cfg.points:
            prompts.append(f"{len(cfg.points)} point(s)")
        if cfg.prompts_json is not None:
            prompts.append(f"prompts {cfg.prompts_json}")
        ckpt = str(cfg.sam_checkpoint) if cfg.sam_checkpoint is not None else "no checkpoint"
        return f"sam ({cfg.sam_model}, {ckpt}; {', '.join(prompts) or 'no prompt'})"
    if name == "chroma":
        if cfg.chroma_key is not None:
            key = ",".join(f"{v:g}" for v in cfg.chroma_key)
            tol = f", tolerance {cfg.chroma_tolerance:g}" if cfg.chroma_tolerance is not None else ""
            return f"chroma (green/blue screen key, fixed key colour {key}{tol})"
        return "chroma (green/blue screen key, colour detected at the frame border)"
    if name == "plate":
        return f"plate (difference against background plate {arg})"
    return f"file (user masks from {arg})"


__all__ = [
    "MASK_SOURCES",
    "MASK_SOURCES_WITH_PATH",
    "MASK_SOURCE_NAMES",
    "MASK_SPEC_FORMS",
    "MaskSource",
    "MaskSpec",
    "ReportingSource",
    "SAM_MODELS",
    "build_mask_source",
    "describe_mask_source",
    "parse_mask_spec",
]
