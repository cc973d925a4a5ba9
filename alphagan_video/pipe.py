"""Raw-frame pipe filter: ``ffmpeg ... -f rawvideo - | alphagan-video pipe ... | ffmpeg -f rawvideo -i - ...``.

Reads packed RGB frames (``rgb24`` or ``rgb48le``) from a binary stream and writes packed matted
frames (``io.raw``: the pixel formats per output kind), through the one run loop
(``engine.run``) with the same stages as a file run. Memory is bounded by one batch in and one
batch out; everything runs in the calling thread (a reader thread blocked on an idle stdin
could not be stopped when the downstream goes away). Raw pipes carry no timestamps: frame i
gets pts i in a 1/rate time base (``rate`` only matters for bookkeeping; the downstream
ffmpeg's frame rate sets the output timing).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO, Callable, Optional

from alphagan_video.config import PipelineConfig
from alphagan_video.errors import InputMediaError, ParameterError
from alphagan_video.io.raw import (INPUT_PIX_FMTS, OutputPipeClosedError, OutputStreamError, RawFrameReader,
                                   RawFrameWriter, check_output_stream, encode_output, output_pix_fmt,
                                   raw_video_info, sample_bytes)


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
    """``"1920x1080"`` -> (1920, 1080). Raises ParameterError about ``size``."""
    parts = value.lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise ParameterError.about("size", repr(value), "expected WIDTHxHEIGHT, e.g. 1920x1080") from None
    if width < 1 or height < 1:
        raise ParameterError.about("size", repr(value), "width and height must be positive")
    return width, height


def parse_rate(value: str) -> Fraction:
    """``"25"``, ``"30000/1001"`` or ``"29.97"`` -> Fraction. Raises ParameterError about ``rate``."""
    try:
        rate = Fraction(value.strip())
    except (ValueError, ZeroDivisionError):
        raise ParameterError.about("rate", repr(value), "expected a frame rate like 25, 24000/1001 or 29.97") from None
    if rate <= 0:
        raise ParameterError.about("rate", repr(value), "must be positive")
    if max(rate.numerator, rate.denominator) > MAX_RATE_TERM:
        raise ParameterError.about("rate", repr(value), f"out of range: as a fraction its numerator and denominator "
                                   f"must be at most {MAX_RATE_TERM}, as FFmpeg's time bases take; "
                                   "e.g. 25, 24000/1001 or 29.97")
    return rate


#: Largest numerator or denominator of a frame rate: FFmpeg's rationals are 32-bit signed.
MAX_RATE_TERM = 2**31 - 1


def _input_error(reader: RawFrameReader, pix_fmt: str) -> Optional[InputMediaError]:
    """The error for a stream that ended inside a frame or held none; None when all was well."""
    size = f"{reader.info.width}x{reader.info.height}"
    if reader.truncated is not None:
        return InputMediaError.naming(
            f"stdin ended inside frame {reader.frames}: got {reader.truncated} of {reader.frame_bytes} bytes "
            f"({size} {pix_fmt}; {reader.bytes_read} bytes read in all, not a multiple of {reader.frame_bytes}); "
            f"size and pix_fmt must match the producer's -s and -pix_fmt "
            f"({reader.frames} complete frame(s) were written)", "size", "pix_fmt")
    if reader.frames == 0:
        return InputMediaError(f"stdin held no frames (0 bytes); feed packed {pix_fmt} frames of {size}, e.g. "
                               f"ffmpeg -i IN -f rawvideo -pix_fmt {pix_fmt} -")
    return None


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
            usually a size/pix_fmt mismatch with the producer) or held no frame at all.
            Complete frames before it have been written.
        OutputPipeClosedError: the reader of ``stdout`` went away, or ``stdout`` is closed.
        OutputStreamError: ``stdout`` refused a write (a full device, an I/O error).
        UserInputError and others from the stages for bad settings.
    """
    from alphagan_video.engine import run
    from alphagan_video.pipeline import build_chain

    started = time.perf_counter()
    deep = sample_bytes(pix_fmt) == 2
    out_fmt = output_pix_fmt(cfg.output.kind, pix_fmt)
    if width < 1 or height < 1:
        raise ParameterError.about("size", f"{width}x{height}", "width and height must be positive")
    check_output_stream(stdout)
    info = raw_video_info(width, height, rate, pix_fmt)
    reader = RawFrameReader(stdin, info, pix_fmt)
    writer = RawFrameWriter(stdout, deep, out_fmt, width, height)
    with build_chain(info, cfg) as chain:
        tally = run(reader.iter_batches(max(1, cfg.model.batch_size)), chain.stages,
                    lambda work: writer.write(work.output), overlap=False, progress=progress)
    report = PipeReport(frames=tally.frames, width=width, height=height, input_pix_fmt=pix_fmt,
                        output_pix_fmt=out_fmt, bytes_in=reader.bytes_read, bytes_out=writer.bytes_written,
                        seconds={k: round(v, 4) for k, v in tally.seconds.items()})
    report.seconds["total"] = round(time.perf_counter() - started, 4)
    error = _input_error(reader, pix_fmt)
    if error is not None:
        raise error
    return report


__all__ = ["INPUT_PIX_FMTS", "OutputPipeClosedError", "OutputStreamError", "PipeReport", "check_output_stream",
           "encode_output", "output_pix_fmt", "parse_rate", "parse_size", "run_pipe"]
