"""Evidence trimaps (``auto_trimap``): the AlphaGAN band, widened where the mask is unsure and
where the local colours doubt its certainty.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from alphagan_video.errors import UserInputError

from .band import default_band_px
from .codes import _check_b1hw

# The AlphaGAN routine (``band.make_trimap``) trusts the binarised mask everywhere outside a band of
# one width. A segmenter's mask is wrong in places (swallowed background, bites, hair cut off),
# and every wrongly "known" pixel is one no matting can fix -- worse, it is a wrong colour sample
# that the solve and its known-region expansion then spread into the band. ``auto_trimap`` builds
# the trimap from evidence instead:
#
# 1. the AlphaGAN band around the mask's 0.5 contour (the documented core) ...
# 2. ... plus the mask's own uncertain zone (soft probability between CONFIDENT and
#    1 - CONFIDENT: person, SAM, chroma and plate masks are soft; file masks usually are not);
# 3. ... widened outwards where the image has fine high-frequency structure just outside the
#    contour (hair, fur, foliage: more local contrast than the background farther out);
# 4. then *letting go of wrong certainty*: near the contour, a known pixel stays known only when
#    the posterior odds of its own side are at least KEEP_ODDS; otherwise it becomes unknown
#    (with a small margin, since the edges of such a patch are mixed pixels). Posterior odds =
#    the mask's prior odds x the colour likelihood ratio: on the foreground side the
#    prior is the source's own soft probability (odds p / (1 - p)), so a pixel the source is
#    sure of stays known whatever the colours around it -- skin in front of skin-coloured trees
#    is not released to the solve -- and a pixel the source is only fairly sure of is released
#    when its colour clearly belongs to the background. On the background side, and for a
#    *binary* mask (file masks; see ``_mask_prior``), which states no confidence, the prior
#    odds are 1: colour alone decides (why, see ``doubted``). The colour
#    likelihoods are local colour histograms (colours quantised to
#    COLOUR_CLUSTERS k-means clusters) over windows of WINDOW_FRACTION of the long side,
#    re-estimated once without the pixels found doubtful. The doubt can only act within half a
#    window of the contour (the zone), so clusters are assigned only where those windows reach
#    and the likelihoods read back only in the zone (``_colour_doubt``); ``colour_posterior``
#    gives the same likelihoods at every pixel.

#: Soft-mask probability beyond which a pixel is confidently foreground (and below 1 - this,
#: confidently background); in between the mask itself is unsure, so the pixel is unknown.
CONFIDENT = 0.9
#: A known pixel keeps its label when the posterior odds of its side (the mask's prior odds x the
#: colour likelihood ratio) are at least this (posterior >= 0.75); 3:1 odds. With a binary mask
#: (prior odds 1): when its side's local colour model explains its colour at least 3x better.
KEEP_ODDS = 3.0
#: A mask is a soft probability (its values are a prior for step 4) when its transition from 0 to
#: 1 is on average wider than this many pixels across its contour (pixels strictly between 1/255
#: and 254/255, per contour pixel). A binary mask has none; an anti-aliased one about one (the
#: edge pixel itself); the person segmenter's map, upsampled from 256 px and smoothed, is ~17
#: px wide on a 512-px frame (skimage's astronaut). 2 lies between by construction, not tuned.
SOFT_TRANSITION_PX = 2.0
#: Colour clusters of the local colour histograms.
COLOUR_CLUSTERS = 16
#: Local colour-model window, as a fraction of the frame's long side (odd size in pixels); also
#: how far from the contour certainty can be let go of.
WINDOW_FRACTION = 0.1
#: The local colour histograms are counted per square cell of a grid anchored at the frame's
#: origin, the window being WINDOW_CELLS cells across (rounded to odd; a cell is
#: round(window / WINDOW_CELLS) px, at least 1), and read back at each pixel by bilinear
#: interpolation between cell centres. Two neighbouring cells' windows share
#: (WINDOW_CELLS - 1) / WINDOW_CELLS of their samples, so the likelihoods read back differ from
#: those of the pixel's own window by ~1/WINDOW_CELLS of a window's samples: the error halves
#: with each doubling while the cell work (box filters, tables) quadruples. Measured against the
#: exact per-pixel windows on person composites at 720p and 1080p (issue 29): trimap labels
#: changed on 0.15 % of pixels on average at 16, 0.07 % at 32, 0.03 % at 64. At 320 px and below
#: the cells are 1 px: exact. (Before issue 29 the histograms were counted at a working
#: resolution of 960 px, 97 working px per window at 720p and 1080p, with per-pixel products of
#: separately resized cluster and side shares, which let samples removed in the second round
#: back in: 0.5-2.8 % of the labels differed from the exact windows.)
WINDOW_CELLS = 32
#: The histograms' samples: every pixel where cells are smaller than 2 x this, else a lattice
#: of about this many samples per cell side (stride cell // this; 720p: every 2nd pixel each
#: way, 1080p: every 3rd). A window is then counted from ~(2 x WINDOW_CELLS)^2 ~ 4000 regularly
#: spaced samples. Measured against every pixel on person composites at 720p and 1080p (issue
#: 29): trimap labels changed on 0.11 % (720p) and 0.13 % (1080p) of pixels on average, max
#: 0.37 % (every pixel counted: 0.06 % and 0.07 %), for half the cluster assignments.
SAMPLES_PER_CELL_SIDE = 2
#: Rounds of colour-model estimation (the second without the pixels the first found doubtful).
DOUBT_ROUNDS = 2
#: The outward band may grow up to this many times its base width where the image just outside
#: the contour has more fine structure than the background farther out (``_outward_widening``).
#: 1.0 = off: with 3.0 the coarse-mask benchmark got worse (mean whole-image SAD 5.43 -> 5.75 on
#: alphamatting-dev): on these photos the wider band costs more in the solve than it recovers
#: of hair; the colour-doubt step (4.) already reaches fg-coloured structure outside the mask.
MAX_WIDEN = 1.0


def _odd(n: float) -> int:
    k = max(1, int(round(n)))
    return k if k % 2 else k + 1


def _unit(rgb: np.ndarray) -> np.ndarray:
    """uint8 -> float32 / 255; float -> float32 (a copy only where needed)."""
    return rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32, copy=False)


def _fit_centres(rgb: np.ndarray, clusters: int) -> np.ndarray:
    """(k, 3) float32 k-means colour centres of ``rgb`` (H,W,3) (uint8, or float in [0,1]), fitted
    on a sparse grid of ~20000 pixels; deterministic: fixed OpenCV seed, k-means++ init."""
    import cv2

    h, w = rgb.shape[:2]
    step = max(1, int(math.sqrt(h * w / 20000.0)))
    sample = np.ascontiguousarray(_unit(rgb[::step, ::step]).reshape(-1, 3), dtype=np.float32)
    k = int(min(clusters, len(sample)))
    cv2.setRNGSeed(12345)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1e-3)
    _, _, centres = cv2.kmeans(sample, k, None, crit, 1, cv2.KMEANS_PP_CENTERS)
    return np.ascontiguousarray(centres, dtype=np.float32)


def _nearest_centre(colours: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(N,3) float32 colours -> (N,) int32 index of the nearest of ``centres`` (k,3) (squared
    Euclidean distance; OpenCV's batchDistance, several times faster than numpy's argmin over
    the rows of an (N, k) distance matrix)."""
    import cv2

    x = np.ascontiguousarray(colours, dtype=np.float32)
    if len(x) == 0:
        return np.zeros(0, np.int32)
    _, index = cv2.batchDistance(x, centres, cv2.CV_32F, normType=cv2.NORM_L2SQR, K=1)
    return index.ravel().astype(np.int32, copy=False)


def _quantise_colours(rgb: np.ndarray, clusters: int) -> np.ndarray:
    """(H,W,3) uint8 or float [0,1] -> (H,W) int labels of ``clusters`` k-means colour clusters."""
    h, w = rgb.shape[:2]
    return _nearest_centre(_unit(rgb).reshape(-1, 3), _fit_centres(rgb, clusters)).reshape(h, w)


def _cell_grid(window: int) -> tuple[int, int]:
    """(cell size in px, window in cells (odd)) of the colour histograms for a ``window``-px window."""
    cell = max(1, int(round(window / WINDOW_CELLS)))
    return cell, _odd(window / cell)


def _read_back(coord: np.ndarray, cell: int, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear read-back of pixel coordinates ``coord`` (one axis) from a grid of ``cells`` cells of
    ``cell`` px, sampled at the cells' centres: (lower cell, upper cell, weight of the upper),
    clamped at the ends (as ``cv2.resize`` with INTER_LINEAR)."""
    t = np.clip((coord.astype(np.float32) + 0.5) / cell - 0.5, 0.0, float(cells - 1))
    lo = t.astype(np.intp)  # t >= 0: truncation is floor
    return lo, np.minimum(lo + 1, cells - 1), (t - lo).astype(np.float32)


class _LocalHistograms:
    """Local colour histograms of the pixels ``ys`` x ``xs`` (a rectangle of the frame, aligned to
    the cell grid of the whole frame) and their read-back at some pixels of it.

    ``counts`` (cells_y, cells_x, sides, k) float32: per cell of the rectangle, the samples of each
    side (foreground, background) in each colour cluster. :meth:`likelihoods` counts them over
    each cell's window (box filter over cells, nothing outside the rectangle: the rectangle is
    chosen so that every window read back lies within it or outside the frame) and reads each
    pixel's own cluster back, interpolated between the 2x2 nearest cell centres.
    """

    def __init__(self, shape: tuple[int, int], y0: int, x0: int, cells_y: int, cells_x: int, cell: int, win: int):
        self.h, self.w = shape
        self.y0, self.x0, self.cell, self.win = y0, x0, cell, win  # y0, x0: first cell of the rectangle
        self.cells_y, self.cells_x = cells_y, cells_x

    def cell_of(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Flat index of the rectangle's cell holding each pixel (absolute coordinates)."""
        return (y // self.cell - self.y0) * self.cells_x + (x // self.cell - self.x0)

    def reader(self, y: np.ndarray, x: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Read-back of pixels (absolute coordinates) of clusters ``labels`` (N,) out of ``k``: flat
        indices (4, N) of (cell, cluster) in the rectangle's tables and bilinear weights (4, N)."""
        # the read-back of a row (column) is the same for every pixel in it: per row and column once
        y_lo, y_hi, wy = _read_back(np.arange(self.h), self.cell, -(-self.h // self.cell))
        x_lo, x_hi, wx = _read_back(np.arange(self.w), self.cell, -(-self.w // self.cell))
        step = self.cells_x * k
        row_lo, row_hi = ((y_lo - self.y0) * step).astype(np.int32)[y], ((y_hi - self.y0) * step).astype(np.int32)[y]
        col_lo = ((x_lo - self.x0) * k).astype(np.int32)[x] + labels
        col_hi = ((x_hi - self.x0) * k).astype(np.int32)[x] + labels
        index = np.stack([row_lo + col_lo, row_lo + col_hi, row_hi + col_lo, row_hi + col_hi])
        wy, wx = wy[y], wx[x]
        weight = np.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx])
        return index, weight

    def likelihoods(self, counts: np.ndarray, read: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per read-back pixel (:meth:`reader`), the share of the foreground's and of the
        background's samples in the pixel's window that fall in the pixel's colour cluster:
        two (N,) float32. ``counts``: (cells_y, cells_x, 2, k) float32."""
        import cv2

        cy, cx, sides, k = counts.shape
        # both sides' cluster counts and totals, boxed in one call (OpenCV takes up to 512 channels)
        stack = np.concatenate([counts.reshape(cy, cx, sides * k), counts.sum(-1)], axis=-1)
        boxed = cv2.boxFilter(stack, -1, (self.win, self.win), normalize=False, borderType=cv2.BORDER_CONSTANT)
        boxed = boxed.reshape(cy * cx, -1)
        share = boxed[:, : sides * k].reshape(-1, sides, k) / (boxed[:, sides * k :, None] + 1e-3)
        # (cell * k + cluster) -> foreground + 1j * background share: one gather per corner for both
        table = np.ascontiguousarray(share.transpose(0, 2, 1)).view(np.complex64).ravel()
        index, weight = read
        both = table.take(index)  # (4, N)
        return np.einsum("ij,ij->j", weight, both.real), np.einsum("ij,ij->j", weight, both.imag)


def _rectangle(h: int, w: int, ys: np.ndarray, xs: np.ndarray, cell: int, win: int) -> tuple[int, int, int, int]:
    """The cells (y0, y1, x0, x1; half-open) whose samples reach the read-back of pixels spanning
    rows ``ys`` and columns ``xs`` (their min and max): their 2x2 read-back cells +- win // 2."""
    r = win // 2
    ny, nx = -(-h // cell), -(-w // cell)
    y_lo, _, _ = _read_back(np.array([ys.min()]), cell, ny)
    _, y_hi, _ = _read_back(np.array([ys.max()]), cell, ny)
    x_lo, _, _ = _read_back(np.array([xs.min()]), cell, nx)
    _, x_hi, _ = _read_back(np.array([xs.max()]), cell, nx)
    return (max(0, int(y_lo[0]) - r), min(ny, int(y_hi[0]) + r + 1), max(0, int(x_lo[0]) - r), min(nx, int(x_hi[0]) + r + 1))


def colour_posterior(rgb: np.ndarray, fg_weight: np.ndarray, bg_weight: np.ndarray, window: int,
                     clusters: int = COLOUR_CLUSTERS, labels: Optional[np.ndarray] = None) -> np.ndarray:
    """P(background | colour) at every pixel from local colour histograms.

    For each pixel, the likelihood of its colour cluster under the foreground (background)
    samples of the ``window`` x ``window`` neighbourhood is the share of those samples in that
    cluster; the posterior assumes equal priors. The histograms are counted per cell of
    ``window / WINDOW_CELLS`` px and interpolated between cell centres (see WINDOW_CELLS).
    :func:`auto_trimap_numpy` computes the same likelihoods, only at the pixels near the contour.

    Args:
        rgb: (H,W,3) uint8, or float32 in [0,1].
        fg_weight, bg_weight: (H,W) float sample weights (1 = a sample of that side).
        window: odd window size in pixels.
        labels: precomputed cluster labels (else :func:`_quantise_colours`).
    Returns:
        (H,W) float32 in (0,1).
    """
    if labels is None:
        labels = _quantise_colours(rgb, clusters)
    h, w = labels.shape
    k = int(labels.max()) + 1
    cell, win = _cell_grid(window)
    ny, nx = -(-h // cell), -(-w // cell)
    hist = _LocalHistograms((h, w), 0, 0, ny, nx, cell, win)
    yy, xx = np.divmod(np.arange(h * w), w)
    bins = hist.cell_of(yy, xx) * k + labels.ravel()
    counts = np.stack([np.bincount(bins, weights=np.asarray(a, np.float64).ravel(), minlength=ny * nx * k)
                       for a in (fg_weight, bg_weight)], axis=1)
    counts = counts.reshape(ny, nx, k, 2).transpose(0, 1, 3, 2).astype(np.float32) / float(cell * cell)
    like_f, like_b = hist.likelihoods(counts, hist.reader(yy, xx, labels.ravel(), k))
    eps = 1e-3
    return ((like_b + eps) / (like_f + like_b + 2.0 * eps)).reshape(h, w)


def _below_keep_odds(fg: np.ndarray, own: np.ndarray, other: np.ndarray, prior_fg: Optional[np.ndarray]) -> np.ndarray:
    """The rule of :func:`doubted` on colour likelihoods: ``own`` / ``other`` (> 0) = the likelihood
    ratio of each pixel's own side; the posterior odds (prior odds x that ratio) below KEEP_ODDS.

    The prior odds are max(q / (1 - q), 1) on the foreground side and 1 on the background side
    (q = ``prior_fg``; see :func:`doubted`), multiplied out so that q = 1 (certainty) needs no
    division: own * max(q, 1 - q) < KEEP_ODDS * other * (1 - q) is never true there."""
    if prior_fg is None:
        return own < KEEP_ODDS * other
    q = prior_fg
    keep = np.where(fg, np.maximum(q, 1.0 - q), 1.0)
    rest = np.where(fg, 1.0 - q, 1.0)
    return own * keep < KEEP_ODDS * other * rest


def _sample_stride(cell: int) -> int:
    """Stride of the sample lattice of the colour histograms for cells of ``cell`` px (see
    SAMPLES_PER_CELL_SIDE): every pixel up to 3-px cells, then about 2 x 2 samples per cell."""
    return max(1, cell // SAMPLES_PER_CELL_SIDE)


def _colour_doubt(rgb: np.ndarray, fg: np.ndarray, prior_fg: Optional[np.ndarray], zone: np.ndarray,
                  window: int, stride: Optional[int] = None) -> np.ndarray:
    """Step 4 of :func:`auto_trimap_numpy`: the pixels of ``zone`` whose own side's posterior odds
    are below KEEP_ODDS, from local colour histograms over ``window`` re-estimated DOUBT_ROUNDS
    times (each round without the samples the previous one found doubtful by colour alone).

    The likelihoods of :func:`colour_posterior` with ``fg`` / ``~fg`` as samples, computed where
    they are needed only: the samples are the pixels of a lattice of ``stride`` px (None =
    :func:`_sample_stride`; 1 = every pixel, then exactly :func:`colour_posterior`'s) in the
    rectangle of cells whose windows a zone pixel reads; the rounds before the last are decided
    at the samples in the zone (only samples can be removed), the last at the zone pixels that
    can be doubted at all (a foreground prior of 1 never is); a round updates the counts by
    removing the doubtful samples instead of counting everything again.

    Args:
        rgb: (H,W,3) uint8 or float in [0,1] (any strides). fg: (H,W) bool side of each pixel.
        prior_fg: (H,W) the mask's P(foreground) or None (see :func:`doubted`).
        zone: (H,W) bool, the pixels that may be doubted.
    Returns:
        (H,W) bool.
    """
    h, w = fg.shape
    out = np.zeros((h, w), bool)
    zy, zx = np.nonzero(zone)
    if len(zy) == 0:
        return out
    cell, win = _cell_grid(window)
    step = _sample_stride(cell) if stride is None else int(stride)
    cy0, cy1, cx0, cx1 = _rectangle(h, w, zy, zx, cell, win)
    y0, y1, x0, x1 = cy0 * cell, min(h, cy1 * cell), cx0 * cell, min(w, cx1 * cell)
    # the lattice: rows and columns = step // 2 modulo step, anchored at the frame's origin
    sy0, sx0 = y0 + (step // 2 - y0) % step, x0 + (step // 2 - x0) % step
    if sy0 >= y1 or sx0 >= x1:  # a rectangle narrower than the stride (tiny frames)
        step, sy0, sx0 = 1, y0, x0
    lattice = (slice(sy0, y1, step), slice(sx0, x1, step))
    ly, lx = np.arange(sy0, y1, step), np.arange(sx0, x1, step)
    centres = _fit_centres(rgb, COLOUR_CLUSTERS)
    k = len(centres)
    labels = _nearest_centre(_unit(rgb[lattice]).reshape(-1, 3), centres).reshape(len(ly), len(lx))
    hist = _LocalHistograms((h, w), cy0, cx0, cy1 - cy0, cx1 - cx0, cell, win)
    # bins (cell, side, cluster), side 0 = foreground, 1 = background
    row_bin = ((ly // cell - cy0) * (hist.cells_x * 2 * k))[:, None]
    col_bin = ((lx // cell - cx0) * (2 * k))[None, :]
    size = hist.cells_y * hist.cells_x * 2 * k
    fg_s = fg[lattice]
    bins = row_bin + col_bin + labels + k * ~fg_s
    counts0 = np.bincount(bins.ravel(), minlength=size)
    scale = float(step * step) / float(cell * cell)  # a sample stands for step x step pixels
    eps = 1e-3

    def odds(counts: np.ndarray, read: tuple[np.ndarray, np.ndarray], side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cnt = (counts.astype(np.float32) * scale).reshape(hist.cells_y, hist.cells_x, 2, k)
        like_f, like_b = hist.likelihoods(cnt, read)
        return np.where(side, like_f, like_b) + eps, np.where(side, like_b, like_f) + eps

    counts = counts0
    if DOUBT_ROUNDS > 1:
        in_zone = zone[lattice]
        sy, sx = np.nonzero(in_zone)
        s_fg, s_bins = fg_s[in_zone], bins[in_zone]
        read = hist.reader(ly[sy], lx[sx], labels[in_zone], k)
        for _ in range(DOUBT_ROUNDS - 1):
            # the colour models are re-estimated without the samples whose colour is doubtful,
            # whatever the mask's confidence in their label: the likelihoods measure colour alone
            unsure = _below_keep_odds(s_fg, *odds(counts, read, s_fg), None)
            counts = counts0 - np.bincount(s_bins[unsure], minlength=size)
    # the last round: posterior odds = the mask's prior odds x the colour likelihood ratio (with a
    # binary mask, no prior: colour alone), at the zone pixels that can be doubted
    can = zone if prior_fg is None else zone & ~(fg & (prior_fg >= 1.0))
    cy, cx = np.nonzero(can)
    if len(cy) == 0:
        return out
    if step == 1:
        c_label = labels[can[lattice]]
    else:
        c_label = _nearest_centre(_unit(rgb[cy, cx]), centres)
    c_fg = fg[cy, cx]
    own, other = odds(counts, hist.reader(cy, cx, c_label, k), c_fg)
    out[cy, cx] = _below_keep_odds(c_fg, own, other, None if prior_fg is None else prior_fg[cy, cx])
    return out


def _outward_widening(gray: np.ndarray, fg: np.ndarray, dist_out: np.ndarray, reach: float) -> np.ndarray:
    """Per-pixel factor in [1, MAX_WIDEN] for the outer band: fine structure just outside the
    contour (within ``reach``) compared with the background beyond it."""
    import cv2

    hf = np.abs(gray - cv2.GaussianBlur(gray, (0, 0), 1.5))
    near = ((dist_out > 0) & (dist_out <= reach)).astype(np.float32)
    far = ((dist_out > reach) & (dist_out <= 3 * reach)).astype(np.float32)
    size = (_odd(2 * reach), _odd(2 * reach))
    e_near = cv2.boxFilter(hf * near, -1, size, normalize=False) / (cv2.boxFilter(near, -1, size, normalize=False) + 1e-3)
    big = (_odd(6 * reach), _odd(6 * reach))
    e_far = cv2.boxFilter(hf * far, -1, big, normalize=False) / (cv2.boxFilter(far, -1, big, normalize=False) + 1e-3)
    ratio = e_near / (e_far + 1e-3)
    return np.clip(ratio, 1.0, MAX_WIDEN)


def _mask_prior(prob: np.ndarray, fg: np.ndarray) -> Optional[np.ndarray]:
    """The mask's prior P(foreground) for the doubt step, or None for a binary mask.

    A soft mask (transition wider than SOFT_TRANSITION_PX on average, see there) is the
    source's probability and is returned as is. A binary (or only anti-aliased) mask claims 0
    or 1 everywhere without saying how sure it is; taking that as a prior would make every
    pixel certain and switch the doubt off, so it gets no prior (odds 1: colour alone decides).
    """
    import cv2

    m = fg.astype(np.uint8)
    contour = int(((m > 0) & (cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE) == 0)).sum())
    between = int(((prob > 1.0 / 255.0) & (prob < 254.0 / 255.0)).sum())
    if contour == 0 or between < SOFT_TRANSITION_PX * contour:
        return None
    return np.clip(prob.astype(np.float32), 0.0, 1.0)


def doubted(fg: np.ndarray, p_bg: np.ndarray, prior_fg: Optional[np.ndarray]) -> np.ndarray:
    """Known pixels whose own side's posterior odds are below KEEP_ODDS (step 4 of ``auto_trimap``).

    Args:
        fg: (H,W) bool, the side each pixel is on.
        p_bg: (H,W) colour posterior P(background | colour) with equal priors
            (:func:`colour_posterior`), strictly inside (0, 1).
        prior_fg: (H,W) the mask's P(foreground), or None (binary mask: prior odds 1).
    Returns:
        (H,W) bool. Posterior odds of the own side = prior odds x colour likelihood ratio; a prior
        of exactly 1 on the foreground side is certainty: never doubted.

    The prior only ever *adds* confidence, and only to the foreground side:

    - where the source's probability of this frame leans the other way (the side comes from the
      temporally stabilised mask, which already weighed the source over time and kept the
      label), the prior odds are 1 -- colour alone, as for a binary mask. Counting this frame's
      probability against the stabilised label once more would undo the stabilisation;
    - on the background side the prior odds are 1 too. A segmenter's probability is a statement
      about its own grid cells (256 px across the frame for the person model): p ~ 0 says no
      *area* of subject there, not that no strand of hair crosses it -- the subject's structure
      finer than the source's grid lies on the background side of its contour (hair, flyaways),
      and only colour can find it. Inside, a confident probability is about the opaque body the
      source does resolve. Measured (soft coarse masks of ``bench/autotrimap.py --synthetic 6
      --soft``, mean whole-image SAD): colour alone 8.54, prior on both sides 9.65, prior on the
      foreground side only 8.89.
    """
    p_bg = p_bg.astype(np.float64)
    # odds of the own side by colour = (1 - p_bg) / p_bg on the foreground side, its inverse on the
    # background side: compared with KEEP_ODDS as own < KEEP_ODDS x other (no division, no logs)
    q = None if prior_fg is None else prior_fg.astype(np.float64)
    return _below_keep_odds(fg, np.where(fg, 1.0 - p_bg, p_bg), np.where(fg, p_bg, 1.0 - p_bg), q)


def auto_trimap_numpy(rgb: np.ndarray, prob: np.ndarray, band_px: Optional[int] = None,
                      binary: Optional[np.ndarray] = None) -> np.ndarray:
    """The automatic (evidence) trimap of one frame.

    Args:
        rgb: (H,W,3) uint8, or float in [0,1].
        prob: (H,W) float in [0,1], the mask source's soft probability of foreground.
        band_px: base band width (None = :func:`default_band_px`).
        binary: (H,W) bool foreground to take the contour from (e.g. the temporally stabilised
            mask); None = ``prob > 0.5``.
    Returns:
        (H,W) uint8 trimap in {0, 128, 255}.
    """
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3 or prob.shape != rgb.shape[:2]:
        raise UserInputError(f"auto_trimap: expected rgb (H,W,3) and prob (H,W), got {rgb.shape} and {prob.shape}")
    h, w = prob.shape
    band = default_band_px(h, w) if band_px is None else int(band_px)
    fg = (prob > 0.5) if binary is None else binary.astype(bool)
    m = fg.astype(np.uint8)
    trimap = np.where(fg, 255, 0).astype(np.uint8)
    if not m.any() or m.all():
        return trimap
    dist_in = cv2.distanceTransform(m, cv2.DIST_L2, 3)
    dist_out = cv2.distanceTransform(1 - m, cv2.DIST_L2, 3)
    half_in, half_out = band // 2, (band + 1) // 2
    # 1. the AlphaGAN band, 3. widened outwards over fine structure (at MAX_WIDEN = 1 the factor
    # is 1 everywhere: nothing to compute)
    if MAX_WIDEN > 1.0:
        gray = _unit(rgb).mean(axis=2)
        outer = dist_out <= half_out * _outward_widening(gray, fg, dist_out, reach=float(max(2 * half_out, 2)))
    else:
        outer = dist_out <= half_out
    unknown = (fg & (dist_in <= half_in)) | (~fg & outer)
    # 2. the mask's own uncertain zone
    p = prob.astype(np.float32, copy=False)
    unknown |= (p > 1.0 - CONFIDENT) & (p < CONFIDENT)
    # ... and where the source is sure of one side but the contour's mask (``binary``: held back
    # over time by the stabiliser's hysteresis, e.g. over a face that has just appeared) says the
    # other: the two disagree, so neither is known (a face anchor would otherwise become certain
    # background). Without ``binary`` the two never disagree.
    unknown |= (~fg & (p >= CONFIDENT)) | (fg & (p <= 1.0 - CONFIDENT))
    # 4. let go of wrong certainty near the contour
    window = _odd(WINDOW_FRACTION * max(h, w))
    zone = np.maximum(dist_in, dist_out) <= window // 2  # one of the two is 0
    doubt = _colour_doubt(rgb, fg, _mask_prior(p, fg), zone, window)
    margin = max(1, band // 4)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    doubt = cv2.dilate(doubt.astype(np.uint8), kernel) > 0
    unknown |= doubt
    trimap[unknown] = 128
    return trimap


def auto_trimap(image: torch.Tensor, mask: torch.Tensor, band_px: Optional[int] = None,
                binary: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Batched :func:`auto_trimap_numpy` on tensors.

    Args:
        image: (B,3,H,W) float in [0,1]; mask: (B,1,H,W) float soft probability in [0,1];
        binary: optional (B,1,H,W) stabilised mask whose contour is used (> 0.5 = foreground).
    Returns:
        (B,1,H,W) float32 trimap in {0, 0.5, 1} on ``image``'s device. Computed on the CPU.
    """
    _check_b1hw("auto_trimap", "mask", mask)
    # (B,H,W,3) views of the tensors, no copies: the trimap reads the colours it needs only
    rgb = image.detach().float().cpu().permute(0, 2, 3, 1).numpy()
    prob = mask.detach().float()[:, 0].cpu().numpy()
    bins = None if binary is None else (binary.detach().float()[:, 0] > 0.5).cpu().numpy()
    codes = np.stack([
        auto_trimap_numpy(rgb[i], prob[i], band_px, None if bins is None else bins[i]) for i in range(rgb.shape[0])
    ])
    value = np.zeros(256, np.float32)  # {0, 128, 255} -> {0, 0.5, 1}
    value[128], value[255] = 0.5, 1.0
    return torch.from_numpy(value[codes])[:, None].to(image.device)


__all__ = ["CONFIDENT", "KEEP_ODDS", "auto_trimap", "auto_trimap_numpy", "colour_posterior"]
