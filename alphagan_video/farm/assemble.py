"""Join segments into the final file by stream copy (no re-encode).

ProRes (and PNG-in-MOV) frames are intra-only, so every frame boundary is a valid cut and a
segment's packets can be muxed into the final file unchanged: the payloads are byte-identical to
what an unchunked run encodes, and the timestamps are the input's own (segments keep them). The
final file also gets the input's audio (copied packet for packet, as the pipeline's writer does),
its timecode, container tags and display rotation.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

from alphagan_video.farm.files import FarmError, FarmUsageError, sha256_file, write_json_atomic
from alphagan_video.farm.job import FarmJob, iter_records, verify_segment
from alphagan_video.io.writer.check import OVERWRITE


@dataclass
class AssembleReport:
    output: str
    frames: int = 0
    segments: list[str] = field(default_factory=list)
    audio_streams: int = 0
    timecode: Optional[str] = None
    tags: dict = field(default_factory=dict)
    sha256: str = ""


def _check_assembly(segments: list[str], output_path: str, overwrite: bool) -> None:
    """FarmUsageError for no or missing segments, an existing output without ``overwrite``, a
    missing output folder."""
    if not segments:
        raise FarmUsageError("no segments to assemble; run the chunks first")
    for seg in segments:
        if not os.path.isfile(seg):
            raise FarmUsageError(f"segment not found: {seg}")
    if os.path.exists(output_path) and not overwrite:
        raise FarmUsageError.naming(f"output exists: {output_path}; pass {OVERWRITE} or choose another name",
                                    OVERWRITE)
    out_dir = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(out_dir):
        raise FarmUsageError(f"output directory {out_dir} does not exist; create it first")


def remux_source(input_path: str, copy_audio: bool):
    """What the final file takes from the original input: timecode, tags, rotation, and (when
    ``copy_audio`` and it has any) its audio streams."""
    from alphagan_video.io import RemuxSource, open_input, read_source_metadata

    with open_input(input_path) as reader:
        info = reader.info
    audio = copy_audio and info.kind == "video" and info.audio_stream_count > 0
    return RemuxSource(read_source_metadata(input_path), info.rotation, input_path if audio else None)


def assemble_segments(
    input_path: str | os.PathLike,
    segments: Sequence[str | os.PathLike],
    output_path: str | os.PathLike,
    *,
    overwrite: bool = False,
    copy_audio: bool = True,
) -> AssembleReport:
    """Concatenate ``segments`` (in order) into ``output_path`` by stream copy
    (``io.concat_segments``).

    Args:
        input_path: the original input: audio, timecode, tags and rotation come from it.
        segments: .mov files written by chunk runs, in frame order, with the input's timestamps.
    Raises:
        FarmUsageError: no segments, missing segments, an existing output without ``overwrite``.
        InputMediaError: mismatched segments (codec, size), overlapping or out-of-order timestamps.
    The output appears atomically (temporary file + rename); on failure nothing is left.
    """
    from alphagan_video.io import concat_segments

    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    segments = [os.fspath(s) for s in segments]
    _check_assembly(segments, output_path, overwrite)
    source = remux_source(input_path, copy_audio)
    joined = concat_segments(segments, output_path, source, overwrite=overwrite)
    return AssembleReport(output=output_path, frames=joined.frames, segments=joined.segments,
                          audio_streams=joined.audio_streams, timecode=joined.timecode,
                          tags=dict(source.metadata.tags), sha256=sha256_file(output_path))


def choose_segments(job: FarmJob) -> list[tuple[int, int]]:
    """Verified segments that tile frames 0..frame_count-1 exactly, in order.

    Segments of one or more whole chunks of the plan (``job.check_on_plan``); where several
    verified segments start at the same frame the longest is taken.
    Raises FarmUsageError (exit 2: the chunks must be rerun, no bug of ours) naming the first
    frames no verified segment covers, and whether their segment is missing or corrupt.
    """
    by_first: dict[int, list[tuple[int, int]]] = {}
    for record in iter_records(job):
        by_first.setdefault(record.first, []).append((record.first, record.last))
    chosen: list[tuple[int, int]] = []
    frame = 0
    while frame < job.frame_count:
        candidates = sorted(by_first.get(frame, []), key=lambda r: -r[1])
        pick = next((r for r in candidates if r[1] < job.frame_count and verify_segment(job, *r)), None)
        if pick is None:
            later = sorted(f for f in by_first if f > frame)
            gap_end = (later[0] - 1) if later else job.frame_count - 1
            what = "a corrupt or unfinished segment" if candidates else "no segment"
            raise FarmUsageError(
                f"frames {frame}-{gap_end} of {job.input} have {what} in {job.segments_dir} (no finished segment "
                "whose sha256 matches its record); rerun the job or 'farm chunk' for those frames (finished "
                "segments are kept) and assemble again"
            )
        chosen.append(pick)
        frame = pick[1] + 1
    return chosen


def assemble_job(job: FarmJob, *, overwrite: Optional[bool] = None, remove_segments: bool = False) -> AssembleReport:
    """Assemble a finished job into ``job.output`` and record the result in the job file.

    overwrite: None = the job's own ``output.overwrite`` setting. remove_segments: delete the segments
    directory after a successful assembly (default: keep, so a rerun is instant).
    """
    chosen = choose_segments(job)
    paths = [job.segment_path(a, b) for a, b in chosen]
    cfg = job.config.output
    report = assemble_segments(job.input, paths, job.output,
                               overwrite=cfg.overwrite if overwrite is None else overwrite,
                               copy_audio=cfg.copy_audio)
    if report.frames != job.frame_count:
        raise FarmError(f"assembled {report.frames} frames into {job.output}, the job has {job.frame_count}")
    data = job.to_dict()
    data["segments"] = [
        {"first": a, "last": b, "file": os.path.basename(p), "sha256": sha256_file(p)} for (a, b), p in zip(chosen, paths)
    ]
    data["assembled"] = {"output": job.output, "frames": report.frames, "sha256": report.sha256,
                         "audio_streams": report.audio_streams, "timecode": report.timecode}
    write_json_atomic(job.job_path, data)
    # Temporaries of killed workers (``.seg_*.tmp-*``): every segment is done, so they are stale.
    for name in os.listdir(job.segments_dir):
        if name.startswith(".seg_") and ".tmp-" in name:
            try:
                os.remove(os.path.join(job.segments_dir, name))
            except OSError:
                pass
    if remove_segments:
        import shutil

        shutil.rmtree(job.segments_dir, ignore_errors=True)
    return report


__all__ = ["AssembleReport", "assemble_job", "assemble_segments", "choose_segments", "remux_source"]
