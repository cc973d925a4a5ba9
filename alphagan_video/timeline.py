"""Timeline round trip: matte only the used ranges of an edit and write a matching matte timeline.

    report = matte_timeline("edit.otio", "mattes/", cfg, handles=12)
    report.timeline        # mattes/edit.alphagan.otio: same tracks, clips, gaps, transitions and timing
    report.clips           # one ClipResult per video clip: processed, or skipped with the reason

Reads anything OpenTimelineIO reads: ``.otio`` natively; FCP 7 / Premiere XML (``.xml``) and CMX
3600 EDL (``.edl``) through ``opentimelineio-plugins`` (``pip install alphagan-video[otio]``).

For every clip on a video track, the media frames it shows (``Clip.visible_range()``: the
``source_range`` widened by adjacent transitions) plus ``handles`` frames each side (clamped to
the media) are matted with ``matte_video(frame_range=...)`` into one file per clip. Those files
keep the original frame timestamps, so frame k of a matte is frame ``first + k`` of its source.

The new timeline is a copy of the original in which each processed clip's media reference
points to its matte, with ``available_range`` starting at the media time of the first processed
frame (original media start + first) and lasting the processed frame count; every clip keeps
its original ``source_range``, so track positions and durations are identical. Clips whose
media is missing or unreadable keep their place as a ``MissingReference`` and are reported.
Each clip's ``metadata["alphagan"]`` records the source URL, processed frames and output.

Frame numbers: media time t maps to file frame ``round((t - media_start) * file_rate)`` where
media_start is the reference's ``available_range.start_time``, else the file's ``timecode``
tag, else 0 (EDLs carry source timecodes and no available range).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from alphagan_video.config import PipelineConfig
from alphagan_video.errors import InputMediaError, MaskSourceError, ParameterError, UserInputError

METADATA_KEY = "alphagan"

#: (clip number 1-based, clip count, frames done in this clip, frames in this clip or None)
TimelineProgress = Callable[[int, int, int, Optional[int]], None]


def import_otio():
    """``opentimelineio`` or a UserInputError saying how to install it."""
    try:
        import opentimelineio as otio
    except ImportError:
        raise UserInputError(
            "the timeline command needs OpenTimelineIO: pip install 'alphagan-video[otio]' "
            "(opentimelineio + opentimelineio-plugins for FCP XML and EDL)"
        ) from None
    return otio


@dataclass
class ClipPlan:
    """What will be done for one clip (decided without decoding).

    track, number: video track index and the clip's 0-based number among that track's clips.
    media_path: local file of the clip's media, or None when it has none.
    rate: the clip's source rate (frames per second, float).
    first_time, last_time: media time (in ``rate`` frames) of the first / last frame to process,
        handles included and clamped to the reference's available_range when known.
    skip_reason: set when the clip cannot be processed (no media / missing file / unsupported).
    """

    track: int
    number: int
    name: str
    source_url: Optional[str]
    media_path: Optional[str]
    rate: float
    first_time: float
    last_time: float
    media_start: Optional[float]  # available_range start in ``rate`` frames, None = unknown
    skip_reason: Optional[str] = None

    @property
    def key(self) -> str:
        return f"{self.track:02d}_{self.number:03d}"


@dataclass
class ClipResult:
    """What happened to one clip."""

    track: int
    number: int
    name: str
    source_url: Optional[str]
    status: str  # "ok" | "skipped"
    reason: str = ""
    output: Optional[str] = None
    frames: Optional[tuple[int, int]] = None  # processed file frame indices, inclusive
    media_start: Optional[float] = None  # available_range start of the new reference (frames at ``rate``)
    rate: Optional[float] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class TimelineReport:
    edit: str
    timeline: str
    clips: list[ClipResult] = field(default_factory=list)

    @property
    def processed(self) -> list[ClipResult]:
        return [c for c in self.clips if c.status == "ok"]

    @property
    def skipped(self) -> list[ClipResult]:
        return [c for c in self.clips if c.status != "ok"]

    def to_dict(self) -> dict:
        return {"edit": self.edit, "timeline": self.timeline, "clips": [c.to_dict() for c in self.clips]}


# --------------------------------------------------------------------------- pure helpers

def url_to_path(url: Optional[str], base_dir: Optional[str | Path] = None) -> Optional[str]:
    """A media reference URL (``file:///a/b.mov``, ``file://localhost/...``, ``/a/b.mov``,
    ``b.mov`` relative to ``base_dir``) -> local path string; None for non-file URLs or None."""
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return url2pathname(unquote(f"//{parsed.netloc}{parsed.path}"))
        return url2pathname(unquote(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # http:, s3:, ... (a 1-letter scheme is a Windows drive)
        return None
    path = Path(url)
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return str(path)


def safe_name(name: str, fallback: str = "clip") -> str:
    """A file-system friendly version of a clip name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name or "").strip("._")
    return cleaned[:60] or fallback


def video_clips(timeline) -> list[tuple[int, int, Any]]:
    """(video track index, clip number in that track, Clip) for every clip on a video track,
    nested stacks included, in track order."""
    out = []
    for t, track in enumerate(timeline.video_tracks()):
        for n, clip in enumerate(track.find_clips()):
            out.append((t, n, clip))
    return out


def plan_clips(timeline, edit_dir: Optional[str | Path], handles: int = 0) -> list[ClipPlan]:
    """Decide, per video clip, which media range to process (no decoding, no file probing
    beyond existence checks).

    Args:
        timeline: an ``opentimelineio.schema.Timeline``.
        edit_dir: directory relative media URLs are resolved against (the edit file's).
        handles: extra frames each side of the visible range (>= 0).
    """
    otio = import_otio()
    if handles < 0:
        raise ParameterError.about("handles", handles, "must be 0 or more")
    plans = []
    for track, number, clip in video_clips(timeline):
        ref = clip.media_reference
        url = getattr(ref, "target_url", None)
        try:
            visible = clip.visible_range()
        except Exception:  # noqa: BLE001 - OTIO raises its own types for clips without ranges
            visible = clip.source_range
        rate = float(visible.duration.rate) if visible is not None else 24.0
        avail = getattr(ref, "available_range", None)
        plan = ClipPlan(track=track, number=number, name=clip.name or f"clip{number}", source_url=url,
                        media_path=None, rate=rate, first_time=0.0, last_time=0.0,
                        media_start=avail.start_time.rescaled_to(rate).value if avail is not None else None)
        plans.append(plan)
        if visible is None:
            plan.skip_reason = "clip has no source range and its media no available range"
            continue
        first = visible.start_time.rescaled_to(rate).value - handles
        last = visible.end_time_exclusive().rescaled_to(rate).value - 1 + handles
        if avail is not None:
            a0 = avail.start_time.rescaled_to(rate).value
            a1 = avail.end_time_exclusive().rescaled_to(rate).value - 1
            first, last = max(first, a0), min(last, a1)
        plan.first_time, plan.last_time = float(first), float(last)
        if isinstance(ref, otio.schema.MissingReference) or ref is None:
            plan.skip_reason = "no media reference (offline / missing media)"
        elif not isinstance(ref, otio.schema.ExternalReference):
            plan.skip_reason = f"unsupported media reference {type(ref).__name__} (only file references)"
        else:
            path = url_to_path(url, edit_dir)
            plan.media_path = path
            if path is None:
                plan.skip_reason = f"media URL {url!r} is not a local file"
            elif not os.path.isfile(path):
                plan.skip_reason = f"media file {path} not found"
            elif last < first:
                plan.skip_reason = "the used range lies outside the media's available range"
    return plans


def clip_output(plan: ClipPlan, out_dir: str | Path, ext: str) -> Path:
    """The per-clip file ``plan`` is matted into: ``out_dir/<track>_<number>_<name><ext>``."""
    if not ext.startswith("."):
        ext = "." + ext
    return Path(out_dir) / f"{plan.key}_{safe_name(plan.name)}{ext}"


def clip_paths(plans: list[ClipPlan], out_dir: str | Path, ext: str) -> tuple[list, list]:
    """(reads, writes) of the clips as ``io.collisions.RunPath`` lists: every clip's source media
    the edit names (skipped clips' too: sources are never written), and the file of every clip to
    be matted. Checked against each other before any clip is matted (``check_clip_paths``)."""
    from alphagan_video.io.collisions import RunPath

    reads = [RunPath(f"the media of clip {p.name!r}", p.media_path) for p in plans if p.media_path is not None]
    writes = [RunPath(f"the matte of clip {p.name!r}", clip_output(p, out_dir, ext))
              for p in plans if p.skip_reason is None]
    return reads, writes


def check_clip_paths(plans: list[ClipPlan], out_dir: str | Path, ext: str, reads=(), writes=()) -> None:
    """OutputError (exit 2) when a clip's matte would be written onto a source clip of the edit
    (same path, symlink or hard link; overwrite or not) or onto another clip's matte or one of
    ``writes`` (the new timeline); ``reads``: other files the run reads (the edit)."""
    from alphagan_video.io.collisions import check_no_collisions

    clip_reads, clip_writes = clip_paths(plans, out_dir, ext)
    check_no_collisions([*reads, *clip_reads], [*clip_writes, *writes])


def file_frame_range(plan: ClipPlan, media_start: float, file_rate: Fraction) -> tuple[int, int]:
    """Media-time range of ``plan`` -> inclusive 0-based frame indices in the file, clamped at 0."""
    scale = float(file_rate) / plan.rate
    first = round((plan.first_time - media_start) * scale)
    last = round((plan.last_time - media_start) * scale)
    return max(0, first), last


def _probe_media(path: str, clip_rate: float) -> tuple[Fraction, Optional[float]]:
    """(file frame rate, timecode start in clip-rate frames or None) of a media file."""
    import av

    from alphagan_video.io import open_input

    with open_input(path) as reader:
        rate = reader.info.frame_rate or Fraction(clip_rate).limit_denominator(1001)
    timecode = None
    try:
        with av.open(path) as container:
            video = container.streams.video[0] if container.streams.video else None
            for meta in ((video.metadata if video is not None else {}), container.metadata):
                for key in ("timecode",):
                    if meta.get(key):
                        timecode = meta[key]
                        break
                if timecode:
                    break
    except Exception:  # noqa: BLE001 - already opened successfully by open_input; metadata is optional
        timecode = None
    start = None
    if timecode:
        otio = import_otio()
        try:
            start = otio.opentime.from_timecode(timecode.replace(";", ":"), float(rate)).rescaled_to(clip_rate).value
        except Exception:  # noqa: BLE001 - a malformed tag is ignored
            start = None
    return Fraction(rate), start


# --------------------------------------------------------------------------- reading / writing

def read_edit(path: str | Path, edl_rate: Optional[float] = None):
    """Read an edit (``.otio``, ``.otioz``, ``.xml`` FCP XML, ``.edl`` CMX 3600, ...) -> Timeline.

    Raises InputMediaError naming the file when it is missing or cannot be parsed, and
    UserInputError with the install command when OpenTimelineIO (or its plugins) is missing.
    """
    otio = import_otio()
    path = Path(path)
    if not path.is_file():
        raise InputMediaError(f"{path}: edit file not found")
    kwargs = {}
    if path.suffix.lower() == ".edl" and edl_rate is not None:
        kwargs["rate"] = edl_rate
    try:
        result = otio.adapters.read_from_file(str(path), **kwargs)
    except otio.exceptions.NoKnownAdapterForExtensionError:
        raise UserInputError(
            f"{path}: no OpenTimelineIO adapter reads {path.suffix!r} files; for FCP XML / EDL / AAF "
            "install the plugins: pip install 'alphagan-video[otio]'"
        ) from None
    except Exception as exc:  # noqa: BLE001 - adapters raise many types; all mean "cannot parse"
        raise InputMediaError(f"{path}: cannot read the edit ({type(exc).__name__}: {exc})") from None
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline)) or [
            t for t in result if isinstance(t, otio.schema.Timeline)]
        if not timelines:
            raise InputMediaError(f"{path}: holds no timeline")
        result = timelines[0]
    if not isinstance(result, otio.schema.Timeline):
        raise InputMediaError(f"{path}: holds a {type(result).__name__}, not a timeline")
    return result


def matte_timeline(
    edit_path: str | Path,
    out_dir: str | Path,
    cfg: PipelineConfig = PipelineConfig(),
    handles: int = 0,
    ext: str = ".mov",
    timeline_path: Optional[str | Path] = None,
    edl_rate: Optional[float] = None,
    progress: Optional[TimelineProgress] = None,
) -> TimelineReport:
    """Matte the used ranges of every video clip of an edit; write the matte timeline.

    Args:
        edit_path: ``.otio`` / ``.xml`` (FCP XML) / ``.edl`` / anything OpenTimelineIO reads.
        out_dir: directory for the per-clip files (created).
        cfg: pipeline settings; ``cfg.output`` picks the kind and codec of the per-clip files
            (audio is never copied into them: the timeline keeps its own audio tracks).
        handles: extra frames each side of every clip's visible range.
        ext: per-clip file extension (``.mov`` ProRes; ``.mkv`` for an FFV1 matte; ...).
        timeline_path: where to write the new timeline (adapter chosen by its extension);
            default ``out_dir/<edit stem>.alphagan.otio``.
        edl_rate: frame rate to read an EDL with (EDLs carry none; OpenTimelineIO assumes 24).
        progress: called as frames are matted (see ``TimelineProgress``).
    Returns:
        TimelineReport; ``report.skipped`` lists clips that were not processed with the reason.
    Raises:
        UserInputError (and subclasses) for a bad edit, options or output; a clip whose media is
        missing, unreadable or has no frames in range is skipped, not raised.
    """
    from alphagan_video.errors import OutputError

    edit_path = Path(edit_path)
    out_dir = Path(out_dir)
    if not ext.startswith("."):
        ext = "." + ext
    timeline = read_edit(edit_path, edl_rate=edl_rate)
    plans = plan_clips(timeline, edit_path.resolve().parent, handles)
    timeline_path = Path(timeline_path) if timeline_path is not None else out_dir / f"{edit_path.stem}.alphagan.otio"
    from alphagan_video.io.collisions import RunPath

    check_clip_paths(plans, out_dir, ext, reads=[RunPath("the edit", edit_path)],
                     writes=[RunPath("the new timeline", timeline_path)])  # before any clip is matted
    if timeline_path.exists() and not cfg.output.overwrite:
        raise OutputError.naming(f"{timeline_path} exists; pass output.overwrite to replace it", "output.overwrite")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out_dir}: {exc}") from None
    clip_cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, copy_audio=False))

    new_timeline = timeline.deepcopy()
    new_timeline.name = f"{timeline.name or edit_path.stem} (alphagan {cfg.output.kind})"
    report = TimelineReport(edit=str(edit_path), timeline=str(timeline_path))
    if not plans:
        raise InputMediaError(f"{edit_path}: the edit has no clips on video tracks")
    todo = sum(1 for p in plans if p.skip_reason is None)
    number = 0
    for plan, (_, _, new_clip) in zip(plans, video_clips(new_timeline)):
        result = ClipResult(track=plan.track, number=plan.number, name=plan.name, source_url=plan.source_url,
                            status="skipped", rate=plan.rate)
        report.clips.append(result)
        if plan.skip_reason is None:
            number += 1
            clip_progress = None if progress is None else functools.partial(progress, number, todo)
            output = clip_output(plan, out_dir, ext)
            _matte_clip(plan, output, clip_cfg, result, new_clip, clip_progress)
        _note_clip(plan, result, new_clip, handles, cfg.output.kind)
    _write_timeline(new_timeline, timeline_path, out_dir)
    return report


def _matte_clip(plan: ClipPlan, output: Path, cfg: PipelineConfig, result: ClipResult, new_clip,
                progress: Optional[Callable[[int, Optional[int]], None]]) -> None:
    """Matte one clip's used range into ``output`` and point ``new_clip`` at it; a per-clip problem
    (unreadable media, no frames in range, subject lost) becomes ``plan.skip_reason``."""
    from alphagan_video.pipeline import matte_video

    otio = import_otio()
    try:
        file_rate, timecode_start = _probe_media(plan.media_path, plan.rate)
        media_start = plan.media_start if plan.media_start is not None else (timecode_start or 0.0)
        first, last = file_frame_range(plan, media_start, file_rate)
        if last < first:
            raise InputMediaError(f"{plan.media_path}: the clip's range starts before the media")
        run = matte_video(plan.media_path, output, cfg, progress=progress, frame_range=(first, last))
    except (InputMediaError, MaskSourceError) as exc:
        plan.skip_reason = str(exc)  # reported, and the other clips go on
        return
    last = first + run.frames - 1
    new_start = media_start + first * plan.rate / float(file_rate)
    result.status, result.output, result.frames = "ok", str(output.resolve()), (first, last)
    result.media_start = new_start
    new_clip.media_reference = otio.schema.ExternalReference(
        target_url=output.resolve().as_uri(),
        available_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(new_start, plan.rate),
            otio.opentime.RationalTime(run.frames * plan.rate / float(file_rate), plan.rate),
        ),
    )


def _note_clip(plan: ClipPlan, result: ClipResult, new_clip, handles: int, kind: str) -> None:
    """The clip's outcome into the report and into the new timeline's clip metadata."""
    otio = import_otio()
    if plan.skip_reason is not None:
        result.reason = plan.skip_reason
        new_clip.media_reference = otio.schema.MissingReference(
            name=plan.name, metadata={METADATA_KEY: {"skipped": plan.skip_reason, "source_url": plan.source_url}})
    meta = dict(new_clip.metadata.get(METADATA_KEY, {}) or {})
    meta.update({"status": result.status, "source_url": plan.source_url, "output": result.output,
                 "frames": list(result.frames) if result.frames else None, "handles": handles,
                 "output_kind": kind, "reason": result.reason})
    new_clip.metadata[METADATA_KEY] = meta


def _write_timeline(new_timeline, timeline_path: Path, out_dir: Path) -> None:
    from alphagan_video.errors import OutputError

    otio = import_otio()
    try:
        otio.adapters.write_to_file(new_timeline, str(timeline_path))
    except otio.exceptions.NoKnownAdapterForExtensionError:
        raise OutputError(f"{timeline_path}: no OpenTimelineIO adapter writes {timeline_path.suffix!r}; "
                          "use .otio, .xml (FCP XML) or .edl") from None
    except Exception as exc:  # noqa: BLE001 - e.g. CMX 3600 refuses more than one video track
        raise OutputError(f"{timeline_path}: cannot write the timeline ({type(exc).__name__}: {exc}); "
                          f"the per-clip files are in {out_dir}; try a .otio timeline") from None
