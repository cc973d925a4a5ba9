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
#    re-estimated once without the pixels found doubtful.

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
#: Colour histograms are counted at a working resolution of at most this long side (photos of
#: 800 px are counted at full resolution).
POSTERIOR_SIDE = 960
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


def _quantise_colours(rgb: np.ndarray, clusters: int) -> np.ndarray:
    """(H,W,3) float32 [0,1] -> (H,W) int labels of ``clusters`` k-means colour clusters
    (fitted on a sparse grid; deterministic: fixed OpenCV seed, k-means++ init)."""
    import cv2

    h, w = rgb.shape[:2]
    step = max(1, int(math.sqrt(h * w / 20000.0)))
    sample = np.ascontiguousarray(rgb[::step, ::step].reshape(-1, 3), dtype=np.float32)
    k = int(min(clusters, len(sample)))
    cv2.setRNGSeed(12345)
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1e-3)
    _, _, centres = cv2.kmeans(sample, k, None, crit, 1, cv2.KMEANS_PP_CENTERS)
    flat = rgb.reshape(-1, 3)
    labels = np.empty(h * w, np.int32)
    norms = (centres * centres).sum(1)[None]
    chunk = 1 << 16  # nearest centre in chunks: (chunk, k) distances, not (H*W, k) (peak memory)
    for i in range(0, h * w, chunk):
        part = flat[i : i + chunk].astype(np.float32)
        labels[i : i + chunk] = (norms - 2.0 * part @ centres.T).argmin(1)
    return labels.reshape(h, w)


def colour_posterior(rgb: np.ndarray, fg_weight: np.ndarray, bg_weight: np.ndarray, window: int,
                     clusters: int = COLOUR_CLUSTERS, labels: Optional[np.ndarray] = None) -> np.ndarray:
    """P(background | colour) at every pixel from local colour histograms.

    For each pixel, the likelihood of its colour cluster under the foreground (background)
    samples of the ``window`` x ``window`` neighbourhood is the share of those samples in that
    cluster; the posterior assumes equal priors.

    Args:
        rgb: (H,W,3) float32 in [0,1].
        fg_weight, bg_weight: (H,W) float32 sample weights (1 = a sample of that side).
        window: odd window size in pixels.
        labels: precomputed cluster labels (else :func:`_quantise_colours`).
    Returns:
        (H,W) float32 in (0,1).
    """
    import cv2

    if labels is None:
        labels = _quantise_colours(rgb, clusters)
    h, w = labels.shape
    # The windows are a tenth of the frame: the histograms are counted at a working resolution
    # of at most POSTERIOR_SIDE (1080p: 3.5x faster), then read back at full resolution.
    scale = min(1.0, POSTERIOR_SIDE / max(h, w))
    small = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    win = _odd(window * scale)
    size = (win, win)

    def down(a: np.ndarray) -> np.ndarray:
        a = a.astype(np.float32)
        return a if scale == 1.0 else cv2.resize(a, small, interpolation=cv2.INTER_AREA)

    def up(a: np.ndarray) -> np.ndarray:
        return a if scale == 1.0 else cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)

    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, -1, size, normalize=False, borderType=cv2.BORDER_CONSTANT)

    fg_s, bg_s = down(fg_weight), down(bg_weight)
    nf = box(fg_s) + 1e-3
    nb = box(bg_s) + 1e-3
    like_f = np.zeros(labels.shape, np.float32)
    like_b = np.zeros(labels.shape, np.float32)
    for c in range(int(labels.max()) + 1):
        ind = labels == c
        if not ind.any():
            continue
        ind_s = down(ind)
        like_f[ind] = up(box(ind_s * fg_s) / nf)[ind]
        like_b[ind] = up(box(ind_s * bg_s) / nb)[ind]
    eps = 1e-3
    return (like_b + eps) / (like_f + like_b + 2.0 * eps)


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
    log_lr = np.log1p(-p_bg) - np.log(p_bg)  # log Lf / Lb
    log_post = np.where(fg, log_lr, -log_lr)
    if prior_fg is not None:
        q = prior_fg.astype(np.float64)
        with np.errstate(divide="ignore"):
            log_prior = np.log(q) - np.log1p(-q)  # +inf where the source is certain
        log_post = log_post + np.where(fg, np.maximum(log_prior, 0.0), 0.0)
    return log_post < math.log(KEEP_ODDS)


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
    img = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
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
    # 1. the AlphaGAN band, 3. widened outwards over fine structure
    gray = img.mean(axis=2)
    widen = _outward_widening(gray, fg, dist_out, reach=float(max(2 * half_out, 2)))
    unknown = (fg & (dist_in <= half_in)) | (~fg & (dist_out <= half_out * widen))
    # 2. the mask's own uncertain zone
    p = prob.astype(np.float32)
    unknown |= (p > 1.0 - CONFIDENT) & (p < CONFIDENT)
    # 4. let go of wrong certainty near the contour
    window = _odd(WINDOW_FRACTION * max(h, w))
    zone = np.maximum(dist_in, dist_out) <= window // 2  # one of the two is 0
    labels = _quantise_colours(img, COLOUR_CLUSTERS)
    fg_w = fg.astype(np.float32)
    bg_w = (~fg).astype(np.float32)
    for _ in range(DOUBT_ROUNDS):
        p_bg = colour_posterior(img, fg_w, bg_w, window, labels=labels)
        # the colour models are re-estimated without the pixels whose colour is doubtful, whatever
        # the mask's confidence in their label: the likelihoods measure colour alone
        unsure_colour = zone & doubted(fg, p_bg, None)
        fg_w = (fg & ~unsure_colour).astype(np.float32)
        bg_w = (~fg & ~unsure_colour).astype(np.float32)
    # posterior odds = the mask's prior odds x the last round's colour likelihood ratio; with a
    # binary mask (no prior) this is ``unsure_colour`` itself (colour alone)
    prior_fg = _mask_prior(p, fg)
    doubt = unsure_colour if prior_fg is None else zone & doubted(fg, p_bg, prior_fg)
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
    rgb = image.detach().float().permute(0, 2, 3, 1).cpu().numpy()
    prob = mask.detach().float()[:, 0].cpu().numpy()
    bins = None if binary is None else (binary.detach().float()[:, 0] > 0.5).cpu().numpy()
    out = np.stack([
        auto_trimap_numpy(rgb[i], prob[i], band_px, None if bins is None else bins[i]) for i in range(rgb.shape[0])
    ]).astype(np.float32) / 255.0
    out[(out > 0.25) & (out < 0.75)] = 0.5
    return torch.from_numpy(out)[:, None].to(image.device)


__all__ = ["CONFIDENT", "KEEP_ODDS", "auto_trimap", "auto_trimap_numpy", "colour_posterior"]
