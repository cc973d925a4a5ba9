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
