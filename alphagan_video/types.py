"""Data passed between pipeline stages.

Conventions: numpy HWC arrays appear only at the IO edge (``FrameBatch.rgb``,
``OutputBatch``); inside the pipeline tensors are BCHW float32 in [0, 1].
Time is integer ``pts`` plus a ``Fraction`` ``time_base`` -- never float seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal, Optional

import numpy as np

InputKind = Literal["video", "image", "sequence"]


@dataclass(frozen=True)
class ColorTags:
    """FFmpeg colour tags as integers (AVCOL_* enums); 2 = unspecified."""

    primaries: int = 2
    trc: int = 2
    space: int = 2
    range: int = 0  # 0 unspecified, 1 MPEG/tv, 2 JPEG/pc


@dataclass(frozen=True)
class VideoInfo:
    """What the reader learned about the input before decoding frames.

    ``width``/``height`` are the coded frame size (rotation is metadata, not applied).
    ``frame_count`` is exact for images and sequences, a container estimate (or None) for video.
    """

    path: str
    kind: InputKind
    width: int
    height: int
    time_base: Fraction
    frame_rate: Optional[Fraction]
    frame_count: Optional[int]
    pix_fmt: str
    bit_depth: int
    rotation: int = 0
    color: ColorTags = field(default_factory=ColorTags)
    codec_name: str = ""
    audio_stream_count: int = 0


@dataclass
class FrameBatch:
    """B decoded frames.

    rgb: (B, H, W, 3) uint8 for sources of <= 8 bits, uint16 (full 0..65535 scale) for deeper ones.
    pts: B integer presentation timestamps in ``time_base`` units (None only for images).
    index: B zero-based frame indices in decode order.
    """

    rgb: np.ndarray
    pts: list[Optional[int]]
    index: list[int]
    time_base: Fraction

    def __len__(self) -> int:
        return len(self.index)

    def rgb_float(self) -> np.ndarray:
        """(B, H, W, 3) float32 in [0, 1]."""
        scale = 255.0 if self.rgb.dtype == np.uint8 else 65535.0
        return self.rgb.astype(np.float32) / scale


@dataclass
class OutputBatch:
    """What the writer encodes for B frames; produced by the output stage
    (``foreground.compose.render_output``).

    color: (B, H, W, 3) float32 in [0, 1], straight (not premultiplied), or None for matte-only.
    alpha: (B, H, W) float32 in [0, 1], or None when the output kind carries no alpha.
    pts, index, time_base: copied from the FrameBatch.
    """

    color: Optional[np.ndarray]
    alpha: Optional[np.ndarray]
    pts: list[Optional[int]]
    index: list[int]
    time_base: Fraction
    # (B, 3|4, H, W) uint16 10-bit codes: BT.709 limited-range Y, Cb, Cr (+ alpha 0..1023),
    # converted on the device (io.colour.rgb_to_ycc10_torch). When set, color/alpha may be None
    # and 4:4:4 10-bit ProRes writers fill their planes from it directly.
    planes: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.index)
