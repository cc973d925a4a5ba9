"""Encoding of matting results: ProRes 4444 RGBA, matte videos, PNG / EXR images and sequences.

Modules: ``plan`` (the table: extension, codec, content -> encoder, pixel format, options),
``targets`` (container file, single image, image sequence), ``audio`` (packet copy),
``metadata`` (timecode, tags, rotation), ``check`` (OUTPUT checks before any work), ``output``
(``open_output``/``OutputWriter``), ``remux`` (``concat_segments``: stream-copy joins).

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
  .mov/.mp4, a TIMECODE tag in .mkv), advanced to the first written frame for a frame range;
  ``concat_segments`` (the farm assembly) writes the same (``apply_source_metadata``). No timecode: none.
- Overwriting a sequence with a full-clip run removes frames of an older, longer run after
  success; a frame-range run never deletes frames (``OutputWriter``).

Codec choices for ``.mov`` (``OutputConfig.codec``):
- prores4444 (default with alpha): FFmpeg's ``prores_ks``, profile 4444, 16-bit alpha coding,
  vendor apl0. 10-bit alpha round-trips exactly (0 and 1 stay exact). Slow: ~2.7 fps at 1080p
  on a 2-core machine.
- prores4444xq: same encoder, 4444 XQ profile (higher data-rate ceiling).
- prores_aw: FFmpeg's older ``prores_aw`` encoder, ~4-5x faster (~13 fps at 1080p here) with
  smaller files. It trades: coarser quantisation (colour error measured 3.9/255 vs 2.2/255 on
  noisy test content), alpha stored as the 10-bit value shifted left (opaque decodes as
  65472/65535 = 0.999, not 1.0), no odd widths, and no vendor/alpha_bits options.
- prores422hq (default for mattes): matte in luma, Y = 64 + 876 a, neutral chroma; within
  ~1/255 on real mattes (lossy on noise); DCT ringing can move 0 and 1 by up to ~3 10-bit
  levels within a few pixels of soft edges, so use the codec ``png`` or ``.mkv`` for an exact matte.
- png: PNG-in-MOV, lossless 16-bit. ``.mkv`` = FFV1 lossless 16-bit. ``.mp4`` = H.264
  yuv420p (lossy; crf 16 for colour, crf 12 for mattes), no alpha, even sizes only.

Alpha conventions (what editors expect):
- ProRes 4444, PNG, FFV1: STRAIGHT (unmatted) alpha; colour is the foreground colour.
- EXR: PREMULTIPLIED (RGB * alpha) float32, as the EXR convention requires. Values are written as
  given (display-referred, same transfer as the source), not linearised.
"""
from __future__ import annotations

from alphagan_video.io.writer._common import _existing_sequence_files as existing_sequence_files
from alphagan_video.io.writer._common import _raise_if_environment as raise_if_environment
from alphagan_video.io.writer.audio import AudioCopier, check_audio_codecs
from alphagan_video.io.writer.check import check_can_create, check_output
from alphagan_video.io.writer.metadata import (
    SourceMetadata,
    apply_source_metadata,
    offset_timecode,
    read_source_metadata,
    set_rotation,
)
from alphagan_video.io.writer.output import OutputWriter, open_output
from alphagan_video.io.writer.plan import (
    CODEC_CHOICES,
    OUTPUT_TABLE,
    OutputPlan,
    PlanRow,
    codecs_for,
    describe_output,
    kind_content,
    plan_output,
    supported_output_suffixes,
    takes_planes,
)
from alphagan_video.io.writer.remux import ConcatReport, RemuxSource, concat_segments
from alphagan_video.io.writer.targets import ImageTarget, OutputTarget, SequenceTarget, VideoTarget
from alphagan_video.io.writer.x264 import deterministic_x264_options

__all__ = [
    "AudioCopier",
    "CODEC_CHOICES",
    "ConcatReport",
    "ImageTarget",
    "OUTPUT_TABLE",
    "OutputPlan",
    "OutputTarget",
    "OutputWriter",
    "PlanRow",
    "RemuxSource",
    "SequenceTarget",
    "SourceMetadata",
    "VideoTarget",
    "apply_source_metadata",
    "check_audio_codecs",
    "check_can_create",
    "check_output",
    "codecs_for",
    "concat_segments",
    "describe_output",
    "deterministic_x264_options",
    "existing_sequence_files",
    "kind_content",
    "offset_timecode",
    "open_output",
    "plan_output",
    "raise_if_environment",
    "read_source_metadata",
    "set_rotation",
    "supported_output_suffixes",
    "takes_planes",
]
