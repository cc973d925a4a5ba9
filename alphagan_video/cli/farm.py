"""``alphagan-video farm ...``: chunked jobs for render farms and clusters (OpenJD, OpenCue, Ray,
local), the task commands every farm runs (``chunk``, ``assemble``) and the SAM prepass."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from alphagan_video.cli.exits import _exit_codes
from alphagan_video.cli.group import main
from alphagan_video.cli.options import _PIPELINE_OPTIONS, _build_config
from alphagan_video.cli.preflight import _preflight, _remove_stale
from alphagan_video.cli.run import run_command
from alphagan_video.errors import UserInputError


def worker_commands(executable: list[str]):
    """The command lines farm workers run (``farm.WorkerCommands``): ``executable`` (the command
    and leading arguments that start alphagan-video there) + ``farm chunk JOB --frames A-B`` for a
    chunk, + ``farm assemble --job JOB`` for the assembly."""
    from alphagan_video.farm.files import FRAMES_FIELD, JOB_FIELD, WorkerCommands

    return WorkerCommands(chunk=(*executable, "farm", "chunk", JOB_FIELD, "--frames", FRAMES_FIELD),
                          assemble=(*executable, "farm", "assemble", "--job", JOB_FIELD))


FARM_HELP = """\b
Split one shot into frame-range chunks for render farms and clusters, and join the
segments losslessly (ProRes stream copy) into exactly the file one machine writes.
  farm openjd   INPUT -o OUT --chunk-size N [run options] > template.json   (Deadline Cloud)
  farm opencue  INPUT -o OUT --chunk-size N [run options] > job.xml         (OpenCue)
  farm ray      INPUT -o OUT --address auto|local --chunk-size N [run options]
  farm local    INPUT -o OUT --chunk-size N [run options]   (all chunks here, resumable)
  farm plan     INPUT -o OUT --chunk-size N [run options]   (job file + chunk list)
  farm chunk    JOB --frames A-B      the task command every farm runs (Tractor, Flamenco...)
  farm assemble --job JOB             join verified segments, copy audio/timecode/tags
  farm prepass  INPUT -o prompts.json --mask sam ...   per-frame SAM boxes (sam only)
The job manifest OUT.alphagan-job.json and the segments in OUT.alphagan-segments/ make
reruns resume: verified segments (sha256) are kept, missing or corrupt ones redone.
"""


def _with_run_options(command):
    """Give a farm command every pipeline option of ``run`` (same names, same help), after its own."""
    command.params.extend(p for p in run_command.params if p.name in _PIPELINE_OPTIONS or p.name == "max_pixels")
    return command


def _farm_guard(debug: bool, action) -> object:
    """Run ``action()``; map errors to exit codes like ``run`` does."""
    with _exit_codes(debug, "interrupted; finished segments are kept, rerun to resume"):
        return action()


def _make_job(input_path: str, output_path: str, chunk_size: int, context: Optional[int], opts: dict,
              side_file: Optional[tuple[str, Path]] = None, runs_here: bool = False):
    """Check everything that needs no model, then write (or reuse) the job file. ``side_file``:
    (its flag, path) of a file the command writes besides (a template): checked with the rest.
    ``runs_here``: the chunks run on this machine (``farm local``), so ``--device`` is checked here."""
    from alphagan_video.cli.paths import RunPath, check_run_paths, run_reads
    from alphagan_video.farm import create_job
    from alphagan_video.farm.job import JOB_SUFFIX

    opts = dict(opts)
    max_pixels = opts.pop("max_pixels", None)
    cfg = _build_config(**opts)
    if chunk_size < 1:
        raise UserInputError(f"--chunk-size {chunk_size}: must be at least 1 frame")
    if context is not None and context < 0:
        raise UserInputError(f"--context {context}: must be 0 or more frames")
    # Nothing the job writes (OUTPUT, its job file, a template) onto anything it reads, links included.
    check_run_paths(run_reads(input_path, cfg), output_path,
                    side_files=[RunPath("job file", output_path + JOB_SUFFIX)]
                    + ([RunPath(*side_file)] if side_file is not None else []))
    # The output may exist (a finished job is recognised by create_job); the batch size sets the
    # chunk grid, so it is refused rather than lowered when it does not fit in memory.
    _preflight(input_path, output_path, cfg, max_pixels=max_pixels, adjustable_batch=False, check_output=False,
               device_here=runs_here)
    from alphagan_video.io.reader import pixel_budget

    with pixel_budget(max_pixels):  # create_job probes the input (frame count, chroma key)
        return create_job(input_path, output_path, cfg, chunk_size=chunk_size, context=context,
                          max_pixels=max_pixels)


def _already_complete(job) -> bool:
    """Say so and return True when the job's OUTPUT is already assembled and intact (exit 0)."""
    if not job.complete or job.config.output.overwrite:
        return False
    click.echo(f"already complete: {job.output} ({job.frame_count} frame(s), assembled from job {job.job_path}); "
               "nothing to do (pass --overwrite to remake it)", err=True)
    return True


def _executable(value: str) -> list[str]:
    import shlex

    parts = shlex.split(value)
    if not parts:
        raise click.BadParameter("--executable must name a command, e.g. alphagan-video")
    return parts


_job_options = [
    click.option("-o", "--output", "output_path", required=True, type=str, help="Final output (.mov)."),
    click.option("--chunk-size", type=int, default=48, show_default=True, help="Frames per task."),
    click.option("--context", type=int, default=None, metavar="K",
                 help="Warm-up frames before each chunk (default: what temporal smoothing needs, 0 with --no-temporal)."),
    click.option("--debug", is_flag=True, help="Show tracebacks on errors."),
]


def _job_command(func):
    for option in reversed(_job_options):
        func = option(func)
    return click.argument("input_path", metavar="INPUT", type=str)(func)


@main.group("farm", epilog=FARM_HELP)
def farm_group() -> None:
    """Render farms and clusters: chunked jobs (OpenJD, OpenCue, Ray), resumable, lossless assembly."""


@_with_run_options
@farm_group.command("local")
@_job_command
def farm_local_command(input_path, output_path, chunk_size, context, debug, **opts) -> None:
    """Run every chunk of the job on this machine, then assemble (rerun to resume)."""
    from alphagan_video.farm import assemble_job, run_local

    def action():
        job = _make_job(input_path, output_path, chunk_size, context, opts, runs_here=True)
        if _already_complete(job):
            return
        results = run_local(job)
        report = assemble_job(job)
        ran = sum(1 for _, r in results if r)
        click.echo(f"wrote {output_path}: {report.frames} frame(s) from {len(results)} segment(s) "
                   f"({ran} matted, {len(results) - ran} reused)", err=True)

    _farm_guard(debug, action)


@_with_run_options
@farm_group.command("plan")
@_job_command
@click.option("--json", "as_json", is_flag=True, help="Print the job file's path and the chunks as JSON.")
def farm_plan_command(input_path, output_path, chunk_size, context, debug, as_json, **opts) -> None:
    """Write the job manifest and print its chunks, one 'A-B' per line (for any scheduler)."""

    def action():
        job = _make_job(input_path, output_path, chunk_size, context, opts)
        chunks = job.chunks()
        if as_json:
            click.echo(json.dumps({"job": job.job_path, "frame_count": job.frame_count, "context": job.context,
                                   "chunks": [f"{a}-{b}" for a, b in chunks]}, indent=2))
        else:
            for a, b in chunks:
                click.echo(f"{a}-{b}")
            click.echo(f"job file: {job.job_path}", err=True)

    _farm_guard(debug, action)


@farm_group.command("chunk")
@click.argument("job_path", metavar="JOB", type=click.Path(path_type=Path))
@click.option("--frames", "frames", required=True, metavar="A-B", help="Frames of this task (0-based, inclusive).")
@click.option("-q", "--quiet", is_flag=True, help="No message when done.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def farm_chunk_command(job_path, frames, quiet, debug) -> None:
    """Make the segment for frames A-B of a job (skipped when a verified segment exists)."""
    from alphagan_video.farm import load_job, run_chunk
    from alphagan_video.frame_range import parse_frame_range

    def action():
        job = load_job(job_path)
        first, last = parse_frame_range(frames, single=True)
        _remove_stale(job.segments_dir, not quiet)
        record, ran = run_chunk(job, first, last)
        if not quiet:
            click.echo(f"{'wrote' if ran else 'verified, kept'} {job.segment_path(first, last)} "
                       f"(frames {first}-{last}, sha256 {record.sha256[:12]})", err=True)

    _farm_guard(debug, action)


@farm_group.command("assemble")
@click.option("--job", "job_path", type=click.Path(path_type=Path), default=None, help="Job manifest (OUT.alphagan-job.json).")
@click.option("--input", "input_path", type=str, default=None, help="Original input (without --job).")
@click.option("-o", "--output", "output_path", type=str, default=None, help="Final output (without --job).")
@click.argument("segments", nargs=-1, type=click.Path(path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--no-audio", is_flag=True, help="Do not copy the input's audio (without --job).")
@click.option("--remove-segments", is_flag=True, help="Delete the segments after a successful assembly (with --job).")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def farm_assemble_command(job_path, input_path, output_path, segments, overwrite, no_audio, remove_segments, debug) -> None:
    """Join segments by stream copy with the input's audio, timecode and tags.

    Either --job JOB (verified segments that tile the clip) or --input INPUT -o OUT SEGMENT...
    """
    from alphagan_video.farm import assemble_job, assemble_segments, load_job

    def action():
        if job_path is not None:
            if segments or input_path or output_path:
                raise click.BadParameter("give either --job JOB or --input INPUT -o OUT SEGMENT..., not both")
            report = assemble_job(load_job(job_path), overwrite=True if overwrite else None,
                                  remove_segments=remove_segments)
        else:
            if not (input_path and output_path and segments):
                raise click.BadParameter("give --job JOB, or --input INPUT -o OUT and the segment files in order")
            report = assemble_segments(input_path, [str(s) for s in segments], output_path, overwrite=overwrite,
                                       copy_audio=not no_audio)
        click.echo(f"wrote {report.output}: {report.frames} frame(s) from {len(report.segments)} segment(s), "
                   f"{report.audio_streams} audio stream(s) copied", err=True)

    _farm_guard(debug, action)


@_with_run_options
@farm_group.command("openjd")
@_job_command
@click.option("--template", "template_path", type=click.Path(path_type=Path), default=None,
              help="Write the template here instead of stdout.")
@click.option("--executable", default="alphagan-video", show_default=True, help="How workers start alphagan-video.")
@click.option("--num-gpus", type=int, default=0, help="GPUs each worker must have (host requirement).")
@click.option("--num-cpus", type=int, default=0, help="vCPUs each worker must have (host requirement).")
def farm_openjd_command(input_path, output_path, chunk_size, context, debug, template_path, executable, num_gpus,
                        num_cpus, **opts) -> None:
    """Write the job manifest and print an Open Job Description template (TASK_CHUNKING)."""
    from alphagan_video.farm.openjd import openjd_template

    def action():
        job = _make_job(input_path, output_path, chunk_size, context, opts,
                        side_file=("--template", template_path) if template_path is not None else None)
        template_dir = str(template_path.resolve().parent) if template_path is not None else None
        text = json.dumps(openjd_template(job, commands=worker_commands(_executable(executable)), gpus=num_gpus,
                                          cpus=num_cpus, template_dir=template_dir), indent=2) + "\n"
        if template_path is not None:
            template_path.write_text(text)
        else:
            click.echo(text, nl=False)

    _farm_guard(debug, action)


@_with_run_options
@farm_group.command("opencue")
@_job_command
@click.option("--xml", "xml_path", type=click.Path(path_type=Path), default=None, help="Write the job spec here instead of stdout.")
@click.option("--executable", default="alphagan-video", show_default=True, help="How render nodes start alphagan-video.")
@click.option("--show", default="testing", show_default=True, help="OpenCue show.")
@click.option("--shot", default="default", show_default=True, help="OpenCue shot.")
@click.option("--user", default=None, help="OpenCue user (default: you).")
@click.option("--cores", type=float, default=2.0, show_default=True, help="Cores per matting frame chunk.")
@click.option("--gpus", type=int, default=0, help="GPUs per matting chunk.")
def farm_opencue_command(input_path, output_path, chunk_size, context, debug, xml_path, executable, show, shot, user,
                         cores, gpus, **opts) -> None:
    """Write the job manifest and print the OpenCue job spec (offline; submit with cuerun)."""
    from alphagan_video.farm.opencue import build_outline, serialize_outline

    def action():
        job = _make_job(input_path, output_path, chunk_size, context, opts,
                        side_file=("--xml", xml_path) if xml_path is not None else None)
        ol = build_outline(job, commands=worker_commands(_executable(executable)), show=show, shot=shot, user=user,
                           cores=cores, gpus=gpus)
        text = serialize_outline(ol)
        if xml_path is not None:
            xml_path.write_text(text)
        else:
            click.echo(text)

    _farm_guard(debug, action)


@_with_run_options
@farm_group.command("ray")
@_job_command
@click.option("--address", default="auto", show_default=True,
              help="auto (running cluster) | local (private Ray on this machine) | HOST:PORT | ray://HOST:10001.")
@click.option("--num-gpus-per-task", type=float, default=0, show_default=True, help="GPUs each chunk task requests.")
@click.option("--num-cpus-per-task", type=float, default=1, show_default=True, help="CPUs each chunk task requests.")
@click.option("--max-retries", type=int, default=3, show_default=True, help="Retries of a chunk whose worker died.")
def farm_ray_command(input_path, output_path, chunk_size, context, debug, address, num_gpus_per_task,
                     num_cpus_per_task, max_retries, **opts) -> None:
    """Run the chunks as Ray tasks, then assemble (rerun to resume)."""
    from alphagan_video.farm import assemble_job
    from alphagan_video.farm.ray_backend import run_ray

    def action():
        job = _make_job(input_path, output_path, chunk_size, context, opts)
        if _already_complete(job):
            return
        results = run_ray(job, address=address, num_gpus=num_gpus_per_task, num_cpus=num_cpus_per_task,
                          max_retries=max_retries)
        report = assemble_job(job)
        ran = sum(1 for r in results if r["ran"])
        click.echo(f"wrote {output_path}: {report.frames} frame(s) from {len(results)} Ray task(s) "
                   f"({ran} matted, {len(results) - ran} reused)", err=True)

    _farm_guard(debug, action)


@_with_run_options
@farm_group.command("prepass")
@click.argument("input_path", metavar="INPUT", type=str)
@click.option("-o", "--output", "output_path", required=True, type=str, help="Prompts JSON to write.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def farm_prepass_command(input_path, output_path, debug, **opts) -> None:
    """Run the coarse-mask source serially and write per-frame box prompts (for --mask sam on farms)."""
    def action():
        from alphagan_video.farm.prepass import run_prepass
        from alphagan_video.io.reader import pixel_budget

        max_pixels = opts.pop("max_pixels", None)
        cfg = _build_config(**opts)
        with pixel_budget(max_pixels):
            report = run_prepass(input_path, output_path, cfg, overwrite=cfg.output.overwrite)
        click.echo(f"wrote {output_path}: boxes for {report.boxes} of {report.frames} frame(s)"
                   + (f"; no subject on frames {report.empty[:10]}" if report.empty else ""), err=True)

    _farm_guard(debug, action)
