"""Known-to-unknown sampling flow (Aksoy et al., CVPR 2017, "Designing effective inter-pixel
information flow for natural image matting"): every unknown pixel is reconstructed from its
nearest known foreground and background pixels in colour + position space, giving an alpha
estimate a_s and a confidence eta = |F - B|^2 / 3 (high where the two sides' colours differ).
The solve uses it as a second data term beside the generator's prior (``RefineConfig.flow``):
where the colours separate, the samples decide; where they do not, the generator does.
Measured (docs/model-card.md): on alphamatting-dev it lowers the gradient error to about half
of closed-form's.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from alphagan_video.errors import UserInputError

from .inverse import inverse_3x3
from .priors import _check_inputs, trimap_regions

# sampling_flow parameters, chosen on the synthetic validation set (30 composites, seed
# 20261125; solve with mu 3e-5 and flow 0.1) and then confirmed on alphamatting-dev:
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
#: Unknown pixels per chunk of the neighbour search and LLE (bounds memory; same result).
FLOW_CHUNK = 16384


def lle_foreground_share(center: np.ndarray, fg: np.ndarray, bg: np.ndarray, reg: float) -> np.ndarray:
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
    s = np.einsum("nij,jn->ni", inverse_3x3(small), z_sum)
    # The denominator is 1^T (reg I + Z Z^T)^-1 1 * reg > 0 (positive-definite), so this is safe.
    return (fg.shape[2] - np.einsum("in,ni->n", zf_sum, s)) / (k - np.einsum("in,ni->n", z_sum, s))


def _features(colours: np.ndarray, index: np.ndarray, width: int, scale: float) -> np.ndarray:
    """Features [r, g, b, scale*x, scale*y] (N, 5) float32 of the pixels ``index`` (flat indices
    into a frame ``width`` px wide; colours (H*W, 3) float32), computed for those pixels only: a
    1080p frame's band and candidates are a few percent of its pixels."""
    yy, xx = np.divmod(index, width)
    return np.concatenate([colours[index], (xx * scale)[:, None], (yy * scale)[:, None]], axis=1).astype(np.float32)


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
    # approx = cKDTree's eps: approximate search (each neighbour within (1 + approx) times the
    # true k-th distance). 1 was 3-4x faster than exact on the alphamatting photos at no loss;
    # 2 is 1.4x faster again and scored better on the synthetic validation set (SAD 7.30 ->
    # 7.15 with expansion; 4: 7.18; alphamatting-dev 3.663 -> 3.675). workers=-1: the queries
    # are independent, so they use every core.
    trees = (cKDTree(_features(colours, fi, w, scale)), cKDTree(_features(colours, bi, w, scale)))
    channels = np.ascontiguousarray(colours.T)  # (3, H*W)
    col_fi, col_bi = channels[:, fi], channels[:, bi]
    # Unknown pixels in chunks: every pixel's estimate is independent of the others, so the
    # result is the same, and the neighbour colours and moments held at once stay bounded
    # (a 720p frame's 80k-pixel band took ~200 MB in one piece).
    for start in range(0, ui.size, FLOW_CHUNK):
        part = ui[start : start + FLOW_CHUNK]
        part_feat = _features(colours, part, w, scale)
        _, nf = trees[0].query(part_feat, k=neighbours, eps=approx, workers=-1)
        _, nb = trees[1].query(part_feat, k=neighbours, eps=approx, workers=-1)
        col_f = col_fi[:, nf.reshape(part.size, neighbours)]  # (3, n, K) float32
        col_b = col_bi[:, nb.reshape(part.size, neighbours)]
        share = lle_foreground_share(channels[:, part], col_f, col_b, reg)
        alpha_s.ravel()[part] = np.clip(share, 0.0, 1.0)
        eta.ravel()[part] = np.square(col_f.mean(axis=2) - col_b.mean(axis=2)).sum(axis=0, dtype=np.float64) / 3.0
    return alpha_s, eta
