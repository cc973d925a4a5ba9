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
"""
from __future__ import annotations

from dataclasses import dataclass

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


def detect_screen(frame: torch.Tensor) -> ScreenKey:
    """Find the screen colour on one frame (3,H,W) float in [0,1] from its border ring.

    Raises:
        MaskSourceError: fewer than ``MIN_BORDER_FRACTION`` of the border pixels are clearly
            green or blue.
    """
    _, h, w = frame.shape
    r = max(2, int(round(min(h, w) * BORDER_FRACTION)))
    ring = torch.cat(
        [
            frame[:, :r, :].reshape(3, -1),
            frame[:, -r:, :].reshape(3, -1),
            frame[:, r:-r, :r].reshape(3, -1),
            frame[:, r:-r, -r:].reshape(3, -1),
        ],
        dim=1,
    ).float()
    red, green, blue = ring[0], ring[1], ring[2]
    g_margin = green - torch.maximum(red, blue)
    b_margin = blue - torch.maximum(red, green)
    is_green = (g_margin > DOMINANCE) & (g_margin > MIN_SATURATION * green)
    is_blue = (b_margin > DOMINANCE) & (b_margin > MIN_SATURATION * blue)
    n = ring.shape[1]
    colour, sel = ("green", is_green) if is_green.sum() >= is_blue.sum() else ("blue", is_blue)
    share = float(sel.sum()) / n
    if share < MIN_BORDER_FRACTION:
        raise MaskSourceError(
            f"--mask chroma: only {share:.0%} of the frame border is green or blue screen "
            f"(need {MIN_BORDER_FRACTION:.0%}); use --mask person, plate:PATH or file:PATH"
        )
    px = ring[:, sel].T[None, :, :, None].permute(0, 2, 1, 3)  # (1,3,N,1)
    y, c = _ycbcr(px)
    key_y = float(y.median())
    key_c = c[0, :, :, 0].median(dim=1).values  # (2,)
    gain = (key_y / y.clamp(min=1e-4)).clamp(_GAIN_MIN, _GAIN_MAX)
    dist = torch.linalg.vector_norm(c * gain - key_c.view(1, 2, 1, 1), dim=1).flatten()
    mag = float(torch.linalg.vector_norm(key_c))
    # 98th percentile of the screen's own spread, with a small floor for codec noise.
    low = max(float(torch.quantile(dist[:: max(1, dist.numel() // 100_000)], 0.98)), 0.02)
    high = low + max(RAMP * mag, 0.03)
    return ScreenKey(colour, key_y, (float(key_c[0]), float(key_c[1])), low, high)


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
    """

    def __init__(self, info: VideoInfo, device: torch.device) -> None:
        self.device = torch.device(device)
        self.key: ScreenKey | None = None

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor, index: list[int]) -> torch.Tensor:
        if self.key is None:
            self.key = detect_screen(frames[0])
        return key_mask(frames, self.key)

    def close(self) -> None:
        pass
