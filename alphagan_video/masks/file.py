"""``file:PATH``: the user's own masks, read in step with the video.

PATH is a video, an image sequence pattern (``masks/%04d.png``) or a single image (then the
same mask is used for every frame). Gray or RGB, 8 or 16 bit; RGB masks are averaged over the
channels (for gray masks decoded as RGB all three are equal). Values are scaled to [0, 1].
"""
from __future__ import annotations

import numpy as np
import torch

from alphagan_video.io.companion import MediaInStep
from alphagan_video.types import VideoInfo


class FileMaskSource:
    """Masks from a file. ``__call__(frames (B,3,H,W), index)`` -> (B,1,H,W) float32 in [0,1].

    Raises (at build or call time) MaskSourceError when the file is missing/unreadable, of
    another size than the video, or shorter than the frame index being matted.
    """

    def __init__(self, path: str, info: VideoInfo, device: torch.device) -> None:
        self.device = torch.device(device)
        self._media = MediaInStep(path, f"file:{path}", info, param="mask.source")
        self._single: torch.Tensor | None = None

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor, index: list[int]) -> torch.Tensor:
        b, _, h, w = frames.shape
        if (w, h) != (self._media.info.width, self._media.info.height):
            raise self._media.error(f"mask is {self._media.info.width}x{self._media.info.height} but frames are "
                                    f"{w}x{h}; supply masks of the frame size")
        if self._media.single:
            if self._single is None:
                rgb = self._media.frames([index[0]])[0]
                self._single = torch.from_numpy(rgb.mean(axis=2, dtype=np.float32))[None, None].to(self.device)
            return self._single.expand(b, 1, h, w).contiguous()
        rgb = self._media.frames(list(index))  # (B,H,W,3) float32 [0,1]
        m = torch.from_numpy(rgb.mean(axis=3, dtype=np.float32))[:, None]
        return m.to(self.device).clamp_(0.0, 1.0)

    def close(self) -> None:
        self._media.close()
