"""What every farm module shares: the farm's errors and its file helpers (JSON written
atomically, sha256 of a file: ``alphagan_video._files.sha256_file``, re-exported). Imported by
``job``, ``prepass``, ``assemble`` and the backends; imports nothing of the farm, so the farm's
imports all point one way."""
from __future__ import annotations

import json
from dataclasses import dataclass

from alphagan_video._atomic import atomic_write
from alphagan_video._files import sha256_file
from alphagan_video.errors import AlphaGANVideoError, UserInputError


class FarmError(AlphaGANVideoError):
    """A farm job cannot proceed (missing segments, a job file of another job, ...)."""


class FarmUsageError(FarmError, UserInputError):
    """Bad farm options or files the user can fix."""


def missing_extra(package: str, what: str) -> FarmUsageError:
    """The error raised when an optional farm dependency is not installed."""
    return FarmUsageError(
        f"{what} needs the Python package {package!r}, which is not installed; "
        f"pip install 'alphagan-video[farm]' (or pip install {package})"
    )


#: In a ``WorkerCommands`` template: the argument that stands for the job file.
JOB_FIELD = "{job}"
#: In a ``WorkerCommands`` template: the argument that stands for the chunk's ``"A-B"`` frames.
FRAMES_FIELD = "{frames}"


@dataclass(frozen=True)
class WorkerCommands:
    """The command lines a farm's workers run, as argument templates (the CLI builds them:
    ``cli.worker_commands``; the farm never spells the command-line words itself).

    chunk: makes the segment of one chunk; has ``JOB_FIELD`` and ``FRAMES_FIELD`` arguments.
    assemble: joins the segments of a job; has a ``JOB_FIELD`` argument.
    """

    chunk: tuple[str, ...]
    assemble: tuple[str, ...]

    def chunk_argv(self, job: str, frames: str) -> list[str]:
        """``chunk`` with the job file and the frame range (``"A-B"``, or a farm's placeholder)."""
        return [job if a == JOB_FIELD else frames if a == FRAMES_FIELD else a for a in self.chunk]

    def assemble_argv(self, job: str) -> list[str]:
        """``assemble`` with the job file."""
        return [job if a == JOB_FIELD else a for a in self.assemble]


def write_json_atomic(path: str, data: dict) -> None:
    """Write ``data`` as JSON via a temporary file beside ``path`` (fsync, rename): readers see old or new."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")


__all__ = ["FRAMES_FIELD", "FarmError", "FarmUsageError", "JOB_FIELD", "WorkerCommands", "missing_extra", "sha256_file",
           "write_json_atomic"]
