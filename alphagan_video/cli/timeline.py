"""``alphagan-video timeline``: matte the used ranges of every clip of an edit (OTIO, FCP XML,
EDL) and write a matching timeline of the results."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import click

from alphagan_video.cli.exits import _exit_codes, _fail
from alphagan_video.cli.flags import PARAMETER_FLAGS, flag_words
from alphagan_video.cli.group import main
from alphagan_video.cli.options import _build_config, _frontend_options, _mask_choices_help, _pipeline_options


TIMELINE_HELP = """\b
Example:
  alphagan-video timeline cut.xml -o mattes/ --handles 12
  -> mattes/00_000_<clip>.mov ... and mattes/cut.alphagan.otio (import it in your NLE)
Reads .otio natively, FCP XML (.xml) and EDL (.edl) with opentimelineio-plugins
(pip install 'alphagan-video[otio]'). Per-clip files keep the source frame timestamps; the new
timeline keeps every clip's position and source range. Clips whose media is missing are
reported and skipped (exit 0 if at least one clip was processed, 2 if none was).
"""


@main.command("timeline", epilog=TIMELINE_HELP)
@click.argument("edit_path", metavar="EDIT", type=click.Path(path_type=Path))
@click.option("-o", "--output-dir", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory for the per-clip files and the new timeline.")
@click.option("--handles", type=int, default=0, show_default=True, help="Extra frames matted before and after each clip.")
@click.option("--timeline-out", "timeline_out", type=click.Path(path_type=Path), default=None,
              help="New timeline path (.otio, .xml, .edl); default DIR/<EDIT stem>.alphagan.otio.")
@click.option("--ext", default=".mov", show_default=True, help="Per-clip file extension (.mov, .mkv, ...).")
@click.option("--edl-rate", type=float, default=None, help="Frame rate of an EDL (EDLs carry none; default 24).")
# One mask source and model for every clip: no per-shot prompts, trimaps or chroma keys; per-clip
# files carry no audio.
@_pipeline_options("overwrite", "output_kind", "codec", "background", "mask_source", "trimap_band", "checkpoint",
                   "variant", "batch_size", "device", "no_amp", "tiling", "prior_scale", "refine", "temporal",
                   "temporal_strength", help={"overwrite": "Replace existing per-clip files and timeline.",
                         "output_kind": "What each per-clip file holds (default rgba: ProRes 4444, straight alpha).",
                         "codec": "Override the encoder chosen from --ext.",
                         "mask_source": f"Coarse mask for every clip: {_mask_choices_help()}."})
@_frontend_options("quiet", "json_report", "debug", help={"json_report": "Write the per-clip results as JSON."})
def timeline_command(edit_path, out_dir, handles, timeline_out, ext, edl_rate, quiet, json_report, debug,
                     **opts) -> None:
    """Matte the used ranges of every clip in EDIT and write a matching timeline of the results."""
    from alphagan_video.timeline import matte_timeline

    try:
        cfg = _build_config(no_audio=True, **opts)
    except click.BadParameter as exc:
        _fail(str(exc), 2, debug)

    with _exit_codes(debug):  # the report and timeline: not onto the edit or each other, creatable
        from alphagan_video.cli.paths import RunPath, check_run_paths, run_reads

        clip_reads, clip_writes = _clip_paths(edit_path, out_dir, ext, handles, edl_rate)
        new_timeline = RunPath("--timeline-out", timeline_out) if timeline_out is not None \
            else RunPath("the new timeline", out_dir / f"{edit_path.stem}.alphagan.otio")
        check_run_paths([RunPath("EDIT", edit_path), *run_reads(None, cfg), *clip_reads], None,
                        json_report=json_report, side_files=[new_timeline, *clip_writes], created_folder=out_dir)
        from alphagan_video.device import check_device

        check_device(cfg.model.device)  # before any clip loads the model
    bar = None
    current = [0]

    def progress(number: int, count: int, done: int, total: Optional[int]) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None or current[0] != number:
            if bar is not None:
                bar.close()
            from tqdm import tqdm

            bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True, desc=f"clip {number}/{count}")
            current[0] = number
        bar.update(done - bar.n)

    try:
        with _exit_codes(debug):
            report = matte_timeline(edit_path, out_dir, cfg, handles=handles, ext=ext, timeline_path=timeline_out,
                                    edl_rate=edl_rate, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if json_report is not None:
        from alphagan_video._atomic import atomic_write

        with _exit_codes(debug), atomic_write(json_report, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    for clip in report.clips:
        if clip.status == "ok":
            if not quiet:
                click.echo(f"clip {clip.name!r}: frames {clip.frames[0]}-{clip.frames[1]} -> {clip.output}", err=True)
        else:
            click.echo(f"alphagan-video: warning: skipped clip {clip.name!r} (track {clip.track}): "
                       f"{flag_words(clip.reason, PARAMETER_FLAGS)}",
                       err=True)
    if not report.processed:
        _fail(f"no clip of {edit_path} could be processed; wrote {report.timeline} anyway", 2, debug)
    if not quiet:
        click.echo(f"wrote {report.timeline}: {len(report.processed)} clip(s) matted, {len(report.skipped)} skipped",
                   err=True)


def _clip_paths(edit_path: Path, out_dir: Path, ext: str, handles: int, edl_rate: Optional[float]) -> tuple:
    """The source media of the edit's clips and the mattes the command would write for them
    (``timeline.clip_paths``), for the preflight; ([], []) when the edit cannot be read or
    planned: ``matte_timeline`` refuses it with its own message."""
    from alphagan_video.errors import UserInputError
    from alphagan_video.timeline import clip_paths, plan_clips, read_edit

    try:
        plans = plan_clips(read_edit(edit_path, edl_rate=edl_rate), edit_path.resolve().parent, handles)
    except UserInputError:
        return [], []
    return clip_paths(plans, out_dir, ext)
