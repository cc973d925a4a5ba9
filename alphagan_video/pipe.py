"""Raw-frame pipe filter: ``ffmpeg ... -f rawvideo - | alphagan-video pipe ... | ffmpeg -f rawvideo -i - ...``.

Reads packed RGB frames (``rgb24`` or ``rgb48le``) from a binary stream, mattes them with
:class:`~alphagan_video.pipeline.FrameMatter` one batch at a time, and writes packed frames:

=============  ===========  ==============
output kind    8-bit input  16-bit input
=============  ===========  ==============
rgba           ``rgba``     ``rgba64le``   (straight alpha, decontaminated foreground)
alpha          ``gray``     ``gray16le``
foreground     ``rgb24``    ``rgb48le``
composite      ``rgb24``    ``rgb48le``
=============  ===========  ==============

Memory is bounded by one batch in and one batch out. Raw pipes carry no timestamps: frame i
gets pts i in a 1/rate time base (``rate`` only matters for bookkeeping; the downstream
ffmpeg's ``-framerate`` sets the output timing).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO, Callable, Optional

import numpy as np

from alphagan_video.config import PipelineConfig
from alphagan_video.errors import AlphaGANVideoError, InputMediaError, UserInputError
from alphagan_video.types import FrameBatch, OutputBatch, VideoInfo

#: Input pixel formats: name -> (bytes per sample, numpy dtype of one sample).
INPUT_PIX_FMTS = {"rgb24": (1, np.dtype(np.uint8)), "rgb48le": (2, np.dtype("<u2"))}

PIPE_OUTPUT_KINDS = ("rgba", "alpha", "foreground", "composite")


class OutputPipeClosedError(AlphaGANVideoError, BrokenPipeError):
    """The process reading our output closed its end (downstream exited). Exit code 1."""


@dataclass
class PipeReport:
    """What a pipe run did."""

    frames: int = 0
    width: int = 0
    height: int = 0
    input_pix_fmt: str = ""
    output_pix_fmt: str = ""
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: dict = field(default_factory=dict)


def parse_size(value: str) -> tuple[int, int]:
    """``"1920x1080"`` -> (1920, 1080). Raises UserInputError naming the value."""
    parts = value.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise UserInputError(f"--size {value!r}: expected WIDTHxHEIGHT, e.g. 1920x1080") from None
    if width < 1 or height < 1:
        raise UserInputError(f"--size {value!r}: width and height must be positive")
    return width, height


def parse_rate(value: str) -> Fraction:
    """``"25"``, ``"30000/1001"`` or ``"29.97"`` -> Fraction. Raises UserInputError naming the value."""
    try:
        rate = Fraction(value.strip())
    except (ValueError, ZeroDivisionError):
        raise UserInputError(f"--rate {value!r}: expected a frame rate like 25, 24000/1001 or 29.97") from None
    if rate <= 0:
        raise UserInputError(f"--rate {value!r}: must be positive")
    return rate


def output_pix_fmt(kind: str, input_pix_fmt: str) -> str:
    """The ffmpeg ``-pix_fmt`` of what ``pipe`` writes for an output kind and input format."""
    deep = _sample_bytes(input_pix_fmt) == 2
    if kind == "rgba":
        return "rgba64le" if deep else "rgba"
    if kind == "alpha":
        return "gray16le" if deep else "gray"
    if kind in ("foreground", "composite"):
        return "rgb48le" if deep else "rgb24"
    raise UserInputError(f"--output-kind {kind!r}: expected one of {', '.join(PIPE_OUTPUT_KINDS)}")


def _sample_bytes(pix_fmt: str) -> int:
    if pix_fmt not in INPUT_PIX_FMTS:
        raise UserInputError(f"--pix-fmt {pix_fmt!r}: expected one of {', '.join(INPUT_PIX_FMTS)}")
    return INPUT_PIX_FMTS[pix_fmt][0]


def pipe_video_info(width: int, height: int, rate: Fraction, pix_fmt: str = "rgb24") -> VideoInfo:
    """The VideoInfo a raw stream of ``width``x``height`` ``pix_fmt`` frames at ``rate`` stands for."""
    depth = 8 * _sample_bytes(pix_fmt)
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


def run_pipe(
    stdin: BinaryIO,
    stdout: BinaryIO,
    width: int,
    height: int,
    rate: Fraction,
    cfg: PipelineConfig = PipelineConfig(),
    pix_fmt: str = "rgb24",
    progress: Optional[Callable[[int, Optional[int]], None]] = None,
) -> PipeReport:
    """Matte raw frames from ``stdin`` into raw frames on ``stdout`` until end of input.

    Args:
        stdin: binary stream of packed ``pix_fmt`` frames, each ``width*height*3*(1|2)`` bytes.
        stdout: binary stream receiving ``output_pix_fmt(cfg.output.kind, pix_fmt)`` frames,
            flushed after every batch so the downstream process sees frames as they are made.
        cfg: pipeline settings (``cfg.output`` codec/overwrite/audio are irrelevant here).
        progress: called after each batch with (frames done, None).
    Returns:
        PipeReport.
    Raises:
        InputMediaError: the input ended inside a frame (the message names the byte counts;
            usually a --size/--pix-fmt mismatch with the producer) or held no frame at all.
            Complete frames before it have been written.
        OutputPipeClosedError: the reader of ``stdout`` went away.
        UserInputError and others from FrameMatter for bad settings.
    """
    import time

    from alphagan_video.pipeline import FrameMatter

    started = time.perf_counter()
    sample_bytes = _sample_bytes(pix_fmt)
    out_fmt = output_pix_fmt(cfg.output.kind, pix_fmt)
    if width < 1 or height < 1:
        raise UserInputError(f"--size {width}x{height}: width and height must be positive")
    dtype = INPUT_PIX_FMTS[pix_fmt][1]
    frame_bytes = width * height * 3 * sample_bytes
    info = pipe_video_info(width, height, rate, pix_fmt)
    report = PipeReport(width=width, height=height, input_pix_fmt=pix_fmt, output_pix_fmt=out_fmt)
    batch_size = max(1, cfg.model.batch_size)
    deep = sample_bytes == 2
    with FrameMatter(info, cfg) as matter:
        buffer = np.empty((batch_size, height, width, 3), dtype)
        truncated: Optional[int] = None
        ended = False
        while not ended:
            count = 0
            while count < batch_size:
                data = _read_exact(stdin, frame_bytes)
                report.bytes_in += len(data)
                if len(data) < frame_bytes:
                    ended = True
                    if data:
                        truncated = len(data)
                    break
                buffer[count] = np.frombuffer(data, dtype).reshape(height, width, 3)
                count += 1
            if count == 0:
                break
            index = list(range(report.frames, report.frames + count))
            batch = FrameBatch(rgb=buffer[:count].copy(), pts=list(index), index=index, time_base=info.time_base)
            payload = encode_output(matter.process(batch), deep)
            try:
                stdout.write(payload)
                stdout.flush()
            except BrokenPipeError:
                raise OutputPipeClosedError(
                    f"stdout was closed by the process reading it after {report.frames} frame(s) "
                    f"(broken pipe); check the downstream command (e.g. its -f rawvideo -pix_fmt {out_fmt} "
                    f"-s {width}x{height} options) and its own error message"
                ) from None
            report.bytes_out += len(payload)
            report.frames += count
            if progress is not None:
                progress(report.frames, None)
        report.seconds = {k: round(v, 4) for k, v in matter.seconds.items()}
    report.seconds["total"] = round(time.perf_counter() - started, 4)
    if truncated is not None:
        raise InputMediaError(
            f"stdin ended inside frame {report.frames}: got {truncated} of {frame_bytes} bytes "
            f"({width}x{height} {pix_fmt}; {report.bytes_in} bytes read in all, not a multiple of {frame_bytes}); "
            f"--size and --pix-fmt must match the producer's -s and -pix_fmt "
            f"({report.frames} complete frame(s) were written)"
        )
    if report.frames == 0:
        raise InputMediaError(
            f"stdin held no frames (0 bytes); feed packed {pix_fmt} frames of {width}x{height}, e.g. "
            f"ffmpeg -i IN -f rawvideo -pix_fmt {pix_fmt} -"
        )
    return report
