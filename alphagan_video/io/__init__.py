"""Video/image IO at the pipeline's edges (PyAV).

- ``open_input(path)`` -> ``InputReader`` (video file, single image, or ``dir/%04d.png`` pattern)
- ``open_output(path, info, cfg, has_color=..., has_alpha=...)`` -> ``OutputWriter``
- ``supported_output_suffixes()``, ``describe_output(path, cfg)``, ``plan_output(path, cfg)``
- ``concat_segments(segments, output, RemuxSource(...))``: join encoded segments by stream copy
  with a source's audio, timecode, tags and rotation (``read_source_metadata``)
- ``RawFrameReader`` / ``RawFrameWriter`` (``io.raw``): packed raw frames on byte streams
"""
from __future__ import annotations

from alphagan_video.io.raw import RawFrameReader, RawFrameWriter
from alphagan_video.io.reader import (
    DEFAULT_STILL_RATE,
    IMAGE_SUFFIXES,
    InputReader,
    is_sequence_pattern,
    list_sequence,
    open_input,
)
from alphagan_video.io.writer import (
    CODEC_CHOICES,
    ConcatReport,
    OutputWriter,
    RemuxSource,
    SourceMetadata,
    concat_segments,
    describe_output,
    kind_content,
    open_output,
    plan_output,
    read_source_metadata,
    supported_output_suffixes,
)

__all__ = [
    "CODEC_CHOICES",
    "ConcatReport",
    "DEFAULT_STILL_RATE",
    "IMAGE_SUFFIXES",
    "InputReader",
    "OutputWriter",
    "RawFrameReader",
    "RawFrameWriter",
    "RemuxSource",
    "SourceMetadata",
    "concat_segments",
    "describe_output",
    "is_sequence_pattern",
    "kind_content",
    "list_sequence",
    "open_input",
    "open_output",
    "plan_output",
    "read_source_metadata",
    "supported_output_suffixes",
]
