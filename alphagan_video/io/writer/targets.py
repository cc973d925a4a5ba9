"""Where encoded frames go: a container file, a single image, or an image sequence.

Each target writes into temporaries beside OUTPUT and moves them into place in ``finish``;
``cleanup`` deletes whatever is left (idempotent). ``OutputWriter`` drives them.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from fractions import Fraction
from typing import Callable, Optional

import av
import numpy as np

from alphagan_video._atomic import StagedFile, temp_name
from alphagan_video.config import OutputConfig
from alphagan_video.errors import EncoderError, OutputError
from alphagan_video.io.colour import (
    BT709,
    RANGE_MPEG,
    matte_to_yuv_frame,
    rgb8_to_yuv_frame,
    rgb_to_yuv10_frame,
    to_uint8,
    to_uint16,
)
from alphagan_video.io.writer._common import (
    _existing_sequence_files,
    _pattern_hint,
    _raise_if_environment,
    _reason,
    _safe_stem,
)
from alphagan_video.io.writer.audio import NO_AUDIO, AudioCopier
from alphagan_video.io.writer.metadata import apply_source_metadata, read_source_metadata, set_rotation
from alphagan_video.io.writer.plan import OutputPlan
from alphagan_video.io.writer.x264 import deterministic_x264_options
from alphagan_video.types import VideoInfo


def publish_staged(staged: StagedFile, overwrite: bool, what: str) -> None:
    """Move ``staged`` into place; OutputError when the output appeared meanwhile without overwrite."""
    try:
        staged.publish(replace=overwrite)
    except FileExistsError:
        raise OutputError(f"output appeared while {what}: {staged.path}; not overwriting") from None


def _take_back(paths: list[str]) -> None:
    """Remove files this run has just moved into place (a run that fails leaves none of them)."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.remove(path)


class OutputTarget:
    """Base of the targets: ``path``, ``plan``, ``info``, ``cfg`` and the frame range."""

    def __init__(self, path: str, plan: OutputPlan, info: VideoInfo, cfg: OutputConfig,
                 frame_range: Optional[tuple[int, int]]) -> None:
        self.path, self.plan, self.info, self.cfg, self.frame_range = path, plan, info, cfg, frame_range
        #: The start timecode written (None: none, or not a video).
        self.timecode: Optional[str] = None
        #: Called by ``finish`` once the output is complete in its temporary, just before it is
        #: moved into place (``OutputWriter.before_publish``): side files staged then are
        #: published together with OUTPUT; an exception from it fails the write. It may return
        #: the side files' publication, run right after OUTPUT is in place (``_then``).
        self.before_publish: Optional[Callable[[], Optional[Callable[[], None]]]] = None

    def _about_to_publish(self) -> Optional[Callable[[], None]]:
        return self.before_publish() if self.before_publish is not None else None

    @staticmethod
    def _then(after: Optional[Callable[[], None]], published: list[str]) -> None:
        """Run ``after`` once this run's files ``published`` are in place; when it fails (a side
        file that cannot be renamed), take those files back -- only them -- and re-raise."""
        if after is None:
            return
        try:
            after()
        except BaseException:
            _take_back(published)
            raise

    def open(self) -> None:
        raise NotImplementedError

    def write(self, color: Optional[np.ndarray], alpha: Optional[np.ndarray], pts: int, tb: Fraction,
              index: int, written: int) -> None:
        """Encode one frame: color (H,W,3) / alpha (H,W) float32 [0,1]; pts in ``tb``; ``index`` the
        frame index; ``written`` the frames written before it."""
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError


class _ImageEncoding(OutputTarget):
    """Targets whose frames are single images (PNG / EXR), encoded one by one."""

    _ctx: Optional[av.CodecContext] = None

    def _make_image_ctx(self) -> None:
        ctx = av.CodecContext.create(self.plan.encoder, "w")
        ctx.width, ctx.height = self.info.width, self.info.height
        ctx.pix_fmt = self.plan.pix_fmt
        ctx.time_base = Fraction(1, 1)
        if self.plan.options:
            ctx.options = dict(self.plan.options)
        self._ctx = ctx

    def _image_frame(self, color: Optional[np.ndarray], alpha: Optional[np.ndarray]):
        plan = self.plan
        if plan.encoder == "exr":
            if plan.layout == "matte":
                data = np.clip(alpha, 0.0, 1.0).astype(np.float32)
            elif plan.layout == "rgba":
                a = np.clip(alpha, 0.0, 1.0).astype(np.float32)
                rgb = np.clip(color, 0.0, 1.0).astype(np.float32) * a[..., None]
                data = np.concatenate([rgb, a[..., None]], axis=2)  # premultiplied
            else:
                data = np.clip(color, 0.0, 1.0).astype(np.float32)
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(data), format=plan.pix_fmt)
        if plan.layout == "matte":
            return av.VideoFrame.from_ndarray(to_uint16(alpha), format=plan.pix_fmt)
        if plan.layout == "rgba":
            rgba = np.concatenate([color, alpha[..., None]], axis=2)
            return av.VideoFrame.from_ndarray(to_uint16(rgba), format=plan.pix_fmt)
        return av.VideoFrame.from_ndarray(to_uint16(color), format=plan.pix_fmt)

    def _encode_to(self, dest: str, color: Optional[np.ndarray], alpha: Optional[np.ndarray]) -> None:
        frame = self._image_frame(color, alpha)
        frame.pts = 0
        try:
            packets = list(self._ctx.encode(frame))
        except av.FFmpegError as e:
            raise EncoderError(f"{self.plan.encoder} failed on {dest}: {_reason(e)}") from None
        try:
            with open(dest, "wb") as fh:
                for p in packets:
                    fh.write(bytes(p))
        except OSError as e:
            _raise_if_environment(e, self.path)
            raise


class ImageTarget(_ImageEncoding):
    """One still image, written to a temporary beside OUTPUT and renamed into place."""

    _staged: Optional[StagedFile] = None

    def open(self) -> None:
        stem, suffix = os.path.splitext(os.path.basename(self.path))
        self._staged = StagedFile(self.path, suffix, name=_safe_stem(stem))
        self._make_image_ctx()

    def write(self, color, alpha, pts, tb, index, written) -> None:
        if written >= 1:
            raise OutputError(
                f"a second frame cannot go into the single image {self.path}; use a "
                f"pattern such as {_pattern_hint(self.path)}"
            )
        self._encode_to(self._staged.tmp, color, alpha)

    def finish(self) -> None:
        after = self._about_to_publish()
        publish_staged(self._staged, self.cfg.overwrite, "writing")
        self._then(after, [self.path])

    def cleanup(self) -> None:
        if self._staged is not None:
            self._staged.discard()


class SequenceTarget(_ImageEncoding):
    """Numbered images (``name_%04d.png``), numbered by frame index, written into a hidden folder
    beside them and moved into place file by file in ``finish``.

    A full-clip overwrite (``frame_range`` None) owns the whole pattern: after success the files
    of the pattern it did not write (frames of an older, longer run) are deleted. A frame-range
    run deletes nothing (the other frames may be other chunks of the same job)."""

    _tmp_dir: Optional[str] = None

    def open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        self._files: list[str] = []
        self._tmp_dir = os.path.join(directory, temp_name(_safe_stem(os.path.basename(self.path))))
        try:
            os.mkdir(self._tmp_dir)
        except OSError as e:
            self._tmp_dir = None
            raise OutputError(f"cannot create a folder beside {self.path}: {_reason(e)}") from None
        self._make_image_ctx()

    def write(self, color, alpha, pts, tb, index, written) -> None:
        name = os.path.basename(self.path) % index
        self._files.append(name)
        self._encode_to(os.path.join(self._tmp_dir, name), color, alpha)

    def finish(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        written = set(self._files)
        after = self._about_to_publish()
        moved: list[str] = []
        try:  # a failure half-way takes back the frames this run moved (never the others)
            for name in self._files:
                os.replace(os.path.join(self._tmp_dir, name), os.path.join(directory, name))
                moved.append(os.path.join(directory, name))
        except BaseException:
            _take_back(moved)
            raise
        self._files = []
        self._then(after, moved)
        os.rmdir(self._tmp_dir)
        self._tmp_dir = None
        if self.cfg.overwrite and self.frame_range is None:
            self._remove_stale_frames(written)

    def _remove_stale_frames(self, written: set[str]) -> None:
        """Full-clip overwrite: delete frames of the pattern left by an older, longer run."""
        for stale in _existing_sequence_files(self.path):
            if os.path.basename(stale) in written:
                continue
            try:
                os.remove(stale)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise OutputError(
                    f"wrote {len(written)} frame(s) to {self.path} but cannot remove {stale}, a frame "
                    f"of an older run: {_reason(e)}; delete it by hand"
                ) from None

    def cleanup(self) -> None:
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None


class VideoTarget(OutputTarget):
    """A container file (.mov/.mp4/.mkv): frames keep the input's pts and time base; audio of a
    video input is interleaved as the video is muxed; timecode, tags and rotation come from the
    source. Written to a temporary beside OUTPUT (same extension) and renamed into place."""

    _staged: Optional[StagedFile] = None
    _container: Optional[av.container.OutputContainer] = None
    _audio: Optional[AudioCopier] = None

    def open(self) -> None:
        stem, suffix = os.path.splitext(os.path.basename(self.path))
        self._staged = StagedFile(self.path, suffix, name=_safe_stem(stem))
        self._video_end: Optional[Fraction] = None
        info = self.info
        try:
            # MOV/MP4 store a non-zero start time in the movie timescale (default 1000, which
            # shifted every pts of a clip starting at 1024/12288 s): use the track's time base.
            quicktime = self._staged.tmp.lower().endswith((".mov", ".mp4"))
            options = {"movie_timescale": str(info.time_base.denominator)} if quicktime else {}
            self._container = av.open(self._staged.tmp, "w", options=options)
        except (av.FFmpegError, OSError) as e:
            raise OutputError(f"cannot create {self.path}: {e}") from None
        self._stream = self._add_stream()
        # Must precede the first mux of any stream or it is silently dropped.
        set_rotation(self._stream, info.rotation)
        if info.kind == "video":
            first = self.frame_range[0] if self.frame_range is not None else 0
            self.timecode = apply_source_metadata(self._container, self._stream, read_source_metadata(info.path),
                                                  first_frame=first)
        if self.cfg.copy_audio and info.kind == "video" and info.audio_stream_count > 0:
            self._audio = AudioCopier(info.path, self._container)
        self._start()

    def _add_stream(self):
        plan, info = self.plan, self.info
        rate = info.frame_rate or Fraction(24)
        try:
            s = self._container.add_stream(plan.encoder, rate=rate)
        except (av.FFmpegError, ValueError) as e:
            raise OutputError.naming(f"encoder {plan.encoder} is not available in this FFmpeg build ({_reason(e)}); "
                                     "choose another output.codec or output extension", "output.codec") from None
        s.width, s.height = info.width, info.height
        s.pix_fmt = plan.pix_fmt
        s.time_base = info.time_base
        cc = s.codec_context
        cc.time_base = info.time_base
        if plan.profile:
            s.profile = plan.profile
        options = dict(plan.options)
        if plan.encoder == "libx264":
            options.update(deterministic_x264_options())  # see io/writer/x264.py: AVX-512 off
        if options:
            s.options = options
        if plan.pix_fmt.startswith("yuv"):
            # libx264 writes only the codec-context tags, prores_ks only the frame tags: set both.
            cc.color_primaries = BT709
            cc.color_trc = BT709
            cc.colorspace = BT709
            cc.color_range = RANGE_MPEG
        # Slice threads keep packets in order and cost nothing with intra codecs. prores_aw has
        # no slice threading (only frame threads): without FRAME it encodes on one core.
        if plan.encoder == "prores_aw":
            cc.thread_type = "FRAME"
        else:
            cc.thread_type = "SLICE" if plan.encoder.startswith("prores") else "AUTO"
        return s

    def _start(self) -> None:
        try:
            self._container.start_encoding()
        except av.FFmpegError as e:
            if self._audio is not None:
                _raise_if_environment(e, self.path)
                raise OutputError.naming(
                    f"cannot write {self.path} with the input's audio "
                    f"({', '.join(self._audio.codec_names)}): {_reason(e)}; "
                    f"choose .mov/.mkv or pass {NO_AUDIO}", NO_AUDIO
                ) from None
            _raise_if_environment(e, self.path)
            raise EncoderError(f"cannot start encoding {self.path}: {_reason(e)}") from None

    def _make_frame(self, color: Optional[np.ndarray], alpha: Optional[np.ndarray]) -> av.VideoFrame:
        plan = self.plan
        pf = plan.pix_fmt
        if plan.layout == "matte":
            if pf in ("yuv422p10le", "yuv444p10le", "yuv420p"):
                return matte_to_yuv_frame(alpha, pf)
            return av.VideoFrame.from_ndarray(to_uint16(alpha), format=pf)
        if pf.endswith("p10le"):  # ProRes yuv(a)4xxp10le
            return rgb_to_yuv10_frame(color, alpha, pf)
        if pf == "yuv420p":
            return rgb8_to_yuv_frame(to_uint8(color), pf)
        if plan.layout == "rgba":
            rgba = np.concatenate([color, alpha[..., None]], axis=2)
            return av.VideoFrame.from_ndarray(to_uint16(rgba), format=pf)
        return av.VideoFrame.from_ndarray(to_uint16(color), format=pf)

    def write(self, color, alpha, pts, tb, index, written) -> None:
        self.encode(self._make_frame(color, alpha), pts, tb, written)

    def encode(self, frame: av.VideoFrame, pts: int, tb: Fraction, written: int) -> None:
        """Encode a ready video frame (``written`` frames before it) and mux its packets."""
        frame.pts = pts
        frame.time_base = tb
        if self.cfg.trim_audio and self._audio is not None and pts is not None:
            # Audio for a frame range: drop packets that end before the first frame and
            # (at close) those that start after the last frame ends.
            start = pts * tb
            if self._audio.start is None:
                self._audio.start = start
            duration = 1 / self.info.frame_rate if self.info.frame_rate else Fraction(0)
            self._video_end = start + duration
        try:
            packets = self._stream.encode(frame)
        except av.FFmpegError as e:
            raise EncoderError(
                f"{self.plan.encoder} failed at frame {written} of "
                f"{self.path}: {_reason(e)}"
            ) from None
        for p in packets:
            self._mux(p)

    def _mux(self, packet: av.Packet) -> None:
        if self._audio is not None:
            t = packet.dts if packet.dts is not None else packet.pts
            if t is not None:
                self._audio.mux_until(t * packet.time_base)
        try:
            self._container.mux(packet)
        except av.FFmpegError as e:
            _raise_if_environment(e, self.path)
            raise EncoderError(f"muxing into {self.path} failed: {_reason(e)}") from None

    def finish(self) -> None:
        try:
            for p in self._stream.encode(None):
                self._mux(p)
        except av.FFmpegError as e:
            _raise_if_environment(e, self.path)
            raise EncoderError(f"flushing {self.plan.encoder} for {self.path}: {_reason(e)}") \
                from None
        if self._audio is not None:
            self._audio.mux_until(self._video_end if self.cfg.trim_audio else None)
            self._audio.close()
            self._audio = None
        container, self._container = self._container, None
        try:
            container.close()
        except (av.FFmpegError, OSError) as e:
            _raise_if_environment(e, self.path)
            raise EncoderError(f"finishing {self.path}: {_reason(e)}") from None
        after = self._about_to_publish()
        publish_staged(self._staged, self.cfg.overwrite, "writing")
        self._then(after, [self.path])

    def cleanup(self) -> None:
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self._container is not None:
            container, self._container = self._container, None
            try:
                container.close()
            except BaseException:  # a half-written file may fail to finalise; it is deleted
                pass
        if self._staged is not None:
            self._staged.discard()


#: Plan target name -> the class that writes it.
TARGETS: dict[str, type[OutputTarget]] = {"video": VideoTarget, "image": ImageTarget, "sequence": SequenceTarget}


__all__ = ["ImageTarget", "OutputTarget", "SequenceTarget", "TARGETS", "VideoTarget", "publish_staged"]
