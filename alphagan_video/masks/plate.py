"""``plate:PATH``: difference against a clean background plate.

The plate is a single image (locked-off camera) or a video / image sequence read in step with
the frames (a clean pass). Per frame:

1. colour distance ``d`` = Euclidean RGB distance between frame and plate, 3x3-median
   filtered: removes sensor/codec noise without moving edges (a box blur grew a 25-px
   square's mask by 2 px, IoU 0.75; the median kept IoU >= 0.96 up to noise sigma 10/255);
2. a noise-aware threshold from robust statistics of ``d`` (median + k * MAD, computed on a
   sparse grid of pixels): most of the frame is background, so the median and MAD measure
   the noise, not the subject (assumes the subject covers less than about half the frame);
3. a soft ramp between the low and high thresholds (subject = 1);
4. morphological opening then closing to remove specks and fill pinholes.
"""
from __future__ import annotations

import numpy as np
import torch

from alphagan_video.errors import MaskSourceError
from alphagan_video.masks._morph import median3, open_close, scale_kernel
from alphagan_video.masks._stream import MediaInStep
from alphagan_video.types import VideoInfo

#: Noise multiples above the median distance where the ramp starts.
NOISE_K = 5.0
#: Lowest starting threshold (RGB distance in [0,1] units, ~6/255): codec noise floor, so a
#: perfectly clean synthetic plate does not turn every rounding difference into subject.
MIN_THRESHOLD = 0.025
#: Statistics are taken on every STRIDE-th pixel in each direction (speed; plenty of samples).
_STRIDE = 4


def difference_mask(frames: torch.Tensor, plate: torch.Tensor, denoise: bool = True, morph: int | None = None) -> torch.Tensor:
    """Soft subject mask from a frame/plate difference.

    Args:
        frames, plate: (B,3,H,W) float32 in [0,1] (plate may have B=1, broadcast).
        denoise: 3x3 median on the distance map.
        morph: opening/closing kernel (odd); None = 1% of the short side, at least 3.
    Returns:
        (B,1,H,W) float32 in [0,1].
    """
    diff = frames - plate
    d = (diff * diff).sum(dim=1, keepdim=True).sqrt_()  # (B,1,H,W), 0..sqrt(3)
    if denoise:
        d = median3(d).to(frames.device)
    b = d.shape[0]
    sample = d[:, 0, ::_STRIDE, ::_STRIDE].reshape(b, -1)
    med = sample.median(dim=1).values
    mad = (sample - med[:, None]).abs().median(dim=1).values
    sigma = 1.4826 * mad
    lo = torch.clamp(med + NOISE_K * sigma, min=MIN_THRESHOLD)
    hi = lo + torch.clamp(lo, min=2.0 * sigma)  # ramp width ~ the threshold itself
    soft = ((d - lo.view(b, 1, 1, 1)) / (hi - lo).view(b, 1, 1, 1)).clamp_(0.0, 1.0)
    h, w = d.shape[-2:]
    return open_close(soft, scale_kernel(h, w) if morph is None else morph)


class PlateMaskSource:
    """Background-plate difference. ``__call__(frames (B,3,H,W), index)`` -> (B,1,H,W) [0,1]."""

    def __init__(self, path: str, info: VideoInfo, device: torch.device) -> None:
        self.device = torch.device(device)
        self._media = MediaInStep(path, f"--mask plate:{path}", info)
        self._still: torch.Tensor | None = None

    def _plate(self, index: list[int]) -> torch.Tensor:
        if self._media.single:
            if self._still is None:
                rgb = np.ascontiguousarray(self._media.frames([index[0]])[0])
                self._still = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].to(self.device)
            return self._still
        rgb = self._media.frames(list(index))
        return torch.from_numpy(rgb).permute(0, 3, 1, 2).to(self.device)

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor, index: list[int]) -> torch.Tensor:
        h, w = frames.shape[-2:]
        if (w, h) != (self._media.info.width, self._media.info.height):
            raise MaskSourceError(
                f"--mask plate:{self._media.path}: plate is {self._media.info.width}x"
                f"{self._media.info.height} but frames are {w}x{h}; supply a plate of the frame size"
            )
        return difference_mask(frames.float(), self._plate(index))

    def close(self) -> None:
        self._media.close()
