"""Priors and trimap helpers of the refine solve: what the solve knows before the Laplacian.

Known/unknown regions of a float trimap (``trimap_regions``), a distance-ramp prior from the
trimap alone, the confidence gate that turns generator-certain band pixels into known ones
(``gate_trimap``), the per-pixel prior weight (``confidence_weight``), folding two quadratic
data terms into one (``combine_priors``, ``PriorTerm`` for an extra term such as the temporal
prior) and the known-region expansion (``expand_known``). Also the input checks every refine
entry point shares (``_check_inputs``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

from alphagan_video.errors import ParameterError, UserInputError

# Known-region thresholds on a float trimap, as pymatting's trimap_split (bg <= 0.1, fg >= 0.9).
_BG_MAX = 0.1
_FG_MIN = 0.9


def trimap_regions(trimap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a float trimap into boolean (fg, bg, unknown) masks.

    trimap: (H, W) float in [0, 1] ({0, 0.5, 1} nominally; 128/255 counts as unknown).
    fg = trimap >= 0.9, bg = trimap <= 0.1, unknown = everything else (pymatting's split).
    """
    t = np.asarray(trimap, dtype=np.float64)
    fg = t >= _FG_MIN
    bg = t <= _BG_MAX
    return fg, bg, ~(fg | bg)


def trimap_ramp_prior(trimap: np.ndarray) -> np.ndarray:
    """A prior from the trimap alone: alpha ramps linearly from 0 at the background edge of the
    unknown band to 1 at its foreground edge, d_bg / (d_bg + d_fg) with Euclidean distances to
    the nearest known pixel of each kind.

    trimap: (H, W) float in [0, 1]. Returns (H, W) float64 in [0, 1]; 0.5 where the trimap has
    no background or no foreground at all.
    """
    fg, bg, unknown = trimap_regions(trimap)
    out = fg.astype(np.float64)
    if not fg.any() or not bg.any():
        out[unknown] = 0.5
        return out
    d_fg = ndimage.distance_transform_edt(~fg)
    d_bg = ndimage.distance_transform_edt(~bg)
    out[unknown] = (d_bg / (d_bg + d_fg))[unknown]
    return out


def gate_trimap(trimap: np.ndarray, prior: np.ndarray, threshold: float, erode: int = 0) -> np.ndarray:
    """Turn the unknown pixels where the prior is confident into known ones.

    trimap: (H, W) float in [0, 1]; prior: (H, W) float in [0, 1] (the generator's alpha).
    Unknown pixels with prior <= ``threshold`` become background (0), those with prior >=
    1 - ``threshold`` foreground (1); with ``erode`` > 0 only pixels whose whole
    (2*erode+1)^2 neighbourhood is confident the same way are converted, keeping the
    constraints away from the uncertain parts of the band. threshold 0 returns the trimap
    unchanged. Returns (H, W) float64 in {0, 0.5, 1} on the band, a copy.
    Why: the band shrinks to the pixels the generator is unsure of, so the Laplacian is built
    and factorised only there (the costly part of the solve), and confidently-solid pixels
    stop being pulled by colour-line errors of the closed-form model.
    """
    if not 0.0 <= threshold < 0.5:
        raise ParameterError.about("threshold", repr(threshold), "must be in [0, 0.5)")
    if not isinstance(erode, (int, np.integer)) or erode < 0:
        raise ParameterError.about("erode", repr(erode), "must be an integer >= 0")
    tri = np.asarray(trimap, dtype=np.float64).copy()
    pr = np.asarray(prior, dtype=np.float64)
    if pr.shape != tri.shape:
        raise UserInputError(f"gate_trimap: prior shape {pr.shape} does not match trimap {tri.shape}")
    if threshold <= 0.0:
        return tri
    _fg, _bg, unknown = trimap_regions(tri)
    low = pr <= threshold
    high = pr >= 1.0 - threshold
    if erode > 0:
        size = 2 * int(erode) + 1
        # Known pixels count as agreeing with their own side, so the band edge is not eroded.
        low = ndimage.minimum_filter(low | (tri <= _BG_MAX), size=size, mode="nearest") & low
        high = ndimage.minimum_filter(high | (tri >= _FG_MIN), size=size, mode="nearest") & high
    tri[unknown & low] = 0.0
    tri[unknown & high] = 1.0
    return tri


WEIGHTINGS = ("uniform", "confidence")


def confidence_weight(prior: np.ndarray, weighting: str) -> Optional[np.ndarray]:
    """Per-pixel prior weight from the prior itself.

    ``"uniform"``: None (weight 1 everywhere); ``"confidence"``: (2 a - 1)^2, i.e. 1 where the
    prior says 0 or 1 and 0 where it says 0.5 (there the Laplacian alone decides).
    prior: (H, W) float in [0, 1]. Returns (H, W) float64 in [0, 1] or None.
    """
    if weighting not in WEIGHTINGS:
        raise ParameterError.about("weighting", repr(weighting), f"must be one of {', '.join(WEIGHTINGS)}")
    if weighting == "uniform":
        return None
    a = np.clip(np.asarray(prior, dtype=np.float64), 0.0, 1.0)
    return (2.0 * a - 1.0) ** 2


def combine_priors(
    weight_a: np.ndarray | float, prior_a: np.ndarray, weight_b: np.ndarray | float, prior_b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold two quadratic data terms into one: w_a (a - p_a)^2 + w_b (a - p_b)^2 equals
    (w_a + w_b) (a - p)^2 + const with p the weighted mean of p_a and p_b, so the solve needs
    no second prior. Weights float >= 0 (scalars or arrays broadcasting with the priors).
    Returns (weight, prior) float64; where both weights are 0 the prior is p_a.
    """
    w = np.asarray(weight_a, dtype=np.float64) + np.asarray(weight_b, dtype=np.float64)
    mean = (weight_a * np.asarray(prior_a, dtype=np.float64) + weight_b * np.asarray(prior_b, dtype=np.float64))
    return w, np.where(w > 0, mean / np.maximum(w, 1e-300), prior_a)


@dataclass(frozen=True)
class PriorTerm:
    """One more quadratic data term of the solve, weight * (a - target)^2 per pixel (e.g. the
    warped previous frame's alpha of temporal smoothing).

    target: (H, W) float in [0, 1]; weight: (H, W) float >= 0, in the units of
    ``RefineConfig.mu`` (absolute, not relative to it).
    """

    target: np.ndarray
    weight: np.ndarray


def fold_prior_term(
    prior: np.ndarray, weight: Optional[np.ndarray], mu: float, term: Optional[PriorTerm],
) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Fold ``term`` into the generator's prior: returns (prior, weight) such that the data term
    mu * weight * (a - prior)^2 equals mu * w (a - p)^2 + term.weight * (a - term.target)^2 up to
    a constant (``combine_priors``). prior: (H, W) float64; weight: optional (H, W) float >= 0
    relative to mu (None = 1). The returned weight is relative to mu too, so mu keeps its one
    meaning (the absolute strength) on every path. Why relative and not the absolute total:
    the solve's diagonal is then mu * ((mu + w) / mu), the exact float arithmetic the product
    has always done, so mattes stay bit-identical (the total itself differs in the last bit).
    With mu 0 (or no term) nothing changes: the term is ignored without a generator prior."""
    if term is None or not mu > 0:
        return prior, weight
    target = np.asarray(term.target, dtype=np.float64)
    extra = np.asarray(term.weight, dtype=np.float64)
    if target.shape != prior.shape or extra.shape != prior.shape:
        raise UserInputError(
            f"refine: prior term shapes {target.shape} / {extra.shape} do not match the prior {prior.shape}"
        )
    base = mu if weight is None else mu * np.asarray(weight, dtype=np.float64)
    total, folded = combine_priors(base, prior, extra, target)
    return folded, total / mu


# expand_known parameters, chosen on the synthetic validation set (30 composites; val SAD
# 7.41 without, 7.34 / 7.31 / 7.30 for colour 0.01 / 0.02 / 0.04 at radius 9; 0.06 / 0.08:
# 7.32 / 7.34; radius 14: 7.32) and then confirmed on alphamatting-dev (product SAD 3.90 -> 3.68).
EXPAND_RADIUS = 9
EXPAND_COLOUR = 0.04


def expand_known(
    image: np.ndarray, trimap: np.ndarray, *, radius: int = EXPAND_RADIUS, colour: float = EXPAND_COLOUR,
) -> np.ndarray:
    """Known-region expansion: unknown pixels that are plainly foreground or background become known.

    image: (H, W, 3) float in [0, 1]; trimap: (H, W) float in [0, 1] (see ``trimap_regions``).
    An unknown pixel p becomes foreground (1.0) when some foreground pixel q within ``radius`` px
    has a colour closer than colour * (1 - |p - q| / (radius + 1)) (Euclidean RGB distance) and
    no background pixel within ``radius`` passes the same test; likewise for background (0.0).
    The allowance shrinks with distance so only near-copies of a nearby known colour are taken.
    Hand-drawn trimaps are generous, so their unknown bands hold many pure pixels; every one
    fixed here is one the solve can no longer smear a little alpha into (SAD), and the system
    gets smaller. Returns a new (H, W) float64 trimap; pixels that stay unknown keep their value.
    """
    img, tri = _check_inputs(image, trimap, 1, 1e-7)
    if radius < 1 or colour <= 0:
        return tri.copy()
    fg, bg, unknown = trimap_regions(tri)
    # Distance from each unknown pixel to the nearest known one: pixels at distance t can only
    # match offsets of length >= t, so each offset visits a prefix of the sorted candidates.
    dist = ndimage.distance_transform_edt(unknown)
    ys, xs = np.nonzero(unknown & (dist <= radius))
    out = tri.copy()
    if ys.size == 0:
        return out
    order = np.argsort(dist[ys, xs], kind="stable")
    ys, xs = ys[order], xs[order]
    cand_dist = dist[ys, xs]
    h, w = tri.shape
    # Padded flat arrays: a neighbour index is candidate + constant, and the padding is neither
    # foreground nor background, so no bounds checks are needed per offset.
    pw = w + 2 * radius
    label = np.zeros((h + 2 * radius, pw), dtype=np.int8)
    label[radius : radius + h, radius : radius + w] = fg.astype(np.int8) + 2 * bg.astype(np.int8)
    label = label.ravel()
    padded = np.zeros((3, h + 2 * radius, pw), dtype=np.float32)
    padded[:, radius : radius + h, radius : radius + w] = img.transpose(2, 0, 1)
    channels = padded.reshape(3, -1)  # one flat array per channel: three gathers beat (n, 3) sums
    flat = (ys + radius) * pw + (xs + radius)
    centre = channels[:, flat]
    hit = np.zeros(ys.size, dtype=np.int8)  # bit 1: a matching fg, bit 2: a matching bg
    offsets = sorted(
        ((dy * dy + dx * dx) ** 0.5, dy, dx)
        for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
        if 0 < dy * dy + dx * dx <= radius * radius
    )
    for d, dy, dx in offsets:
        n = int(np.searchsorted(cand_dist, d, side="right"))
        nb = flat[:n] + (dy * pw + dx)
        limit = (colour * (1.0 - d / (radius + 1))) ** 2
        dist2 = np.square(channels[0, nb] - centre[0, :n])
        dist2 += np.square(channels[1, nb] - centre[1, :n])
        dist2 += np.square(channels[2, nb] - centre[2, :n])
        close = np.flatnonzero(dist2 < limit)
        hit[close] |= label[nb[close]]
    out[ys[hit == 1], xs[hit == 1]] = 1.0
    out[ys[hit == 2], xs[hit == 2]] = 0.0
    return out


def _check_inputs(image: np.ndarray, trimap: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Check an (H, W, 3) image in [0, 1] and its (H, W) trimap against a window of ``radius``;
    returns both as float64 (no copy when they already are)."""
    img = np.asarray(image)
    tri = np.asarray(trimap)
    if img.ndim != 3 or img.shape[2] != 3:
        raise UserInputError(f"refine: image must be (H, W, 3) RGB, got shape {img.shape}")
    if tri.shape != img.shape[:2]:
        raise UserInputError(
            f"refine: trimap shape {tri.shape} does not match image {img.shape[:2]}; "
            "pass a single-channel (H, W) trimap of the image's size"
        )
    check_window(radius, eps)
    h, w = tri.shape
    if h < 2 * radius + 1 or w < 2 * radius + 1:
        raise UserInputError(
            f"refine: image {h}x{w} is smaller than one {2 * radius + 1}x{2 * radius + 1} "
            "window; use a smaller radius or a larger image"
        )
    img = img.astype(np.float64, copy=False)
    if img.size and (img.min() < 0.0 or img.max() > 1.0):
        raise UserInputError(
            f"refine: image values must be in [0, 1], got [{img.min():.3g}, {img.max():.3g}]; "
            "divide 8-bit images by 255"
        )
    return img, tri.astype(np.float64, copy=False)


def check_window(radius: int, eps: float) -> None:
    """The Laplacian's window radius (integer >= 1 px) and regulariser eps (> 0), as arguments."""
    if not isinstance(radius, (int, np.integer)) or radius < 1:
        raise ParameterError.about("radius", repr(radius), "must be an integer >= 1")
    if not eps > 0:
        raise ParameterError.about("eps", repr(eps), "must be > 0")
