"""Video/image IO at the pipeline's edges (PyAV).

- ``open_input(path)`` -> ``InputReader`` (video file, single image, or ``dir/%04d.png`` pattern)
- ``open_output(path, info, cfg, has_color=..., has_alpha=...)`` -> ``OutputWriter``
- ``supported_output_suffixes()``, ``describe_output(path, cfg)``
"""
from __future__ import annotations

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
    OutputWriter,
    describe_output,
    open_output,
    supported_output_suffixes,
)

__all__ = [
    "CODEC_CHOICES",
    "DEFAULT_STILL_RATE",
    "IMAGE_SUFFIXES",
    "InputReader",
    "OutputWriter",
    "describe_output",
    "is_sequence_pattern",
    "list_sequence",
    "open_input",
    "open_output",
    "supported_output_suffixes",
]
