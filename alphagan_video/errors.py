"""Typed errors. Every message names the offending value and the fix.

Only ``alphagan_video.cli`` turns these into exit codes (README "Errors, exit codes and files
left behind"): ``UserInputError`` and its subclasses exit with 2 (bad usage, bad input, or an
environment the run cannot use: unwritable or full output location, missing encoder), anything
else with 1 (our own bug), ``KeyboardInterrupt`` (Ctrl-C) with 130 and ``Terminated`` (SIGTERM) with 143.
Leaves also subclass a builtin so callers can catch them the Python way.
"""
from __future__ import annotations

from typing import Any, Optional


class AlphaGANVideoError(Exception):
    """Base class of every error this package raises on purpose.

    An error about one setting is built with :meth:`about`: the library names the *parameter*
    (a dotted configuration path such as ``model.batch_size``, or a function argument such as
    ``frames``), never a command-line flag; ``cli.PARAMETER_FLAGS`` maps parameters to the flags
    the user typed and rewrites the message (``model.batch_size 0: must be at least 1`` is shown
    with the batch size's flag in place of ``model.batch_size``).
    """

    #: The parameter the error is about, or None (an error about a file, a device, ...).
    param: Optional[str] = None
    #: The offending value as the message shows it.
    value_text: str = ""
    #: What is wrong and how to fix it, without the parameter's name.
    problem: str = ""
    #: Parameters the message names as the user's fix (``use mask.source person``), besides
    #: ``param``: shown as their flags by the CLI too. Set by :meth:`naming`.
    mentions: tuple[str, ...] = ()

    @classmethod
    def about(cls, param: str, value: Any, problem: str) -> "AlphaGANVideoError":
        """An error of this class about ``param`` = ``value``: message ``"<param> <value>: <problem>"``.

        ``value`` is shown with ``str``; pass ``repr(value)`` for a quoted string.
        """
        exc = cls(f"{param} {value}: {problem}")
        exc.param, exc.value_text, exc.problem = param, str(value), problem
        return exc

    @classmethod
    def naming(cls, message: str, *params: str) -> "AlphaGANVideoError":
        """An error of this class whose ``message`` names the parameters ``params`` (spelled as
        in ``about``, e.g. ``"mask.source sam needs a prompt"``, ``"pass max_pixels N"``); the
        CLI shows each of them as its flag."""
        exc = cls(message)
        exc.mentions = tuple(params)
        return exc


class UserInputError(AlphaGANVideoError, ValueError):
    """Something the user supplied is wrong (file, option, prompt). Exit code 2."""


class ParameterError(UserInputError):
    """A setting (configuration field or function argument) has a value the library cannot use.
    Build it with ``ParameterError.about(param, value, problem)``."""


class InputMediaError(UserInputError):
    """An input file is missing, unreadable, corrupt, empty or of the wrong kind."""


class MaskSourceError(UserInputError):
    """A coarse-mask source cannot be built or used (bad spec, short mask video, lost subject)."""


class CheckpointError(UserInputError):
    """A model checkpoint is missing, corrupt or does not match the requested architecture."""


class OutputError(UserInputError):
    """The output path is unusable: unknown extension, exists while overwriting is off, unwritable."""


class DeviceError(UserInputError):
    """The requested device does not exist (e.g. cuda without a GPU)."""


class SubjectLostError(MaskSourceError):
    """A propagated mask (e.g. SAM) became empty or exploded: the subject was lost."""


class ResourceLimitError(UserInputError):
    """The input is too large for the configured limits (the pixel budget ``max_pixels``,
    memory): refused before anything is allocated. Exit code 2."""


class EncoderError(AlphaGANVideoError, RuntimeError):
    """An encoder or muxer failed while writing for a reason that is not the user's (a bug).
    Exit code 1. A full disk, an unwritable location or a missing encoder is an OutputError."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised by the CLI's signal handler). Exit code 143.

    A KeyboardInterrupt subclass so that every cleanup path written for Ctrl-C (temporary files
    removed, worker threads joined) runs for SIGTERM too."""
