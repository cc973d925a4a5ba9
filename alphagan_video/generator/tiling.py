"""Unknown-region (tiled) inference: run the generator only where the trimap is unknown.

Matting only has to *predict* the unknown band; known pixels are clamped to 0 / 1 afterwards.
At 1080p a default 22 px band is a few percent of the frame, so running the generator on the
whole frame wastes most of its work. :func:`infer_alpha` covers the unknown pixels of every frame
with fixed-size tiles (a ``tile`` x ``tile`` core plus ``margin`` pixels of context on each
side), skips tiles without unknown pixels, batches the tiles of all frames together into model
calls of at most ``max_batch`` tiles, and stitches the predictions back with linear cross-fade
weights normalised by their sum, so neighbouring tiles blend without seams.

Grid alignment: tile windows start at multiples of the model's output stride, and windows that
would run past the bottom/right edge are replicate-padded exactly as the full-frame forward pads
the frame, so a tile sees the same pixels on the same stride grid as the full frame does.

What tiling cannot reproduce exactly: the generator's GroupNorm layers and ASPP image-pooling
branch use statistics of the *whole input*, so a tile's prediction depends on its crop, not
only on nearby pixels. Tiled and full-frame alphas therefore agree only approximately inside the
band. Measured with randomly initialised, perturbed generators (no trained weights yet): mean
|tiled - full| in the band 0.04-0.065 (tiny) and 0.10 (resnet18), i.e. a sizeable fraction of
the in-band spread; with a crop-invariant network (BatchNorm in eval mode, no image pooling) the
same tiling matches the full frame to ~1e-3 at margin 128, so GroupNorm is the cause. The
generator is trained on crops around the unknown region (256-320 px), so tile statistics are
close to what it saw in training; full 1080p frames, dominated by known background, are not.

Example:
    >>> from alphagan_video.model import build_generator
    >>> g = build_generator("tiny").eval()
    >>> image = torch.rand(2, 3, 200, 300)
    >>> trimap = torch.zeros(2, 1, 200, 300); trimap[:, :, 90:110] = 0.5
    >>> infer_alpha(g, image, trimap, tiling="on", tile=64, margin=32).shape
    torch.Size([2, 1, 200, 300])
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager, Optional

import torch
from torch import nn
import torch.nn.functional as F

from alphagan_video.config import TILING_MODES, TilingMode  # noqa: F401 - TilingMode re-exported
from alphagan_video.errors import UserInputError
from alphagan_video.trimap import clamp_known

#: Default tile core size in pixels (a multiple of 16 and 8, the generator's output strides).
#: With :data:`DEFAULT_MARGIN` a tile window is 256 x 256, the generator's training crop size,
#: so a tile's GroupNorm statistics come from as much context as training gave it.
DEFAULT_TILE = 192
#: Default context margin on each side of the core, pixels (a multiple of 16). Cores are
#: cross-faded over ``margin // 2`` pixels on each side of a boundary.
DEFAULT_MARGIN = 32
#: Default most tiles per model call (16 windows of 256^2 ~ half a 1080p frame of pixels).
DEFAULT_MAX_BATCH = 16
#: ``auto`` tiles a frame when its tiles' total window area is below this fraction of the
#: (stride-padded) full-frame area. A tile pixel costs about what a full-frame pixel costs
#: (bench/bench_tiling.py), so below 0.6 tiling is >= ~1.5x cheaper even after the per-tile
#: crop/stitch overhead; above it the saving is small and not worth the difference from the
#: full-frame answer (GroupNorm statistics, see the module docstring).
AUTO_MAX_AREA_RATIO = 0.6


@dataclass(frozen=True)
class _AxisPlan:
    """How one image axis (height or width) is cut into tiles.

    ``cells[k] = (core_start, core_end, window_start)``; every window has length ``window``;
    ``weights[k]`` is the (window,) float32 blend weight of cell k over its window (0 outside
    the region it contributes to). ``canvas`` is the padded axis length the windows live in.
    ``tiled`` is False when one window covers the whole axis.
    """

    length: int
    canvas: int
    window: int
    tiled: bool
    cells: tuple[tuple[int, int, int], ...]
    weights: tuple[torch.Tensor, ...]


def _plan_axis(length: int, tile: int, margin: int, stride: int, overlap: int) -> _AxisPlan:
    padded = -(-length // stride) * stride  # what the full-frame forward pads this axis to
    window = tile + 2 * margin
    if window >= padded:
        # One window covers the whole axis: no cut, no padding beyond what the model does itself.
        return _AxisPlan(length, length, length, False, ((0, length, 0),), (torch.ones(length),))
    cells = []
    weights = []
    positions = torch.arange(window, dtype=torch.float64)
    for start in range(0, length, tile):
        end = min(start + tile, length)
        # Window start: core - margin, kept inside the padded axis; every term is a multiple of
        # the stride, so the tile's stride grid coincides with the full frame's.
        win_start = min(max(start - margin, 0), padded - window)
        p = positions + win_start  # absolute pixel index of each window position
        w = torch.ones(window, dtype=torch.float64)
        if overlap > 0:
            # Linear cross-fade over [start - overlap, start + overlap): the rising ramp of this
            # cell and the falling ramp of its left neighbour sum to exactly 1 there.
            if start > 0:
                w = torch.minimum(w, ((p - (start - overlap) + 0.5) / (2 * overlap)).clamp(0, 1))
            if end < length:
                w = torch.minimum(w, (((end + overlap) - p - 0.5) / (2 * overlap)).clamp(0, 1))
        else:
            w = ((p >= start) & (p < end)).to(torch.float64)
        cells.append((start, end, win_start))
        weights.append(w.float())
    return _AxisPlan(length, padded, window, True, tuple(cells), tuple(weights))


def _check_inputs(image: torch.Tensor, trimap: torch.Tensor) -> None:
    for name, t, channels in (("image", image, 3), ("trimap", trimap, 1)):
        if not isinstance(t, torch.Tensor):
            raise UserInputError(f"infer_alpha: {name} expected a torch.Tensor (B,{channels},H,W), got {type(t).__name__}")
        if t.ndim != 4 or t.shape[1] != channels or min(t.shape) < 1:
            raise UserInputError(f"infer_alpha: {name} expected (B,{channels},H,W), got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise UserInputError(f"infer_alpha: {name} expected a float tensor in [0, 1], got dtype {t.dtype}")
    if trimap.shape[0] != image.shape[0] or trimap.shape[-2:] != image.shape[-2:]:
        raise UserInputError(
            f"infer_alpha: trimap shape {tuple(trimap.shape)} does not match image shape "
            f"{tuple(image.shape)}; expected (B,1,H,W) with the image's B, H, W"
        )


def _check_int(name: str, value: object, minimum: int, multiple: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value % multiple:
        hint = f"a multiple of the model stride {multiple} " if multiple > 1 else "an integer "
        fix = ""
        if isinstance(value, int) and not isinstance(value, bool) and multiple > 1:
            fix = f" (e.g. {max(minimum, -(-value // multiple) * multiple)})"
        raise UserInputError(f"infer_alpha: {name} must be {hint}>= {minimum}, got {value!r}{fix}")
    return value


def infer_alpha(
    model: nn.Module,
    image: torch.Tensor,
    trimap: torch.Tensor,
    *,
    tiling: str = "auto",
    tile: int = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
    max_batch: int = DEFAULT_MAX_BATCH,
    autocast: Optional[ContextManager] = None,
    frames_per_call: Optional[int] = None,
) -> torch.Tensor:
    """Predict alpha for a batch of frames, running the generator only near unknown pixels.

    Args:
        model: the generator, ``model(image, trimap) -> alpha``; its ``stride`` attribute (16
            if absent) sets the tile grid alignment. Already on ``image``'s device, in eval mode.
        image: (B, 3, H, W) float in [0, 1], any H, W >= 1.
        trimap: (B, 1, H, W) float in {0, 0.5, 1} (0 background, 0.5 unknown, 1 foreground);
            any value other than exactly 0 or 1 counts as unknown.
        tiling: "off" = one full-frame model call per batch; "on" = tiles over the unknown
            pixels of every frame; "auto" = per frame, tiles when the tiles' total window area
            is below :data:`AUTO_MAX_AREA_RATIO` of the frame's area, else the full frame.
            In every mode frames without unknown pixels are not sent to the model (their alpha
            is the trimap), and frames no larger than one tile window use the full frame.
        tile: tile core size in pixels, a multiple of ``model.stride``.
        margin: context added on every side of a core, pixels, a multiple of ``model.stride``.
            The cores are cross-faded over ``margin // 2`` pixels on each side of a boundary.
        max_batch: most tiles per model call (tiles of different frames share calls).
        autocast: a context manager entered around the model calls (e.g.
            ``device.autocast_for(device)``), or None for the model's own precision.
        frames_per_call: most whole frames per model call; None = all of them in one call.
            Each frame's alpha is the same either way (the generator normalises per frame:
            GroupNorm, image pooling), only the activations held at once differ; see
            :func:`frames_per_call_for`.

    Returns:
        alpha: (B, 1, H, W) float32 in [0, 1] on ``image``'s device, known regions clamped.

    Raises:
        UserInputError: wrong shapes or dtypes, unknown ``tiling``, bad ``tile``/``margin``/
            ``max_batch``.
    """
    _check_inputs(image, trimap)
    if tiling not in TILING_MODES:
        raise UserInputError(f"infer_alpha: tiling must be one of {', '.join(TILING_MODES)}, got {tiling!r}")
    stride = int(getattr(model, "stride", 16))
    tile = _check_int("tile", tile, stride, stride)
    margin = _check_int("margin", margin, 0, stride)
    max_batch = _check_int("max_batch", max_batch, 1)
    if frames_per_call is not None:
        frames_per_call = _check_int("frames_per_call", frames_per_call, 1)

    batch, _, height, width = image.shape
    trimap = trimap.to(image.device)
    unknown = (trimap != 0) & (trimap != 1)  # exactly what clamp_known leaves to the model
    frame_has_unknown = unknown.flatten(1).any(dim=1)
    out = trimap.float().clone()  # known pixels: the trimap itself; overwritten where predicted
    if not bool(frame_has_unknown.any()):
        return clamp_known(out, trimap)

    rows = _plan_axis(height, tile, margin, stride, margin // 2)
    cols = _plan_axis(width, tile, margin, stride, margin // 2)
    frames = torch.nonzero(frame_has_unknown).flatten().tolist()
    full_frames, tiles = _assign_frames(tiling, frames, unknown, rows, cols, tile)

    with torch.inference_mode(), (autocast if autocast is not None else contextlib.nullcontext()):
        step = max(1, len(full_frames)) if frames_per_call is None else frames_per_call
        for first in range(0, len(full_frames), step):
            chunk = full_frames[first : first + step]
            index = torch.tensor(chunk, device=image.device)
            whole = len(chunk) == batch
            pred = model(image if whole else image[index], trimap if whole else trimap[index]).float()
            if whole:
                out = pred
            else:
                out[index] = pred
        if tiles:
            _run_tiles(model, image, trimap, out, tiles, rows, cols, max_batch)
    return clamp_known(out.clamp(0.0, 1.0), trimap)


def frames_per_call_for(device: torch.device) -> Optional[int]:
    """``infer_alpha``'s ``frames_per_call`` for a run on ``device``: 1 on the CPU, None (the
    whole batch in one call) elsewhere.

    On the CPU a batch is not cheaper per frame than its frames one at a time (resnet18 at
    640x360, bf16, 1 thread, 2-core AMD EPYC: 3.42 vs 3.47 s for two frames on a loaded
    machine; identical alphas), but its activations are held for every frame at once: the
    forward's peak grew by 155 MB for a pair of 640x360 frames (720p at the prior scale) and
    414 MB for 960x540 (1080p), against 68 and 176 MB one frame at a time. On a GPU a batch
    fills the device better, and its memory is sized for it (``pipeline.cuda_batch_size``)."""
    return 1 if device.type == "cpu" else None


def _assign_frames(tiling: str, frames: list[int], unknown: torch.Tensor, rows: _AxisPlan, cols: _AxisPlan,
                   tile: int) -> tuple[list[int], list[tuple[int, int, int]]]:
    """Split the frames that have unknown pixels (``frames``, indices into the batch) into those
    matted whole and the tiles (frame, row cell, col cell) of the others, per ``tiling`` (see
    ``infer_alpha``). ``unknown``: (B, 1, H, W) bool."""
    full_frames: list[int] = []
    tiles: list[tuple[int, int, int]] = []
    if tiling == "off" or not (rows.tiled or cols.tiled):
        return list(frames), tiles
    occupied = _occupied_cells(unknown, rows, cols, tile)  # (B, ny, nx) bool, on CPU
    full_area = rows.canvas * cols.canvas
    tile_area = rows.window * cols.window
    for b in frames:
        cells = torch.nonzero(occupied[b]).tolist()
        if tiling == "auto" and len(cells) * tile_area >= AUTO_MAX_AREA_RATIO * full_area:
            full_frames.append(b)
        else:
            tiles.extend((b, cy, cx) for cy, cx in cells)
    return full_frames, tiles


def _occupied_cells(unknown: torch.Tensor, rows: _AxisPlan, cols: _AxisPlan, tile: int) -> torch.Tensor:
    """(B, ny, nx) bool on the CPU: which tile cores contain at least one unknown pixel."""
    batch, _, height, width = unknown.shape
    cell_h = tile if rows.tiled else height
    cell_w = tile if cols.tiled else width
    ny, nx = len(rows.cells), len(cols.cells)
    padded = F.pad(unknown[:, 0], (0, nx * cell_w - width, 0, ny * cell_h - height), value=False)
    return padded.view(batch, ny, cell_h, nx, cell_w).any(dim=4).any(dim=2).cpu()


def _run_tiles(
    model: nn.Module,
    image: torch.Tensor,
    trimap: torch.Tensor,
    out: torch.Tensor,
    tiles: list[tuple[int, int, int]],
    rows: _AxisPlan,
    cols: _AxisPlan,
    max_batch: int,
) -> None:
    """Predict ``tiles`` in batches and write the blended result into ``out`` (in place)."""
    device = image.device
    height, width = image.shape[-2:]
    pad_h, pad_w = rows.canvas - height, cols.canvas - width
    tiled_frames = sorted({b for b, _, _ in tiles})
    # Only the frames that have tiles are padded and accumulated; replicate padding is what the
    # full-frame forward does to reach a multiple of the stride.
    slot = {b: i for i, b in enumerate(tiled_frames)}
    index = torch.tensor(tiled_frames, device=device)
    img = image[index]
    tri = trimap[index].to(img.dtype)
    if pad_h or pad_w:
        img = F.pad(img, (0, pad_w, 0, pad_h), mode="replicate")
        tri = F.pad(tri, (0, pad_w, 0, pad_h), mode="replicate")
    acc = torch.zeros(len(tiled_frames), 1, rows.canvas, cols.canvas, device=device)
    wsum = torch.zeros_like(acc)
    row_w = [w.to(device) for w in rows.weights]
    col_w = [w.to(device) for w in cols.weights]
    wh, ww = rows.window, cols.window
    for first in range(0, len(tiles), max_batch):
        chunk = tiles[first : first + max_batch]
        spans = [(slot[b], rows.cells[cy][2], cols.cells[cx][2], cy, cx) for b, cy, cx in chunk]
        x_img = torch.stack([img[s, :, y : y + wh, x : x + ww] for s, y, x, _, _ in spans])
        x_tri = torch.stack([tri[s, :, y : y + wh, x : x + ww] for s, y, x, _, _ in spans])
        pred = model(x_img, x_tri).float()
        for k, (s, y, x, cy, cx) in enumerate(spans):
            weight = row_w[cy][:, None] * col_w[cx][None, :]
            acc[s, 0, y : y + wh, x : x + ww] += pred[k, 0] * weight
            wsum[s, 0, y : y + wh, x : x + ww] += weight
    blended = acc[..., :height, :width] / wsum[..., :height, :width].clamp_min(1e-12)
    covered = wsum[..., :height, :width] > 0
    out[index] = torch.where(covered, blended, out[index])


__all__ = [
    "AUTO_MAX_AREA_RATIO",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_TILE",
    "TILING_MODES",
    "frames_per_call_for",
    "infer_alpha",
]
