"""Typed errors. Every message names the offending value and the fix.

Only ``alphagan_video.cli`` turns these into exit codes: ``UserInputError`` and its
subclasses exit with 2 (bad usage or input), anything else with 1 (internal error).
Leaves also subclass a builtin so callers can catch them the Python way.
"""
from __future__ import annotations


class AlphaGANVideoError(Exception):
    """Base class of every error this package raises on purpose."""


class UserInputError(AlphaGANVideoError, ValueError):
    """Something the user supplied is wrong (file, option, prompt). Exit code 2."""


class InputMediaError(UserInputError):
    """An input file is missing, unreadable, corrupt, empty or of the wrong kind."""


class MaskSourceError(UserInputError):
    """A coarse-mask source cannot be built or used (bad spec, short mask video, lost subject)."""


class CheckpointError(UserInputError):
    """A model checkpoint is missing, corrupt or does not match the requested architecture."""


class OutputError(UserInputError):
    """The output path is unusable: unknown extension, exists without --overwrite, unwritable."""


class DeviceError(UserInputError):
    """The requested device does not exist (e.g. cuda without a GPU)."""


class SubjectLostError(MaskSourceError):
    """A propagated mask (e.g. SAM) became empty or exploded: the subject was lost."""


class EncoderError(AlphaGANVideoError, RuntimeError):
    """An encoder or muxer failed while writing. Exit code 1."""
