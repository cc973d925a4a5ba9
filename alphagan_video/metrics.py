"""Image-matting error metrics with the Deep Image Matting (DIM) MATLAB semantics.

These mirror the official DIM evaluation code (``compute_sad_loss.m``, ``compute_mse_loss.m``,
``compute_gradient_loss.m`` + ``gaussgradient.m``, ``compute_connectivity_error.m`` and the
``/1e3`` of its driver script) that every Composition-1k / alphamatting paper reports:

- inputs are 8-bit maps: ``pred`` and ``gt`` (H, W) uint8 in 0..255, ``trimap`` (H, W) uint8
  with values {0, 128, 255};
- only the unknown region ``trimap == 128`` is scored;
- the evaluator forces the prediction to the trimap in known regions first (``force_known``);
  it changes nothing inside the unknown region, so scores do not depend on it, but the
  gradient filter and the connectivity components do see the known pixels next to the band;
- SAD, Grad and Conn are divided by 1000; MSE is a raw mean (papers often print it x1e3).

Everything here is numpy/scipy on the CPU; no torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .errors import UserInputError

__all__ = [
    "MattingScores",
    "force_known",
    "to_uint8",
    "sad",
    "mse",
    "gradient_error",
    "connectivity_error",
    "gaussian_gradient_kernel",
    "score_all",
    "VideoScores",
    "dtssd",
    "dtssd_frame",
    "messddt",
    "messddt_frame",
    "score_video",
]

UNKNOWN_VALUE = 128


def _check_maps(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> None:
    """Raise UserInputError unless pred, gt, trimap are same-shape (H, W) uint8 arrays."""
    for name, arr in (("pred", pred), ("gt", gt), ("trimap", trimap)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 2:
            shape = getattr(arr, "shape", type(arr).__name__)
            raise UserInputError(
                f"metrics: {name} must be a 2-D (H, W) numpy array, got {shape}; "
                "pass a single-channel map (e.g. alpha[..., 0] for a 3-channel PNG)"
            )
        if arr.dtype != np.uint8:
            raise UserInputError(
                f"metrics: {name} must be uint8 (0..255), got {arr.dtype}; "
                "convert float maps in [0, 1] with metrics.to_uint8"
            )
    if not (pred.shape == gt.shape == trimap.shape):
        raise UserInputError(
            f"metrics: shapes differ: pred {pred.shape}, gt {gt.shape}, trimap {trimap.shape}; "
            "all three must be the same (H, W)"
        )


def to_uint8(alpha: np.ndarray) -> np.ndarray:
    """Quantise a float map in [0, 1] to uint8 the way a saved 8-bit PNG would be.

    alpha: (H, W) float in [0, 1] (values outside are clipped). Returns (H, W) uint8,
    ``round(alpha * 255)`` (cv2.imwrite of ``alpha*255`` also rounds).
    """
    a = np.asarray(alpha, dtype=np.float64)
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def force_known(pred: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """Return a copy of ``pred`` with known trimap regions forced: 0 where trimap == 0 and
    255 where trimap == 255 (what DIM/GCA testers do before saving predictions).

    pred, trimap: (H, W) uint8. Returns (H, W) uint8. Other trimap values are left alone.
    """
    if not (isinstance(pred, np.ndarray) and isinstance(trimap, np.ndarray)) or pred.shape != trimap.shape:
        raise UserInputError(
            f"force_known: pred {getattr(pred, 'shape', None)} and trimap "
            f"{getattr(trimap, 'shape', None)} must be numpy arrays of the same (H, W) shape"
        )
    if pred.dtype != np.uint8 or trimap.dtype != np.uint8:
        raise UserInputError(
            f"force_known: pred ({pred.dtype}) and trimap ({trimap.dtype}) must be uint8; "
            "convert float maps in [0, 1] with metrics.to_uint8"
        )
    out = pred.copy()
    out[trimap == 0] = 0
    out[trimap == 255] = 255
    return out


def sad(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Sum of absolute differences over the unknown region, in alpha units, divided by 1000.

    pred, gt, trimap: (H, W) uint8. Returns a float >= 0.
    """
    _check_maps(pred, gt, trimap)
    unknown = trimap == UNKNOWN_VALUE
    diff = np.abs(pred.astype(np.float64) - gt.astype(np.float64))[unknown] / 255.0
    return float(diff.sum() / 1000.0)


def mse(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray) -> float:
    """Mean squared error over the unknown region, alpha in [0, 1] (not rescaled).

    pred, gt, trimap: (H, W) uint8. Returns a float >= 0; 0.0 when the trimap has no
    unknown pixel (MATLAB would give NaN = 0/0; nothing was scored, so no error).
    """
    _check_maps(pred, gt, trimap)
    unknown = trimap == UNKNOWN_VALUE
    n = int(unknown.sum())
    if n == 0:
        return 0.0
    diff = (pred.astype(np.float64) - gt.astype(np.float64))[unknown] / 255.0
    return float(np.square(diff).sum() / n)


def gaussian_gradient_kernel(sigma: float = 1.4) -> np.ndarray:
    """The x-derivative kernel of MATLAB ``gaussgradient.m`` (Guanglei Xiong).

    halfsize = ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma 0.01))) (4 for sigma 1.4 -> 9x9);
    hx[i, j] = gauss(i - c, sigma) * dgauss(j - c, sigma) (rows = y, cols = x), then divided by
    its L2 norm. The y kernel is ``hx.T``. Returns (2h+1, 2h+1) float64.
    """
    if not sigma > 0:
        raise UserInputError(f"gaussian_gradient_kernel: sigma must be > 0, got {sigma}")
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * 1e-2)))
    u = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(u**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))
    dgauss = -u * gauss / sigma**2
    hx = gauss[:, None] * dgauss[None, :]
    return hx / math.sqrt(float(np.sum(hx * hx)))


def _mat2gray(a: np.ndarray) -> np.ndarray:
    """MATLAB mat2gray: min-max normalise to [0, 1] as float64. A constant map has zero
    gradient under any scaling, so it is returned as zeros."""
    a = a.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi == lo:
        return np.zeros_like(a)
    return (a - lo) / (hi - lo)


def _gradient_magnitude(a: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    # imfilter(IM, h, 'replicate', 'conv'): true convolution with edge replication;
    # scipy's convolve flips the kernel too and mode='nearest' replicates the edge.
    gx = ndimage.convolve(a, kernel, mode="nearest")
    gy = ndimage.convolve(a, kernel.T, mode="nearest")
    return np.sqrt(gx * gx + gy * gy)


def gradient_error(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray, sigma: float = 1.4) -> float:
    """Gradient error: sum over unknown of (|grad pred| - |grad gt|)^2, divided by 1000.

    Each map is min-max normalised (mat2gray), then filtered with the first-derivative-of-
    Gaussian kernels of ``gaussian_gradient_kernel(sigma)`` (replicate padding, convolution).
    pred, gt, trimap: (H, W) uint8. Returns a float >= 0.
    """
    _check_maps(pred, gt, trimap)
    kernel = gaussian_gradient_kernel(sigma)
    pred_amp = _gradient_magnitude(_mat2gray(pred), kernel)
    gt_amp = _gradient_magnitude(_mat2gray(gt), kernel)
    unknown = trimap == UNKNOWN_VALUE
    err = np.square(pred_amp - gt_amp)[unknown]
    return float(err.sum() / 1000.0)


# 4-connectivity, as MATLAB bwconncomp(..., 4).
_FOUR_CONNECTED = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    """Largest 4-connected component of a boolean mask, or None when the mask is empty.

    Labels the transpose so components are numbered in column-major order of their first
    pixel, as bwconncomp does; argmax then breaks ties the way MATLAB's max does.
    Background (label 0) is never a candidate.
    """
    labels_t, n = ndimage.label(mask.T, structure=_FOUR_CONNECTED)
    if n == 0:
        return None
    sizes = np.bincount(labels_t.ravel(), minlength=n + 1)[1:]
    best = int(np.argmax(sizes)) + 1
    return (labels_t == best).T


def connectivity_error(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray, step: float = 0.1) -> float:
    """Connectivity error (Rhemann et al. 2009, DIM MATLAB code), divided by 1000.

    For thresholds t = step, 2 step, ..., 1 the largest 4-connected foreground component of
    (pred >= t) & (gt >= t) is found; a pixel's level l is the last threshold at which it was
    still in that component (1 if never dropped). phi = 1 - d * (d >= 0.15) with d = alpha - l,
    and the error is sum over unknown |phi_pred - phi_gt|.
    pred, gt, trimap: (H, W) uint8. Returns a float >= 0.
    """
    _check_maps(pred, gt, trimap)
    if not 0 < step <= 1:
        raise UserInputError(f"connectivity_error: step must be in (0, 1], got {step}")
    # MATLAB works in single precision here (single(pred)/255 compared with the thresholds).
    p = pred.astype(np.float32) / np.float32(255.0)
    g = gt.astype(np.float32) / np.float32(255.0)
    n_steps = int(round(1.0 / step))
    thresholds = np.array([i * step for i in range(n_steps + 1)], dtype=np.float64)
    l_map = np.full(p.shape, -1.0, dtype=np.float64)
    for i in range(1, len(thresholds)):
        t = np.float32(thresholds[i])
        omega = _largest_component((p >= t) & (g >= t))
        if omega is None:
            # MATLAB `continue`s: pixels still unassigned end with l = 1 below.
            continue
        drop = (l_map == -1) & ~omega
        l_map[drop] = thresholds[i - 1]
    l_map[l_map == -1] = 1.0
    l32 = l_map.astype(np.float32)
    pd = p - l32
    gd = g - l32
    p_phi = 1 - pd * (pd >= np.float32(0.15))
    g_phi = 1 - gd * (gd >= np.float32(0.15))
    unknown = trimap == UNKNOWN_VALUE
    err = np.abs(p_phi - g_phi)[unknown].astype(np.float64)
    return float(err.sum() / 1000.0)


@dataclass(frozen=True)
class MattingScores:
    """The four DIM metrics for one image: sad, grad, conn are /1000; mse is a raw mean."""

    sad: float
    mse: float
    grad: float
    conn: float


def score_all(pred: np.ndarray, gt: np.ndarray, trimap: np.ndarray, *, force: bool = True) -> MattingScores:
    """SAD, MSE, Grad and Conn of one prediction.

    pred, gt, trimap: (H, W) uint8. With ``force`` (default) the prediction is first forced to
    the trimap in known regions, as the DIM evaluation does.
    """
    _check_maps(pred, gt, trimap)
    if force:
        pred = force_known(pred, trimap)
    return MattingScores(
        sad=sad(pred, gt, trimap),
        mse=mse(pred, gt, trimap),
        grad=gradient_error(pred, gt, trimap),
        conn=connectivity_error(pred, gt, trimap),
    )


# --------------------------------------------------------------------------- video metrics
#
# Temporal coherence with the TCVOM conventions (yunkezhang/TCVOM calc_metric.py): alpha as
# float in [0, 1] (8-bit maps are divided by 255), scored over
# the *current* frame's unknown region (trimap == 128), forward difference to the next frame,
# no normalisation by pixel count; the last frame of a clip contributes 0 and still counts in
# the clip mean. Not comparable with RVM-style dtSSD (whole frame, per-pixel mean, x100).


def _as_unit_float(name: str, arr: np.ndarray) -> np.ndarray:
    """(T,H,W) uint8 (0..255) or float ([0,1]) -> float64 in [0,1]."""
    if not isinstance(arr, np.ndarray) or arr.ndim != 3:
        shape = getattr(arr, "shape", type(arr).__name__)
        raise UserInputError(f"video metrics: {name} must be a (T, H, W) numpy array, got {shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float64) / 255.0
    if np.issubdtype(arr.dtype, np.floating):
        return np.clip(arr.astype(np.float64), 0.0, 1.0)
    raise UserInputError(f"video metrics: {name} must be uint8 (0..255) or float in [0, 1], got {arr.dtype}")


def _check_video(preds: np.ndarray, gts: np.ndarray, trimaps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = _as_unit_float("preds", preds)
    g = _as_unit_float("gts", gts)
    if not isinstance(trimaps, np.ndarray) or trimaps.dtype != np.uint8 or trimaps.ndim != 3:
        raise UserInputError(
            f"video metrics: trimaps must be (T, H, W) uint8 {{0, 128, 255}}, got "
            f"{getattr(trimaps, 'dtype', type(trimaps).__name__)} {getattr(trimaps, 'shape', '')}"
        )
    if not (a.shape == g.shape == trimaps.shape):
        raise UserInputError(
            f"video metrics: shapes differ: preds {preds.shape}, gts {gts.shape}, trimaps {trimaps.shape}"
        )
    return a, g, trimaps == UNKNOWN_VALUE


def dtssd_frame(a: np.ndarray, g: np.ndarray, a_next: np.ndarray, g_next: np.ndarray, unknown: np.ndarray) -> float:
    """sqrt(sum over ``unknown`` of [(a - a_next) - (g - g_next)]^2) for one frame pair.

    a, g, a_next, g_next: (H, W) float in [0, 1]; unknown: (H, W) bool (frame t's unknown).
    """
    d = (a - a_next) - (g - g_next)
    return float(np.sqrt(np.sum(np.square(d[unknown]))))


def _sample_bilinear(img: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """img (H,W) sampled at float pixel coordinates (pixel centres at integers), bilinear;
    callers pass only in-bounds coordinates."""
    h, w = img.shape
    x0 = np.clip(np.floor(x).astype(np.int64), 0, w - 1)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = x - x0
    fy = y - y0
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def messddt_frame(
    a: np.ndarray, g: np.ndarray, a_next: np.ndarray, g_next: np.ndarray, unknown: np.ndarray, flow: np.ndarray
) -> tuple[float, int]:
    """sum over unknown & valid of |(a - g)^2 - (a_next - g_next)^2 at p + flow(p)| for one pair.

    a, g, a_next, g_next: (H, W) float in [0, 1]; unknown: (H, W) bool (frame t's unknown);
    flow: (H, W, 2) float forward motion t -> t+1 in pixels (x, y); NaN marks unknown motion.
    Frame t+1 is sampled bilinearly (TCVOM's grid_sample with align_corners=True); pixels whose
    flow is NaN or lands outside frame t+1 are not valid (TCVOM would sample zeros there).
    Returns (MESSDdt_t, number of valid pixels scored).
    """
    h, w = a.shape
    if not isinstance(flow, np.ndarray) or flow.shape != (h, w, 2):
        raise UserInputError(f"messddt: flow must be a ({h}, {w}, 2) array, got {getattr(flow, 'shape', None)}")
    ys, xs = np.nonzero(unknown)
    fx = flow[ys, xs, 0].astype(np.float64)
    fy = flow[ys, xs, 1].astype(np.float64)
    tx, ty = xs + fx, ys + fy
    valid = np.isfinite(tx) & np.isfinite(ty) & (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    ys, xs, tx, ty = ys[valid], xs[valid], tx[valid], ty[valid]
    err_next = np.square(a_next - g_next)
    warped = _sample_bilinear(err_next, tx, ty)
    err = np.square(a[ys, xs] - g[ys, xs])
    return float(np.abs(err - warped).sum()), int(valid.sum())


def dtssd(preds: np.ndarray, gts: np.ndarray, trimaps: np.ndarray, *, force: bool = True) -> float:
    """Clip dtSSD (TCVOM): mean over frames t of sqrt(sum_{U_t} [(a_t-a_{t+1}) - (g_t-g_{t+1})]^2).

    preds, gts: (T, H, W) uint8 (0..255) or float in [0, 1]; trimaps: (T, H, W) uint8 {0,128,255}.
    U_t = frame t's unknown region; the last frame contributes 0 and counts in the mean.
    With ``force`` predictions are first forced to each frame's trimap in known regions (as
    the evaluation of single images does), which matters where U_t meets frame t+1's known
    region. Returns a float >= 0 (0 for one frame).
    """
    a, g, unknown = _check_video(preds, gts, trimaps)
    if force:
        a = np.where(trimaps == 0, 0.0, np.where(trimaps == 255, 1.0, a))
    t = a.shape[0]
    values = [dtssd_frame(a[i], g[i], a[i + 1], g[i + 1], unknown[i]) for i in range(t - 1)] + [0.0]
    return float(np.mean(values))


def messddt(
    preds: np.ndarray, gts: np.ndarray, trimaps: np.ndarray, flows: np.ndarray, *, force: bool = True
) -> float:
    """Clip MESSDdt (TCVOM): mean over frames t of
    sum_{U_t & valid} |(a_t - g_t)^2 - (a_{t+1} - g_{t+1})^2 (p + v_t(p))|.

    preds, gts: (T, H, W) uint8 or float [0, 1]; trimaps: (T, H, W) uint8 {0, 128, 255};
    flows: (T-1, H, W, 2) forward motion t -> t+1 in pixels (x, y), NaN = unknown (use the
    motion known from how the clip was made). The last frame contributes 0 and counts.
    """
    a, g, unknown = _check_video(preds, gts, trimaps)
    t = a.shape[0]
    if not isinstance(flows, np.ndarray) or flows.shape != (max(t - 1, 0),) + a.shape[1:] + (2,):
        raise UserInputError(
            f"messddt: flows must be (T-1, H, W, 2) = ({t - 1}, {a.shape[1]}, {a.shape[2]}, 2), "
            f"got {getattr(flows, 'shape', None)}"
        )
    if force:
        a = np.where(trimaps == 0, 0.0, np.where(trimaps == 255, 1.0, a))
    values = [messddt_frame(a[i], g[i], a[i + 1], g[i + 1], unknown[i], flows[i])[0] for i in range(t - 1)]
    return float(np.mean(values + [0.0]))


@dataclass(frozen=True)
class VideoScores:
    """One clip: dtssd and messddt (TCVOM, unknown region, alpha in [0,1], unnormalised sums);
    sad (DIM, /1000) and mse (DIM, raw) are per-frame means over the clip."""

    dtssd: float
    messddt: float
    sad: float
    mse: float
    frames: int


def score_video(
    preds: np.ndarray, gts: np.ndarray, trimaps: np.ndarray, flows: np.ndarray | None = None
) -> VideoScores:
    """dtSSD, MESSDdt (NaN without ``flows``), and the per-frame mean SAD and MSE of a clip.

    preds, gts: (T, H, W) uint8 or float [0, 1] (floats are quantised to 8 bits for SAD/MSE,
    as a saved PNG would be); trimaps: (T, H, W) uint8 {0, 128, 255}; flows as in
    :func:`messddt`. Predictions are forced to the trimap in known regions.
    """
    _check_video(preds, gts, trimaps)
    p8 = preds if preds.dtype == np.uint8 else to_uint8(preds)
    g8 = gts if gts.dtype == np.uint8 else to_uint8(gts)
    sads, mses = [], []
    for i in range(p8.shape[0]):
        p = force_known(p8[i], trimaps[i])
        sads.append(sad(p, g8[i], trimaps[i]))
        mses.append(mse(p, g8[i], trimaps[i]))
    return VideoScores(
        dtssd=dtssd(preds, gts, trimaps),
        messddt=messddt(preds, gts, trimaps, flows) if flows is not None else float("nan"),
        sad=float(np.mean(sads)),
        mse=float(np.mean(mses)),
        frames=int(p8.shape[0]),
    )
