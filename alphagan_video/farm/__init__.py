"""Render farms and clusters: one shot split into frame-range chunks on many machines, joined
back losslessly into exactly the file one machine would have written.

- :mod:`alphagan_video.farm.files`: the farm's errors, JSON/sha256 file helpers and
  ``WorkerCommands`` (the command lines workers run, built by the CLI); imports no farm module.
- :mod:`alphagan_video.farm.job`: the job file, chunk planning, segment records, ``run_chunk``.
- :mod:`alphagan_video.farm.assemble`: stream-copy assembly with the input's audio and timecode
  (``io.concat_segments``).
- :mod:`alphagan_video.farm.prepass`: the serial coarse-mask pre-pass (per-frame SAM prompts).
- :mod:`alphagan_video.farm.openjd`, :mod:`alphagan_video.farm.opencue`: job files for Open Job
  Description (AWS Deadline Cloud) and OpenCue; :mod:`alphagan_video.farm.ray_backend`: Ray.

Optional dependencies (``pip install 'alphagan-video[farm]'``) are imported lazily.
"""
from __future__ import annotations

from alphagan_video.farm.assemble import AssembleReport, assemble_job, assemble_segments, choose_segments
from alphagan_video.farm.files import FarmError, FarmUsageError, WorkerCommands
from alphagan_video.farm.job import (
    FarmJob,
    SegmentRecord,
    count_frames,
    create_job,
    job_path_for,
    job_status,
    plan_chunks,
    run_chunk,
    run_local,
    verify_segment,
)
from alphagan_video.farm.job_file import load_job

__all__ = [
    "AssembleReport",
    "FarmError",
    "FarmJob",
    "FarmUsageError",
    "SegmentRecord",
    "WorkerCommands",
    "assemble_job",
    "assemble_segments",
    "choose_segments",
    "count_frames",
    "create_job",
    "job_path_for",
    "job_status",
    "load_job",
    "plan_chunks",
    "run_chunk",
    "run_local",
    "verify_segment",
]
