"""The farm job description, chunk planning, segment records and the chunk runner (reading a
job file back: ``farm/job_file.py``).

One job = one INPUT matted into one OUTPUT by many chunk tasks::

    job = create_job("shot.mp4", "shot_matte.mov", cfg, chunk_size=48)   # writes the job file
    for first, last in job.chunks():                                     # any order, any machine
        run_chunk(job, first, last)                                      # skips verified segments
    assemble_job(job)                                                     # farm/assemble.py

Files, all next to OUTPUT (a shared filesystem is assumed, as on every render farm):

- ``OUTPUT.alphagan-job.json``: the job manifest. Input, output, exact frame count, chunk size,
  context, the full ``PipelineConfig`` and a settings digest; after assembly also every segment
  used with its sha256. Written once by ``create_job`` (atomically) and read by every task.
- ``OUTPUT.alphagan-segments/seg_AAAAAA-BBBBBB.mov``: one segment per chunk (frames A..B with
  their original timestamps, no audio), written atomically by the pipeline's writer
  (temporary file + rename), and ``seg_AAAAAA-BBBBBB.json`` beside it, the segment's record
  (frames, byte size, sha256, settings digest), written atomically after the segment.
  One record per segment means concurrent tasks never write the same file: no locking, which
  network filesystems do badly.

A segment counts as finished only when its record exists, names the job's settings digest and
its frames, and the segment's sha256 matches. ``run_chunk`` redoes anything else (missing,
half-written after a crash, corrupt, made with other settings) and skips what verifies, so
rerunning a job -- or a farm retrying a task -- is idempotent.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from alphagan_video.config import PipelineConfig
from alphagan_video.config_json import UnknownFieldsError, config_from_dict, config_to_dict
from alphagan_video.farm.files import FarmError, FarmUsageError, missing_extra, sha256_file, write_json_atomic
from alphagan_video.io.writer import plan_output
from alphagan_video.io.writer.check import OVERWRITE

JOB_FORMAT = "alphagan-video-job"
JOB_VERSION = 1
JOB_SUFFIX = ".alphagan-job.json"
SEGMENTS_SUFFIX = ".alphagan-segments"
#: Encoders whose packets are all intra frames: segments of them join by stream copy.
INTRA_ENCODERS = frozenset({"prores_ks", "prores_aw", "png"})

_SEGMENT_RE = re.compile(r"^seg_(\d{6,})-(\d{6,})\.json$")


def job_config_from_dict(data: dict) -> PipelineConfig:
    """The job file's settings (``config_json.config_from_dict``); unknown keys are an error
    naming the section (a job from another version)."""
    try:
        return config_from_dict(data, PipelineConfig)
    except UnknownFieldsError as exc:
        where = f"job settings [{exc.section}]" if exc.section else "job settings"
        raise FarmUsageError(
            f"{where} have unknown fields {exc.fields}; the job was made by another alphagan-video "
            "version: recreate it with this one"
        ) from None


# --------------------------------------------------------------------------- frames

def count_frames(path: str | os.PathLike) -> int:
    """Exact number of frames the reader will decode from INPUT.

    Video: counts the video packets with a timestamp (demux only, no decoding: seconds for
    an hour of 1080p). Images and sequences: the file count.
    """
    import av

    from alphagan_video.io import open_input

    with open_input(path) as reader:
        info = reader.info
    if info.kind != "video":
        return int(info.frame_count or 1)
    count = 0
    with av.open(os.fspath(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.size and (packet.pts is not None or packet.dts is not None):
                count += 1
    return count


def plan_chunks(frame_count: int, chunk_size: int, batch_size: int = 1) -> list[tuple[int, int]]:
    """Split frames 0..frame_count-1 into inclusive ranges of ``chunk_size`` frames.

    ``chunk_size`` is rounded up to a multiple of ``batch_size`` so chunk edges fall on the
    batch grid of an unchunked run (the chunk runner then decodes no extra alignment frames).
    """
    if frame_count < 1:
        raise FarmUsageError(f"the input has {frame_count} frames; nothing to split")
    if chunk_size < 1:
        raise FarmUsageError.about("chunk_size", chunk_size, "must be at least 1 frame")
    size = max(1, batch_size)
    chunk = -(-chunk_size // size) * size
    return [(a, min(a + chunk, frame_count) - 1) for a in range(0, frame_count, chunk)]


# --------------------------------------------------------------------------- the job

@dataclass(frozen=True)
class FarmJob:
    """What every task of a farm job needs; stored as ``OUTPUT.alphagan-job.json``.

    input/output: absolute paths. frame_count: exact. chunk_size: frames per task (already a
    multiple of the batch size). context: warm-up frames before each chunk
    (``matte_video(context=...)``). config: the full pipeline settings.
    settings_sha256: digest of everything that changes the pixels (input identity, config,
    context, package version); segment records must carry it.
    """

    input: str
    output: str
    frame_count: int
    chunk_size: int
    context: int
    config: PipelineConfig
    settings_sha256: str
    job_path: str
    #: True when ``create_job`` found this job already assembled into an intact OUTPUT
    #: (the job file's ``assembled.sha256`` matches the file): a rerun has nothing to do.
    complete: bool = False
    #: Pixel budget per frame for every task (``max_pixels`` at planning); None = the default.
    max_pixels: Optional[int] = None

    @property
    def segments_dir(self) -> str:
        return self.output + SEGMENTS_SUFFIX

    @property
    def suffix(self) -> str:
        return os.path.splitext(self.output)[1].lower()

    def chunks(self) -> list[tuple[int, int]]:
        """This job's own plan; a chunk task runs one or more whole chunks of it (``check_on_plan``)."""
        return plan_chunks(self.frame_count, self.chunk_size, self.config.model.batch_size)

    def segment_path(self, first: int, last: int) -> str:
        return os.path.join(self.segments_dir, f"seg_{first:06d}-{last:06d}{self.suffix}")

    def record_path(self, first: int, last: int) -> str:
        return os.path.join(self.segments_dir, f"seg_{first:06d}-{last:06d}.json")

    def to_dict(self) -> dict:
        data = {
            "format": JOB_FORMAT, "version": JOB_VERSION, "input": self.input, "output": self.output,
            "frame_count": self.frame_count, "chunk_size": self.chunk_size, "context": self.context,
            "settings_sha256": self.settings_sha256, "config": config_to_dict(self.config),
        }
        if self.max_pixels is not None:
            data["max_pixels"] = self.max_pixels
        return data


def job_path_for(output: str | os.PathLike) -> str:
    return os.path.abspath(os.fspath(output)) + JOB_SUFFIX


def _input_identity(path: str) -> dict:
    st = os.stat(path) if os.path.exists(path) else None
    return {"path": path, "size": st.st_size if st else None, "mtime_ns": st.st_mtime_ns if st else None}


def settings_digest(input_path: str, cfg: PipelineConfig, context: int) -> str:
    from alphagan_video import __version__

    cfg_dict = config_to_dict(cfg)
    # Overwriting and audio belong to the final file, not to the segments' pixels.
    cfg_dict["output"].pop("overwrite", None)
    cfg_dict["output"].pop("copy_audio", None)
    text = json.dumps({"input": _input_identity(input_path), "config": cfg_dict, "context": context,
                       "version": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def default_context(cfg: PipelineConfig) -> int:
    """Warm-up frames per chunk: what temporal smoothing needs (0 with smoothing off)."""
    from alphagan_video.temporal.smoothing import context_frames_needed

    return context_frames_needed(cfg.temporal)


def check_farmable(output: str, cfg: PipelineConfig) -> None:
    """Segments must be joinable by stream copy: a .mov with an intra-only codec."""
    suffix = os.path.splitext(output)[1].lower()
    if suffix != ".mov":
        raise FarmUsageError.naming(
            f"farm output {output}: segments are joined by stream copy, which needs an intra-only "
            "codec in .mov (ProRes or PNG); write .mov. (Image sequences need no farm assembly: "
            "run chunks with frame_range A-B straight to the pattern, files are numbered by frame.)", "frame_range"
        )
    plan = plan_output(output, cfg.output)
    if plan.encoder not in INTRA_ENCODERS:
        raise FarmUsageError.naming(
            f"farm output {output}: codec {plan.encoder} is not intra-only, so segments cannot be "
            "joined losslessly; use output.codec prores4444 (default), prores422hq, prores_aw or png", "output.codec"
        )
    if cfg.trimap.trimap_path is None and cfg.mask.source.strip().lower() == "sam":
        if cfg.mask.prompts_json is None:
            raise FarmUsageError.naming(
                "mask.source sam propagates from the first frame, which a chunk does not have; run "
                "'alphagan-video farm prepass INPUT -o prompts.json mask.source sam ...' first and "
                "pass mask.prompts_json prompts.json (per-frame boxes) instead of mask.box or mask.points",
                "mask.source", "mask.prompts_json", "mask.box", "mask.points"
            )


def _check_prompts_cover(cfg: PipelineConfig, frame_count: int) -> None:
    """SAM on a farm: every frame needs its own prompt, or a chunk could start without one."""
    if cfg.trimap.trimap_path is not None or cfg.mask.source.strip().lower() != "sam" or cfg.mask.prompts_json is None:
        return
    try:
        with open(cfg.mask.prompts_json, encoding="utf-8") as fh:
            keys = {int(k) for k in json.load(fh)}
    except (OSError, ValueError, TypeError) as exc:
        raise FarmUsageError.about("mask.prompts_json", cfg.mask.prompts_json,
                                   f"cannot read it ({exc}); rerun farm prepass") from None
    missing = [i for i in range(frame_count) if i not in keys]
    if missing:
        raise FarmUsageError.naming(
            f"mask.prompts_json {cfg.mask.prompts_json} has no prompt for {len(missing)} frame(s) "
            f"(first: {missing[:5]}); every chunk needs per-frame prompts: add boxes for them or rerun "
            "'alphagan-video farm prepass'", "mask.prompts_json"
        )


def _assembled_intact(job_path: str, output: str) -> bool:
    """True when ``job_path`` records an assembly of ``output`` and the file still has that sha256."""
    try:
        with open(job_path, encoding="utf-8") as fh:
            data = json.load(fh)
        assembled = data.get("assembled") if isinstance(data, dict) else None
        if not isinstance(assembled, dict) or not os.path.isfile(output):
            return False
        recorded = assembled.get("sha256")
        return isinstance(recorded, str) and len(recorded) == 64 and sha256_file(output) == recorded
    except (OSError, ValueError, RecursionError):
        return False


def create_job(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    cfg: PipelineConfig,
    chunk_size: int,
    context: Optional[int] = None,
    frame_count: Optional[int] = None,
    max_pixels: Optional[int] = None,
) -> FarmJob:
    """Describe a farm job and write (or reuse) ``OUTPUT.alphagan-job.json``.

    An existing job file with the same settings digest is reused as is (resume); one with other
    settings is an error unless ``cfg.output.overwrite`` (its segments are then ignored, since
    their records carry the old digest). The output itself must not exist without overwrite.

    A ``chroma`` mask source: the key colour and tolerance not given in ``cfg.mask`` are measured
    once on frame 0 of the clip and stored in the job's settings (``prepass.fill_chroma_key``), so
    every chunk keys with the same screen colour as an unchunked run with that ``mask.chroma_key``.
    """
    input_abs = os.path.abspath(os.fspath(input_path))
    output_abs = os.path.abspath(os.fspath(output_path))
    if not os.path.exists(input_abs):
        raise FarmUsageError(f"input not found: {input_path}")
    if not os.path.isdir(os.path.dirname(output_abs)):
        raise FarmUsageError(f"output directory {os.path.dirname(output_abs)} does not exist; create it first")
    assembled = _assembled_intact(job_path_for(output_abs), output_abs)
    if os.path.exists(output_abs) and not cfg.output.overwrite and not assembled:
        raise FarmUsageError.naming(f"output exists: {output_path}; pass {OVERWRITE} or choose another name",
                                    OVERWRITE)
    check_farmable(output_abs, cfg)
    from alphagan_video.farm.prepass import fill_chroma_key  # imports torch: only when a job is made

    cfg = fill_chroma_key(input_abs, cfg)
    if context is None:
        context = default_context(cfg)
    if context < 0:
        raise FarmUsageError.about("context", context, "must be 0 or more frames")
    digest = settings_digest(input_abs, cfg, context)
    path = job_path_for(output_abs)
    if os.path.exists(path):
        from alphagan_video.farm.job_file import load_job  # job_file reads jobs with this module's types

        existing = load_job(path)
        if existing.settings_sha256 == digest:
            # Same pixels; this invocation's overwrite and copy_audio settings apply to the final file.
            return dataclasses.replace(existing, config=cfg, complete=assembled,
                                       max_pixels=max_pixels if max_pixels is not None else existing.max_pixels)
        if assembled and not cfg.output.overwrite:
            raise FarmUsageError.naming(f"output exists: {output_path} (made with other settings); pass {OVERWRITE} "
                                        "or choose another name", OVERWRITE)
        if not cfg.output.overwrite:
            raise FarmUsageError.naming(
                f"{path} describes a job with other settings (or another input); pass {OVERWRITE} to "
                "replace it (its segments will be redone) or choose another output name", OVERWRITE
            )
    count = count_frames(input_abs) if frame_count is None else frame_count
    _check_prompts_cover(cfg, count)
    plan_chunks(count, chunk_size, cfg.model.batch_size)  # validates
    batch = max(1, cfg.model.batch_size)
    size = -(-chunk_size // batch) * batch
    job = FarmJob(input_abs, output_abs, count, size, context, cfg, digest, path, max_pixels=max_pixels)
    os.makedirs(job.segments_dir, exist_ok=True)
    write_json_atomic(path, job.to_dict())
    return job


# --------------------------------------------------------------------------- segments

@dataclass(frozen=True)
class SegmentRecord:
    """A finished segment: frames first..last, file name (in the segments dir), size, sha256."""

    first: int
    last: int
    file: str
    bytes: int
    sha256: str
    settings_sha256: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def read_record(job: FarmJob, first: int, last: int) -> Optional[SegmentRecord]:
    try:
        with open(job.record_path(first, last), encoding="utf-8") as fh:
            return SegmentRecord(**json.load(fh))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, TypeError):
        return None


def verify_segment(job: FarmJob, first: int, last: int) -> Optional[SegmentRecord]:
    """The record of a finished, intact segment for first..last made with this job's settings,
    else None (missing, half-written, corrupt, or made with other settings)."""
    record = read_record(job, first, last)
    path = job.segment_path(first, last)
    if record is None or record.settings_sha256 != job.settings_sha256 or (record.first, record.last) != (first, last):
        return None
    if not os.path.isfile(path) or os.path.getsize(path) != record.bytes:
        return None
    return record if sha256_file(path) == record.sha256 else None


def iter_records(job: FarmJob) -> Iterator[SegmentRecord]:
    """Every segment record in the segments dir (not verified), sorted by first frame."""
    if not os.path.isdir(job.segments_dir):
        return
    found = []
    for name in os.listdir(job.segments_dir):
        m = _SEGMENT_RE.match(name)
        if m:
            record = read_record(job, int(m.group(1)), int(m.group(2)))
            if record is not None:
                found.append(record)
    yield from sorted(found, key=lambda r: (r.first, -r.last))


ChunkProgress = Callable[[int, Optional[int]], None]


def run_chunk(
    job: FarmJob,
    first: int,
    last: int,
    progress: Optional[ChunkProgress] = None,
) -> tuple[SegmentRecord, bool]:
    """Make the segment for frames first..last unless a verified one exists.

    Returns (record, ran): ran False when a verified segment was reused. The segment is written
    atomically by the pipeline's writer; the record is written after it, so a task killed at
    any point leaves either nothing, a segment without a record (redone next time) or both.
    """
    from alphagan_video.pipeline import matte_video

    check_on_plan(job, first, last)
    out_dir = os.path.dirname(job.output)
    if not os.path.isdir(out_dir):
        raise FarmUsageError(f"output folder {out_dir} of job {job.job_path} does not exist; a chunk does not "
                             "create it (check the path, or that the shared folder is mounted on this worker)")
    record = verify_segment(job, first, last)
    if record is not None:
        return record, False
    created = not os.path.isdir(job.segments_dir)
    try:
        os.makedirs(job.segments_dir, exist_ok=True)
    except OSError as exc:
        raise FarmUsageError(f"cannot create {job.segments_dir}: {exc.strerror or exc}") from None
    segment = job.segment_path(first, last)
    try:
        os.remove(job.record_path(first, last))  # a stale record must not vouch for the new file
    except FileNotFoundError:
        pass
    cfg = job.config
    cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, overwrite=True, copy_audio=False))
    from alphagan_video.io.reader import pixel_budget

    try:
        with pixel_budget(job.max_pixels):
            matte_video(job.input, segment, cfg, progress=progress, frame_range=(first, last), context=job.context)
    except BaseException:
        if created:  # a failed first chunk leaves no empty segments folder behind
            try:
                os.rmdir(job.segments_dir)
            except OSError:  # not empty: another task's segment arrived meanwhile
                pass
        raise
    record = SegmentRecord(first, last, os.path.basename(segment), os.path.getsize(segment),
                           sha256_file(segment), job.settings_sha256)
    write_json_atomic(job.record_path(first, last), record.to_dict())
    return record, True


def check_on_plan(job: FarmJob, first: int, last: int) -> None:
    """Frames first..last must be one or more whole chunks of the job's plan (``FarmJob.chunks``):
    start on the chunk grid and end on it (or at the last frame). Any such range tiles with the
    others at assembly and decodes no frames twice; frames 1-5 on a 4-frame grid would make
    a segment that overlaps two chunks and that no assembly uses. FarmUsageError about
    ``frame_range`` otherwise."""
    if first < 0 or last < first or last >= job.frame_count:
        raise FarmUsageError.naming(
            f"frame_range {first}-{last} is outside the job's frames 0-{job.frame_count - 1} ({job.job_path})",
            "frame_range"
        )
    size = job.chunk_size
    if first % size or not ((last + 1) % size == 0 or last == job.frame_count - 1):
        start = first - first % size
        near = next(((a, b) for a, b in job.chunks() if a == start), job.chunks()[0])
        raise FarmUsageError.naming(
            f"frame_range {first}-{last} is off the job's chunk plan (chunks of {size} frames from frame 0, "
            f"e.g. {near[0]}-{near[1]}; 'alphagan-video farm plan' lists them): run whole chunks ({job.job_path})",
            "frame_range"
        )


def job_status(job: FarmJob) -> dict:
    """{"done": [(first, last), ...], "todo": [...]} for the job's own chunk plan (verifies checksums)."""
    done, todo = [], []
    for first, last in job.chunks():
        (done if verify_segment(job, first, last) else todo).append((first, last))
    return {"done": done, "todo": todo}


def run_local(job: FarmJob, progress: Optional[Callable[[int, int, bool], None]] = None) -> list[tuple[SegmentRecord, bool]]:
    """Run every chunk of the job's plan here, one after the other (skipping verified ones).

    progress(chunk number, chunk count, ran) after each chunk."""
    results = []
    chunks = job.chunks()
    for n, (first, last) in enumerate(chunks):
        results.append(run_chunk(job, first, last))
        if progress is not None:
            progress(n + 1, len(chunks), results[-1][1])
    return results


__all__ = [
    "FarmError",
    "FarmJob",
    "FarmUsageError",
    "SegmentRecord",
    "check_farmable",
    "check_on_plan",
    "job_config_from_dict",
    "count_frames",
    "create_job",
    "default_context",
    "iter_records",
    "job_path_for",
    "job_status",
    "missing_extra",
    "plan_chunks",
    "run_chunk",
    "run_local",
    "settings_digest",
    "sha256_file",
    "verify_segment",
]
