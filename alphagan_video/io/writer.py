"""Encoding of matting results: ProRes 4444 RGBA, matte videos, PNG / EXR images and sequences.

    with open_output("out.mov", info, cfg, has_color=True, has_alpha=True) as w:
        for batch in batches:           # OutputBatch, float32 in [0, 1]
            w.write(batch)

Guarantees:
- Nothing appears at OUTPUT until the writer closes normally: videos and single images are
  written to a hidden temporary file beside OUTPUT (same extension, so the muxer is picked the
  same way) and renamed into place; sequences are written into a hidden temporary directory
  beside the frames and moved into place file by file at the end. Any exception, including
  KeyboardInterrupt, deletes the temporaries.
- Every output frame gets the input pts and time_base (VFR preserved). QuickTime/MP4 keep the
  time base when its denominator is >= 10000 (the muxer multiplies smaller ones by a power of
  two, which keeps instants exact); Matroska always stores milliseconds.
- Display rotation from ``info.rotation`` is set before the first packet is muxed.
- Audio streams of a video input are copied packet for packet (no re-encode), interleaved with
  the video as it is written, so memory stays bounded by one batch.
- Video outputs of a video input get its container tags and start timecode (a tmcd track in
  .mov/.mp4, a TIMECODE tag in .mkv), advanced to the first written frame for a ``--frames``
  range; the farm assembly writes the same (``apply_source_metadata``). No timecode: none.
- Overwriting a sequence with a full-clip run removes frames of an older, longer run after
  success; a ``--frames`` range run never deletes frames (``OutputWriter``).

Codec choices for ``.mov`` (``OutputConfig.codec``):
- prores4444 (default with alpha): FFmpeg's ``prores_ks``, profile 4444, 16-bit alpha coding,
  vendor apl0. 10-bit alpha round-trips exactly (0 and 1 stay exact). Slow: ~2.7 fps at 1080p
  on this 2-core machine (ecosystem.md §1.3).
- prores4444xq: same encoder, 4444 XQ profile (higher data-rate ceiling).
- prores_aw: FFmpeg's older ``prores_aw`` encoder, ~4-5x faster (~13 fps at 1080p here) with
  smaller files. It trades: coarser quantisation (colour error measured 3.9/255 vs 2.2/255 on
  noisy test content), alpha stored as the 10-bit value shifted left (opaque decodes as
  65472/65535 = 0.999, not 1.0), no odd widths, and no vendor/alpha_bits options.
- prores422hq (default for mattes): matte in luma, Y = 64 + 876 a, neutral chroma; within
  ~1/255 on real mattes (lossy on noise); DCT ringing can move 0 and 1 by up to ~3 10-bit
  levels within a few pixels of soft edges, so use ``--codec png`` or ``.mkv`` for an exact matte.
- png: PNG-in-MOV, lossless 16-bit. ``.mkv`` = FFV1 lossless 16-bit. ``.mp4`` = H.264
  yuv420p (lossy; crf 16 for colour, crf 12 for mattes), no alpha, even sizes only.

Alpha conventions (what editors expect, DESIGN.md §4):
- ProRes 4444, PNG, FFV1: STRAIGHT (unmatted) alpha; colour is the foreground colour.
- EXR: PREMULTIPLIED (RGB * alpha) float32, as the EXR convention requires. Values are written as
  given (display-referred, same transfer as the source), not linearised.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Union

import av
import numpy as np

from alphagan_video._atomic import temp_name
from alphagan_video.config import OutputConfig
from alphagan_video.errors import EncoderError, InputMediaError, OutputError
from alphagan_video.io.colour import (
    BT709,
    RANGE_MPEG,
    matte_to_yuv_frame,
    planes_to_yuv10_frame,
    rgb8_to_yuv_frame,
    rgb_to_yuv10_frame,
    to_uint8,
    to_uint16,
)
from alphagan_video.types import OutputBatch, VideoInfo

PathLike = Union[str, "os.PathLike[str]"]

_VIDEO_SUFFIXES = (".mov", ".mp4", ".mkv")
_IMAGE_SUFFIXES = (".png", ".exr")
_PATTERN_RE = re.compile(r"%(0?)(\d*)d")

#: Values accepted in ``OutputConfig.codec`` (None = the extension's default).
CODEC_CHOICES = (
    "prores4444",
    "prores4444xq",
    "prores_aw",
    "prores422hq",
    "ffv1",
    "png",
    "h264",
    "exr",
)

# H.264 quality: crf 16 is visually lossless for most material; yuv420p keeps every player happy.
_H264_OPTIONS = {"crf": "16", "preset": "medium"}
_H264_MATTE_OPTIONS = {"crf": "12", "preset": "medium"}
_PRORES_KS_VENDOR = "apl0"  # makes Apple's decoders trust the stream (FFmpeg default "fmpg")


def supported_output_suffixes() -> tuple[str, ...]:
    """Output extensions understood by ``open_output`` (images may be a ``%04d`` pattern)."""
    return _VIDEO_SUFFIXES + _IMAGE_SUFFIXES


@dataclass(frozen=True)
class _Plan:
    """How one output is encoded."""

    target: str  # "video" | "image" | "sequence"
    encoder: str  # FFmpeg encoder name
    pix_fmt: str
    label: str  # human description
    layout: str  # "rgba" | "matte" | "color": which data go in
    options: dict = field(default_factory=dict)
    profile: Optional[str] = None
    premultiplied: bool = False
    lossless: bool = False


def _layout(has_color: bool, has_alpha: bool) -> str:
    if has_color and has_alpha:
        return "rgba"
    if has_alpha:
        return "matte"
    if has_color:
        return "color"
    raise OutputError("nothing to write: the output has neither colour nor alpha")


def _kind_flags(kind: str) -> tuple[bool, bool]:
    return {
        "rgba": (True, True),
        "alpha": (False, True),
        "foreground": (True, False),
        "composite": (True, False),
    }.get(kind, (True, True))


def _prores(encoder: str, profile: str, pix_fmt: str, layout: str, name: str) -> _Plan:
    if encoder == "prores_ks":
        opts = {"profile": profile.lower(), "vendor": _PRORES_KS_VENDOR}
        if pix_fmt.startswith("yuva"):
            opts["alpha_bits"] = "16"
        return _Plan("video", encoder, pix_fmt, name, layout, opts)
    # prores_aw takes the profile through AVCodecContext.profile, not an option string.
    aw_profile = {"4444": "4444", "4444xq": "XQ", "hq": "HQ"}[profile.lower()]
    return _Plan(
        "video", encoder, pix_fmt, name, layout, {"vendor": _PRORES_KS_VENDOR}, aw_profile
    )


def _plan(path: str, cfg: OutputConfig, has_color: bool, has_alpha: bool) -> _Plan:
    """Pick encoder, pixel format and options from the extension, codec and content."""
    layout = _layout(has_color, has_alpha)
    suffix = Path(path).suffix.lower()
    codec = cfg.codec.lower() if cfg.codec else None
    if suffix not in supported_output_suffixes():
        raise OutputError(
            f"unknown output extension {suffix or '(none)'!r} in {path}; "
            f"supported: {', '.join(supported_output_suffixes())}"
        )
    if codec is not None and codec not in CODEC_CHOICES:
        raise OutputError(
            f"unknown output codec {cfg.codec!r}; choose one of {', '.join(CODEC_CHOICES)}"
        )

    def bad() -> OutputError:
        what = {"rgba": "colour + alpha", "matte": "a matte", "color": "colour"}[layout]
        return OutputError(
            f"codec {codec!r} cannot write {what} into {suffix}; {_suggest(suffix, layout)}"
        )

    if suffix in _IMAGE_SUFFIXES:
        target = "sequence" if _PATTERN_RE.search(os.path.basename(path)) else "image"
        if suffix == ".png":
            if codec not in (None, "png"):
                raise bad()
            pix = {"rgba": "rgba64be", "matte": "gray16be", "color": "rgb48be"}[layout]
            label = {"rgba": "16-bit RGBA, straight alpha", "matte": "16-bit gray matte",
                     "color": "16-bit RGB"}[layout]
            return _Plan(target, "png", pix, f"PNG {label}", layout, lossless=True)
        if codec not in (None, "exr"):
            raise bad()
        pix = {"rgba": "gbrapf32le", "matte": "grayf32le", "color": "gbrpf32le"}[layout]
        label = {"rgba": "float RGBA, premultiplied alpha", "matte": "float gray matte",
                 "color": "float RGB"}[layout]
        return _Plan(
            target, "exr", pix, f"OpenEXR {label}", layout,
            {"compression": "zip1", "format": "float"}, premultiplied=(layout == "rgba"),
            lossless=True,
        )

    if suffix == ".mp4":
        if layout == "rgba":
            raise OutputError(
                f"{suffix} (H.264) has no alpha channel: {path}; write .mov (ProRes 4444), "
                ".mkv (FFV1) or a .png/.exr sequence, or use the alpha/foreground output kinds"
            )
        if codec not in (None, "h264"):
            raise bad()
        return _h264_plan(layout)

    if suffix == ".mkv":
        if codec == "h264" and layout != "rgba":
            return _h264_plan(layout)
        if codec not in (None, "ffv1"):
            raise bad()
        pix = {"rgba": "gbrap16le", "matte": "gray16le", "color": "gbrp16le"}[layout]
        label = {"rgba": "16-bit RGBA, straight alpha", "matte": "16-bit gray matte",
                 "color": "16-bit RGB"}[layout]
        return _Plan("video", "ffv1", pix, f"FFV1 lossless {label}", layout,
                     {"level": "3", "slicecrc": "1"}, lossless=True)

    # .mov
    if codec == "png":
        pix = {"rgba": "rgba64be", "matte": "gray16be", "color": "rgb48be"}[layout]
        label = {"rgba": "16-bit RGBA, straight alpha", "matte": "16-bit gray matte",
                 "color": "16-bit RGB"}[layout]
        return _Plan("video", "png", pix, f"PNG-in-MOV lossless {label}", layout,
                     lossless=True)
    if codec == "h264":
        if layout == "rgba":
            raise bad()
        return _h264_plan(layout)
    if codec == "ffv1":
        raise bad()
    if layout == "rgba":
        if codec in (None, "prores4444"):
            return _prores("prores_ks", "4444", "yuva444p10le", layout,
                           "ProRes 4444 (prores_ks), straight alpha, yuva444p10le")
        if codec == "prores4444xq":
            return _prores("prores_ks", "4444xq", "yuva444p10le", layout,
                           "ProRes 4444 XQ (prores_ks), straight alpha, yuva444p10le")
        if codec == "prores_aw":
            return _prores("prores_aw", "4444", "yuva444p10le", layout,
                           "ProRes 4444 (prores_aw, fast), straight alpha, yuva444p10le")
        raise bad()
    if layout == "matte":
        if codec in (None, "prores422hq"):
            return _prores("prores_ks", "hq", "yuv422p10le", layout,
                           "ProRes 422 HQ (prores_ks), matte in luma, yuv422p10le")
        if codec in ("prores4444", "prores4444xq"):
            prof = "4444" if codec == "prores4444" else "4444xq"
            return _prores("prores_ks", prof, "yuv444p10le", layout,
                           f"ProRes {prof.upper()} (prores_ks), matte in luma, yuv444p10le")
        if codec == "prores_aw":
            return _prores("prores_aw", "hq", "yuv422p10le", layout,
                           "ProRes 422 HQ (prores_aw, fast), matte in luma, yuv422p10le")
        raise bad()
    # colour only
    if codec in (None, "prores4444"):
        return _prores("prores_ks", "4444", "yuv444p10le", layout,
                       "ProRes 4444 (prores_ks), no alpha, yuv444p10le")
    if codec == "prores4444xq":
        return _prores("prores_ks", "4444xq", "yuv444p10le", layout,
                       "ProRes 4444 XQ (prores_ks), no alpha, yuv444p10le")
    if codec == "prores_aw":
        return _prores("prores_aw", "4444", "yuv444p10le", layout,
                       "ProRes 4444 (prores_aw, fast), no alpha, yuv444p10le")
    if codec == "prores422hq":
        return _prores("prores_ks", "hq", "yuv422p10le", layout,
                       "ProRes 422 HQ (prores_ks), yuv422p10le")
    raise bad()


def _h264_plan(layout: str) -> _Plan:
    if layout == "matte":
        return _Plan("video", "libx264", "yuv420p",
                     "H.264 (libx264 crf 12), matte in luma, yuv420p, lossy (a few levels)",
                     layout, dict(_H264_MATTE_OPTIONS))
    return _Plan("video", "libx264", "yuv420p", "H.264 (libx264 crf 16), yuv420p, BT.709, lossy",
                 layout, dict(_H264_OPTIONS))


def _suggest(suffix: str, layout: str) -> str:
    options = {
        ".mov": {"rgba": "prores4444, prores4444xq, prores_aw, png",
                 "matte": "prores422hq, prores4444, prores4444xq, prores_aw, png, h264",
                 "color": "prores4444, prores4444xq, prores_aw, prores422hq, png, h264"},
        ".mkv": {"rgba": "ffv1", "matte": "ffv1, h264", "color": "ffv1, h264"},
        ".mp4": {"rgba": "(none)", "matte": "h264", "color": "h264"},
        ".png": {"rgba": "png", "matte": "png", "color": "png"},
        ".exr": {"rgba": "exr", "matte": "exr", "color": "exr"},
    }
    return f"codecs for {suffix}: {options[suffix][layout]}"


def describe_output(
    path: PathLike,
    cfg: OutputConfig,
    *,
    has_color: Optional[bool] = None,
    has_alpha: Optional[bool] = None,
) -> str:
    """One-line description of what ``open_output`` would write, e.g.
    ``"ProRes 4444 (prores_ks), straight alpha, yuva444p10le"``. has_color/has_alpha default to
    what ``cfg.kind`` implies. Raises OutputError for unsupported combinations."""
    c, a = _kind_flags(cfg.kind)
    plan = _plan(os.fspath(path), cfg, c if has_color is None else has_color,
                 a if has_alpha is None else has_alpha)
    extra = " sequence" if plan.target == "sequence" else ""
    return f"{plan.label}{extra}"


def open_output(
    path: PathLike,
    info: VideoInfo,
    cfg: OutputConfig,
    *,
    has_color: bool,
    has_alpha: bool,
    frame_range: Optional[tuple[int, int]] = None,
) -> "OutputWriter":
    """Validate OUTPUT and open a writer (use as a context manager).

    frame_range: (first, last) source frame indices when only part of the clip is written
    (``--frames A-B``), None for a full-clip run. It moves the timecode to the first written
    frame and keeps other frames of a sequence on disk (see ``OutputWriter``).

    Raises OutputError before any work for: unknown extension/codec, a combination the format
    cannot hold (alpha in .mp4), a missing output directory, an existing output without
    ``cfg.overwrite``, or frame sizes the encoder cannot take.
    """
    return OutputWriter(os.fspath(path), info, cfg, has_color=has_color, has_alpha=has_alpha,
                        frame_range=frame_range)


def _check_target(path: str, plan: _Plan, info: VideoInfo, cfg: OutputConfig) -> None:
    """The checks ``open_output`` makes on OUTPUT before creating anything (see ``check_output``)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OutputError(f"output directory does not exist: {directory} (for {path})")
    if not os.access(directory, os.W_OK):
        raise OutputError(f"output directory is not writable: {directory}")
    check_can_create(directory)
    if os.path.isdir(path):
        raise OutputError(f"output path is a directory: {path}; give a file name")
    try:
        name_max = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(os.path.basename(path))) > name_max:
        raise OutputError(f"output file name is too long ({len(os.fsencode(os.path.basename(path)))} bytes, "
                          f"the file system takes {name_max}): {path}; choose a shorter name")
    if plan.target == "sequence":
        existing = _existing_sequence_files(path)
        if existing and not cfg.overwrite:
            raise OutputError(
                f"output sequence {path} already has files (e.g. "
                f"{os.path.basename(existing[0])}); pass --overwrite or choose another name"
            )
    elif os.path.exists(path) and not cfg.overwrite:
        raise OutputError(
            f"output exists: {path}; pass --overwrite or choose another name"
        )
    w, h = info.width, info.height
    if plan.encoder == "libx264" and (w % 2 or h % 2):
        raise OutputError(
            f"H.264 yuv420p needs an even frame size, the input is {w}x{h}: {path}; "
            "write .mov (ProRes) or .mkv (FFV1) instead"
        )
    if plan.encoder == "prores_aw" and w % 2:
        raise OutputError(
            f"prores_aw needs an even width, the input is {w}x{h}: {path}; "
            "use the default prores4444 (prores_ks) codec"
        )
    if plan.target == "image" and info.kind != "video" and (
        (info.frame_count or 1) > 1
    ):
        raise OutputError(
            f"{info.frame_count} frames cannot go into the single image {path}; "
            f"use a pattern such as {_pattern_hint(path)}"
        )
    if plan.target == "video" and cfg.copy_audio and info.kind == "video" and info.audio_stream_count > 0:
        _check_audio_codecs(info.path)


def _check_audio_codecs(src: str) -> None:
    """Every audio stream of ``src`` has a codec (else it cannot be copied): InputMediaError."""
    try:
        container = av.open(src, "r")
    except (av.FFmpegError, OSError, ValueError):
        return  # the reader reports unreadable inputs
    try:
        for s in container.streams.audio:
            if _stream_codec_name(s) is None:
                raise InputMediaError(
                    f"audio stream {s.index} of {src} has no codec FFmpeg knows, so it cannot be copied; "
                    "pass --no-audio to write the video without it"
                )
    finally:
        container.close()


def check_output(
    path: PathLike,
    info: VideoInfo,
    cfg: OutputConfig,
    *,
    has_color: Optional[bool] = None,
    has_alpha: Optional[bool] = None,
) -> None:
    """Every check ``open_output`` makes before writing, without creating anything: extension,
    codec and kind, output folder (exists, a file can be created in it), an existing output
    without ``cfg.overwrite``, frame sizes the encoder cannot take. Raises OutputError.

    The CLI calls it before loading the model, so a bad OUTPUT fails in a fraction of a second.
    has_color/has_alpha default to what ``cfg.kind`` implies."""
    c, a = _kind_flags(cfg.kind)
    path = os.fspath(path)
    plan = _plan(path, cfg, c if has_color is None else has_color, a if has_alpha is None else has_alpha)
    _check_target(path, plan, info, cfg)


class OutputWriter:
    """Writer returned by ``open_output``. ``write`` takes OutputBatch objects in frame order.

    Sequence files are numbered by frame index (``OutputBatch.index``, 0-based, the input's
    decode order), so chunks of a farm job written separately land on consistent names; the
    input sequence's own start number is not reused.

    Overwriting a sequence (``cfg.overwrite``): a full-clip run (``frame_range`` None) owns the
    whole pattern, so after it has succeeded the files matching the pattern that it did not
    write (frames of an older, longer run) are deleted. A ``--frames`` range run
    (``frame_range`` set) deletes nothing: the other frames may be other chunks of the same job.
    Nothing is deleted when the run fails.

    Video outputs of a video source carry the source's container tags and timecode
    (``apply_source_metadata``; for a range, the timecode of its first frame); ``timecode`` is
    what was written (None: none).
    """

    def __init__(
        self,
        path: str,
        info: VideoInfo,
        cfg: OutputConfig,
        *,
        has_color: bool,
        has_alpha: bool,
        frame_range: Optional[tuple[int, int]] = None,
    ) -> None:
        self.path = path
        self.frame_range = frame_range
        self.timecode: Optional[str] = None
        self.info = info
        self.cfg = cfg
        self.has_color = has_color
        self.has_alpha = has_alpha
        self.plan = _plan(path, cfg, has_color, has_alpha)
        self.description = self.plan.label
        self.frames_written = 0
        self._closed = False
        self._tmp_path: Optional[str] = None
        self._tmp_dir: Optional[str] = None
        self._container: Optional[av.container.OutputContainer] = None
        self._stream = None
        self._audio: Optional[_AudioCopier] = None
        self._video_end: Optional[Fraction] = None
        self._image_ctx: Optional[av.CodecContext] = None
        self._seq_files: list[str] = []
        self._check_target()
        try:
            self._open()
        except BaseException:
            self._cleanup()
            raise

    # ------------------------------------------------------------------ setup
    def _check_target(self) -> None:
        _check_target(self.path, self.plan, self.info, self.cfg)

    def _open(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        base = os.path.basename(self.path)
        if self.plan.target == "sequence":
            self._tmp_dir = os.path.join(directory, temp_name(_safe_stem(base)))
            try:
                os.mkdir(self._tmp_dir)
            except OSError as e:
                self._tmp_dir = None
                raise OutputError(f"cannot create a folder beside {self.path}: {_reason(e)}") from None
            self._image_ctx = self._make_image_ctx()
            return
        stem, suffix = os.path.splitext(base)
        self._tmp_path = os.path.join(directory, temp_name(_safe_stem(stem), suffix))
        if self.plan.target == "image":
            self._image_ctx = self._make_image_ctx()
            return
        self._open_video()

    def _make_image_ctx(self) -> av.CodecContext:
        ctx = av.CodecContext.create(self.plan.encoder, "w")
        ctx.width, ctx.height = self.info.width, self.info.height
        ctx.pix_fmt = self.plan.pix_fmt
        ctx.time_base = Fraction(1, 1)
        if self.plan.options:
            ctx.options = dict(self.plan.options)
        return ctx

    def _open_video(self) -> None:
        plan, info = self.plan, self.info
        try:
            # MOV/MP4 store a non-zero start time in the movie timescale (default 1000, which
            # shifted every pts of a clip starting at 1024/12288 s): use the track's time base.
            quicktime = self._tmp_path.lower().endswith((".mov", ".mp4"))
            options = {"movie_timescale": str(info.time_base.denominator)} if quicktime else {}
            self._container = av.open(self._tmp_path, "w", options=options)
        except (av.FFmpegError, OSError) as e:
            raise OutputError(f"cannot create {self.path}: {e}") from None
        rate = info.frame_rate or Fraction(24)
        try:
            s = self._container.add_stream(plan.encoder, rate=rate)
        except (av.FFmpegError, ValueError) as e:
            raise OutputError(f"encoder {plan.encoder} is not available in this FFmpeg build ({_reason(e)}); "
                              "choose another --codec or output extension") from None
        s.width, s.height = info.width, info.height
        s.pix_fmt = plan.pix_fmt
        s.time_base = info.time_base
        cc = s.codec_context
        cc.time_base = info.time_base
        if plan.profile:
            s.profile = plan.profile
        if plan.options:
            s.options = dict(plan.options)
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
        self._stream = s
        # Must precede the first mux of any stream or it is silently dropped (ecosystem §1.4).
        if info.rotation:
            s.set_display_rotation(info.rotation)
        if info.kind == "video":
            first = self.frame_range[0] if self.frame_range is not None else 0
            self.timecode = apply_source_metadata(self._container, s, read_source_metadata(info.path),
                                                  first_frame=first)
        if self.cfg.copy_audio and info.kind == "video" and info.audio_stream_count > 0:
            self._audio = _AudioCopier(info.path, self._container)
        try:
            self._container.start_encoding()
        except av.FFmpegError as e:
            if self._audio is not None:
                _raise_if_environment(e, self.path)
                raise OutputError(
                    f"cannot write {self.path} with the input's audio "
                    f"({', '.join(self._audio.codec_names)}): {_reason(e)}; "
                    "choose .mov/.mkv or pass --no-audio"
                ) from None
            _raise_if_environment(e, self.path)
            raise EncoderError(f"cannot start encoding {self.path}: {_reason(e)}") from None

    # ------------------------------------------------------------------ writing
    def write(self, batch: OutputBatch) -> None:
        """Encode B frames. color (B,H,W,3) float32 [0,1] straight, alpha (B,H,W) float32 [0,1];
        each must be present exactly when the writer was opened with has_color/has_alpha."""
        if self._closed:
            raise OutputError(f"writer for {self.path} is already closed")
        self._check_batch(batch)
        planes = batch.planes if self._takes_planes(batch) else None
        for i in range(len(batch)):
            color = batch.color[i] if batch.color is not None else None
            alpha = batch.alpha[i] if batch.alpha is not None else None
            pts = batch.pts[i] if batch.pts[i] is not None else batch.index[i]
            if planes is not None:
                self._encode_frame(planes_to_yuv10_frame(planes[i], self.plan.pix_fmt), pts, batch.time_base)
            elif self.plan.target == "video":
                self._write_video_frame(color, alpha, pts, batch.time_base)
            else:
                self._write_image(color, alpha, batch.index[i])
            self.frames_written += 1

    def accepts_planes(self, channels: int) -> bool:
        """True when ``OutputBatch.planes`` with ``channels`` 10-bit YCbCr(A) planes can fill this
        output's frames directly (ProRes 4444 / 4444 XQ video: 4 with alpha, 3 without)."""
        if self.plan.target != "video" or self.plan.layout == "matte":
            return False
        return {"yuva444p10le": 4, "yuv444p10le": 3}.get(self.plan.pix_fmt) == channels

    def _takes_planes(self, batch: OutputBatch) -> bool:
        return batch.planes is not None and batch.planes.ndim == 4 and self.accepts_planes(batch.planes.shape[1])

    def _check_batch(self, batch: OutputBatch) -> None:
        n, h, w = len(batch), self.info.height, self.info.width
        if self._takes_planes(batch):
            if batch.planes.shape != (n, batch.planes.shape[1], h, w) or batch.planes.dtype != np.uint16:
                raise ValueError(f"planes must be ({n}, C, {h}, {w}) uint16, got {batch.planes.shape} "
                                 f"{batch.planes.dtype}")
            if len(batch.pts) != n:
                raise ValueError(f"batch has {n} indices but {len(batch.pts)} pts")
            return
        if self.has_color:
            if batch.color is None or batch.color.shape != (n, h, w, 3):
                got = None if batch.color is None else batch.color.shape
                raise ValueError(f"color must be ({n}, {h}, {w}, 3) float32, got {got}")
        if self.has_alpha:
            if batch.alpha is None or batch.alpha.shape != (n, h, w):
                got = None if batch.alpha is None else batch.alpha.shape
                raise ValueError(f"alpha must be ({n}, {h}, {w}) float32, got {got}")
        if len(batch.pts) != n:
            raise ValueError(f"batch has {n} indices but {len(batch.pts)} pts")

    def _make_video_frame(
        self, color: Optional[np.ndarray], alpha: Optional[np.ndarray]
    ) -> av.VideoFrame:
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

    def _write_video_frame(
        self, color: Optional[np.ndarray], alpha: Optional[np.ndarray], pts: int, tb: Fraction
    ) -> None:
        self._encode_frame(self._make_video_frame(color, alpha), pts, tb)

    def _encode_frame(self, frame: av.VideoFrame, pts: int, tb: Fraction) -> None:
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
                f"{self.plan.encoder} failed at frame {self.frames_written} of "
                f"{self.path}: {_reason(e)}"
            ) from None
        for p in packets:
            self._mux_video(p)

    def _mux_video(self, packet: av.Packet) -> None:
        if self._audio is not None:
            t = packet.dts if packet.dts is not None else packet.pts
            if t is not None:
                self._audio.mux_until(t * packet.time_base)
        try:
            self._container.mux(packet)
        except av.FFmpegError as e:
            _raise_if_environment(e, self.path)
            raise EncoderError(f"muxing into {self.path} failed: {_reason(e)}") from None

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

    def _write_image(
        self, color: Optional[np.ndarray], alpha: Optional[np.ndarray], index: int
    ) -> None:
        if self.plan.target == "image":
            if self.frames_written >= 1:
                raise OutputError(
                    f"a second frame cannot go into the single image {self.path}; use a "
                    f"pattern such as {_pattern_hint(self.path)}"
                )
            dest = self._tmp_path
        else:
            name = os.path.basename(self.path) % index
            dest = os.path.join(self._tmp_dir, name)
            self._seq_files.append(name)
        frame = self._image_frame(color, alpha)
        frame.pts = 0
        try:
            packets = list(self._image_ctx.encode(frame))
        except av.FFmpegError as e:
            raise EncoderError(f"{self.plan.encoder} failed on {dest}: {_reason(e)}") from None
        try:
            with open(dest, "wb") as fh:
                for p in packets:
                    fh.write(bytes(p))
        except OSError as e:
            _raise_if_environment(e, self.path)
            raise

    # ------------------------------------------------------------------ closing
    def __enter__(self) -> "OutputWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> None:
        """Flush, finish the file and move it into place. On failure nothing is left behind."""
        if self._closed:
            return
        try:
            if self.frames_written == 0:
                raise OutputError(f"no frames were written to {self.path}")
            if self.plan.target == "video":
                self._finish_video()
                self._publish_file()
            elif self.plan.target == "image":
                self._publish_file()
            else:
                self._publish_sequence()
        except OSError as e:  # renames and file writes: a full or vanished output location
            self.abort()
            _raise_if_environment(e, self.path)
            raise
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def _finish_video(self) -> None:
        try:
            for p in self._stream.encode(None):
                self._mux_video(p)
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

    def _publish_file(self) -> None:
        if os.path.exists(self.path) and not self.cfg.overwrite:
            raise OutputError(f"output appeared while writing: {self.path}; not overwriting")
        os.replace(self._tmp_path, self.path)
        self._tmp_path = None

    def _publish_sequence(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        written = set(self._seq_files)
        for name in self._seq_files:
            os.replace(os.path.join(self._tmp_dir, name), os.path.join(directory, name))
        self._seq_files = []
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

    def abort(self) -> None:
        """Stop writing and delete every temporary; OUTPUT is left as it was. Idempotent."""
        self._closed = True
        self._cleanup()

    def _cleanup(self) -> None:
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        if self._container is not None:
            container, self._container = self._container, None
            try:
                container.close()
            except BaseException:  # a half-written file may fail to finalise; it is deleted
                pass
        if self._tmp_path is not None:
            try:
                os.remove(self._tmp_path)
            except FileNotFoundError:
                pass
            self._tmp_path = None
        if self._tmp_dir is not None:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            self._tmp_dir = None


class _AudioCopier:
    """Copies every audio stream of ``src`` into ``out`` packet by packet, on demand.

    A second demuxer on the input reads audio only; ``mux_until(t)`` muxes the packets whose
    dts is at or before ``t`` seconds (a Fraction), so audio and video stay interleaved and
    memory bounded, instead of libavformat's interleaver holding every video packet.
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
                raise InputMediaError(
                    f"audio stream {s.index} of {src} has no codec FFmpeg knows, so it cannot be copied; "
                    "pass --no-audio to write the video without it"
                )
            try:
                self._map[s.index] = out.add_stream_from_template(s)
            except (av.FFmpegError, ValueError, TypeError, AttributeError) as e:
                self._in.close()
                raise OutputError(
                    f"audio stream {s.index} ({name}) of {src} cannot be copied into {out.name}: "
                    f"{_reason(e)}; choose .mov/.mkv or pass --no-audio"
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


# ---------------------------------------------------------------------- source metadata
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
    that starts at source frame ``first_frame`` (a ``--frames`` range) the timecode is advanced
    by that many frames at the stream's rate, so an editor relinking by timecode lines the
    output up with the source. Returns the timecode written (None: the source has none).
    Shared by ``OutputWriter`` and the farm assembly, so both write the same metadata.
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


def _existing_sequence_files(pattern: str) -> list[str]:
    directory = os.path.dirname(os.path.abspath(pattern))
    name = os.path.basename(pattern)
    m = _PATTERN_RE.search(name)
    if m is None or not os.path.isdir(directory):
        return []
    rx = re.compile(re.escape(name[: m.start()]) + r"(\d+)" + re.escape(name[m.end():]) + r"\Z")
    found = sorted(e for e in os.listdir(directory) if rx.match(e))
    return [os.path.join(directory, e) for e in found]


def _pattern_hint(path: str) -> str:
    stem, suffix = os.path.splitext(path)
    sep = "." if suffix == ".exr" else "_"
    return f"{stem}{sep}%04d{suffix}"


def _safe_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return str(text).strip().splitlines()[0] if text else type(e).__name__


#: errno values that mean the output location, not our code, is the problem (exit 2).
_ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "ENOENT",
                                      "ENOTDIR", "EIO", "ESTALE", "ENAMETOOLONG")
    if hasattr(errno, name)
)


def _raise_if_environment(e: BaseException, path: str) -> None:
    """Raise OutputError for a write failure caused by the output location (full disk, quota,
    read-only or vanished folder, a file system that takes no files such as /proc)."""
    code = getattr(e, "errno", None)
    if code in _ENVIRONMENT_ERRNOS:
        what = "the disk is full" if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) else _reason(e)
        raise OutputError(f"cannot write {path}: {what} ({os.strerror(code)}); free space or choose another "
                          "output location") from None


def check_can_create(directory: str) -> None:
    """Raise OutputError unless a file can be created (and removed) in ``directory``.

    ``os.access`` says yes for /proc and for read-only mounts of root; creating a real file is the
    only test that tells."""
    probe = os.path.join(directory, temp_name("probe"))
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise OutputError(f"cannot create files in the output directory {directory}: {e.strerror or e}; "
                          "choose another output location") from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass


def _stream_codec_name(stream) -> Optional[str]:
    """The codec name of a stream, None when FFmpeg has no codec for it (no codec context)."""
    try:
        ctx = stream.codec_context
    except Exception:  # noqa: BLE001 - PyAV raises various errors for streams without a codec
        return None
    name = getattr(ctx, "name", None) if ctx is not None else None
    return name or None


__all__ = [
    "CODEC_CHOICES",
    "check_can_create",
    "check_output",
    "OutputWriter",
    "SourceMetadata",
    "apply_source_metadata",
    "describe_output",
    "offset_timecode",
    "open_output",
    "read_source_metadata",
    "supported_output_suffixes",
]
