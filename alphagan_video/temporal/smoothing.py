"""Temporal coherence: motion-compensated alpha smoothing and stable coarse masks.

A per-frame matting model flickers because its input changes from frame to frame: sensor noise
and compression change, the trimap band jumps by a pixel, the subject moves. Two stages here
remove that flicker without smearing motion; both use the same machinery:

1. **Motion.** Dense optical flow (OpenCV DIS, ``PRESET_MEDIUM``) between the previous and the
   current frame on downscaled grey frames (short side :data:`FLOW_SHORT_SIDE` px, so its cost
   does not grow with the resolution), upsampled to full resolution. It tells, for each pixel
   of the current frame, where it was in the previous one. A forward-backward check marks
   occlusions and motion boundaries where the flow cannot be trusted (weight 0 there).
2. **Photometric gate.** The previous frame is warped with that flow and compared with the
   current one (3x3 box-filtered colour difference, so sensor noise does not count, then the
   3x3 maximum, so a misaligned edge blocks both of its sides). Where they
   agree (static regions, or motion the flow explained) the blend weight is up to
   ``max_blend(strength)``; where they disagree (occlusions, flow errors, new content, lighting
   change) it falls to zero like ``exp(-(d / PHOTOMETRIC_SIGMA)^2)``, so moving edges are not
   ghosted. Pixels whose flow leaves the frame get weight 0.
3. **Motion-boundary gate** (alpha only). Where the flow varies over a few pixels -- an edge
   moving over a background that moves another way, which is where the alpha band lies -- the
   flow at the edge is a mixture and the warped edge lands in the wrong place; the weight is
   multiplied by ``exp(-(spread / MOTION_BOUNDARY_PX)^2)`` with ``spread`` the local flow range.
   Still shots, pans and subjects moving with their background keep the full weight.
4. **Alpha** (:class:`AlphaSmoother`): in the current trimap's unknown region,
   ``alpha = w * warp(previous smoothed alpha) + (1 - w) * alpha`` (bicubic warp, so the
   recursion does not blur thin strands). A recursive filter: in a
   static region with weight w, frame-to-frame noise falls by about ``sqrt((1-w)^2 / (1+w))``
   (w 0.5 -> 41 %, 0.83 -> 17 % of the raw flicker). Changes that persist (the model's
   answer drifting with the content) are only delayed, not removed; errors that move with the
   subject are kept consistent with its motion (what MESSDdt rewards). Known trimap regions
   are never touched. With the refine, the warped alpha (:class:`FramePrior`) is first a weak
   prior of the solve (the pipeline passes it to the refine), then blended the same way.
5. **Coarse mask** (:func:`stabilize_mask`, called before ``make_trimap``): the same blend of the
   warped previous (stabilised) mask, then hysteresis around the 0.5 threshold -- a pixel
   changes side only when the blended mask leaves ``[0.5 - HYSTERESIS, 0.5 + HYSTERESIS]`` --
   so the unknown band does not jump between frames when the subject does not move.

**Cuts.** After motion compensation a new shot leaves a large residual over most of the frame;
:func:`detect_cut` then resets both stages (the new shot's first frame is used as is). Frame
size changes reset too.

**State** is an explicit :class:`TemporalState` carried across batches (never global), so a run
split into batches equals a run in one batch, and a chunked run (a render farm's
chunk: frames ``[k, N)`` on another worker) matches the whole run after warming up on context frames ``[k - c, k)``: the
recursive filter forgets its start like ``max_blend**c`` (:func:`context_frames_needed`).
The engine runs the whole chain on context frames as warm-up work (``Work.warm_up``), which
only updates the state.

What the controls trade (``TemporalConfig.enabled``, ``TemporalConfig.strength`` = S):
``S`` in [0, 1] sets the largest weight of the previous frame,
``max_blend(S) = 1 - (1 - 0.97) ** S`` -- the filter's memory grows geometrically with S:
S = 0.25 -> w 0.58 (~2 frames), 0.5 -> w 0.83 (~6 frames), 0.75 -> 0.93 (~14), 1 -> 0.97 (~33).
Higher S: steadier mattes on static and slowly moving subjects (less flicker, lower dtSSD and
MESSDdt, and lower error where the per-frame model is noisy), at the price of more lag where
the flow is wrong but the colours still agree (low-contrast edges that move) and a longer
warm-up for chunked runs (:func:`context_frames_needed`: 12 frames at S 0.25, 33 at 0.5,
205 at 1). Smoothing off: every frame is matted independently and the coarse mask is not
stabilised; it saves two DIS flows and a few full-resolution warps per frame (~20 ms per
frame at 320x240 on one CPU core; the flow part does not grow with the resolution).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from alphagan_video.config import TemporalConfig
from alphagan_video.errors import UserInputError

from .filters import box_mean as _box_mean
from .filters import local_max as _local_max
from .filters import scatter_mask as _scatter_mask
from .filters import unknown_support as _unknown_support
from .filters import warp as _warp

__all__ = [
    "CUT_MEAN_RESIDUAL",
    "CUT_PIXEL_FRACTION",
    "FLOW_SHORT_SIDE",
    "HYSTERESIS",
    "PHOTOMETRIC_SIGMA",
    "Motion",
    "TemporalState",
    "context_frames_needed",
    "detect_cut",
    "estimate_motion",
    "max_blend",
    "stabilize_mask",
]

#: Short side (px) of the grey frames the optical flow runs on.
FLOW_SHORT_SIDE = 180
#: Box-filtered colour difference (0..1, mean over RGB, max over 3x3) at which the blend weight
#: is exp(-1). Noise and H.264 residue at 8 bits stay below ~0.02 after the box filter.
PHOTOMETRIC_SIGMA = 0.08
#: Alpha difference (warped previous vs current, 0..1) at which the blend weight is multiplied
#: by exp(-1): a missed motion of an edge is a larger change. The blend takes the difference
#: box-filtered over ALPHA_BOX^2 pixels first: per-pixel flicker of hair is as large as this,
#: and gating it pixel by pixel kept hair flickering (bench/temporal.py clips, blend after the
#: refine: mean MESSDdt -16.7 % gated per pixel, -38.8 % not gated). The in-solve prior (refine
#: on) uses the per-pixel difference.
ALPHA_SIGMA = 0.2
ALPHA_BOX = 5
#: Cut when the mean motion-compensated grey residual (0..1) exceeds this (within a shot it
#: stays below ~0.015 even for fast blurred motion over a panning photo at 320x240, H.264) ...
CUT_MEAN_RESIDUAL = 0.06
#: ... or when more than this fraction of pixels have a residual above CUT_PIXEL_RESIDUAL.
CUT_PIXEL_FRACTION = 0.45
CUT_PIXEL_RESIDUAL = 0.1
#: Forward-backward flow check tolerance: |f + b|^2 is compared with FB_ALPHA (|f|^2 + |b|^2) +
#: FB_BETA (low-res pixels^2); confidence = exp(-|f + b|^2 / tolerance).
FB_ALPHA = 0.01
FB_BETA = 0.5
#: Local flow spread (full-resolution px: length of the max-minus-min flow vector over a
#: MOTION_BOUNDARY_WINDOW^2 window of the low-res flow) at which the alpha blend weight is
#: multiplied by exp(-1). Where the flow is locally uniform (a still or panning shot, a subject
#: moving with its background) a slightly wrong flow moves the warped alpha by a fraction of the
#: spread at most; at a motion boundary -- an edge moving over a background that moves another way,
#: which is exactly where the alpha band is -- the flow there is a mixture and the warped edge
#: lands in the wrong place: blending it in is what ghosts fast motion.
MOTION_BOUNDARY_PX = 1.0
MOTION_BOUNDARY_WINDOW = 7
#: Half-width of the hysteresis band of the coarse mask around its 0.5 threshold.
HYSTERESIS = 0.15
#: Largest weight of the previous frame at strength 1: some of the current frame always gets
#: through, and the filter forgets (a chunked run can warm up).
BLEND_CEILING = 0.97


def max_blend(strength: float) -> float:
    """Largest weight of the previous frame for a strength in [0, 1]:
    ``1 - (1 - BLEND_CEILING) ** strength`` (0 -> 0, 0.5 -> 0.83, 1 -> 0.97), so the filter's
    time constant 1 / (1 - w) grows geometrically from 1 frame to ~33 frames."""
    s = min(max(float(strength), 0.0), 1.0)
    return 0.0 if s == 0 else 1.0 - (1.0 - BLEND_CEILING) ** s


def context_frames_needed(cfg: TemporalConfig, tolerance: float = 1.0 / 510.0) -> int:
    """Context frames a chunked run should warm up on so its output matches the whole run.

    The recursive blend forgets its start like ``max_blend ** n``; this returns the smallest n
    with ``max_blend ** n <= tolerance`` (default half an 8-bit step), 0 when temporal is off.
    E.g. strength 0.25 -> 12 frames, 0.5 -> 33, 1.0 -> 205. (Mask hysteresis can remember a pixel
    that stays inside the hysteresis band for longer; such pixels are rare and inside the
    unknown band either way.)
    """
    if not cfg.enabled or cfg.strength <= 0:
        return 0
    if not 0 < tolerance < 1:
        raise UserInputError(f"context_frames_needed: tolerance {tolerance} must be in (0, 1)")
    w = max_blend(cfg.strength)
    return int(math.ceil(math.log(tolerance) / math.log(w)))


# --------------------------------------------------------------------------- motion

@dataclass
class Motion:
    """Motion from the previous frame to the current one.

    flow: (h, w, 2) float32, low-res backward flow in low-res pixels: the current pixel (x, y)
        was at (x + flow[y, x, 0], y + flow[y, x, 1]) in the previous frame.
    confidence: (h, w) float32 in [0, 1], forward-backward consistency of the flow (low at
        occlusions and motion boundaries, where following the flow would ghost).
    cut: True when the two frames are not the same shot (state must reset).
    residual: mean motion-compensated grey residual (0..1), for diagnostics.
    spread: (h, w) float32, local flow spread in low-res pixels (:func:`_flow_spread`); high at
        motion boundaries.
    """

    flow: np.ndarray
    confidence: np.ndarray
    cut: bool
    residual: float
    spread: np.ndarray


@dataclass
class _MotionCacheEntry:
    key: tuple
    prev_small: np.ndarray
    small: np.ndarray
    motion: Motion


@dataclass
class TemporalState:
    """Everything the temporal stages carry from one frame to the next (one stream).

    Alpha stage: ``prev_image`` (1,3,H,W) float [0,1] is the last frame it saw and
    ``prev_alpha`` (1,1,H,W) float [0,1] its smoothed alpha.
    Mask stage: ``mask_image`` (1,3,H,W) the last frame it saw, ``prev_mask`` (1,1,H,W) float
    [0,1] the blended soft mask and ``prev_mask_binary`` (1,1,H,W) bool the hysteresis output.
    ``cuts`` counts scene cuts detected by the alpha stage; ``frames`` counts frames the
    alpha stage has seen. All tensors None at the start and the stages start afresh.
    Motion estimated by one stage is cached for the other (same frame pair, same flow).
    """

    prev_image: Optional[torch.Tensor] = None
    prev_alpha: Optional[torch.Tensor] = None
    cuts: int = 0
    frames: int = 0
    mask_image: Optional[torch.Tensor] = None
    prev_mask: Optional[torch.Tensor] = None
    prev_mask_binary: Optional[torch.Tensor] = None
    prev_small: Optional[np.ndarray] = field(default=None, repr=False)  # low-res grey of prev_image
    mask_small: Optional[np.ndarray] = field(default=None, repr=False)  # low-res grey of mask_image
    motion_cache: list = field(default_factory=list, repr=False)


def _small_gray(image: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) float [0,1] -> (h,w) uint8 luma with short side FLOW_SHORT_SIDE (area filter)."""
    h, w = image.shape[-2:]
    scale = min(1.0, FLOW_SHORT_SIDE / min(h, w))
    size = (max(8, int(round(h * scale))), max(8, int(round(w * scale))))
    coeffs = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    luma = (image * coeffs).sum(1, keepdim=True)
    if size != (h, w):
        luma = F.interpolate(luma.float(), size=size, mode="area")
    return (luma[0, 0].clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


def _dis_flow(cur: np.ndarray, prev: np.ndarray) -> np.ndarray:
    import cv2

    h, w = cur.shape
    pad_y, pad_x = max(0, 16 - h), max(0, 16 - w)  # DIS needs >= 12 px; pad tiny frames
    if pad_y or pad_x:
        cur = cv2.copyMakeBorder(cur, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        prev = cv2.copyMakeBorder(prev, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
    # MEDIUM rather than FAST: markedly better at fast, blurred motion boundaries (MESSDdt of the
    # fast bench clip -51 % vs -41 %) for ~5 ms more per call at the capped flow resolution.
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return np.ascontiguousarray(dis.calc(cur, prev, None)[:h, :w])


def _fb_confidence(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Forward-backward check: following the backward flow to the previous frame and the
    forward flow back should return to the start. (h,w) float32 in [0,1]."""
    import cv2

    h, w = backward.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    fwd_at = cv2.remap(forward, grid_x + backward[..., 0], grid_y + backward[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    err2 = ((backward + fwd_at) ** 2).sum(-1)
    # Tolerance grows with the motion (DIS is less precise on large displacements), as in
    # the usual occlusion test |f + b|^2 < a (|f|^2 + |b|^2) + b.
    tol2 = FB_ALPHA * ((backward**2).sum(-1) + (fwd_at**2).sum(-1)) + FB_BETA
    return np.exp(-err2 / tol2).astype(np.float32)


def _flow_spread(flow: np.ndarray, window: int = MOTION_BOUNDARY_WINDOW) -> np.ndarray:
    """(h,w,2) flow -> (h,w) float32 length of (max - min) of each flow component over a
    window x window neighbourhood: 0 where the motion is locally uniform, about the relative
    speed of the two sides at a motion boundary."""
    import cv2

    kernel = np.ones((window, window), np.uint8)
    ranges = [cv2.dilate(flow[..., c], kernel) - cv2.erode(flow[..., c], kernel) for c in range(2)]
    return np.sqrt(ranges[0] ** 2 + ranges[1] ** 2).astype(np.float32)


def detect_cut(prev_small: np.ndarray, small: np.ndarray, flow: np.ndarray) -> tuple[bool, float]:
    """Scene-cut test on low-res grey frames (uint8 (h,w)) after motion compensation.

    A cut leaves a large residual over much of the frame even after the best flow; a fast pan
    or a moving subject does not (the flow explains it). A false alarm (a flash, an occluder
    filling the frame) only costs one frame of smoothing. Returns (is_cut, mean residual 0..1).
    """
    import cv2

    h, w = small.shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(prev_small, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    # Blur first: noise and compression artefacts are not a change of shot.
    residual = np.abs(cv2.blur(warped, (3, 3)).astype(np.float32) - cv2.blur(small, (3, 3)).astype(np.float32)) / 255.0
    mean = float(residual.mean())
    frac = float((residual > CUT_PIXEL_RESIDUAL).mean())
    return (mean > CUT_MEAN_RESIDUAL or frac > CUT_PIXEL_FRACTION), mean


def estimate_motion(prev_image: torch.Tensor, image: torch.Tensor, state: Optional[TemporalState] = None,
                    prev_small: Optional[np.ndarray] = None, small: Optional[np.ndarray] = None) -> Motion:
    """Flow and cut flag between two (1,3,H,W) float [0,1] frames of the same size.

    Uses/fills ``state.motion_cache`` when given, so the mask and alpha stages share one flow
    computation per frame pair (the cache is keyed by the low-res grey frames themselves).
    ``prev_small``/``small``: the frames' low-res grey versions when the caller has them.
    """
    prev_small = _small_gray(prev_image) if prev_small is None else prev_small
    small = _small_gray(image) if small is None else small
    key = (hash(prev_small.tobytes()), hash(small.tobytes()))
    if state is not None:
        for entry in state.motion_cache:
            if entry.key == key and np.array_equal(entry.small, small) and np.array_equal(entry.prev_small, prev_small):
                return entry.motion
    flow = _dis_flow(small, prev_small)
    cut, residual = detect_cut(prev_small, small, flow)
    motion = Motion(flow=flow, confidence=_fb_confidence(flow, _dis_flow(prev_small, small)), cut=cut,
                    residual=residual, spread=_flow_spread(flow))
    if state is not None:
        state.motion_cache.append(_MotionCacheEntry(key, prev_small, small, motion))
        del state.motion_cache[:-16]  # a batch's worth of pairs is all that is ever reused
    return motion


def _warp_grid(motion: Motion, height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-res motion -> (1,H,W,2) grid_sample grid (align_corners=True) and (1,1,H,W) float
    validity in [0,1]: the flow's forward-backward confidence, 0 where the source position
    lies outside the previous frame."""
    flow = motion.flow
    h, w = flow.shape[:2]
    f = torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1)))[None].to(device)
    conf = torch.from_numpy(motion.confidence)[None, None].to(device)
    if (h, w) != (height, width):
        f = F.interpolate(f, size=(height, width), mode="bilinear", align_corners=False)
        f[:, 0] *= width / w
        f[:, 1] *= height / h
        conf = F.interpolate(conf, size=(height, width), mode="bilinear", align_corners=False)
    ys = torch.arange(height, device=device, dtype=torch.float32).view(1, height, 1)
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, width)
    sx = xs + f[:, 0]
    sy = ys + f[:, 1]
    valid = (sx >= 0) & (sx <= width - 1) & (sy >= 0) & (sy <= height - 1)
    gx = 2.0 * sx / max(width - 1, 1) - 1.0
    gy = 2.0 * sy / max(height - 1, 1) - 1.0
    return torch.stack([gx, gy], dim=-1), valid[:, None] * conf


def _boundary_gate(motion: Motion, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(1,1,H,W) exp(-(spread / MOTION_BOUNDARY_PX)^2) with the flow spread in full-res pixels:
    1 where the motion is locally uniform, -> 0 at motion boundaries."""
    h, w = motion.flow.shape[:2]
    spread = torch.from_numpy(motion.spread)[None, None].to(device) * (width / w)
    if (h, w) != (height, width):
        spread = F.interpolate(spread, size=(height, width), mode="bilinear", align_corners=False)
    return torch.exp(-((spread / MOTION_BOUNDARY_PX) ** 2))


def _alpha_gate(warped: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """exp(-((warped - alpha) / ALPHA_SIGMA)^2), same shape: flicker is a small change of alpha;
    a large one is motion the flow missed (or new content), and blending it in is what ghosts."""
    return torch.exp(-(((warped - alpha) / ALPHA_SIGMA) ** 2))


def _coherent_alpha_gate(warped: torch.Tensor, alpha: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
    """:func:`_alpha_gate` of the signed difference averaged over the unknown pixels
    (trimap == 0.5) of an ALPHA_BOX x ALPHA_BOX box, all (1,1,H,W): zero-mean flicker cancels
    in the box, a coherent shift of alpha (an edge the flow missed, a real change of the matte)
    does not. Known pixels are left out so the band's rim is not diluted."""
    unknown = (trimap == 0.5).float()
    # Any box weighting cancels in the ratio: it is a weighted mean over the unknown pixels.
    diff = _box_mean((warped - alpha) * unknown, ALPHA_BOX) / _box_mean(unknown, ALPHA_BOX).clamp_min(1e-6)
    return torch.exp(diff.square_().mul_(-1.0 / ALPHA_SIGMA**2))


def _blend_unknown(alpha: torch.Tensor, warped: torch.Tensor, weight: torch.Tensor,
                   trimap: torch.Tensor) -> torch.Tensor:
    """weight * warped + (1 - weight) * alpha on the unknown pixels (trimap == 0.5), alpha
    elsewhere, clamped to [0, 1]; all (1,1,H,W)."""
    blended = weight * warped + (1.0 - weight) * alpha
    return torch.where(trimap == 0.5, blended, alpha).clamp(0.0, 1.0)


#: Pixels around a pixel that ``_blend_weight`` reads: its 3x3 box, then the 3x3 maximum.
_BLEND_WEIGHT_REACH = 2


def _blend_weight(prev_image: torch.Tensor, image: torch.Tensor, grid: torch.Tensor, valid: torch.Tensor,
                  strength: float, at: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(1,1,H,W) weight of the warped previous frame: max_blend where the warped previous frame
    agrees with the current one, falling to 0 where it does not or the flow leaves the frame.
    ``at``: as in ``_warp``; the weight is then exact only where all pixels within
    ``_BLEND_WEIGHT_REACH`` are in ``at``."""
    warped = _warp(prev_image, grid, at=at)
    diff = warped - image.float() if at is None else warped.sub_(image.float()).mul_(_scatter_mask(at, warped))
    # Box-filter the signed difference first so zero-mean noise cancels but misalignment does not.
    diff = _box_mean(diff, 3)
    # Max over the 3x3 neighbourhood: a misaligned edge disagrees along the edge; that must
    # block blending on both sides of it, not only on the pixels whose colours differ most.
    d = _local_max(diff.abs().mean(1, keepdim=True), 3)
    weight = max_blend(strength) * torch.exp(d.square_().mul_(-1.0 / PHOTOMETRIC_SIGMA**2))
    return weight * valid


def _check_batch(func: str, image: torch.Tensor, other: torch.Tensor, name: str) -> None:
    if image.ndim != 4 or image.shape[1] != 3:
        raise UserInputError(f"{func}: image expected (B,3,H,W), got {tuple(image.shape)}")
    if (other.ndim != 4 or other.shape[1] != 1 or other.shape[0] != image.shape[0]
            or other.shape[-2:] != image.shape[-2:]):
        raise UserInputError(
            f"{func}: {name} expected (B,1,H,W) = ({image.shape[0]},1,{image.shape[2]},{image.shape[3]}), "
            f"got {tuple(other.shape)}"
        )


def _enabled(cfg: TemporalConfig) -> bool:
    return bool(cfg.enabled) and cfg.strength > 0


# --------------------------------------------------------------------------- alpha

@dataclass
class FramePrior:
    """What the alpha stage carries into a frame: the previous output alpha warped to it and
    how far to trust it. The pipeline hands it to the refine (as one more data term of the
    solve) before ``AlphaSmoother.blend`` uses it.

    warped: (1,1,H,W) float [0,1], the previous frame's output alpha, warped along the flow.
    weight: (1,1,H,W) float in [0, max_blend]: the photometric blend weight times the
        motion-boundary gate.
    Made with the frame's trimap (``AlphaSmoother.prior(image, trimap)``), both are computed on
    its unknown pixels only: ``warped`` is 0 and ``weight`` 0 elsewhere.
    """

    warped: torch.Tensor
    weight: torch.Tensor

    def solve_weight(self, alpha: torch.Tensor) -> torch.Tensor:
        """Per-pixel weight (1,1,H,W) of ``warped`` as a data term of a solve for ``alpha``
        (1,1,H,W): the blend weight times the alpha gate. The in-solve prior is gated on alpha
        agreement: a strong pull towards a warped edge that disagrees with this frame's colours
        is how a solve ghosts."""
        return self.weight * _alpha_gate(self.warped, alpha)


class AlphaSmoother:
    """Motion-compensated temporal smoothing of alpha in the unknown region, one frame at a time.

    For every frame, in order: ``prior(image)`` (the warped previous alpha and its weight, or
    None on the first frame, after a cut or a size change, or when smoothing is off), then
    ``blend(image, alpha, prior, trimap)``, which returns the smoothed alpha and advances
    ``state``. Between the two the caller may change the frame's alpha using the prior (the
    pipeline's refine does); the module never calls back into other stages.

    ``state`` starts as a copy of the given TemporalState (the given one is not modified; the
    motion cache is shared) and is the state to carry on after the last frame.
    """

    def __init__(self, cfg: TemporalConfig, state: TemporalState):
        self.cfg = cfg
        self.enabled = _enabled(cfg)
        self.state = TemporalState(**{**state.__dict__})
        self._small: Optional[np.ndarray] = None

    def prior(self, image: torch.Tensor, trimap: Optional[torch.Tensor] = None) -> Optional[FramePrior]:
        """image (1,3,H,W) float [0,1], the next frame -> its FramePrior or None.

        trimap: the frame's trimap (1,1,H,W) {0,0.5,1}, when the caller knows it: the prior is
        then computed only where it is used (``blend`` and the refine read it on unknown pixels
        alone): ``warped`` and ``weight`` are exact on the unknown pixels and 0 elsewhere,
        bit-identical there to the whole-frame computation at a fraction of its cost."""
        if not self.enabled:
            return None
        state = self.state
        self._small = small = _small_gray(image)
        if state.prev_image is None or state.prev_image.shape != image.shape:
            return None
        motion = estimate_motion(state.prev_image, image, state, state.prev_small, small)
        if motion.cut:
            state.cuts += 1
            return None
        height, width = image.shape[-2:]
        grid, valid = _warp_grid(motion, height, width, image.device)
        unknown, near = (None, None) if trimap is None else _unknown_support(trimap, _BLEND_WEIGHT_REACH)
        at = None if unknown is None else unknown.reshape(-1).nonzero()[:, 0]
        # Bicubic: the recursive filter resamples its own output every frame, and bilinear
        # resampling at sub-pixel offsets blurs thin strands a little more each time.
        warped = _warp(state.prev_alpha, grid, mode="bicubic", at=at)
        weight = (_blend_weight(state.prev_image, image, grid, valid, self.cfg.strength, at=near)
                  * _boundary_gate(motion, height, width, image.device))
        if unknown is not None:
            weight = weight * unknown
        return FramePrior(warped, weight)

    def blend(self, image: torch.Tensor, alpha: torch.Tensor, prior: Optional[FramePrior],
              trimap: torch.Tensor) -> torch.Tensor:
        """Blend ``alpha`` (1,1,H,W) float [0,1] with ``prior`` (from ``prior(image)``) in the
        unknown region of ``trimap`` (1,1,H,W) {0,0.5,1}; -> smoothed alpha (1,1,H,W) float32."""
        state = self.state
        if not self.enabled:
            state.prev_image, state.prev_alpha = image.clone(), alpha.float().clone()
            state.frames += 1
            return alpha
        a = alpha.float()
        if prior is not None:
            # Gated on alpha agreement only where the disagreement is spatially coherent (a
            # missed motion, a real change): per-pixel hair flicker is as large as ALPHA_SIGMA,
            # and gating it pixel by pixel left the hair flickering.
            a = _blend_unknown(a, prior.warped, prior.weight * _coherent_alpha_gate(prior.warped, a, trimap), trimap)
        state.prev_image, state.prev_alpha, state.prev_small = image.clone(), a.clone(), self._small
        state.frames += 1
        return a


# --------------------------------------------------------------------------- coarse mask

def stabilize_mask(
    mask: torch.Tensor,
    image: torch.Tensor,
    state: TemporalState,
    cfg: TemporalConfig,
) -> tuple[torch.Tensor, TemporalState]:
    """Temporally stable coarse masks, so trimaps from them do not jump between frames.

    Per frame: blend the flow-warped previous (blended) soft mask where the warped previous
    frame agrees with the current one (the photometric weight of :class:`AlphaSmoother` only),
    then threshold with hysteresis: foreground where the blend > 0.5 + HYSTERESIS, background
    where it is < 0.5 - HYSTERESIS, and in between whatever the warped previous output was. A cut
    or a size change restarts from the plain mask.

    Args:
        mask: (B,1,H,W) float [0,1] (or bool) coarse masks, foreground = > 0.5.
        image: (B,3,H,W) float [0,1], the frames, continuing ``state``.
        state: carried across batches (the same object the alpha stage uses).
        cfg: temporal settings; when off the mask is returned unchanged.
    Returns:
        (mask (B,1,H,W) float {0,1} -- feed it to ``make_trimap`` --, new state).
    """
    _check_batch("stabilize_mask", image, mask, "mask")
    new = TemporalState(**{**state.__dict__})
    if not _enabled(cfg):
        return mask, new
    soft_in = mask.float()
    out = []
    prev_image, prev_soft, prev_bin = state.mask_image, state.prev_mask, state.prev_mask_binary
    prev_small = state.mask_small
    height, width = image.shape[-2:]
    for i in range(mask.shape[0]):
        m, img = soft_in[i : i + 1], image[i : i + 1]
        small = _small_gray(img)
        binary = m > 0.5
        if prev_image is not None and prev_image.shape == img.shape:
            motion = estimate_motion(prev_image, img, new, prev_small, small)
            if not motion.cut:
                grid, valid = _warp_grid(motion, height, width, img.device)
                weight = _blend_weight(prev_image, img, grid, valid, cfg.strength)
                m = weight * _warp(prev_soft, grid) + (1.0 - weight) * m
                was_fg = _warp(prev_bin.float(), grid) > 0.5
                binary = (m > 0.5 + HYSTERESIS) | ((m >= 0.5 - HYSTERESIS) & was_fg)
        out.append(binary.to(soft_in.dtype))
        prev_image, prev_soft, prev_bin, prev_small = img, m, binary, small
    new.mask_image, new.prev_mask, new.prev_mask_binary = prev_image.clone(), prev_soft.clone(), prev_bin.clone()
    new.mask_small = prev_small
    return torch.cat(out, 0), new
