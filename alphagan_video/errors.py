"""Typed errors. Every message names the offending value and the fix.

Only ``alphagan_video.cli`` turns these into exit codes (README "Errors, exit codes and files
left behind"): ``UserInputError`` and its subclasses exit with 2 (bad usage, bad input, or an
environment the run cannot use: unwritable or full output location, missing encoder), anything
else with 1 (our own bug), ``KeyboardInterrupt`` (Ctrl-C) with 130 and ``Terminated`` (SIGTERM) with 143.
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


class ResourceLimitError(UserInputError):
    """The input is too large for the configured limits (``--max-pixels``, memory): refused before
    anything is allocated. Exit code 2."""


class EncoderError(AlphaGANVideoError, RuntimeError):
    """An encoder or muxer failed while writing for a reason that is not the user's (a bug).
    Exit code 1. A full disk, an unwritable location or a missing encoder is an OutputError."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised by the CLI's signal handler). Exit code 143.

    A KeyboardInterrupt subclass so that every cleanup path written for Ctrl-C (temporary files
    removed, worker threads joined) runs for SIGTERM too."""
