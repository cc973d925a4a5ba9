"""``alphagan-video run`` (the default command): matte one INPUT into OUTPUT, with a progress
bar and one closing line."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import click

from alphagan_video.cli.exits import _exit_codes, _fail, _standalone, _work_is_done
from alphagan_video.cli.flags import PARAMETER_FLAGS, flag_words
from alphagan_video.cli.group import main
from alphagan_video.cli.options import _build_config, _frontend_options, _pipeline_options
from alphagan_video.cli.paths import StagedReport, check_run_paths, run_reads
from alphagan_video.cli.preflight import _preflight
from alphagan_video.config import PipelineConfig
from alphagan_video.errors import UserInputError


OUTPUT_HELP = """\b
Outputs (by OUTPUT extension and --output-kind):
  .mov  rgba       ProRes 4444, yuva444p10le, STRAIGHT alpha, BT.709 (default)
  .mov  alpha      ProRes 422 HQ matte in luma (--codec png: lossless PNG-in-MOV)
  .mkv  alpha      FFV1 lossless 16-bit matte
  .mp4  any colour H.264 yuv420p (lossy, no alpha)
  name_%04d.png    PNG sequence, 16-bit, STRAIGHT alpha
  name.%04d.exr    EXR sequence, float, PREMULTIPLIED alpha (EXR convention)
  out.png          single image in -> PNG out, STRAIGHT alpha
Output kinds: rgba = decontaminated foreground + alpha; alpha = matte only;
foreground = decontaminated foreground colour, no alpha; composite = over --background.
"""


@main.command("run", epilog=OUTPUT_HELP)
@click.argument("input_path", metavar="INPUT", type=str)
@click.option("-o", "--output", "output_path", required=True, type=str, help="Output file or sequence pattern.")
@_pipeline_options(without=("no_audio",))
@click.option("--frames", "frame_range", default=None, metavar="A-B",
              help="Process only frames A..B (0-based, inclusive); their original timestamps are kept.")
@click.option("--context", "context", type=int, default=None, metavar="K",
              help="Chunk mode for render farms: warm up on K frames before A (temporal state, mask "
                   "propagation) and align batches with an unchunked run; only A..B are written.")
@_pipeline_options("no_audio")
@_frontend_options("max_pixels", "quiet", "json_report", help={"quiet": "No progress bar."})
@click.option("--strict", is_flag=True,
              help="Exit 2 when the matte is empty or full on more than a few frames (the output is still written).")
@_frontend_options("debug")
def run_command(input_path: str, output_path: str, frame_range, context, max_pixels, quiet, json_report, debug,
                strict=False, **opts) -> None:
    """Matte INPUT (video, image, or sequence pattern like shots/%04d.png) into OUTPUT."""
    with _exit_codes(debug, "interrupted; no output was written"):
        cfg = _build_config(**opts)
        from alphagan_video.frame_range import parse_frame_range

        frames = parse_frame_range(frame_range) if frame_range is not None else None
        if context is not None and context < 0:
            raise UserInputError(f"--context {context}: must be 0 or more frames")
        # Nothing written onto anything read (or onto each other), links included; the report
        # creatable: before the input is probed and the model loads.
        check_run_paths(run_reads(input_path, cfg), output_path, json_report=json_report)
        cfg = _preflight(input_path, output_path, cfg, max_pixels=max_pixels, warn=not quiet, frames=frames)
    _run(input_path, output_path, cfg, frames=frames, quiet=quiet, json_report=json_report, debug=debug,
         context=context, max_pixels=max_pixels, strict=strict)


#: The bar's layout: tqdm's own with the run's ``speed`` (the closing line's figure) in place of
#: tqdm's rate, which counts from the bar's first batch and is smoothed. Total known / unknown.
BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
BAR_FORMAT_NO_TOTAL = "{desc}: {n_fmt}{unit} [{elapsed}{postfix}]"


def speed(frames: int, seconds: float) -> str:
    """The run's speed as the progress bar and the closing line print it: frames written per
    second since the run started (``pipeline.RunReport.seconds["total"]`` once it is done)."""
    return f"{frames / max(seconds, 1e-9):.2f} fps"


class _ProgressBar:
    """The ``matting`` bar on stderr (tqdm), a ``progress`` callback of ``matte_video`` showing
    ``speed`` since ``start()``; nothing when ``quiet``."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bar, self.started = quiet, None, time.perf_counter()

    def start(self) -> None:
        """The run starts now (the bar's speed counts from here)."""
        self.started = time.perf_counter()

    def __call__(self, done: int, total: Optional[int]) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True, desc="matting",
                            bar_format=BAR_FORMAT if total else BAR_FORMAT_NO_TOTAL)
        self.bar.set_postfix_str(speed(done, time.perf_counter() - self.started), refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self, frames: Optional[int] = None, seconds: float = 0.0) -> None:
        """Close the bar; given the run's ``frames`` and ``seconds``, its last line shows their
        ``speed``, the figure of the closing line."""
        if self.bar is not None:
            if frames is not None:
                self.bar.set_postfix_str(speed(frames, seconds), refresh=False)
            self.bar.close()


def _run(input_path: str, output_path: str, cfg: PipelineConfig, *, frames: Optional[tuple[int, int]], quiet: bool,
         json_report: Optional[Path], debug: bool, context: Optional[int] = None,
         max_pixels: Optional[int] = None, strict: bool = False) -> None:
    bar = _ProgressBar(quiet)
    with _exit_codes(debug, "interrupted; no output was written", before_exit=bar.close):
        from alphagan_video.io.reader import pixel_budget
        from alphagan_video.pipeline import matte_video  # torch: imported inside the exit-code mapping

        # The report is written into a temporary while OUTPUT is still one, and renamed into
        # place right after it by the writer, which takes OUTPUT (a sequence: this run's frames)
        # back when that fails: a report that cannot be written leaves neither.
        staged = StagedReport(json_report)
        try:
            with pixel_budget(max_pixels):
                bar.start()
                report = matte_video(input_path, output_path, cfg, progress=bar, frame_range=frames,
                                     context=context, before_publish=lambda r: staged.stage(r.to_dict()))
        finally:
            staged.discard()
        if _standalone():
            _work_is_done()  # OUTPUT is in place: an interrupt now would report a lie
        seconds = report.seconds.get("total", 0.0)
        bar.close(report.frames, seconds)
        if not quiet:
            click.echo(f"wrote {output_path}: {report.frames} frame(s), {report.output_description}, "
                       f"{speed(report.frames, seconds)}", err=True)
    for warning in report.warnings:  # empty/full mattes: never a silent empty deliverable
        click.echo(f"alphagan-video: warning: {flag_words(warning, PARAMETER_FLAGS)}", err=True)
    if strict and report.warnings:
        _fail(f"--strict: {len(report.warnings)} warning(s) above; {output_path} was written", 2, False)
