"""Raw frames on byte streams: packed RGB in (``rgb24``/``rgb48le``), packed output frames out.

What the ``pipe`` front-end reads from stdin and writes to stdout, the edges of
``ffmpeg ... -f rawvideo - | alphagan-video pipe ... | ffmpeg -f rawvideo -i - ...``:

=============  ===========  ==============
output kind    8-bit input  16-bit input
=============  ===========  ==============
rgba           ``rgba``     ``rgba64le``   (straight alpha, decontaminated foreground)
alpha          ``gray``     ``gray16le``
foreground     ``rgb24``    ``rgb48le``
composite      ``rgb24``    ``rgb48le``
=============  ===========  ==============

Raw streams carry no timestamps: frame i gets pts i in a 1/rate time base.
"""
from __future__ import annotations

import errno
import os
from fractions import Fraction
from typing import BinaryIO, Iterator, Optional

import numpy as np

from alphagan_video.config import OUTPUT_KINDS
from alphagan_video.errors import OutputError, ParameterError
from alphagan_video.types import FrameBatch, OutputBatch, VideoInfo

#: Input pixel formats: name -> (bytes per sample, numpy dtype of one sample).
INPUT_PIX_FMTS = {"rgb24": (1, np.dtype(np.uint8)), "rgb48le": (2, np.dtype("<u2"))}

#: Output pixel format per output kind: (8-bit input, 16-bit input).
OUTPUT_PIX_FMTS = {"rgba": ("rgba", "rgba64le"), "alpha": ("gray", "gray16le"),
                   "foreground": ("rgb24", "rgb48le"), "composite": ("rgb24", "rgb48le")}
assert set(OUTPUT_PIX_FMTS) == set(OUTPUT_KINDS)


class OutputPipeClosedError(OutputError, BrokenPipeError):
    """The process reading our output closed its end (downstream exited), or stdout was closed
    from the start (``>&-``). The environment, not our bug: exit code 2."""


class OutputStreamError(OutputError):
    """The output stream refused a write: a full device (``> /dev/full``, a full disk), a
    quota, an I/O error. Exit code 2."""


def check_output_stream(stream: Optional[BinaryIO]) -> None:
    """Raise OutputPipeClosedError when ``stream`` (the pipe's stdout) is missing or its file
    descriptor is closed (``alphagan-video pipe ... >&-``): before the model is loaded."""
    closed = stream is None or bool(getattr(stream, "closed", False))
    if not closed:
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, OSError):  # no descriptor: an in-memory stream
            fd = None
        if fd is not None:
            try:
                os.fstat(fd)
            except OSError as exc:
                closed = exc.errno == errno.EBADF
    if closed:
        raise OutputPipeClosedError("stdout is closed: pipe writes the matted frames to stdout; "
                                    "redirect it into a file or the next command (| ffmpeg -f rawvideo -i - ...)")


def sample_bytes(pix_fmt: str) -> int:
    """Bytes per sample of an input pixel format (1 or 2). Raises ParameterError about ``pix_fmt``."""
    if pix_fmt not in INPUT_PIX_FMTS:
        raise ParameterError.about("pix_fmt", repr(pix_fmt), f"expected one of {', '.join(INPUT_PIX_FMTS)}")
    return INPUT_PIX_FMTS[pix_fmt][0]


def output_pix_fmt(kind: str, input_pix_fmt: str) -> str:
    """The ffmpeg ``-pix_fmt`` of the raw frames written for an output kind and input format."""
    deep = sample_bytes(input_pix_fmt) == 2
    if kind not in OUTPUT_PIX_FMTS:
        raise ParameterError.about("output.kind", repr(kind), f"expected one of {', '.join(OUTPUT_KINDS)}")
    return OUTPUT_PIX_FMTS[kind][deep]


def raw_video_info(width: int, height: int, rate: Fraction, pix_fmt: str = "rgb24") -> VideoInfo:
    """The VideoInfo a raw stream of ``width``x``height`` ``pix_fmt`` frames at ``rate`` stands for."""
    depth = 8 * sample_bytes(pix_fmt)
    rate = Fraction(rate)
    return VideoInfo(path="<stdin>", kind="video", width=width, height=height, time_base=1 / rate,
                     frame_rate=rate, frame_count=None, pix_fmt=pix_fmt, bit_depth=depth, codec_name="rawvideo")


def encode_output(out: OutputBatch, deep: bool) -> bytes:
    """OutputBatch -> packed little-endian bytes of all its frames (see the module table).

    color (B,H,W,3) and alpha (B,H,W) float32 in [0,1] are rounded to 8 or 16 bits.
    """
    maxv, dtype = (65535.0, np.dtype("<u2")) if deep else (255.0, np.dtype(np.uint8))
    planes = []
    if out.color is not None:
        planes.append(out.color)
    if out.alpha is not None:
        planes.append(out.alpha[..., None])
    if not planes:
        raise ValueError("output batch has neither colour nor alpha")
    packed = np.concatenate(planes, axis=-1) if len(planes) > 1 else planes[0]
    if packed.shape[-1] == 1:
        packed = packed[..., 0]
    return np.rint(np.clip(packed, 0.0, 1.0) * maxv).astype(dtype).tobytes()


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    """Read up to ``size`` bytes, looping over short reads; fewer only at end of stream."""
    chunks = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class RawFrameReader:
    """Packed ``pix_fmt`` frames of ``info``'s size from ``stream``, in batches.

    After iteration: ``frames`` complete frames were read, ``bytes_read`` bytes in all, and
    ``truncated`` is the byte count of an incomplete last frame (None when the stream ended on
    a frame boundary) -- the caller decides how to report it.
    """

    def __init__(self, stream: BinaryIO, info: VideoInfo, pix_fmt: str = "rgb24"):
        self.stream = stream
        self.info = info
        self.dtype = INPUT_PIX_FMTS[pix_fmt][1] if pix_fmt in INPUT_PIX_FMTS else None
        self.frame_bytes = info.width * info.height * 3 * sample_bytes(pix_fmt)
        self.frames = 0
        self.bytes_read = 0
        self.truncated: Optional[int] = None

    def iter_batches(self, batch_size: int) -> Iterator[FrameBatch]:
        """FrameBatch of up to ``batch_size`` frames ((B,H,W,3) uint8 or uint16) until end of stream."""
        height, width = self.info.height, self.info.width
        buffer = np.empty((batch_size, height, width, 3), self.dtype)
        ended = False
        while not ended:
            count = 0
            while count < batch_size:
                data = _read_exact(self.stream, self.frame_bytes)
                self.bytes_read += len(data)
                if len(data) < self.frame_bytes:
                    ended = True
                    self.truncated = len(data) or None
                    break
                buffer[count] = np.frombuffer(data, self.dtype).reshape(height, width, 3)
                count += 1
            if count == 0:
                return
            index = list(range(self.frames, self.frames + count))
            self.frames += count
            yield FrameBatch(rgb=buffer[:count].copy(), pts=list(index), index=index, time_base=self.info.time_base)


class RawFrameWriter:
    """Writes OutputBatches to ``stream`` as packed frames (8 or 16 bits, see the module table),
    flushed after every batch so the downstream process sees frames as they are made.

    Raises OutputPipeClosedError (naming ``out_pix_fmt`` and the size) when the reader of
    ``stream`` went away."""

    def __init__(self, stream: BinaryIO, deep: bool, out_pix_fmt: str, width: int, height: int):
        self.stream = stream
        self.deep = deep
        self.out_pix_fmt = out_pix_fmt
        self.size = f"{width}x{height}"
        self.frames = 0
        self.bytes_written = 0

    def write(self, out: OutputBatch) -> None:
        payload = encode_output(out, self.deep)
        try:
            self.stream.write(payload)
            self.stream.flush()
        except BrokenPipeError:
            raise OutputPipeClosedError(
                f"stdout was closed by the process reading it after {self.frames} frame(s) "
                f"(broken pipe); check the downstream command (e.g. its -f rawvideo -pix_fmt {self.out_pix_fmt} "
                f"-s {self.size} options) and its own error message"
            ) from None
        except OSError as exc:  # ENOSPC (> /dev/full, a full disk), EDQUOT, EIO, EBADF...
            what = "the device is full" if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) else "it failed"
            raise OutputStreamError(
                f"cannot write frames to stdout after {self.frames} frame(s): {what} "
                f"({exc.strerror or exc}); redirect stdout into a pipe or a file with free space"
            ) from None
        self.bytes_written += len(payload)
        self.frames += len(out)


__all__ = ["INPUT_PIX_FMTS", "OUTPUT_PIX_FMTS", "OutputPipeClosedError", "OutputStreamError", "RawFrameReader",
           "RawFrameWriter", "check_output_stream", "encode_output", "output_pix_fmt", "raw_video_info", "sample_bytes"]
