"""What an output inherits from its source besides pixels and audio: start timecode, container
tags and display rotation."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional

import av

from alphagan_video.io.writer._common import PathLike

# Container tags that describe the file itself, not the content: the muxer writes its own
# (compared case-insensitively: Matroska stores tags in upper case).
_SKIP_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder", "handler_name",
                        "vendor_id", "duration", "timecode"})
_TIMECODE_RE = re.compile(r"^\s*(\d+):(\d+):(\d+)([:;.,])(\d+)\s*$")


@dataclass(frozen=True)
class SourceMetadata:
    """What an output inherits from its source video besides pixels and audio.

    timecode: start timecode ``HH:MM:SS:FF`` (``;`` before FF = drop-frame) from the container,
    the video stream or a QuickTime tmcd data stream, in that order; None when the source has
    none. tags: container-level tags worth keeping (title, comment, creation_time, ...).
    """

    timecode: Optional[str] = None
    tags: dict = field(default_factory=dict)


def read_source_metadata(path: PathLike) -> SourceMetadata:
    """Timecode and container tags of the video at ``path``; empty for unreadable files."""
    try:
        with av.open(os.fspath(path)) as container:
            timecode = None
            for tags in [container.metadata] + [s.metadata for s in container.streams]:
                value = next((v for k, v in tags.items() if k.lower() == "timecode" and v), None)
                if value:
                    timecode = str(value)
                    break
            tags = {k: v for k, v in container.metadata.items() if k.lower() not in _SKIP_TAGS}
    except (av.FFmpegError, OSError):
        return SourceMetadata()
    return SourceMetadata(timecode, tags)


def offset_timecode(timecode: str, rate: Fraction, frames: int) -> str:
    """``timecode`` advanced by ``frames`` frames at ``rate``, counted as FFmpeg counts them.

    The timecode frame rate is ``rate`` rounded to an integer (29.97 -> 30), as the mov muxer
    does for the tmcd track (it uses the video stream's average rate). A ``;`` (or ``.``/``,``)
    before the frame field means drop-frame, valid at multiples of 30000/1001: frame numbers
    00 and 01 (00-03 at 59.94) are skipped at every minute except each tenth
    (libavutil/timecode.c). Hours wrap at 24. Unparseable timecodes come back unchanged
    (the muxer then ignores them, as it would have anyway).
    """
    m = _TIMECODE_RE.match(timecode)
    if m is None or frames == 0 or not rate:
        return timecode
    hh, mm, ss, sep, ff = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4), int(m.group(5))
    fps = int((rate.numerator + rate.denominator // 2) // rate.denominator)
    if fps <= 0:
        return timecode
    drop = sep != ":" and fps % 30 == 0
    start = (hh * 3600 + mm * 60 + ss) * fps + ff
    if drop:
        minutes = 60 * hh + mm
        start -= (fps // 30 * 2) * (minutes - minutes // 10)
    n = start + frames
    if drop:
        dropped, per_10min = fps // 30 * 2, fps // 30 * 17982
        d, rem = divmod(n, per_10min)
        # C's truncating division of (rem - dropped): 0 for the first frames of a 10-minute block
        n += 9 * dropped * d + dropped * (max(0, rem - dropped) // (per_10min // 10))
    ff = n % fps
    ss = n // fps % 60
    mm = n // (fps * 60) % 60
    hh = n // (fps * 3600) % 24
    width = 5 if fps > 10000 else 4 if fps > 1000 else 3 if fps > 100 else 2 if fps > 10 else 1
    return f"{hh:02d}:{mm:02d}:{ss:02d}{';' if drop else ':'}{ff:0{width}d}"


def apply_source_metadata(
    container: "av.container.OutputContainer",
    stream,
    meta: SourceMetadata,
    *,
    first_frame: int = 0,
) -> Optional[str]:
    """Copy ``meta`` into an output before its header is written (``start_encoding``).

    Container tags go on ``container``; the timecode goes on the video ``stream``'s metadata,
    from which the mov/mp4 muxer writes a tmcd track and Matroska a TIMECODE tag. For an output
    that starts at source frame ``first_frame`` (a frame range) the timecode is advanced
    by that many frames at the stream's rate, so an editor relinking by timecode lines the
    output up with the source. Returns the timecode written (None: the source has none).
    Shared by ``OutputWriter`` and ``concat_segments``, so both write the same metadata.
    """
    for key, value in meta.tags.items():
        container.metadata[key] = value
    if not meta.timecode:
        return None
    timecode = meta.timecode
    if first_frame:
        timecode = offset_timecode(timecode, stream.average_rate or Fraction(0), first_frame)
    stream.metadata["timecode"] = timecode
    return timecode


def set_rotation(stream, degrees: int) -> None:
    """Display rotation of a video ``stream`` in ``degrees`` (0: none). Must precede the first mux
    of any stream of the container, or the muxer silently drops it."""
    if degrees:
        stream.set_display_rotation(degrees)
