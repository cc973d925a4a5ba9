"""Trimaps: derive them from coarse masks, draw random ones for training, convert user trimaps.

Convention inside the package: a trimap is a (B, 1, H, W) float tensor with values exactly
0 (background), 0.5 (unknown) and 1 (foreground). On disk / in the matting metrics it is uint8
0 / 128 / 255 (:func:`trimap_to_uint8`, :func:`trimap_from_uint8`).

The routine is AlphaGAN's: binarise the mask, dilate and erode it with an *elliptical*
structuring element (OpenCV's ``MORPH_ELLIPSE``), unknown = dilated minus eroded. The torch
implementation here runs on any device and equals ``cv2.dilate`` / ``cv2.erode`` with
``cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2r+1, 2r+1))`` and OpenCV's default borders
(pixels outside the image never dilate the mask and never erode it).
"""
from __future__ import annotations

import math
from typing import Optional, TypeVar, Union

import numpy as np
import torch

from alphagan_video.errors import UserInputError

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)

#: Unknown-band width as a fraction of the frame's short side (see :func:`default_band_px`).
BAND_FRACTION = 0.02
#: Smallest default band width in pixels.
MIN_BAND_PX = 4

#: Ranges of the random training trimap (AlphaGAN seed): kernel size in [2, 4], iterations in [5, 14].
RANDOM_KERNEL_SIZES = (2, 3, 4)
RANDOM_ITERATIONS = (5, 14)


def _check_b1hw(func: str, name: str, t: object) -> None:
    if not isinstance(t, torch.Tensor):
        raise UserInputError(f"{func}: {name} expected a torch.Tensor (B,1,H,W), got {type(t).__name__}")
    if t.ndim != 4 or t.shape[1] != 1:
        raise UserInputError(f"{func}: {name} expected (B,1,H,W), got {tuple(t.shape)}")


def ellipse_kernel(size: int) -> np.ndarray:
    """OpenCV's ``MORPH_ELLIPSE`` structuring element of shape (size, size), uint8 {0, 1}.

    Same formula as ``cv2.getStructuringElement`` (``imgproc/src/morph.dispatch.cpp``), so the
    torch morphology below needs no OpenCV; the tests check equality with OpenCV.

    >>> ellipse_kernel(3)
    array([[0, 1, 0],
           [1, 1, 1],
           [0, 1, 0]], dtype=uint8)
    """
    if size < 1:
        raise UserInputError(f"ellipse kernel size must be >= 1, got {size}")
    r = size // 2
    c = size // 2
    inv_r2 = 1.0 / (r * r) if r else 0.0
    kernel = np.zeros((size, size), dtype=np.uint8)
    for i in range(size):
        dy = i - r
        if abs(dy) <= r:
            # OpenCV's saturate_cast<int>(double) rounds half to even, like Python's round().
            dx = int(round(c * math.sqrt((r * r - dy * dy) * inv_r2)))
            j1 = max(c - dx, 0)
            j2 = min(c + dx + 1, size)
            kernel[i, j1:j2] = 1
    return kernel


def _row_half_widths(radius: int) -> list[int]:
    """Half-width of each row (dy = -radius..radius) of the (2r+1)-ellipse; rows are symmetric runs."""
    kernel = ellipse_kernel(2 * radius + 1)
    return [int(row.sum()) // 2 for row in kernel]


def _binary_dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilate a bool (B, 1, H, W) mask by the (2r+1)x(2r+1) ellipse; outside the image is False.

    The ellipse is a stack of centred horizontal runs, so dilation = OR over rows dy of the
    horizontally dilated mask (run half-width w(dy)) shifted by dy. Horizontal runs grow one
    pixel at a time, giving O(r) boolean passes instead of an O(r^2) convolution (a 45x45
    kernel at 2160p would otherwise cost ~17 G multiply-adds per frame).
    """
    if radius <= 0:
        return mask.clone()
    height, width = mask.shape[-2:]
    r = radius
    padded = torch.nn.functional.pad(mask, (r, r, r, r), value=False)
    widths = _row_half_widths(r)
    # horiz: for every padded row, the OR over columns x-w..x+w, restricted to output columns.
    horiz = padded[..., :, r : r + width].clone()
    current = 0
    out = torch.zeros_like(mask)
    for w in sorted(set(widths)):
        while current < w:
            current += 1
            horiz |= padded[..., :, r + current : r + current + width]
            horiz |= padded[..., :, r - current : r - current + width]
        for row, row_w in enumerate(widths):
            if row_w == w:  # row index = dy + r
                out |= horiz[..., row : row + height, :]
    return out


def _binary_erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Erode a bool (B, 1, H, W) mask by the ellipse; outside the image counts as foreground
    (OpenCV's default erode border), so masks touching the frame edge do not shrink there."""
    return ~_binary_dilate(~mask, radius)


def dilate_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation by an elliptical (2*radius+1)-square element.

    Args:
        mask: (B, 1, H, W) bool tensor, any device.
        radius: >= 0 pixels.

    Returns:
        (B, 1, H, W) bool, equal to ``cv2.dilate`` with ``MORPH_ELLIPSE``.
    """
    _check_b1hw("dilate_mask", "mask", mask)
    return _binary_dilate(mask.bool(), int(radius))


def erode_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary erosion by an elliptical (2*radius+1)-square element; (B, 1, H, W) bool in and out,
    equal to ``cv2.erode`` with ``MORPH_ELLIPSE`` and the default border."""
    _check_b1hw("erode_mask", "mask", mask)
    return _binary_erode(mask.bool(), int(radius))


def make_trimap(mask: torch.Tensor, band_px: int, threshold: float = 0.5) -> torch.Tensor:
    """AlphaGAN trimap from a coarse mask.

    Foreground = ``mask > threshold``. The mask is dilated by ``ceil(band_px / 2)`` and eroded by
    ``floor(band_px / 2)`` pixels with elliptical elements; unknown = dilated minus eroded, so the
    unknown band is ``band_px`` wide in total across a straight edge (the extra pixel of an odd
    band goes outside, where coarse masks usually miss hair). Deterministic.

    Args:
        mask: (B, 1, H, W) float in [0, 1] (or bool), any device.
        band_px: total unknown-band width in pixels, >= 0 (0 gives a binary trimap).
        threshold: binarisation threshold in [0, 1).

    Returns:
        trimap: (B, 1, H, W) float (mask's float dtype, else float32) in {0, 0.5, 1}, on the
        mask's device.

    Raises:
        UserInputError: wrong shape, negative band, threshold out of range.

    Example:
        >>> m = torch.zeros(1, 1, 5, 5); m[..., 1:4, 1:4] = 1
        >>> (make_trimap(m, 2)[0, 0] * 2).int().tolist()
        [[0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [1, 1, 2, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]]
    """
    _check_b1hw("make_trimap", "mask", mask)
    if isinstance(band_px, bool) or not isinstance(band_px, (int, np.integer)) or band_px < 0:
        raise UserInputError(f"make_trimap: band_px must be an integer >= 0, got {band_px!r}")
    if not 0.0 <= float(threshold) < 1.0:
        raise UserInputError(f"make_trimap: threshold must be in [0, 1), got {threshold!r}")
    fg = mask if mask.dtype == torch.bool else mask > threshold
    dilated = _binary_dilate(fg, (int(band_px) + 1) // 2)
    eroded = _binary_erode(fg, int(band_px) // 2)
    dtype = mask.dtype if mask.is_floating_point() else torch.float32
    trimap = dilated.to(dtype) * 0.5
    trimap[eroded] = 1.0
    return trimap


def default_band_px(height: int, width: int) -> int:
    """Default unknown-band width: 2 % of the short side, at least 4 pixels.

    Gives 10 px at 480p (854x480), 22 px at 1080p, 43 px at 2160p; 4 px below 200 px.

    >>> default_band_px(1080, 1920), default_band_px(480, 854), default_band_px(2160, 3840)
    (22, 10, 43)
    """
    if height < 1 or width < 1:
        raise UserInputError(f"default_band_px: frame size must be >= 1x1, got {width}x{height}")
    return max(MIN_BAND_PX, int(round(BAND_FRACTION * min(height, width))))


def sample_random_trimap_params(rng: np.random.Generator) -> tuple[int, int]:
    """Draw (kernel_size in 2..4, iterations in 5..14) for :func:`random_trimap` from ``rng``."""
    if not isinstance(rng, np.random.Generator):
        raise UserInputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    kernel_size = int(rng.integers(RANDOM_KERNEL_SIZES[0], RANDOM_KERNEL_SIZES[-1] + 1))
    iterations = int(rng.integers(RANDOM_ITERATIONS[0], RANDOM_ITERATIONS[1] + 1))
    return kernel_size, iterations


def random_trimap(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The AlphaGAN seed's training trimap, with the randomness made explicit.

    Foreground = alpha >= 254/255 (after rounding to 8 bits), eroded; anything with alpha >=
    1/255, dilated, is not background; the rest of the dilated region is unknown. Kernel: OpenCV
    ellipse of size ``k`` in 2..4, applied ``n`` times, n in 5..14, both drawn from ``rng`` by
    :func:`sample_random_trimap_params` (same rng state -> same trimap). CPU/OpenCV: it runs per
    sample in the data loader.

    Args:
        alpha: (H, W) float in [0, 1].
        rng: numpy Generator; two draws are consumed.

    Returns:
        (H, W) uint8 in {0, 128, 255}.
    """
    import cv2

    if not isinstance(alpha, np.ndarray) or alpha.ndim != 2 or not np.issubdtype(alpha.dtype, np.floating):
        got = f"{alpha.dtype} {alpha.shape}" if isinstance(alpha, np.ndarray) else type(alpha).__name__
        raise UserInputError(f"random_trimap: alpha expected a float (H,W) array in [0, 1], got {got}")
    kernel_size, iterations = sample_random_trimap_params(rng)
    alpha8 = np.rint(np.clip(alpha, 0.0, 1.0) * 255.0)
    fg = (alpha8 >= 254).astype(np.uint8)
    nonzero = (alpha8 >= 1).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
    dilated = cv2.dilate(nonzero, kernel, iterations=iterations)
    eroded = cv2.erode(fg, kernel, iterations=iterations)
    trimap = np.full(alpha.shape, 128, dtype=np.uint8)
    trimap[eroded > 0] = 255
    trimap[dilated == 0] = 0
    return trimap


def clamp_known(alpha: ArrayOrTensor, trimap: ArrayOrTensor) -> ArrayOrTensor:
    """Force known trimap regions: 0 where trimap == 0, 1 where trimap == 1, alpha elsewhere.

    Args:
        alpha: (B, 1, H, W) float tensor (or numpy array of any shape) in [0, 1].
        trimap: same shape and type, values exactly {0, 0.5, 1}.

    Returns:
        A new tensor/array like ``alpha``.
    """
    if isinstance(alpha, torch.Tensor) and isinstance(trimap, torch.Tensor):
        if alpha.shape != trimap.shape:
            raise UserInputError(
                f"clamp_known: alpha {tuple(alpha.shape)} and trimap {tuple(trimap.shape)} must have the same shape"
            )
        trimap = trimap.to(alpha.device)
        out = alpha.clone()
        out[trimap == 0] = 0
        out[trimap == 1] = 1
        return out
    if isinstance(alpha, np.ndarray) and isinstance(trimap, np.ndarray):
        if alpha.shape != trimap.shape:
            raise UserInputError(
                f"clamp_known: alpha {alpha.shape} and trimap {trimap.shape} must have the same shape"
            )
        out_np = alpha.copy()
        out_np[trimap == 0] = 0
        out_np[trimap == 1] = 1
        return out_np
    raise UserInputError(
        "clamp_known: alpha and trimap must both be torch tensors or both numpy arrays, got "
        f"{type(alpha).__name__} and {type(trimap).__name__}"
    )


def trimap_from_uint8(trimap: np.ndarray) -> np.ndarray:
    """Convert a user trimap image to the float convention.

    Values <= 10 % of the dtype's maximum become 0, values >= 90 % become 1, the rest 0.5
    (uint8: <= 25 -> 0, >= 230 -> 1; uint16: <= 6553 -> 0, >= 58982 -> 1), so JPEG noise or a
    grey of 127/128/129 all read as intended.

    Args:
        trimap: (H, W), (H, W, 1), or (H, W, 3|4) uint8 or uint16 (colour: the mean of RGB).

    Returns:
        (H, W) float32 in {0, 0.5, 1}.
    """
    if not isinstance(trimap, np.ndarray) or trimap.dtype not in (np.uint8, np.uint16):
        got = trimap.dtype if isinstance(trimap, np.ndarray) else type(trimap).__name__
        raise UserInputError(f"trimap_from_uint8: expected a uint8 or uint16 array, got {got}")
    if trimap.ndim == 3 and trimap.shape[2] in (1, 3, 4):
        values = trimap[..., :3].astype(np.float32).mean(axis=2) if trimap.shape[2] >= 3 else trimap[..., 0]
    elif trimap.ndim == 2:
        values = trimap
    else:
        raise UserInputError(f"trimap_from_uint8: expected (H,W) or (H,W,1|3|4), got {trimap.shape}")
    top = float(np.iinfo(trimap.dtype).max)
    values = np.asarray(values, dtype=np.float32)
    out = np.full(values.shape, 0.5, dtype=np.float32)
    out[values <= 0.1 * top] = 0.0
    out[values >= 0.9 * top] = 1.0
    return out


def trimap_to_uint8(trimap: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """Float trimap {0, 0.5, 1} (numpy or tensor, any shape) -> numpy uint8 {0, 128, 255}, same shape.

    Values < 0.25 map to 0, > 0.75 to 255, the rest to 128.
    """
    if isinstance(trimap, torch.Tensor):
        values = trimap.detach().to("cpu", torch.float32).numpy()
    elif isinstance(trimap, np.ndarray):
        values = trimap.astype(np.float32, copy=False)
    else:
        raise UserInputError(f"trimap_to_uint8: expected a numpy array or torch tensor, got {type(trimap).__name__}")
    out = np.full(values.shape, 128, dtype=np.uint8)
    out[values < 0.25] = 0
    out[values > 0.75] = 255
    return out



# --------------------------------------------------------------------------- automatic trimaps
#
# Issue 15: the AlphaGAN routine above trusts the binarised mask everywhere outside a band of
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
#    the mask's prior odds x the colour likelihood ratio (issue 27): on the foreground side the
#    prior is the source's own soft probability (odds p / (1 - p)), so a pixel the source is
#    sure of stays known whatever the colours around it -- skin in front of skin-coloured trees
#    is not released to the solve -- and a pixel the source is only fairly sure of is released
#    when its colour clearly belongs to the background. On the background side, and for a
#    *binary* mask (file masks; see ``_mask_prior``), which states no confidence, the prior
#    odds are 1: colour alone decides (issue 15's rule; why, see ``doubted``). The colour
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
    # binary mask (no prior) this is ``unsure_colour`` itself (issue 15's rule)
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

__all__ = [
    "BAND_FRACTION",
    "auto_trimap",
    "auto_trimap_numpy",
    "colour_posterior",
    "MIN_BAND_PX",
    "clamp_known",
    "default_band_px",
    "dilate_mask",
    "ellipse_kernel",
    "erode_mask",
    "make_trimap",
    "random_trimap",
    "sample_random_trimap_params",
    "trimap_from_uint8",
    "trimap_to_uint8",
]
