"""Join encoded segments into one file by stream copy (no re-encode), with a source's audio,
timecode, tags and display rotation.

Intra-only codecs (ProRes, PNG-in-MOV) make every frame boundary a valid cut: a segment's
packets are muxed into the output unchanged, with their own timestamps, so the payloads are
byte-identical to what one unchunked encode writes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional, Sequence

import av

from alphagan_video._atomic import StagedFile
from alphagan_video.errors import InputMediaError
from alphagan_video.io.writer._common import _raise_if_environment
from alphagan_video.io.writer.audio import AudioCopier
from alphagan_video.io.writer.metadata import SourceMetadata, apply_source_metadata, set_rotation
from alphagan_video.io.writer.targets import publish_staged


@dataclass(frozen=True)
class RemuxSource:
    """What a joined file takes from its source: ``metadata`` (timecode, tags), display
    ``rotation`` in degrees, and ``audio_path`` (the file whose audio streams are copied; None:
    no audio)."""

    metadata: SourceMetadata = field(default_factory=SourceMetadata)
    rotation: int = 0
    audio_path: Optional[str] = None


@dataclass
class ConcatReport:
    """What ``concat_segments`` wrote: video ``frames`` (packets), the ``segments`` joined,
    ``audio_streams`` copied, the ``timecode`` written (None: none)."""

    output: str
    frames: int = 0
    segments: list[str] = field(default_factory=list)
    audio_streams: int = 0
    timecode: Optional[str] = None


def _signature(stream) -> str:
    cc = stream.codec_context
    return f"{cc.name} {cc.width}x{cc.height} {cc.format.name if cc.format else '?'}"


def _add_video_like(out, template):
    """A video stream in ``out`` that takes ``template``'s packets unchanged."""
    # The frame rate is not part of the template's codec parameters; the muxer needs it for
    # the stream's average rate and to write a timecode (tmcd) track.
    vs = out.add_stream_from_template(template, rate=template.average_rate)
    vs.time_base = template.time_base
    # The template does not carry the fourcc; without it the mov muxer tags ProRes 4444 as
    # 'apch' (422 HQ) and decoders then take the 4444 frames for 10-bit 422 HQ ones.
    vs.codec_context.codec_tag = template.codec_context.codec_tag
    if template.codec_context.profile is not None:
        try:
            vs.codec_context.profile = template.codec_context.profile
        except (ValueError, AttributeError):
            pass
    return vs


class _Joiner:
    """Muxes the video packets of segments in order into ``out``, interleaving ``audio``."""

    def __init__(self, out, vs, signature: str, audio: Optional[AudioCopier], report: ConcatReport) -> None:
        self.out, self.vs, self.signature, self.audio, self.report = out, vs, signature, audio, report
        self.last: Optional[Fraction] = None

    def add(self, container, seg: str) -> None:
        stream = container.streams.video[0]
        if _signature(stream) != self.signature:
            raise InputMediaError(
                f"segment {seg} is {_signature(stream)}, the first segment is {self.signature}; "
                "all segments must come from one job"
            )
        for packet in container.demux(stream):
            if packet.dts is None and packet.pts is None:  # demuxer flush packet
                continue
            pts = packet.pts if packet.pts is not None else packet.dts
            t = Fraction(pts) * packet.time_base
            if self.last is not None and t <= self.last:
                raise InputMediaError(
                    f"segment {seg} starts at {float(t):.4f} s, not after the previous segment's "
                    f"last frame ({float(self.last):.4f} s): overlapping or out-of-order segments"
                )
            self.last = t
            if self.audio is not None:
                self.audio.mux_until(t)
            packet.stream = self.vs
            self.out.mux(packet)
            self.report.frames += 1
        self.report.segments.append(seg)


def _open_segment(seg: str):
    """``av.open(seg)`` with a video stream, else InputMediaError naming the segment (a missing,
    truncated or garbage file is the user's to remake, not our bug)."""
    try:
        container = av.open(seg)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputMediaError(f"segment {seg} is not a readable video ({_why(exc)}); remake it "
                              "('alphagan-video farm chunk' for its frames) and assemble again") from None
    if not container.streams.video:
        container.close()
        raise InputMediaError(f"segment {seg} has no video stream; remake it ('alphagan-video farm chunk' for its "
                              "frames) and assemble again")
    return container


def _why(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__


def _join(first_in, segments: list[str], tmp: str, source: RemuxSource, report: ConcatReport) -> None:
    """Write the joined file to ``tmp``; every container opened here is closed on the way out."""
    template = first_in.streams.video[0]
    audio = None
    out = av.open(tmp, "w", options={"movie_timescale": str(template.time_base.denominator)})
    try:
        vs = _add_video_like(out, template)
        # The same tags and timecode as an unchunked run's writer (frame 0 is the first frame).
        report.timecode = apply_source_metadata(out, vs, source.metadata)
        set_rotation(vs, source.rotation)  # before the first packet of any stream is muxed
        if source.audio_path is not None:
            audio = AudioCopier(source.audio_path, out)
            report.audio_streams = len(audio.codec_names)
        out.start_encoding()
        joiner = _Joiner(out, vs, _signature(template), audio, report)
        for n, seg in enumerate(segments):
            container = first_in if n == 0 else _open_segment(seg)
            try:
                joiner.add(container, seg)
            except av.FFmpegError as exc:  # a segment cut short or damaged past its header
                _raise_if_environment(exc, tmp)  # a full disk while writing is not the segment's fault
                raise InputMediaError(f"segment {seg} cannot be read to its end ({_why(exc)}); remake it "
                                      "('alphagan-video farm chunk' for its frames) and assemble again") from None
            finally:
                if n != 0:
                    container.close()
        if audio is not None:
            audio.mux_until(None)
            audio.close()
            audio = None
    except BaseException:
        if audio is not None:
            audio.close()
        try:
            out.close()
        except BaseException:  # a half-written file may fail to finalise; it is deleted
            pass
        raise
    out.close()


def concat_segments(
    segments: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    source: RemuxSource = RemuxSource(),
    *,
    overwrite: bool = False,
) -> ConcatReport:
    """Concatenate the video of ``segments`` (in order, timestamps strictly increasing across
    them) into ``output`` by stream copy, with ``source``'s metadata, rotation and audio.

    The output appears atomically (a temporary beside it, renamed into place); on any failure,
    Ctrl-C included, the temporary is removed and ``output`` is untouched.
    Raises InputMediaError for segments of different codecs/sizes or overlapping timestamps,
    OutputError when ``output`` appeared meanwhile and ``overwrite`` is False.
    """
    segments = [os.fspath(s) for s in segments]
    output = os.fspath(output)
    report = ConcatReport(output=output)
    stem, suffix = os.path.splitext(os.path.basename(output))
    staged = StagedFile(output, suffix, name=stem)
    first_in = _open_segment(segments[0])
    try:
        with staged:
            _join(first_in, segments, staged.tmp, source, report)
            publish_staged(staged, overwrite, "assembling")
    finally:
        first_in.close()
    return report
