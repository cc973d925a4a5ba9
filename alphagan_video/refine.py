"""Matting-Laplacian refinement: closed-form matting (Levin et al. 2008) with a soft prior.

Solves, over the unknown pixels U of a trimap,

    (L_UU + mu * diag(w_U)) a_U = -L_UK a_K + mu * diag(w_U) prior_U

where L is the closed-form matting Laplacian (windows of radius ``radius``, regulariser
``eps``), K the known pixels (a_K = 0 / 1 from the trimap), ``prior`` an alpha estimate (the
generator's output) and ``w`` an optional per-pixel confidence. mu -> 0 is plain closed-form
matting; large mu returns the prior.

With ``flow > 0`` a second, sampling-based data term joins the prior: the known-to-unknown
information flow of Aksoy et al. (CVPR 2017, "Designing effective inter-pixel information flow
for natural image matting"): every unknown pixel is reconstructed from its nearest known
foreground and background pixels in colour + position space (``sampling_flow``), giving an
alpha estimate a_s and a confidence eta = |F - B|^2 / 3 (high where the two sides' colours
differ). The solve then uses the per-pixel weight mu*w + flow*eta and the weighted mean of the
two estimates as its prior: where the colours separate, the samples decide; where they do not,
the generator does. Measured (README, model card): on alphamatting-dev it lowers the gradient
error to about half of closed-form's. Only the windows that touch U are built (vectorised numpy,
no per-pixel Python loops), so the cost scales with the unknown band, not the frame.

Before the solve, ``expand`` (``expand_known``) settles unknown pixels that are near-copies of a
nearby known colour, which both lowers SAD on hand-drawn trimaps and shrinks the system.
``prepare_refine`` does everything that does not depend on the prior (expansion, sampling flow,
Laplacian and, for a uniform prior weight, the factorisation), so a caller can run it while the
generator runs; ``solve_refine`` then finishes with the prior. ``refine_alpha`` is the two in a row.

The system is symmetric positive (semi-)definite. Up to ``DIRECT_MAX_UNKNOWNS`` unknowns it is
solved exactly by a sparse LU with symmetric minimum-degree ordering and no pivoting (i.e. a
Cholesky; faster than pymatting's incomplete-Cholesky PCG on 800-px photos); with a prior
(mu > 0) the factorisation is done in float32 and float64 accuracy restored by iterative
refinement (1.3x faster). Larger systems use Jacobi-preconditioned conjugate gradients
warm-started from the prior. ``solver="pcg"`` solves the same system matrix-free in torch
(``refine_pcg``: box-filter Laplacian products on the band's tiles, Jacobi PCG warm-started from
the prior) on the CPU or a GPU (``device``); the pipeline uses it on CUDA.

Combination options measured with bench/combine_eval.py (synthetic validation set, then
alphamatting-dev): ``gate`` (generator-confident band pixels become known, shrinking the system)
and ``weighting="confidence"`` both exist but are off by default, because the current generator
is confidently wrong on 6-15% of its confident band pixels, in blobs, and gating them costs
far more SAD than the faster solve is worth.

Windows follow pymatting's ``cf_laplacian`` conventions: only windows that lie entirely inside
the image (centres at least ``radius`` pixels from the border) and contain at least one unknown
pixel; covariance regularised by ``eps / window_area``.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import ndimage

from .errors import UserInputError

__all__ = [
    "refine_alpha",
    "closed_form_alpha",
    "matting_system",
    "MattingSystem",
    "trimap_regions",
    "trimap_ramp_prior",
    "gate_trimap",
    "confidence_weight",
    "sampling_flow",
    "combine_priors",
    "expand_known",
    "prepare_refine",
    "solve_refine",
    "RefineProblem",
    "WEIGHTINGS",
]

# Known-region thresholds on a float trimap, as pymatting's trimap_split (bg <= 0.1, fg >= 0.9).
_BG_MAX = 0.1
_FG_MIN = 0.9
# Systems up to this many unknowns are solved directly (sparse LU, ~170 fill entries per
# unknown measured on alphamatting photos, i.e. ~0.6 GB at 300k); larger ones use PCG.
DIRECT_MAX_UNKNOWNS = 300_000
# Windows processed per chunk while assembling: bounds the (chunk, n, n) float64 temporaries
# (~42 MB for 3x3 windows) independently of the frame size.
_CHUNK = 65536


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
        raise UserInputError(f"gate_trimap: threshold must be in [0, 0.5), got {threshold!r}")
    if not isinstance(erode, (int, np.integer)) or erode < 0:
        raise UserInputError(f"gate_trimap: erode must be an integer >= 0, got {erode!r}")
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
        raise UserInputError(f"refine: weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
    if weighting == "uniform":
        return None
    a = np.clip(np.asarray(prior, dtype=np.float64), 0.0, 1.0)
    return (2.0 * a - 1.0) ** 2


# sampling_flow parameters, chosen on the synthetic validation set (30 composites, seed
# 20261125; solve with refine_mu 3e-5 and flow 0.1) and then confirmed on alphamatting-dev:
# neighbours per side 25 (val SAD 8.43 / 7.85 / 7.41 / 7.50 for 7 / 15 / 25 / 40; Aksoy et al.
# use 7), position scale 5 (crossing the long side of the frame costs as much as five full
# colour ranges; val 9.03 / 8.43 / 8.53 for 1 / 5 / 10 at 7 neighbours); candidate band / stride
# and LLE regulariser as measured there (stride 8 changed no score, 3x faster than all pixels).
FLOW_NEIGHBOURS = 25
FLOW_SPATIAL = 5.0
FLOW_BAND = 10
FLOW_STRIDE = 8
FLOW_REG = 1e-3
FLOW_APPROX = 2.0


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


def _lle_foreground_share(center: np.ndarray, fg: np.ndarray, bg: np.ndarray, reg: float) -> np.ndarray:
    """Sum of the foreground neighbours' locally-linear-embedding weights: w minimises
    |c - sum_q w_q c_q|^2 + reg |w|^2 subject to sum w = 1 over all foreground and background
    neighbours. center: (3, N) colours; fg, bg: (3, N, K) colours, channel-first so every
    reduction below runs over contiguous memory. Returns (N,) float64 (not clipped).

    With Z the (2K, 3) neighbour offsets from the centre (rank <= 3), the Woodbury identity gives
    the unnormalised weights (reg I + Z Z^T)^-1 1 = (1 - Z s) / reg with s = (reg I3 + Z^T Z)^-1 Z^T 1,
    so only per-pixel 3x3 moments are needed, never the weights themselves:
    share = (K - (Z_f^T 1) . s) / (2K - (Z^T 1) . s).
    """
    c = center.astype(fg.dtype)[:, :, None]
    zf = fg - c  # offsets first: the 3x3 moments of small offsets lose nothing in float32
    zb = bg - c
    zf_sum = zf.sum(axis=2).astype(np.float64)  # (3, N) = Z_f^T 1
    z_sum = zf_sum + zb.sum(axis=2)
    k = fg.shape[2] + bg.shape[2]
    small = np.empty((center.shape[1], 3, 3), dtype=np.float64)
    for i in range(3):
        for j in range(i, 3):
            v = np.einsum("nk,nk->n", zf[i], zf[j]) + np.einsum("nk,nk->n", zb[i], zb[j])
            small[:, i, j] = v
            small[:, j, i] = v
    small[:, [0, 1, 2], [0, 1, 2]] += reg
    s = np.einsum("nij,jn->ni", _inverse_3x3(small), z_sum)
    # The denominator is 1^T (reg I + Z Z^T)^-1 1 * reg > 0 (positive-definite), so this is safe.
    return (fg.shape[2] - np.einsum("in,ni->n", zf_sum, s)) / (k - np.einsum("in,ni->n", z_sum, s))


def sampling_flow(
    image: np.ndarray,
    trimap: np.ndarray,
    *,
    neighbours: int = FLOW_NEIGHBOURS,
    spatial: float = FLOW_SPATIAL,
    band: int = FLOW_BAND,
    stride: int = FLOW_STRIDE,
    reg: float = FLOW_REG,
    approx: float = FLOW_APPROX,
    only: Optional[np.ndarray] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Known-to-unknown information flow (Aksoy et al. 2017): an alpha estimate per unknown pixel
    from its nearest known foreground and background pixels, and a confidence in it.

    image: (H, W, 3) float in [0, 1]; trimap: (H, W) float in [0, 1].
    For unknown pixel p with features [r, g, b, spatial*x/L, spatial*y/L] (L = longer side),
    the ``neighbours`` nearest foreground and background pixels are found (k-d tree; candidates
    are the known pixels within ``band`` px of the unknown region plus every ``stride``-th known
    pixel, so a few far samples are still available to large unknown regions); LLE weights
    reconstructing p's colour from all 2*neighbours colours give alpha_s = sum of the foreground
    weights, clipped to [0, 1], and confidence eta = |mean F - mean B|^2 / 3.
    only: optional (H, W) bool mask; unknown pixels outside it are skipped (alpha_s 0.5 there,
    eta 0), e.g. those a known-region expansion has already decided.
    Returns (alpha_s, eta): (H, W) float64, alpha_s in [0, 1] (the trimap's 0 / 1 on known
    pixels), eta in [0, 1] (0 on known pixels, and everywhere when either side has fewer than
    ``neighbours`` known pixels: there is nothing to sample).
    """
    import cv2
    from scipy.spatial import cKDTree

    img, tri = _check_inputs(image, trimap, 1, 1e-7)
    h, w = tri.shape
    fg, bg, unknown = trimap_regions(tri)
    alpha_s = fg.astype(np.float64)
    eta = np.zeros((h, w), dtype=np.float64)
    if only is not None and np.shape(only) != tri.shape:
        raise UserInputError(f"sampling_flow: mask shape {np.shape(only)} does not match trimap {tri.shape}")
    wanted = unknown if only is None else unknown & np.asarray(only, dtype=bool)
    alpha_s[unknown & ~wanted] = 0.5
    ui = np.flatnonzero(wanted.ravel())
    if ui.size == 0:
        return alpha_s, eta
    near = cv2.dilate(unknown.astype(np.uint8), np.ones((2 * band + 1, 2 * band + 1), np.uint8)) > 0
    grid = np.zeros((h, w), dtype=bool)
    grid[::stride, ::stride] = True
    candidates = (near | grid).ravel()
    fi = np.flatnonzero(fg.ravel() & candidates)
    bi = np.flatnonzero(bg.ravel() & candidates)
    if fi.size < neighbours or bi.size < neighbours:
        return alpha_s, eta
    colours = img.reshape(-1, 3).astype(np.float32)
    scale = spatial / max(h, w)
    yy, xx = np.divmod(np.arange(h * w), w)
    feat = np.concatenate([colours, (xx * scale)[:, None], (yy * scale)[:, None]], axis=1).astype(np.float32)
    # approx = cKDTree's eps: approximate search (each neighbour within (1 + approx) times the
    # true k-th distance). 1 was 3-4x faster than exact on the alphamatting photos at no loss;
    # 2 is 1.4x faster again and scored better on the synthetic validation set (SAD 7.30 ->
    # 7.15 with expansion; 4: 7.18; alphamatting-dev 3.663 -> 3.675). workers=-1: the queries
    # are independent, so they use every core.
    _, nf = cKDTree(feat[fi]).query(feat[ui], k=neighbours, eps=approx, workers=-1)
    _, nb = cKDTree(feat[bi]).query(feat[ui], k=neighbours, eps=approx, workers=-1)
    channels = np.ascontiguousarray(colours.T)  # (3, H*W)
    col_f = channels[:, fi][:, nf.reshape(ui.size, neighbours)]  # (3, N, K) float32
    col_b = channels[:, bi][:, nb.reshape(ui.size, neighbours)]
    share = _lle_foreground_share(channels[:, ui], col_f, col_b, reg)
    alpha_s.ravel()[ui] = np.clip(share, 0.0, 1.0)
    eta.ravel()[ui] = np.square(col_f.mean(axis=2) - col_b.mean(axis=2)).sum(axis=0, dtype=np.float64) / 3.0
    return alpha_s, eta


def _check_inputs(image: np.ndarray, trimap: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(image)
    tri = np.asarray(trimap)
    if img.ndim != 3 or img.shape[2] != 3:
        raise UserInputError(f"refine: image must be (H, W, 3) RGB, got shape {img.shape}")
    if tri.shape != img.shape[:2]:
        raise UserInputError(
            f"refine: trimap shape {tri.shape} does not match image {img.shape[:2]}; "
            "pass a single-channel (H, W) trimap of the image's size"
        )
    if not isinstance(radius, (int, np.integer)) or radius < 1:
        raise UserInputError(f"refine: radius must be an integer >= 1, got {radius!r}")
    if not eps > 0:
        raise UserInputError(f"refine: eps must be > 0, got {eps!r}")
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


@dataclass
class MattingSystem:
    """The matting Laplacian restricted to the unknown pixels of one image.

    L_uu: (n_u, n_u) CSR float64, the rows/columns of L for unknown pixels.
    rhs_known: (n_u,) float64, -L_UK a_K (the pull of the known pixels).
    unknown_index: (n_u,) int64 flat indices (row-major) of the unknown pixels.
    alpha_known: (H, W) float64, 1 on fg, 0 elsewhere (the known part of the solution).
    """

    L_uu: sp.csr_matrix
    rhs_known: np.ndarray
    unknown_index: np.ndarray
    alpha_known: np.ndarray


def _inverse_3x3(a: np.ndarray) -> np.ndarray:
    """Batched inverse of symmetric positive-definite (N, 3, 3) matrices via the adjugate."""
    a00, a01, a02 = a[:, 0, 0], a[:, 0, 1], a[:, 0, 2]
    a11, a12, a22 = a[:, 1, 1], a[:, 1, 2], a[:, 2, 2]
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    det = a00 * c00 + a01 * c01 + a02 * c02
    inv = np.empty_like(a)
    inv[:, 0, 0] = c00
    inv[:, 0, 1] = inv[:, 1, 0] = c01
    inv[:, 0, 2] = inv[:, 2, 0] = c02
    inv[:, 1, 1] = c11
    inv[:, 1, 2] = inv[:, 2, 1] = c12
    inv[:, 2, 2] = c22
    inv /= det[:, None, None]
    return inv


def matting_system(image: np.ndarray, trimap: np.ndarray, *, radius: int = 1, eps: float = 1e-7) -> MattingSystem:
    """Build L_UU and -L_UK a_K of the closed-form matting Laplacian for one image.

    image: (H, W, 3) float in [0, 1]; trimap: (H, W) float in [0, 1] (see ``trimap_regions``).
    Only windows that touch an unknown pixel are formed, and only rows of unknown pixels kept.
    """
    img, tri = _check_inputs(image, trimap, radius, eps)
    h, w = tri.shape
    fg, _bg, unknown = trimap_regions(tri)
    alpha_known = fg.astype(np.float64)
    unknown_index = np.flatnonzero(unknown.ravel())
    n_u = unknown_index.size
    uid = np.full(h * w, -1, dtype=np.int64)
    uid[unknown_index] = np.arange(n_u, dtype=np.int64)
    uid = uid.reshape(h, w)
    if n_u == 0:
        return MattingSystem(sp.csr_matrix((0, 0)), np.zeros(0), unknown_index, alpha_known)

    size = 2 * radius + 1
    n = size * size
    span = 4 * radius + 1  # offsets between two pixels of one window: [-2r, 2r]^2
    # Window centres: fully inside the image and touching the unknown band.
    centres = ndimage.maximum_filter(unknown, size=size, mode="constant", cval=False)
    interior = np.zeros_like(unknown)
    interior[radius : h - radius, radius : w - radius] = True
    cy, cx = np.nonzero(centres & interior)
    offs = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]

    # band[oy * span + ox, u] = L[u, u + (oy - 2r, ox - 2r)] for unknown pixel u; column n_u is a
    # dump for rows of known pixels (never read), so no per-position masking is needed.
    band = np.zeros((span * span, n_u + 1), dtype=np.float64)
    uid_dump = np.where(uid >= 0, uid, n_u)
    off_y = np.array([o[0] for o in offs])
    off_x = np.array([o[1] for o in offs])
    pair_slot = (off_y[None, :] - off_y[:, None] + 2 * radius) * span + (off_x[None, :] - off_x[:, None] + 2 * radius)
    eye = np.eye(3) * (eps / n)
    diag = np.arange(n)
    for start in range(0, cy.size, _CHUNK):
        py = cy[start : start + _CHUNK, None] + off_y[None, :]  # (k, n) pixel rows of each window
        px = cx[start : start + _CHUNK, None] + off_x[None, :]
        colors = img[py, px]  # (k, n, 3)
        centred = colors - colors.mean(axis=1, keepdims=True)
        cov = np.matmul(centred.transpose(0, 2, 1), centred) / n + eye
        proj = np.matmul(centred, _inverse_3x3(cov))
        gram = np.matmul(proj, centred.transpose(0, 2, 1))  # (k, n, n)
        gram += 1.0
        gram *= -1.0 / n
        gram[:, diag, diag] += 1.0
        # One scatter-add for all (window, a, b) triples: entry (a, b) of a window adds to slot
        # pair_slot[a, b] of row rows[a]; bincount sums repeated targets in float64.
        rows = uid_dump[py, px]  # (k, n)
        target = pair_slot[None, :, :] * (n_u + 1) + rows[:, :, None]
        band += np.bincount(target.ravel(), weights=gram.ravel(), minlength=band.size).reshape(band.shape)
    band = band[:, :n_u]

    # Scatter the band into L_UU (unknown neighbours) and -L_UK a_K (known neighbours).
    uy, ux = np.divmod(unknown_index, w)
    rows_list, cols_list, data_list = [], [], []
    rhs = np.zeros(n_u, dtype=np.float64)
    row_ids = np.arange(n_u, dtype=np.int64)
    for oy in range(span):
        for ox in range(span):
            col = band[oy * span + ox]
            ny = uy + oy - 2 * radius
            nx = ux + ox - 2 * radius
            inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w) & (col != 0.0)
            if not inside.any():
                continue
            nyi, nxi = ny[inside], nx[inside]
            nid = uid[nyi, nxi]
            is_u = nid >= 0
            sel = np.flatnonzero(inside)
            rows_list.append(sel[is_u])
            cols_list.append(nid[is_u])
            data_list.append(col[sel[is_u]])
            kn = sel[~is_u]
            rhs[kn] -= col[kn] * alpha_known[nyi[~is_u], nxi[~is_u]]
    rows_all = np.concatenate(rows_list) if rows_list else row_ids[:0]
    cols_all = np.concatenate(cols_list) if cols_list else row_ids[:0]
    data_all = np.concatenate(data_list) if data_list else np.zeros(0)
    L_uu = sp.csr_matrix((data_all, (rows_all, cols_all)), shape=(n_u, n_u))
    return MattingSystem(L_uu, rhs, unknown_index, alpha_known)


_SOLVERS = ("auto", "direct", "cg", "pcg")


def _check_solver(solver: str) -> str:
    if solver not in _SOLVERS:
        raise UserInputError(f"refine: solver must be one of {', '.join(_SOLVERS)}, got {solver!r}")
    return solver


def _jacobi(A: sp.csr_matrix) -> spla.LinearOperator:
    d = A.diagonal()
    d = np.where(d > 0, d, 1.0)
    return spla.LinearOperator(A.shape, matvec=lambda x: x / d, dtype=np.float64)


# Mixed-precision direct solve: float64 residual of the float32 solution must fall below this
# fraction of |b| within _REFINE_STEPS corrections, else the float64 factorisation is used.
_MIXED_RTOL = 1e-7
_REFINE_STEPS = 4


def _splu(A: sp.spmatrix) -> "spla.SuperLU":
    # Sparse LU of an SPD matrix with a symmetric minimum-degree ordering and no pivoting is a
    # Cholesky in disguise: on the 800-px alphamatting photos it factors 40k-140k unknowns in
    # 0.2-1.2 s, faster than incomplete-Cholesky PCG, and is exact. ILU preconditioners (spilu)
    # were tried and are not robust here (CG diverged on GT13). Raises RuntimeError if singular.
    return spla.splu(A.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})


class DirectSolver:
    """A sparse SPD system A (n, n) float64 factorised once and solved for any right-hand side.

    mixed=True (only with a prior, whose diagonal keeps float32 pivots away from zero) factors
    A in float32 (1.3-1.4x faster than float64 on 40k-140k unknowns, measured) and recovers
    float64 accuracy by iterative refinement, x += LU32^-1 (b - A x); when that does not
    converge the float64 factorisation is made (once) and used. Construction raises
    RuntimeError when A cannot be factorised at all.
    """

    def __init__(self, A: sp.csr_matrix, mixed: bool):
        self.A = A
        self._lu32 = None
        self._lu64 = None
        if mixed:
            try:
                self._lu32 = _splu(A.astype(np.float32))
            except RuntimeError:
                self._lu32 = None
        if self._lu32 is None:
            self._lu64 = _splu(A)

    def _mixed(self, b: np.ndarray) -> Optional[np.ndarray]:
        bnorm = float(np.linalg.norm(b)) or 1.0
        x = self._lu32.solve(b.astype(np.float32)).astype(np.float64)
        for step in range(_REFINE_STEPS + 1):
            if not np.all(np.isfinite(x)):
                return None
            r = b - self.A @ x
            if float(np.linalg.norm(r)) <= _MIXED_RTOL * bnorm:
                return x
            if step < _REFINE_STEPS:
                x += self._lu32.solve(r.astype(np.float32)).astype(np.float64)
        return None

    def preconditioner(self) -> spla.LinearOperator:
        """r -> A^-1 r from the cheapest factorisation held (float32 when there is one): an
        approximate inverse of any nearby SPD matrix, for preconditioned CG."""
        lu = self._lu32 if self._lu32 is not None else self._lu64
        dtype = np.float32 if lu is self._lu32 else np.float64

        def apply(r: np.ndarray) -> np.ndarray:
            return lu.solve(np.asarray(r, dtype=dtype)).astype(np.float64)

        return spla.LinearOperator(self.A.shape, matvec=apply, dtype=np.float64)

    def solve(self, b: np.ndarray) -> Optional[np.ndarray]:
        """x (n,) float64 with A x = b, or None when no finite solution was found."""
        if self._lu32 is not None:
            x = self._mixed(b)
            if x is not None:
                return x
            if self._lu64 is None:
                try:
                    self._lu64 = _splu(self.A)
                except RuntimeError:
                    return None
        x = self._lu64.solve(b)
        return x if np.all(np.isfinite(x)) else None


# A factorisation made for a nearby matrix (same Laplacian, another data-term diagonal, e.g. the
# temporal prior's per-pixel weights) preconditions CG instead of a new factorisation: 5-14
# iterations to the direct solve's residual on the alphamatting photos, 2-4x faster than
# factorising again (measured). Not converged within this many: factorise after all.
_PCG_MAX_ITER = 40


def _solve(
    system: MattingSystem,
    mu: float,
    prior_u: np.ndarray,
    weight_u: np.ndarray,
    x0: np.ndarray,
    tol: float,
    max_iter: int,
    solver: str,
    factor: Optional[DirectSolver] = None,
    factor_diag: Optional[np.ndarray] = None,
) -> np.ndarray:
    """factor: a DirectSolver of L_uu + diag(factor_diag), made in advance (``prepare_refine``).
    When mu * weight_u equals factor_diag only the triangular solves run here; otherwise it
    preconditions CG on the actual matrix (falling back to a new factorisation)."""
    A = system.L_uu
    b = system.rhs_known
    d = np.zeros(A.shape[0])
    if mu > 0:
        d = mu * weight_u
        b = b + d * prior_u
    if factor is not None and factor_diag is not None and np.array_equal(d, factor_diag):
        x = factor.solve(b)
        if x is not None:
            return x
    if mu > 0:
        A = (A + sp.diags(d, format="csr")).tocsr()
    use_direct = solver == "direct" or (solver == "auto" and A.shape[0] <= DIRECT_MAX_UNKNOWNS)
    if use_direct and factor is not None:
        start = factor.solve(b)
        if start is not None:
            x, info = spla.cg(A, b, x0=start, rtol=_MIXED_RTOL, atol=0.0, maxiter=_PCG_MAX_ITER,
                              M=factor.preconditioner())
            if info == 0 and np.all(np.isfinite(x)):
                return x
    if use_direct:
        try:
            x = DirectSolver(A, mixed=mu > 0).solve(b)
            if x is not None:
                return x
        except RuntimeError:
            # Exactly singular (an unknown region no window links to a known pixel, mu = 0):
            # CG below still returns a least-change solution from the warm start.
            pass
    # Jacobi-preconditioned CG warm-started from the prior: memory O(nnz), for bands too large
    # to factor. info > 0 (not converged within max_iter) still returns the last iterate; a
    # matte after max_iter steps is usable, raising would lose a frame.
    x, _info = spla.cg(A, b, x0=x0, rtol=tol, atol=0.0, maxiter=max_iter, M=_jacobi(A))
    return x


def _assemble(system: MattingSystem, x_u: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = system.alpha_known.ravel().copy()
    out[system.unknown_index] = x_u
    return np.clip(out, 0.0, 1.0).reshape(shape).astype(np.float32)


def refine_alpha(
    image: np.ndarray,
    trimap: np.ndarray,
    prior: np.ndarray,
    *,
    mu: float = 1e-4,
    weight: Optional[np.ndarray] = None,
    radius: int = 1,
    eps: float = 1e-7,
    tol: float = 1e-5,
    max_iter: int = 2000,
    solver: str = "auto",
    gate: float = 0.0,
    gate_erode: int = 0,
    weighting: str = "uniform",
    flow: float = 0.0,
    expand: int = 0,
    device: str = "cpu",
) -> np.ndarray:
    """Refine an alpha estimate with a matting-Laplacian solve anchored to it.

    image: (H, W, 3) float in [0, 1]; trimap: (H, W) float in [0, 1] ({0, 0.5, 1});
    prior: (H, W) float in [0, 1], e.g. the generator's alpha; weight: optional (H, W)
    float >= 0 per-pixel confidence in the prior (default 1 everywhere).
    mu: strength of the prior (0 = closed-form matting, large = return the prior).
    solver: ``"auto"`` (direct sparse factorisation up to ``DIRECT_MAX_UNKNOWNS`` unknowns,
    else CG), ``"direct"``, ``"cg"`` (Jacobi-preconditioned CG warm-started from the prior) or
    ``"pcg"`` (the same system matrix-free in torch on ``device``, ``refine_pcg``).
    tol: CG relative residual; max_iter: CG iteration cap (both unused by the direct solve).
    gate / gate_erode: unknown pixels where the prior is within ``gate`` of 0 or 1 are fixed to
    0 / 1 before solving (see ``gate_trimap``); 0 = solve the whole band.
    weighting: ``"uniform"`` or ``"confidence"`` (see ``confidence_weight``), multiplied into
    ``weight`` when both are given.
    flow: weight of the known-to-unknown sampling term (``sampling_flow``); 0 = off. Each
    unknown pixel's data term becomes mu*w*(a - prior)^2 + flow*eta*(a - alpha_s)^2.
    expand: radius in px of the known-region expansion (``expand_known``) applied to the trimap
    of the solve (the sampling flow still samples the given trimap's known pixels); 0 = off.
    Returns (H, W) float32 in [0, 1]; known trimap pixels are exactly 0 / 1.
    """
    if not mu >= 0:
        raise UserInputError(f"refine_alpha: mu must be >= 0, got {mu!r}")
    _check_inputs(image, trimap, radius, eps)  # image/trimap errors first, before the prior's
    if np.shape(prior) != np.shape(trimap):
        raise UserInputError(f"refine_alpha: prior shape {np.shape(prior)} does not match trimap {np.shape(trimap)}")
    if gate > 0.0 or gate_erode != 0:
        trimap = gate_trimap(trimap, prior, gate, gate_erode)
    problem = prepare_refine(image, trimap, flow=flow, expand=expand, radius=radius, eps=eps,
                             solver=solver, device=device)
    return solve_refine(problem, prior, mu=mu, weight=weight, weighting=weighting, tol=tol,
                        max_iter=max_iter, solver=solver)


@dataclass(frozen=True)
class RefineProblem:
    """Everything of one refine solve that does not depend on the prior, so it can be built
    while the generator runs (``prepare_refine``, then ``solve_refine`` with the prior).

    system: the matting Laplacian over the unknown pixels left after expansion: assembled
    (``MattingSystem``) or, when prepared with ``solver="pcg"``, matrix-free
    (``refine_pcg.MatrixFreeSystem``, solved by PCG whatever ``solve_refine``'s solver says).
    flow_weight: (n_u,) float64, flow * eta per unknown pixel (zeros when flow is off).
    flow_alpha: (n_u,) float64 in [0, 1], the sampled alpha estimate per unknown pixel.
    factor: optional DirectSolver of L_uu + diag(factor_mu + flow_weight), the system matrix of
    a uniform prior of strength factor_mu, factorised in advance (``prepare_refine(mu=...)``).
    """

    system: "MattingSystem | MatrixFreeSystem"
    flow_weight: np.ndarray
    flow_alpha: np.ndarray
    factor: Optional["DirectSolver"] = None
    factor_mu: float = 0.0


def prepare_refine(
    image: np.ndarray, trimap: np.ndarray, *, flow: float = 0.0, expand: int = 0, radius: int = 1,
    eps: float = 1e-7, mu: Optional[float] = None, solver: str = "auto", device: str = "cpu",
) -> RefineProblem:
    """The prior-independent part of ``refine_alpha``: known-region expansion, the sampling flow
    and the matting Laplacian. image: (H, W, 3) float in [0, 1]; trimap: (H, W) float in [0, 1];
    flow / expand / radius / eps as in ``refine_alpha``.
    mu: when given (> 0), also factorise the system matrix for a uniform prior of that strength:
    with uniform weights the matrix does not depend on the prior, only the right-hand side does,
    so the factorisation (most of the solve) can run while the generator runs too.
    solver: ``"pcg"`` prepares the matrix-free system on ``device`` instead (no assembly, no
    factorisation; mu unused); anything else the assembled one."""
    if _check_solver(solver) == "pcg":
        build = _matrix_free_builder(radius, eps, device)
    else:
        def build(img: np.ndarray, tri: np.ndarray):
            return matting_system(img, tri, radius=radius, eps=eps)

    if not flow >= 0:
        raise UserInputError(f"refine_alpha: flow must be >= 0, got {flow!r}")
    if expand < 0:
        raise UserInputError(f"refine_alpha: expand must be >= 0 px, got {expand!r}")
    _check_inputs(image, trimap, radius, eps)
    # The sampling flow keeps the unexpanded trimap: expanded pixels as samples pull unknown
    # pixels of similar colour to 0 / 1 (synthetic validation SAD 7.30 -> 7.83 when they are).
    sample_trimap = trimap
    if expand:
        trimap = expand_known(image, trimap, radius=int(expand))
    unknown = trimap_regions(trimap)[2]
    if not (flow > 0 and unknown.any()):
        system = build(image, trimap)
        n_u = system.unknown_index.size
        return _with_factor(RefineProblem(system, np.zeros(n_u), np.zeros(n_u)), mu)
    # The sampling flow and the Laplacian are independent and both spend their time in numpy /
    # scipy kernels that release the GIL, so they run side by side.
    with ThreadPoolExecutor(1, thread_name_prefix="sampling-flow") as pool:
        sampled = pool.submit(sampling_flow, image, sample_trimap, only=unknown)
        system = build(image, trimap)
        alpha_s, eta = sampled.result()
    u = system.unknown_index
    return _with_factor(RefineProblem(system, flow * eta.ravel()[u], alpha_s.ravel()[u]), mu)


def _matrix_free_builder(radius: int, eps: float, device: str):
    from .refine_pcg import matrix_free_system

    def build(image: np.ndarray, trimap: np.ndarray):
        img, tri = _check_inputs(image, trimap, radius, eps)
        fg, _bg, unknown = trimap_regions(tri)
        return matrix_free_system(img, fg, unknown, radius=radius, eps=eps, device=device)

    return build


def _with_factor(problem: RefineProblem, mu: Optional[float]) -> RefineProblem:
    """``problem`` with its uniform-prior system factorised (see ``prepare_refine``), or as is
    when mu is None / 0, the system is empty or too large to factor, or factorisation fails."""
    n_u = problem.system.unknown_index.size
    if not mu or mu <= 0 or n_u == 0 or n_u > DIRECT_MAX_UNKNOWNS or not isinstance(problem.system, MattingSystem):
        return problem
    A = (problem.system.L_uu + sp.diags(mu + problem.flow_weight, format="csr")).tocsr()
    try:
        factor = DirectSolver(A, mixed=True)
    except RuntimeError:
        return problem
    return dataclasses.replace(problem, factor=factor, factor_mu=float(mu))


def solve_refine(
    problem: RefineProblem,
    prior: np.ndarray,
    *,
    mu: float = 1e-4,
    weight: Optional[np.ndarray] = None,
    weighting: str = "uniform",
    tol: float = 1e-5,
    max_iter: int = 2000,
    solver: str = "auto",
) -> np.ndarray:
    """The prior-dependent part of ``refine_alpha``: solve a prepared problem with ``prior``
    ((H, W) float in [0, 1]) as the data term of strength ``mu`` (per-pixel ``weight``,
    ``weighting``, solver options as in ``refine_alpha``; a problem prepared matrix-free is
    solved by PCG). Returns (H, W) float32 in [0, 1]."""
    if not mu >= 0:
        raise UserInputError(f"refine_alpha: mu must be >= 0, got {mu!r}")
    system = problem.system
    h, w = system.alpha_known.shape
    pr = np.asarray(prior, dtype=np.float64)
    if pr.shape != (h, w):
        raise UserInputError(f"refine_alpha: prior shape {pr.shape} does not match trimap {(h, w)}")
    conf = confidence_weight(pr, weighting)
    if conf is not None:
        weight = conf if weight is None else np.asarray(weight, dtype=np.float64) * conf
    if weight is None:
        wt = np.ones(system.unknown_index.size)
    else:
        wfull = np.asarray(weight, dtype=np.float64)
        if wfull.shape != (h, w):
            raise UserInputError(f"refine_alpha: weight shape {wfull.shape} does not match trimap {(h, w)}")
        if wfull.size and wfull.min() < 0:
            raise UserInputError(f"refine_alpha: weight must be >= 0, got min {wfull.min():.3g}")
        wt = wfull.ravel()[system.unknown_index]
    if system.unknown_index.size == 0:
        return _assemble(system, np.zeros(0), (h, w))
    prior_u = np.clip(pr.ravel()[system.unknown_index], 0.0, 1.0)
    if problem.flow_weight.any():
        # mu*w*(a - p)^2 + flow*eta*(a - s)^2 as one data term, so the solver is unchanged.
        wt, prior_u = combine_priors(mu * wt, prior_u, problem.flow_weight, problem.flow_alpha)
        mu = 1.0
    if not isinstance(system, MattingSystem):
        return _assemble(system, _solve_matrix_free(system, mu * wt, prior_u, tol, max_iter), (h, w))
    if _check_solver(solver) == "pcg":
        raise UserInputError("refine: solver 'pcg' needs a problem prepared with prepare_refine(..., solver='pcg')")
    # A factorisation made in advance serves the direct solver: exactly when the data-term
    # diagonal is the one it was made for, as a CG preconditioner when it is close (per-pixel
    # weights such as the temporal prior's).
    factor = problem.factor if _check_solver(solver) != "cg" else None
    factor_diag = problem.factor_mu + problem.flow_weight if factor is not None else None
    x = _solve(system, mu, prior_u, wt, prior_u.copy(), tol, max_iter, _check_solver(solver), factor, factor_diag)
    return _assemble(system, x, (h, w))


def _solve_matrix_free(system, d: np.ndarray, prior_u: np.ndarray, tol: float, max_iter: int,
                       x0: Optional[np.ndarray] = None) -> np.ndarray:
    """PCG on a ``refine_pcg.MatrixFreeSystem``: (L_UU + diag(d)) a = -L_UK a_K + d prior_u,
    warm-started from x0 (default prior_u: the generator's alpha blended with the other data
    terms' targets, i.e. with temporal fusion on, the warped previous frame's solution wherever
    that term is trusted). Returns (n_u,) float64 numpy."""
    from .refine_pcg import solve_pcg

    res = solve_pcg(system.operator, d, prior_u, x0=prior_u if x0 is None else x0, rtol=tol, max_iter=max_iter)
    return res.x.double().cpu().numpy()


def closed_form_alpha(
    image: np.ndarray,
    trimap: np.ndarray,
    *,
    radius: int = 1,
    eps: float = 1e-7,
    tol: float = 1e-7,
    max_iter: int = 10000,
    solver: str = "auto",
    device: str = "cpu",
) -> np.ndarray:
    """Closed-form matting (Levin et al.): the refinement solve with no prior (mu = 0).

    image: (H, W, 3) float in [0, 1]; trimap: (H, W) float in [0, 1]. solver as in
    ``refine_alpha``; CG starts from 0.5 in the unknown region. Returns (H, W) float32 in [0, 1]; known pixels exactly 0 / 1. Matches
    ``pymatting.estimate_alpha_cf`` (same Laplacian, same tolerance) up to solver round-off.
    """
    if _check_solver(solver) == "pcg":
        system = _matrix_free_builder(radius, eps, device)(image, trimap)
    else:
        system = matting_system(image, trimap, radius=radius, eps=eps)
    h, w = system.alpha_known.shape
    n_u = system.unknown_index.size
    if n_u == 0:
        return _assemble(system, np.zeros(0), (h, w))
    x0 = np.full(n_u, 0.5)
    if solver == "pcg":
        return _assemble(system, _solve_matrix_free(system, np.zeros(n_u), x0, tol, max_iter, x0), (h, w))
    x = _solve(system, 0.0, x0, np.ones(n_u), x0, tol, max_iter, _check_solver(solver))
    return _assemble(system, x, (h, w))
