"""The plate's exposure and colour, fitted to each frame (plate mode).

A plate shot separately (a moment apart, handheld, auto exposure, another white balance) is
brighter or darker and tinted against the shot. Differencing the frame against that plate as
it is calls every background pixel "subject" -- the whole background differs by the exposure
change -- or, for a dimmer plate, hides a subject whose colour happens to lie near the
brightened background. So, after registration, the plate is mapped onto the frame's colours
with an affine colour map ``frame ~ A @ plate + b`` (A 3x3, b a 3-vector: exposure, white
balance, black level and a camera's colour matrix are all affine in linear-ish code values over
the range a background spans), fitted on the pixels where the frame *is* the background.

Which pixels are background is not known in advance (the subject is what is being looked for),
so the fit is robust: least trimmed squares (Rousseeuw), started from the identity, from the
plain least-squares fit and from the previous frame's map, improved by C-steps (fit on the
share of the samples the current map explains best, repeat; ``TRIMS``), among plausible maps
only (``plausible``: within ``MAX_STOPS`` of exposure; a flat subject is fitted exactly by a zero
matrix and its colour as the offset); of those fits the one that explains the most samples
within the images' own noise is kept (``_consensus``, as MSAC scores RANSAC's); then one
reweighted step on every sample within ``INLIER_K`` robust sigmas. The background must hold at
least ``TRIM`` of the frame (the fit's breakdown point): with less, the fit is not determined by
the background, which the plate source reports as a run warning.

The fit's residual on flat background (low plate gradient, so misregistration does not count)
is the difference's noise: that, not a tuned constant, sets the subject threshold.

Clipped pixels carry only a bound: a plate channel at the top of its range may have been
brighter still, so a frame value above the mapped plate there is consistent with the plate
(likewise a frame clipped at the top); ``explained_plate`` lets those channels agree. Clipped
samples are not used for the fit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

#: Samples drawn (a regular grid) for the fit: plenty for 12 parameters, cheap at any resolution.
FIT_SAMPLES = 40000
#: Least trimmed squares: the shares of samples the C-steps fit on, each with the mean of a
#: chi-square(3) variable below that quantile q (3 F_5(q) / share: the trimmed mean square residual
#: norm of pure Gaussian noise, in per-channel variances). Each share's fits are candidates, the
#: one that explains the most samples within the noise is kept (``_consensus``): the median share
#: resists a flat region (a sky) that a smaller share could be fitted to alone; the smaller share
#: lets the background be found when the subject holds more than half the frame.
TRIMS = ((0.5, 1.2208), (0.3, 0.7829))
#: The background must hold at least this share of the frame (the smallest trim: the fit's
#: breakdown point).
TRIM = min(t for t, _ in TRIMS)
#: Noise floor of the consensus band: 8-bit quantisation of two images (sqrt(2) / (255 sqrt(12))).
QUANTISATION = 0.0016
#: C-steps per start (each never increases the trimmed sum; 6-8 reach a fixed point in practice).
C_STEPS = 10
#: Reweighting: a sample is an inlier when its residual norm is below this many robust sigmas
#: (sqrt of the chi-square(3) 99.9 % point, as ``plate.NOISE_K``).
INLIER_K = 4.03
#: Plausible maps change exposure by at most this many stops (singular values of the matrix in
#: [2^-MAX_STOPS, 2^MAX_STOPS]): auto exposure between a shot and its plate is a stop or two.
MAX_STOPS = 2.0
#: Code values at or beyond these bounds are clipped (a bound, not a measurement).
CLIP_LO, CLIP_HI = 0.02, 0.98


@dataclass(frozen=True)
class ColourMap:
    """``frame ~ matrix @ plate + offset`` per pixel; ``sigma``: the residual's noise per channel
    on flat background (standard deviation, [0,1] units); ``inlier_share``: the share of the fit's
    samples the map explains (within ``INLIER_K`` sigmas)."""

    matrix: np.ndarray
    offset: np.ndarray
    sigma: np.ndarray
    inlier_share: float

    @classmethod
    def identity(cls) -> "ColourMap":
        return cls(np.eye(3), np.zeros(3), np.zeros(3), 1.0)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """(H,W,3) float -> (H,W,3) float32 mapped colours (not clipped)."""
        return (rgb.astype(np.float32) @ self.matrix.T.astype(np.float32)
                + self.offset.astype(np.float32)).astype(np.float32)

    @property
    def gain(self) -> list[float]:
        """The diagonal of the matrix, for reports."""
        return [round(float(v), 4) for v in np.diag(self.matrix)]

    @property
    def params(self) -> np.ndarray:
        """(4,3): rows 0-2 the matrix transposed, row 3 the offset (the least-squares layout)."""
        return np.vstack([self.matrix.T, self.offset[None]])


def _lstsq(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n,4), (n,3) -> (4,3) least squares; the identity when the samples are degenerate."""
    if len(x) < 8:
        return np.vstack([np.eye(3), np.zeros((1, 3))])
    sol, *_ = np.linalg.lstsq(x, y, rcond=None)
    return sol


def _norms(x: np.ndarray, y: np.ndarray, params: np.ndarray) -> np.ndarray:
    r = y - x @ params
    return np.einsum("ij,ij->i", r, r)


def plausible(matrix: np.ndarray) -> bool:
    """A camera's exposure/colour change: the matrix's singular values within MAX_STOPS stops of 1.
    (A flat subject is "explained" exactly by matrix 0 and its colour as the offset.)"""
    sv = np.linalg.svd(matrix, compute_uv=False)
    return bool(sv.min() >= 2.0 ** -MAX_STOPS and sv.max() <= 2.0 ** MAX_STOPS)


def _c_steps(x: np.ndarray, y: np.ndarray, params: np.ndarray, h: int) -> tuple[np.ndarray, float]:
    """Least-trimmed-squares concentration steps from ``params`` -> (params, trimmed sum); stops
    before a step that leaves the plausible maps; an implausible start scores inf."""
    best = float("inf")
    if not plausible(params[:3].T):
        return params, best
    for _ in range(C_STEPS):
        sq = _norms(x, y, params)
        keep = np.argpartition(sq, h - 1)[:h]
        trimmed = float(sq[keep].sum())
        if trimmed >= best * (1 - 1e-9):
            break
        best = trimmed
        step = _lstsq(x[keep], y[keep])
        if not plausible(step[:3].T):
            break
        params = step
    return params, best


def _consensus(x: np.ndarray, y: np.ndarray, params: np.ndarray, noise: tuple[float, float]) -> int:
    """Samples a map explains within INLIER_K sigmas of the images' own noise (the frame's, and the
    plate's scaled by the map's mean gain; at least 8-bit quantisation's): which of the trimmed
    fits to keep. The trimmed sum itself would prefer a map that fits one flat region (a sky, a
    wall) perfectly and the rest of the background not at all."""
    gain = float(np.linalg.svd(params[:3].T, compute_uv=False).mean())
    sigma = max(float(np.hypot(noise[0], gain * noise[1])), QUANTISATION)
    return int((_norms(x, y, params) <= (INLIER_K * sigma) ** 2).sum())


def _samples(frame: np.ndarray, plate: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, ...]:
    """Grid samples of usable, unclipped pixels -> (x (n,4) plate colours + 1, y (n,3), flat (n,) bool)."""
    h, w = usable.shape
    step = max(1, int(np.sqrt(h * w / FIT_SAMPLES)))
    f = frame[::step, ::step].reshape(-1, 3).astype(np.float64)
    p = plate[::step, ::step].reshape(-1, 3).astype(np.float64)
    ok = usable[::step, ::step].reshape(-1)
    for a in (f, p):
        ok &= ((a > CLIP_LO) & (a < CLIP_HI)).all(axis=1)
    grad = _gradient(plate)[::step, ::step].reshape(-1)
    flat = grad <= np.median(grad[ok]) if ok.any() else np.ones_like(ok)
    x = np.hstack([p[ok], np.ones((int(ok.sum()), 1))])
    return x, f[ok], flat[ok]


def _gradient(rgb: np.ndarray) -> np.ndarray:
    import cv2

    gray = rgb.astype(np.float32).mean(axis=2)
    return np.sqrt(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3) ** 2 + cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3) ** 2)


def fit_colour_map(frame: np.ndarray, plate: np.ndarray, usable: Optional[np.ndarray] = None,
                   previous: Optional[ColourMap] = None, noise: tuple[float, float] = (0.0, 0.0)) -> ColourMap:
    """The affine colour map taking the registered plate to the frame, fitted robustly.

    Args:
        frame, plate: (H,W,3) float in [0,1], the plate registered to the frame.
        usable: (H,W) bool, where the plate has data (None = everywhere).
        previous: the last frame's map, one more start (a clip's exposure drifts slowly).
        noise: (frame, plate) noise sigma per channel, the images' own (``plate.noise_sigma``):
            the band within which a candidate map counts a sample as explained.
    Returns:
        the map; the identity (sigma 0, inlier share 0) when too few usable samples remain.
    """
    if usable is None:
        usable = np.ones(frame.shape[:2], bool)
    x, y, flat = _samples(frame, plate, usable)
    if len(x) < 64:
        return ColourMap(np.eye(3), np.zeros(3), np.zeros(3), 0.0)
    starts = [np.vstack([np.eye(3), np.zeros((1, 3))]), _lstsq(x, y)]
    if previous is not None:
        starts.append(previous.params)
    candidates = []
    for trim, consistency in TRIMS:
        h = max(8, int(trim * len(x)))
        for start in starts:
            params, trimmed = _c_steps(x, y, start, h)
            if np.isfinite(trimmed):
                candidates.append((_consensus(x, y, params, noise), params, trimmed / h / consistency))
    if not candidates:
        return ColourMap(np.eye(3), np.zeros(3), np.zeros(3), 0.0)
    _, params, mean_square = max(candidates, key=lambda c: c[0])
    # Reweighted step: the LTS scale (the trimmed mean square of the residual norms, made
    # consistent for Gaussian noise), every sample within INLIER_K of those sigmas, one
    # least-squares fit on those (the efficiency the trimming gave away).
    robust = float(np.sqrt(mean_square))
    norm = np.sqrt(_norms(x, y, params))
    inlier = norm <= INLIER_K * max(robust, 1e-6)
    if inlier.sum() >= 8 and plausible(_lstsq(x[inlier], y[inlier])[:3].T):
        params = _lstsq(x[inlier], y[inlier])
    resid = y - x @ params
    pick = inlier & flat if (inlier & flat).sum() >= 32 else inlier
    sigma = 1.4826 * np.median(np.abs(resid[pick] - np.median(resid[pick], axis=0)), axis=0) if pick.any() \
        else np.zeros(3)
    norm = np.sqrt(np.einsum("ij,ij->i", resid, resid))
    rms = max(float(np.sqrt((sigma ** 2).mean())), 1e-6)  # the per-channel sigma of the norm's chi(3)
    share = float((norm <= INLIER_K * rms).mean())
    return ColourMap(params[:3].T.copy(), params[3].copy(), np.asarray(sigma, np.float64), share)


def explained_plate(frame: np.ndarray, mapped: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """The mapped plate with clipped channels made consistent: where the plate's channel is at
    the top of its range and the frame is brighter than the mapped value there (the plate may
    have been brighter still), or where the frame is clipped at the top and the mapped plate
    above it, that channel takes the frame's value (no difference). (H,W,3) float32."""
    out = mapped.copy()
    bound_plate = (plate >= CLIP_HI) & (frame > mapped)
    bound_frame = (frame >= CLIP_HI) & (mapped > frame)
    low_plate = (plate <= CLIP_LO) & (frame < mapped)
    agree = bound_plate | bound_frame | low_plate
    out[agree] = frame[agree]
    return out


__all__ = ["ColourMap", "explained_plate", "fit_colour_map", "plausible"]
