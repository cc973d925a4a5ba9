"""Audio of a video input copied into an output packet for packet (no re-encode)."""
from __future__ import annotations

from fractions import Fraction
from typing import Iterator, Optional

import av

from alphagan_video.errors import EncoderError, InputMediaError, OutputError
from alphagan_video.io.writer._common import _raise_if_environment, _reason, _stream_codec_name

#: Parameter whose setting leaves the audio out (the CLI shows its flag).
NO_AUDIO = "output.copy_audio=False"


def _no_codec_error(index: int, src: str) -> InputMediaError:
    return InputMediaError.naming(
        f"audio stream {index} of {src} has no codec FFmpeg knows, so it cannot be copied; "
        f"pass {NO_AUDIO} to write the video without it", NO_AUDIO)


def check_audio_codecs(src: str) -> None:
    """Every audio stream of ``src`` has a codec (else it cannot be copied): InputMediaError."""
    try:
        container = av.open(src, "r")
    except (av.FFmpegError, OSError, ValueError):
        return  # the reader reports unreadable inputs
    try:
        for s in container.streams.audio:
            if _stream_codec_name(s) is None:
                raise _no_codec_error(s.index, src)
    finally:
        container.close()


class AudioCopier:
    """Copies every audio stream of ``src`` into ``out`` packet by packet, on demand.

    A second demuxer on the input reads audio only; ``mux_until(t)`` muxes the packets whose
    dts is at or before ``t`` seconds (a Fraction), so audio and video stay interleaved and
    memory bounded, instead of libavformat's interleaver holding every video packet.
    Create it after the video stream is added and before ``out.start_encoding()``.
    """

    def __init__(self, src: str, out: av.container.OutputContainer) -> None:
        self.src = src
        try:
            self._in = av.open(src, "r")
        except (av.FFmpegError, OSError) as e:
            raise InputMediaError(f"cannot reopen {src} to copy audio: {e}") from None
        self._map = {}
        self.codec_names = []
        for s in self._in.streams.audio:
            name = _stream_codec_name(s)
            if name is None:
                self._in.close()
                raise _no_codec_error(s.index, src)
            try:
                self._map[s.index] = out.add_stream_from_template(s)
            except (av.FFmpegError, ValueError, TypeError, AttributeError) as e:
                self._in.close()
                raise OutputError.naming(
                    f"audio stream {s.index} ({name}) of {src} cannot be copied into {out.name}: "
                    f"{_reason(e)}; choose .mov/.mkv or pass {NO_AUDIO}", NO_AUDIO
                ) from None
            self.codec_names.append(name)
        self._packets: Iterator[av.Packet] = self._in.demux(*self._in.streams.audio)
        self._pending: Optional[av.Packet] = None
        self._out = out
        self._done = False
        # Seconds; packets ending at or before it are skipped (set for frame-range outputs).
        self.start: Optional[Fraction] = None

    def _next(self) -> Optional[av.Packet]:
        while not self._done:
            try:
                p = next(self._packets)
            except StopIteration:
                self._done = True
                return None
            except av.FFmpegError as e:
                raise InputMediaError(f"corrupt audio in {self.src}: {_reason(e)}") from None
            if p.dts is None:  # demuxer flush packet, carries no data
                continue
            if self.start is not None and (p.pts + (p.duration or 0)) * p.time_base <= self.start:
                continue
            return p
        return None

    def mux_until(self, t: Optional[Fraction]) -> None:
        """Mux audio packets with dts time <= t (seconds); t None = all remaining."""
        while True:
            if self._pending is None:
                self._pending = self._next()
                if self._pending is None:
                    return
            p = self._pending
            if t is not None and p.dts * p.time_base > t:
                return
            p.stream = self._map[p.stream_index]
            try:
                self._out.mux(p)
            except av.FFmpegError as e:
                _raise_if_environment(e, self._out.name)
                raise EncoderError(f"copying audio into {self._out.name}: {_reason(e)}") \
                    from None
            self._pending = None

    def close(self) -> None:
        try:
            self._in.close()
        except Exception:
            pass
