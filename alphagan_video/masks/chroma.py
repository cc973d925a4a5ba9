"""``chroma``: green/blue-screen key with automatic settings.

Screen colour: found once, on the first frame, from a ring along the frame border (where a
screen almost always is): pixels whose green (or blue) channel clearly dominates are counted,
the larger family wins, and the key is the per-component median of their chroma. No screen
at the border -> MaskSourceError.

Keying: distance in the CbCr plane (BT.709), the chroma plane keyers work in. Each pixel's
chroma is first rescaled by ``Y_key / Y_pixel`` (clamped) so that a shadowed or unevenly lit
part of the screen, whose chroma shrinks with its luma, still matches the key. The low
threshold comes from the spread of the screen's own border pixels (its noise and lighting
variation), the ramp is a fraction of the key's saturation; subject = 1.

Fixed key (``MaskConfig.chroma_key``, R,G,B in [0, 1]): the screen colour is given
instead of detected, and the low threshold is ``MaskConfig.chroma_tolerance`` or, when that is
None, measured around the given key from the first frame's border (the noise floor when no
screen is visible there). Runs that must key identically (farm chunks, which each start on
another frame) use a fixed key and tolerance: the farm job fills both from frame 0 of the clip
(``chroma_settings``), exactly what an unchunked run with the same fixed key measures.
"""
from __future__ import annotations

from dataclasses import dataclass

import math
from typing import Optional, Sequence

import torch

from alphagan_video.errors import MaskSourceError
from alphagan_video.masks._morph import median3, open_close
from alphagan_video.types import VideoInfo

#: A border pixel counts as screen when its key channel exceeds both others by this much
#: (absolute, RGB in [0,1]) and by this fraction of its own value: a saturated screen, not a
#: bluish-grey wall (e.g. RGB 0.4, 0.5, 0.6 passes neither).
DOMINANCE = 0.10
MIN_SATURATION = 0.3
#: Fraction of the border ring that must be screen-coloured.
MIN_BORDER_FRACTION = 0.25
#: Ring width as a fraction of the short side.
BORDER_FRACTION = 0.04
#: Ramp width as a fraction of the key's chroma magnitude.
RAMP = 0.4
#: Floor of the low threshold (codec noise on a perfectly flat screen).
MIN_TOLERANCE = 0.02
#: A fixed key needs at least this CbCr magnitude (a grey "screen" cannot be keyed by chroma).
MIN_KEY_CHROMA = 0.05
#: Luma-normalisation clamp (shadows up to 1/3 of the key luma are still matched).
_GAIN_MIN, _GAIN_MAX = 0.5, 3.0

# BT.709 luma weights
_KR, _KG, _KB = 0.2126, 0.7152, 0.0722


def _ycbcr(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,3,H,W) RGB in [0,1] -> Y (B,1,H,W) and CbCr (B,2,H,W) in about [-0.5, 0.5]."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = _KR * r + _KG * g + _KB * b
    cb = (b - y) / (2.0 * (1.0 - _KB))
    cr = (r - y) / (2.0 * (1.0 - _KR))
    return y, torch.cat([cb, cr], dim=1)


@dataclass(frozen=True)
class ScreenKey:
    """The detected screen: ``colour`` name, luma, CbCr centre and the thresholds."""

    colour: str  # "green" | "blue"
    luma: float
    cbcr: tuple[float, float]
    low: float
    high: float


def _border_ring(frame: torch.Tensor) -> torch.Tensor:
    """(3,H,W) frame -> (3,N) float32 pixels of the border ring, on the CPU (the key's numbers
    then do not depend on the device the frames live on)."""
    _, h, w = frame.shape
    r = max(2, int(round(min(h, w) * BORDER_FRACTION)))
    return torch.cat(
        [
            frame[:, :r, :].reshape(3, -1),
            frame[:, -r:, :].reshape(3, -1),
            frame[:, r:-r, :r].reshape(3, -1),
            frame[:, r:-r, -r:].reshape(3, -1),
        ],
        dim=1,
    ).float().cpu()


def _screen_pixels(ring: torch.Tensor, colour: Optional[str] = None) -> tuple[str, torch.Tensor, float]:
    """Border pixels that are clearly green or blue screen: (colour, selection (N,) bool, share).
    ``colour`` None = the larger family wins."""
    red, green, blue = ring[0], ring[1], ring[2]
    g_margin = green - torch.maximum(red, blue)
    b_margin = blue - torch.maximum(red, green)
    is_green = (g_margin > DOMINANCE) & (g_margin > MIN_SATURATION * green)
    is_blue = (b_margin > DOMINANCE) & (b_margin > MIN_SATURATION * blue)
    if colour is None:
        colour = "green" if is_green.sum() >= is_blue.sum() else "blue"
    sel = is_green if colour == "green" else is_blue
    return colour, sel, float(sel.sum()) / ring.shape[1]


def _spread(px: torch.Tensor, key_y: float, key_c: torch.Tensor) -> float:
    """Low threshold: 98th percentile of the screen pixels' (1,3,N,1) CbCr distance from the key
    (after luma normalisation), with a small floor for codec noise."""
    y, c = _ycbcr(px)
    gain = (key_y / y.clamp(min=1e-4)).clamp(_GAIN_MIN, _GAIN_MAX)
    dist = torch.linalg.vector_norm(c * gain - key_c.view(1, 2, 1, 1), dim=1).flatten()
    return max(float(torch.quantile(dist[:: max(1, dist.numel() // 100_000)], 0.98)), MIN_TOLERANCE)


def _make_key(colour: str, key_y: float, cbcr: tuple[float, float], low: float) -> ScreenKey:
    mag = float(torch.linalg.vector_norm(torch.tensor(cbcr, dtype=torch.float32)))
    high = low + max(RAMP * mag, 0.03)
    return ScreenKey(colour, key_y, cbcr, low, high)


def detect_screen(frame: torch.Tensor) -> ScreenKey:
    """Find the screen colour on one frame (3,H,W) float in [0,1] from its border ring.

    Raises:
        MaskSourceError: fewer than ``MIN_BORDER_FRACTION`` of the border pixels are clearly
            green or blue.
    """
    ring = _border_ring(frame)
    colour, sel, share = _screen_pixels(ring)
    if share < MIN_BORDER_FRACTION:
        raise MaskSourceError.about(
            "mask.source", "chroma", f"only {share:.0%} of the frame border is green or blue screen "
            f"(need {MIN_BORDER_FRACTION:.0%}); use mask.source person, plate:PATH or file:PATH"
        )
    px = ring[:, sel].T[None, :, :, None].permute(0, 2, 1, 3)  # (1,3,N,1)
    y, c = _ycbcr(px)
    key_y = float(y.median())
    key_c = c[0, :, :, 0].median(dim=1).values  # (2,)
    low = _spread(px, key_y, key_c)
    return _make_key(colour, key_y, (float(key_c[0]), float(key_c[1])), low)


def check_key_rgb(rgb: Sequence[float]) -> tuple[float, float, float]:
    """Validate a fixed key colour: three finite numbers in [0, 1] with enough chroma.

    Raises:
        MaskSourceError: naming the value and the fix.
    """
    values = tuple(float(v) for v in rgb)
    text = ",".join(f"{v:g}" for v in values)
    if len(values) != 3 or not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise MaskSourceError.about(
            "mask.chroma_key", text, "expected R,G,B with each value in 0..1 (e.g. 0.1,0.7,0.2) or #RRGGBB"
        )
    r, g, b = values
    y = _KR * r + _KG * g + _KB * b
    chroma = math.hypot((b - y) / (2.0 * (1.0 - _KB)), (r - y) / (2.0 * (1.0 - _KR)))
    if chroma < MIN_KEY_CHROMA:
        raise MaskSourceError.about(
            "mask.chroma_key", text, f"that colour is nearly grey (chroma {chroma:.3f} < {MIN_KEY_CHROMA}), "
            "a chroma key cannot separate it; give the screen's colour, e.g. 0.1,0.7,0.2"
        )
    return values  # type: ignore[return-value]


def check_tolerance(tolerance: float) -> float:
    """Validate ``MaskConfig.chroma_tolerance``: a positive, finite CbCr distance."""
    low = float(tolerance)
    if not (math.isfinite(low) and low > 0.0):
        raise MaskSourceError(f"chroma_tolerance {tolerance!r}: must be a positive CbCr distance (e.g. 0.05)")
    return low


def key_from_rgb(
    rgb: Sequence[float], frame: Optional[torch.Tensor] = None, tolerance: Optional[float] = None
) -> ScreenKey:
    """A ScreenKey for the fixed screen colour ``rgb`` (R, G, B in [0, 1]).

    The low threshold is ``tolerance`` when given; else the spread around this key of the
    screen pixels at ``frame``'s border ((3,H,W) float [0,1]), or ``MIN_TOLERANCE`` when there
    is no frame or no screen at its border.
    Raises:
        MaskSourceError: a bad colour (see ``check_key_rgb``) or a tolerance <= 0.
    """
    r, g, b = check_key_rgb(rgb)
    y, c = _ycbcr(torch.tensor([r, g, b], dtype=torch.float32).view(1, 3, 1, 1))
    key_y = float(y)
    key_c = c.view(2)
    colour = "green" if g >= b else "blue"
    if tolerance is not None:
        low = check_tolerance(tolerance)
    elif frame is not None:
        ring = _border_ring(frame)
        _, sel, share = _screen_pixels(ring, colour)
        if share >= MIN_BORDER_FRACTION:
            low = _spread(ring[:, sel].T[None, :, :, None].permute(0, 2, 1, 3), key_y, key_c)
        else:
            low = MIN_TOLERANCE
    else:
        low = MIN_TOLERANCE
    return _make_key(colour, key_y, (float(key_c[0]), float(key_c[1])), low)


def key_rgb(key: ScreenKey, digits: int = 4) -> tuple[float, float, float]:
    """The key's colour as R, G, B in [0, 1] (inverse BT.709), rounded to ``digits`` decimals."""
    cb, cr = key.cbcr
    r = key.luma + 2.0 * (1.0 - _KR) * cr
    b = key.luma + 2.0 * (1.0 - _KB) * cb
    g = (key.luma - _KR * r - _KB * b) / _KG
    return tuple(round(min(max(v, 0.0), 1.0), digits) for v in (r, g, b))  # type: ignore[return-value]


def chroma_settings(frame: torch.Tensor) -> tuple[tuple[float, float, float], float]:
    """(key colour R,G,B, tolerance) that fix the key of a clip whose first frame is ``frame``
    ((3,H,W) float [0,1]): the detected screen colour, and the tolerance an unchunked run with
    ``MaskConfig.chroma_key`` set to that colour measures on this frame. Raises MaskSourceError as
    ``detect_screen``."""
    rgb = key_rgb(detect_screen(frame))
    return rgb, key_from_rgb(rgb, frame).low


def key_mask(frames: torch.Tensor, key: ScreenKey, denoise: bool = True, morph: int = 3) -> torch.Tensor:
    """(B,3,H,W) RGB [0,1] -> (B,1,H,W) soft subject mask in [0,1] for a detected ``key``.

    ``denoise``: 3x3 median of the chroma distance (a box blur there grew the mask by a pixel
    all round: IoU 0.95 vs 0.998 on a 160x120 test; the median also kept a dark subject on a
    noisy blue screen, IoU 0.96 -> 0.998 at noise sigma 10/255). ``morph``: opening/closing size.
    """
    y, c = _ycbcr(frames.float())
    gain = (key.luma / y.clamp(min=1e-4)).clamp(_GAIN_MIN, _GAIN_MAX)
    # written out per component: torch.linalg.vector_norm over dim=1 took ~400 ms per 1080p
    # frame on the CPU (strided reduction), this takes a few ms
    dcb = c[:, 0:1] * gain - key.cbcr[0]
    dcr = c[:, 1:2] * gain - key.cbcr[1]
    d = (dcb * dcb + dcr * dcr).sqrt_()
    if denoise:
        d = median3(d).to(d.device)
    soft = ((d - key.low) / (key.high - key.low)).clamp_(0.0, 1.0)
    return open_close(soft, morph)


class ChromaMaskSource:
    """Green/blue-screen key. ``__call__(frames (B,3,H,W), index)`` -> (B,1,H,W) [0,1].

    The key is detected on the first frame it sees and then kept (a subject walking to the
    border later must not change the screen colour). ``key`` exposes it after the first call.
    ``key_colour`` (R, G, B in [0, 1]) fixes the screen colour, ``tolerance`` the low
    threshold (see the module docstring); a bad colour fails here, before any decoding.
    """

    def __init__(
        self,
        info: VideoInfo,
        device: torch.device,
        key_colour: Optional[Sequence[float]] = None,
        tolerance: Optional[float] = None,
    ) -> None:
        self.device = torch.device(device)
        self.key: ScreenKey | None = None
        self.key_colour = check_key_rgb(key_colour) if key_colour is not None else None
        self.tolerance = check_tolerance(tolerance) if tolerance is not None else None

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor, index: list[int]) -> torch.Tensor:
        if self.key is None:
            if self.key_colour is not None:
                self.key = key_from_rgb(self.key_colour, frames[0], self.tolerance)
            else:
                key = detect_screen(frames[0])
                if self.tolerance is not None:
                    key = _make_key(key.colour, key.luma, key.cbcr, self.tolerance)
                self.key = key
        return key_mask(frames, self.key)

    def close(self) -> None:
        pass
