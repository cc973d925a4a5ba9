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
from fractions import Fraction
from typing import Optional, Sequence

from alphagan_video._atomic import temp_name
from alphagan_video.errors import OutputError
from alphagan_video.farm.job import (
    FarmError,
    FarmJob,
    FarmUsageError,
    iter_records,
    sha256_file,
    verify_segment,
    write_json_atomic,
)

@dataclass
class AssembleReport:
    output: str
    frames: int = 0
    segments: list[str] = field(default_factory=list)
    audio_streams: int = 0
    timecode: Optional[str] = None
    tags: dict = field(default_factory=dict)
    sha256: str = ""


def source_timecode(path: str) -> Optional[str]:
    """The input's start timecode (container, video stream or a tmcd data stream tag), or None.
    (``io.writer.read_source_metadata``, which the pipeline's writer uses too.)"""
    from alphagan_video.io.writer import read_source_metadata

    return read_source_metadata(path).timecode


def source_tags(path: str) -> dict:
    """Container-level tags of the input worth keeping (title, comment, creation_time, ...)."""
    from alphagan_video.io.writer import read_source_metadata

    return read_source_metadata(path).tags


def assemble_segments(
    input_path: str | os.PathLike,
    segments: Sequence[str | os.PathLike],
    output_path: str | os.PathLike,
    *,
    overwrite: bool = False,
    copy_audio: bool = True,
) -> AssembleReport:
    """Concatenate ``segments`` (in order) into ``output_path`` by stream copy.

    Args:
        input_path: the original input: audio, timecode, tags and rotation come from it.
        segments: .mov files written by chunk runs, in frame order, with the input's timestamps.
    Raises:
        FarmUsageError: no segments, mismatched segments (codec, size), overlapping or
            out-of-order timestamps, an existing output without ``overwrite``.
    The output appears atomically (temporary file + rename); on failure nothing is left.
    """
    import av

    from alphagan_video.io import open_input
    from alphagan_video.io.writer import _AudioCopier, apply_source_metadata, read_source_metadata

    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    segments = [os.fspath(s) for s in segments]
    if not segments:
        raise FarmUsageError("no segments to assemble; run the chunks first")
    for seg in segments:
        if not os.path.isfile(seg):
            raise FarmUsageError(f"segment not found: {seg}")
    if os.path.exists(output_path) and not overwrite:
        raise FarmUsageError(f"output exists: {output_path}; pass --overwrite or choose another name")
    out_dir = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(out_dir):
        raise FarmUsageError(f"output directory {out_dir} does not exist; create it first")
    with open_input(input_path) as reader:
        info = reader.info

    meta = read_source_metadata(input_path)
    report = AssembleReport(output=output_path, tags=dict(meta.tags))
    stem, suffix = os.path.splitext(os.path.basename(output_path))
    tmp = os.path.join(out_dir, temp_name(stem, suffix))
    first_in = av.open(segments[0])
    template = first_in.streams.video[0]
    time_base = template.time_base
    audio = None
    out = None
    try:
        out = av.open(tmp, "w", options={"movie_timescale": str(time_base.denominator)})
        # The frame rate is not part of the template's codec parameters; the muxer needs it for
        # the stream's average rate and to write a timecode (tmcd) track.
        vs = out.add_stream_from_template(template, rate=template.average_rate)
        vs.time_base = time_base
        # The template does not carry the fourcc; without it the mov muxer tags ProRes 4444 as
        # 'apch' (422 HQ) and decoders then take the 4444 frames for 10-bit 422 HQ ones.
        vs.codec_context.codec_tag = template.codec_context.codec_tag
        if template.codec_context.profile is not None:
            try:
                vs.codec_context.profile = template.codec_context.profile
            except (ValueError, AttributeError):
                pass
        # The same tags and timecode as an unchunked run's writer (frame 0 is the first frame).
        report.timecode = apply_source_metadata(out, vs, meta)
        if info.rotation:  # before the first packet of any stream is muxed (ecosystem §1.4)
            vs.set_display_rotation(info.rotation)
        if copy_audio and info.kind == "video" and info.audio_stream_count > 0:
            audio = _AudioCopier(input_path, out)
            report.audio_streams = len(audio.codec_names)
        out.start_encoding()
        signature = _signature(template)
        last_pts: Optional[int] = None
        for n, seg in enumerate(segments):
            container = first_in if n == 0 else av.open(seg)
            try:
                stream = container.streams.video[0]
                if _signature(stream) != signature:
                    raise FarmUsageError(
                        f"segment {seg} is {_signature(stream)}, the first segment is {signature}; "
                        "all segments must come from one job"
                    )
                for packet in container.demux(stream):
                    if packet.dts is None and packet.pts is None:  # demuxer flush packet
                        continue
                    pts = packet.pts if packet.pts is not None else packet.dts
                    t = Fraction(pts) * packet.time_base
                    if last_pts is not None and t <= last_pts:
                        raise FarmUsageError(
                            f"segment {seg} starts at {float(t):.4f} s, not after the previous segment's "
                            f"last frame ({float(last_pts):.4f} s): overlapping or out-of-order segments"
                        )
                    last_pts = t
                    if audio is not None:
                        audio.mux_until(t)
                    packet.stream = vs
                    out.mux(packet)
                    report.frames += 1
            finally:
                if n != 0:
                    container.close()
            report.segments.append(seg)
        if audio is not None:
            audio.mux_until(None)
            audio.close()
            audio = None
        out.close()
        out = None
        if os.path.exists(output_path) and not overwrite:
            raise OutputError(f"output appeared while assembling: {output_path}; not overwriting")
        os.replace(tmp, output_path)
    except BaseException:
        if audio is not None:
            audio.close()
        if out is not None:
            try:
                out.close()
            except BaseException:
                pass
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    finally:
        first_in.close()
    report.sha256 = sha256_file(output_path)
    return report


def _signature(stream) -> str:
    cc = stream.codec_context
    return f"{cc.name} {cc.width}x{cc.height} {cc.format.name if cc.format else '?'}"


def choose_segments(job: FarmJob) -> list[tuple[int, int]]:
    """Verified segments that tile frames 0..frame_count-1 exactly, in order.

    Any contiguous ranges work (OpenJD picks its own chunk ranges); where several verified
    segments start at the same frame the longest is taken.
    Raises FarmError naming the first frames no verified segment covers.
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
            raise FarmError(
                f"frames {frame}-{gap_end} of {job.input} have no finished, intact segment in "
                f"{job.segments_dir}; rerun the job (finished segments are kept) and assemble again"
            )
        chosen.append(pick)
        frame = pick[1] + 1
    return chosen


def assemble_job(job: FarmJob, *, overwrite: Optional[bool] = None, remove_segments: bool = False) -> AssembleReport:
    """Assemble a finished job into ``job.output`` and record the result in the job file.

    overwrite: None = the job's ``--overwrite`` setting. remove_segments: delete the segments
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


__all__ = ["AssembleReport", "assemble_job", "assemble_segments", "choose_segments", "source_timecode", "source_tags"]
