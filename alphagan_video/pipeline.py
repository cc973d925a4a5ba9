"""The one wiring function: INPUT -> masks -> trimaps -> generator -> clamp -> refine ->
temporal -> foreground -> OUTPUT, as a one-way stream of frame batches.

Memory is bounded by the batch size: nothing here holds more than one batch of frames.
Library code never prints; progress goes to an optional callback.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from alphagan_video.config import OutputConfig, PipelineConfig
from alphagan_video.device import autocast_for, resolve_device
from alphagan_video.errors import InputMediaError, MaskSourceError, UserInputError
from alphagan_video.foreground import estimate_foreground
from alphagan_video.temporal import TemporalState, smooth_alpha
from alphagan_video.types import FrameBatch, OutputBatch, VideoInfo

ProgressCallback = Callable[[int, Optional[int]], None]
"""Called after each batch with (frames done, total frames or None when unknown)."""


@dataclass
class RunReport:
    """What a run did; the CLI serialises it for ``--json-report``."""

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

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- pure helpers

def frames_to_tensor(batch: FrameBatch, device: torch.device) -> torch.Tensor:
    """FrameBatch (B,H,W,3) uint8/uint16 -> (B,3,H,W) float32 in [0,1] on ``device``."""
    array = torch.from_numpy(np.ascontiguousarray(batch.rgb))
    scale = 255.0 if batch.rgb.dtype == np.uint8 else 65535.0
    if array.dtype == torch.uint16:  # torch has limited uint16 ops: widen first
        array = array.to(torch.int32)
    return (array.to(device).permute(0, 3, 1, 2).float() / scale).contiguous()


def parse_background(spec: str, height: int, width: int) -> np.ndarray:
    """``#RRGGBB``, ``R,G,B`` (0-255), a colour name, or an image path -> (H,W,3) float32 [0,1]."""
    named = {
        "black": (0, 0, 0), "white": (255, 255, 255), "green": (0, 255, 0), "blue": (0, 0, 255),
        "red": (255, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128),
    }
    text = spec.strip()
    rgb = None
    if text.lower() in named:
        rgb = named[text.lower()]
    elif text.startswith("#") and len(text) == 7:
        try:
            rgb = tuple(int(text[i : i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            rgb = None
    elif text.count(",") == 2:
        try:
            rgb = tuple(int(v) for v in text.split(","))
        except ValueError:
            rgb = None
        if rgb is not None and not all(0 <= v <= 255 for v in rgb):
            rgb = None
    if rgb is not None:
        return np.broadcast_to(np.asarray(rgb, np.float32) / 255.0, (height, width, 3)).copy()
    path = Path(text)
    if path.is_file():
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserInputError(f"--background {spec}: not a readable image file")
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return image[..., ::-1].astype(np.float32) / 255.0
    raise UserInputError(
        f"--background {spec!r}: expected #RRGGBB, R,G,B, a colour name ({', '.join(named)}) or an image file"
    )


def render_output(
    kind: str,
    image: torch.Tensor,
    alpha: torch.Tensor,
    foreground: Optional[torch.Tensor],
    background: Optional[torch.Tensor],
) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Build what the writer encodes for one batch.

    Args:
        kind: rgba | alpha | foreground | composite.
        image, foreground: (B,3,H,W) float [0,1]; alpha: (B,1,H,W) float [0,1];
        background: (1,3,H,W) float [0,1] for composite.
    Returns:
        (color (B,H,W,3) float32 straight or None, alpha (B,H,W) float32 or None).
        rgba -> (F, a) straight; alpha -> (None, a); foreground -> (F, None);
        composite -> (a*F + (1-a)*BG, None).
    """
    def to_numpy(t: torch.Tensor) -> np.ndarray:
        return t.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()

    if kind == "alpha":
        return None, to_numpy(alpha)[..., 0]
    if foreground is None:
        raise ValueError(f"output kind {kind!r} needs a foreground estimate")
    if kind == "rgba":
        return to_numpy(foreground), to_numpy(alpha)[..., 0]
    if kind == "foreground":
        return to_numpy(foreground), None
    if kind == "composite":
        if background is None:
            raise ValueError("composite output needs a background")
        return to_numpy(alpha * foreground + (1 - alpha) * background), None
    raise UserInputError(f"--output-kind {kind!r}: expected rgba, alpha, foreground or composite")


# --------------------------------------------------------------------------- stages

class _UserTrimaps:
    """User trimaps (``--trimap PATH``: video, sequence or single image) read in step with the frames."""

    def __init__(self, path: Path, info: VideoInfo):
        from alphagan_video.io import open_input

        self.path = path
        self._reader_cm = open_input(path)
        self._reader = self._reader_cm.__enter__()
        t_info = self._reader.info
        if (t_info.width, t_info.height) != (info.width, info.height):
            self.close()
            raise MaskSourceError(
                f"{path}: trimap is {t_info.width}x{t_info.height} but the video is {info.width}x{info.height}; "
                "trimaps must match the frame size"
            )
        self._single = t_info.kind == "image"
        self._cached: Optional[torch.Tensor] = None
        self._batches: Optional[Iterator[FrameBatch]] = None
        self._pending: list[tuple[int, np.ndarray]] = []

    def _next_frames(self, count: int, first_index: int) -> np.ndarray:
        if self._batches is None:
            self._batches = self._reader.iter_batches(1)
        frames = []
        for k in range(count):
            try:
                frames.append(next(self._batches).rgb[0])
            except StopIteration:
                raise MaskSourceError(
                    f"{self.path}: trimap has only {first_index + k} frame(s) but the video needs frame "
                    f"{first_index + k}; supply one trimap per frame"
                ) from None
        return np.stack(frames)

    def __call__(self, index: list[int], device: torch.device) -> torch.Tensor:
        """-> (B,1,H,W) float {0,0.5,1} on device."""
        from alphagan_video.trimap import trimap_from_uint8

        if self._single:
            if self._cached is None:
                gray = next(iter(self._reader.iter_batches(1))).rgb[0].astype(np.float64).mean(-1)
                self._cached = torch.as_tensor(
                    np.asarray(trimap_from_uint8(_to_uint8(gray, self._reader.info.bit_depth)), np.float32)
                )[None, None]
            return self._cached.to(device).expand(len(index), -1, -1, -1)
        frames = self._next_frames(len(index), index[0])
        gray = frames.astype(np.float64).mean(-1)
        tri = np.asarray(trimap_from_uint8(_to_uint8(gray, self._reader.info.bit_depth)), np.float32)
        return torch.as_tensor(tri)[:, None].to(device)

    def close(self) -> None:
        self._reader_cm.__exit__(None, None, None)


def _to_uint8(gray: np.ndarray, bit_depth: int) -> np.ndarray:
    if bit_depth > 8:
        return np.round(gray / 257.0).astype(np.uint8)
    return np.round(gray).astype(np.uint8)


def _refine_batch(image: torch.Tensor, trimap: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Matting-Laplacian solve per frame with the generator's alpha as prior (CPU, float64)."""
    from alphagan_video.refine import refine_alpha

    out = []
    for i in range(image.shape[0]):
        tri = trimap[i, 0].float().cpu().numpy()
        if not (tri == 0.5).any():
            out.append(prior[i : i + 1])
            continue
        refined = refine_alpha(
            image[i].permute(1, 2, 0).double().cpu().numpy(), tri, prior[i, 0].double().cpu().numpy()
        )
        out.append(torch.as_tensor(refined, dtype=torch.float32)[None, None].to(prior.device))
    return torch.cat(out, 0)


# --------------------------------------------------------------------------- the wiring

def matte_video(
    input_path: str | Path,
    output_path: str | Path,
    cfg: PipelineConfig = PipelineConfig(),
    progress: Optional[ProgressCallback] = None,
) -> RunReport:
    """Matte INPUT into OUTPUT. See ``PipelineConfig`` for every setting.

    Raises:
        UserInputError (and subclasses) for bad input/options; other AlphaGANVideoError for
        internal failures. On any failure no file is left at ``output_path``.
    """
    from alphagan_video.io import open_input, open_output
    from alphagan_video.io.writer import describe_output
    from alphagan_video.masks import build_mask_source, describe_mask_source
    from alphagan_video.model import load_generator
    from alphagan_video.trimap import clamp_known, default_band_px, make_trimap

    started = time.perf_counter()
    seconds = {"decode": 0.0, "mask": 0.0, "model": 0.0, "refine": 0.0, "temporal": 0.0,
               "foreground": 0.0, "encode": 0.0}
    if cfg.model.batch_size < 1:
        raise UserInputError(f"--batch-size {cfg.model.batch_size}: must be at least 1")
    if not 0.0 <= cfg.temporal.strength <= 1.0:
        raise UserInputError(f"--temporal-strength {cfg.temporal.strength}: must be between 0 and 1")
    kind = cfg.output.kind
    needs_foreground = kind in ("rgba", "foreground", "composite")

    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(open_input(input_path))
        info = reader.info
        device = resolve_device(cfg.model.device)
        background = None
        if kind == "composite":
            background = torch.from_numpy(
                parse_background(cfg.output.background, info.height, info.width)
            ).permute(2, 0, 1)[None].to(device)
        model, meta = load_generator(cfg.model.checkpoint, variant=cfg.model.variant)
        model = model.to(device).eval()
        if cfg.trimap.trimap_path is not None:
            user_trimaps = _UserTrimaps(Path(cfg.trimap.trimap_path), info)
            stack.callback(user_trimaps.close)
            mask_source = None
            mask_description = f"user trimaps from {cfg.trimap.trimap_path}"
        else:
            user_trimaps = None
            mask_source = build_mask_source(cfg.mask, info, device)
            stack.callback(mask_source.close)
            mask_description = describe_mask_source(cfg.mask)
        band_px = cfg.trimap.band_px or default_band_px(info.height, info.width)
        if band_px < 1:
            raise UserInputError(f"--trimap-band {band_px}: must be at least 1 pixel")
        # Open the writer last: every check that can fail on the input has been made, and the
        # writer refuses an existing OUTPUT before any frame is processed.
        writer = stack.enter_context(
            open_output(output_path, info, cfg.output, has_color=kind != "alpha", has_alpha=kind in ("rgba", "alpha"))
        )
        report = RunReport(
            input=str(input_path), output=str(output_path), width=info.width, height=info.height,
            device=str(device), model={"path": str(meta.path), "variant": meta.variant, "norm": meta.norm},
            mask_source=mask_description,
            output_description=describe_output(output_path, cfg.output, has_color=kind != "alpha",
                                               has_alpha=kind in ("rgba", "alpha")),
            settings={"batch_size": cfg.model.batch_size, "trimap_band_px": band_px,
                      "temporal": cfg.temporal.enabled, "temporal_strength": cfg.temporal.strength,
                      "refine": cfg.model.refine, "output_kind": kind},
        )
        state = TemporalState()
        total = info.frame_count
        tick = time.perf_counter()
        for batch in reader.iter_batches(cfg.model.batch_size):
            now = time.perf_counter(); seconds["decode"] += now - tick; tick = now
            image = frames_to_tensor(batch, device)
            if user_trimaps is not None:
                trimap = user_trimaps(batch.index, device)
            else:
                with torch.inference_mode():
                    mask = mask_source(image, batch.index)
                trimap = make_trimap(mask, band_px)
            now = time.perf_counter(); seconds["mask"] += now - tick; tick = now
            with torch.inference_mode(), autocast_for(device, cfg.model.mixed_precision):
                alpha = model(image, trimap).float()
            alpha = clamp_known(alpha, trimap)
            now = time.perf_counter(); seconds["model"] += now - tick; tick = now
            if cfg.model.refine:
                alpha = clamp_known(_refine_batch(image, trimap, alpha), trimap)
                now = time.perf_counter(); seconds["refine"] += now - tick; tick = now
            alpha, state = smooth_alpha(alpha, image, trimap, state, cfg.temporal)
            now = time.perf_counter(); seconds["temporal"] += now - tick; tick = now
            foreground = estimate_foreground(image, alpha) if needs_foreground else None
            color, out_alpha = render_output(kind, image, alpha, foreground, background)
            now = time.perf_counter(); seconds["foreground"] += now - tick; tick = now
            writer.write(OutputBatch(color, out_alpha, batch.pts, batch.index, batch.time_base))
            now = time.perf_counter(); seconds["encode"] += now - tick; tick = now
            report.frames += len(batch)
            if progress is not None:
                progress(report.frames, total)
        if report.frames == 0:
            raise InputMediaError(f"{input_path}: no video frames could be decoded")
    seconds["total"] = time.perf_counter() - started
    report.seconds = {k: round(v, 4) for k, v in seconds.items()}
    return report
