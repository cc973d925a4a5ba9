"""Reading a farm job file back (``load_job``): every field checked -- types, ranges, paths that
stay beside the job file, the complete settings with the CLI's own config checks, and the
settings digest -- so a hand-edited or foreign job file is refused with one line naming the
field (exit 2) instead of running with other settings."""
from __future__ import annotations

import json
import os

from alphagan_video.config import PipelineConfig
from alphagan_video.config_json import config_to_dict
from alphagan_video.farm.files import FarmUsageError
from alphagan_video.farm.job import (JOB_FORMAT, JOB_SUFFIX, JOB_VERSION, FarmJob, check_farmable,
                                     job_config_from_dict, settings_digest)
from alphagan_video.io.writer.check import OVERWRITE


#: Largest frame count / chunk size / context a job file may declare (a day at 120 fps).
_MAX_FRAMES = 10_000_000


def _job_int(data: dict, key: str, path: str, minimum: int) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise FarmUsageError(f"job file {path}: {key!r} must be an integer, got {value!r}; recreate the job")
    if not minimum <= value <= _MAX_FRAMES:
        raise FarmUsageError(f"job file {path}: {key!r} is {value}, expected {minimum}..{_MAX_FRAMES}; recreate the job")
    return value


def _job_str(data: dict, key: str, path: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or "\x00" in value:
        raise FarmUsageError(f"job file {path}: {key!r} must be a non-empty string, got {value!r}; recreate the job")
    return value


def check_job_paths(job_path: str, input_path: str, output_path: str) -> tuple[str, str]:
    """Resolve a job's input and output against the job file's folder and check the output.

    Relative paths are relative to the folder holding the job file (not to the worker's current
    folder). The output must stay in that folder -- the job file is ``OUTPUT.alphagan-job.json``
    beside it -- so a job file cannot send a worker's writes anywhere else (``../../x.mov``).
    Returns (input, output), absolute and normalised."""
    folder = os.path.dirname(os.path.abspath(job_path))
    inp = os.path.normpath(os.path.join(folder, input_path))
    out = os.path.normpath(os.path.join(folder, output_path))
    if os.path.dirname(out) != folder:
        raise FarmUsageError(
            f"job file {job_path}: output {output_path!r} is outside the job's folder {folder}; a job writes only "
            "beside its job file: recreate the job with 'alphagan-video farm plan'"
        )
    if os.path.basename(out) + JOB_SUFFIX != os.path.basename(job_path) and os.path.basename(job_path).endswith(JOB_SUFFIX):
        raise FarmUsageError(
            f"job file {job_path} names the output {os.path.basename(out)!r}, but belongs to "
            f"{os.path.basename(job_path)[:-len(JOB_SUFFIX)]!r}; recreate the job"
        )
    return inp, out


def load_job(path: str | os.PathLike) -> FarmJob:
    """Read and validate a job file written by ``create_job``.

    Every field is checked (types, ranges) and every problem is a FarmUsageError (exit 2) naming
    the field; paths are resolved against the job file's folder (``check_job_paths``)."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        raise FarmUsageError(f"job file {path} is a directory; pass the OUTPUT{JOB_SUFFIX} file in it")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise FarmUsageError(f"job file not found: {path}; create it with 'alphagan-video farm openjd|opencue|ray|local'") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise FarmUsageError(f"job file {path} is not valid JSON ({str(exc)[:200]}); recreate it") from None
    except OSError as exc:
        raise FarmUsageError(f"cannot read job file {path}: {exc.strerror or exc}") from None
    if not isinstance(data, dict) or data.get("format") != JOB_FORMAT:
        raise FarmUsageError(f"{path} is not an alphagan-video job file")
    if data.get("version") != JOB_VERSION:
        raise FarmUsageError(f"job file {path} has version {data.get('version')!r}, this alphagan-video reads {JOB_VERSION}; recreate it")
    for key in ("input", "output", "frame_count", "chunk_size", "context", "config", "settings_sha256"):
        if key not in data:
            raise FarmUsageError(f"job file {path} lacks the field {key!r}; recreate it")
    input_path, output_path = check_job_paths(path, _job_str(data, "input", path), _job_str(data, "output", path))
    frame_count = _job_int(data, "frame_count", path, 1)
    chunk_size = _job_int(data, "chunk_size", path, 1)
    context = _job_int(data, "context", path, 0)
    digest = _job_str(data, "settings_sha256", path)
    unknown = sorted(set(data) - _JOB_KEYS)
    if unknown:
        raise FarmUsageError(f"job file {path} has unknown fields {unknown}; it was made by another alphagan-video "
                             "version or edited: recreate it")
    config = _job_config(data["config"], path, output_path)
    max_pixels = data.get("max_pixels")
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1):
        raise FarmUsageError(f"job file {path}: 'max_pixels' must be a positive integer, got {max_pixels!r}")
    if not os.path.exists(input_path):
        raise FarmUsageError(f"job file {path}: its input {input_path} is not found (is the shared folder mounted "
                             "on this worker?)")
    if settings_digest(input_path, config, context) != digest:
        raise FarmUsageError.naming(
            f"job file {path}: 'settings_sha256' does not match its settings: the job file was edited, the input "
            f"{input_path} changed (size or time) since the job was made, or the job is from another alphagan-video "
            f"version; recreate the job with 'alphagan-video farm plan' ({OVERWRITE})", OVERWRITE
        )
    return FarmJob(input=input_path, output=output_path, frame_count=frame_count, chunk_size=chunk_size,
                   context=context, config=config, settings_sha256=digest, job_path=path, max_pixels=max_pixels)


#: Top-level fields of a job file: what ``FarmJob.to_dict`` writes, and what assembly adds.
_JOB_KEYS = frozenset({"format", "version", "input", "output", "frame_count", "chunk_size", "context",
                       "settings_sha256", "config", "max_pixels", "segments", "assembled"})


def _missing_fields(data: dict, template: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields of ``template`` (a ``config_to_dict``) that ``data`` lacks."""
    missing = []
    for key, default in template.items():
        name = f"{prefix}{key}"
        if key not in data:
            missing.append(name)
        elif isinstance(default, dict) and isinstance(data[key], dict):
            missing += _missing_fields(data[key], default, name + ".")
    return missing


def _job_config(data: object, path: str, output: str) -> PipelineConfig:
    """The job file's ``config``, field by field: every field present (a job file carries the
    complete settings ``create_job`` ran with; a missing one would silently take today's
    default), no unknown ones, and each of the type, range and choice the CLI's options are
    checked for (``config.check_config``), plus what only a farm needs (a batch size that can
    set the chunk grid, the refine's settings, an intra-only codec for ``output``). One
    FarmUsageError line naming the field."""
    from alphagan_video.config import check_config
    from alphagan_video.errors import UserInputError

    if not isinstance(data, dict):
        raise FarmUsageError(f"job file {path}: 'config' must be an object; recreate the job")
    missing = _missing_fields(data, config_to_dict(PipelineConfig()))
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise FarmUsageError(f"job file {path}: config lacks the field(s) {shown}; a job file carries every "
                             "setting: recreate the job with 'alphagan-video farm plan'")
    try:
        config = job_config_from_dict(data)
    except FarmUsageError as exc:  # unknown fields
        raise FarmUsageError(f"job file {path}: {exc}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise FarmUsageError(f"job file {path}: bad 'config' ({exc}); recreate the job") from None
    try:
        check_config(config)
        if config.model.batch_size > _MAX_BATCH:
            raise FarmUsageError.about("model.batch_size", config.model.batch_size, f"expected 1..{_MAX_BATCH}")
        from alphagan_video.refine import check_refine_config

        check_refine_config(config.refine)
        check_farmable(output, config)
    except UserInputError as exc:
        raise FarmUsageError(f"job file {path}: config {exc}; recreate the job") from None
    return config


#: Largest batch size a job file may declare.
_MAX_BATCH = 4096
