"""``alphagan-video pipe``: raw frames from stdin to raw frames on stdout, a filter between two
ffmpeg processes."""
from __future__ import annotations

import sys
from typing import IO, BinaryIO, Optional

import click

from alphagan_video.cli.exits import _exit_codes, _fail
from alphagan_video.cli.group import main
from alphagan_video.cli.options import _build_config, _frontend_options, _pipeline_options
from alphagan_video.cli.preflight import _check_band, _check_config, _fit_batch
from alphagan_video.pipe import INPUT_PIX_FMTS


PIPE_HELP = """\b
Example (RGBA ProRes 4444, audio mapped back from the source):
  ffmpeg -v error -i in.mp4 -f rawvideo -pix_fmt rgb24 - \\
  | alphagan-video pipe --size 1920x1080 --rate 25 \\
  | ffmpeg -f rawvideo -pix_fmt rgba -s 1920x1080 -framerate 25 -i - -i in.mp4 \\
      -map 0:v -map 1:a? -c:a copy -c:v prores_ks -profile:v 4444 \\
      -pix_fmt yuva444p10le -alpha_bits 16 out.mov
Output pixel formats: rgba -> rgba (rgba64le for --pix-fmt rgb48le), STRAIGHT alpha;
alpha -> gray (gray16le); foreground/composite -> rgb24 (rgb48le).
Progress and errors go to stderr; a truncated last frame exits 2, a closed stdout exits 1.
"""


@main.command("pipe", epilog=PIPE_HELP)
@click.option("--size", "size", required=True, metavar="WxH", help="Frame size of the raw input, e.g. 1920x1080.")
@click.option("--rate", "rate", required=True, metavar="R", help="Frame rate, e.g. 25 or 30000/1001.")
@click.option("--pix-fmt", "pix_fmt", type=click.Choice(tuple(INPUT_PIX_FMTS)), default="rgb24", show_default=True,
              help="Pixel format of the raw input frames (ffmpeg -pix_fmt).")
# No file to overwrite, no encoder, no audio; frames arrive one at a time, so no overlap or compile.
@_pipeline_options(without=("overwrite", "codec", "chroma_key", "compile_model", "overlap", "no_audio"),
                   help={"output_kind": "What to write on stdout (default rgba).",
                         "trimap_path": "Your own trimaps (video, sequence or image) matching the piped frames."})
@_frontend_options("max_pixels", "quiet", help={"quiet": "Nothing on stderr but errors and warnings (no progress "
                                                            "counter, even with --progress; no notes)."})
@click.option("--progress", "show_progress", is_flag=True, help="Show a progress counter on stderr.")
@_frontend_options("debug")
def pipe_command(size, rate, pix_fmt, max_pixels, quiet, show_progress, debug, **opts) -> None:
    """Matte raw frames from stdin to raw frames on stdout (a filter between two ffmpeg processes)."""
    with _exit_codes(debug):
        from alphagan_video.io.reader import check_frame_size
        from alphagan_video.pipe import parse_rate, parse_size

        width, height = parse_size(size)
        frame_rate = parse_rate(rate)
        cfg = _build_config(**opts)
        # Before anything is allocated: --size 100000x100000 would ask for 28 GiB per frame.
        check_frame_size(f"--size {size}", width, height, max_pixels)
        _check_config(cfg)
        _check_band(cfg, width, height)
        cfg = _fit_batch(cfg, width, height, adjustable=True, warn=not quiet)
    show_progress = show_progress and not quiet

    def progress(done: int, total: Optional[int]) -> None:
        if show_progress:
            click.echo(f"\ralphagan-video pipe: {done} frame(s)", err=True, nl=False)

    stdin, stdout = _binary(sys.stdin), _binary(sys.stdout)
    if stdin.isatty():
        _fail("pipe reads raw frames from stdin, which is a terminal; pipe ffmpeg into it "
              "(ffmpeg -i IN -f rawvideo -pix_fmt rgb24 - | alphagan-video pipe ...)", 2, debug)
    with _exit_codes(debug):
        from alphagan_video.io.reader import pixel_budget
        from alphagan_video.pipe import OutputPipeClosedError, run_pipe

        try:
            with pixel_budget(max_pixels):
                run_pipe(stdin, stdout, width, height, frame_rate, cfg, pix_fmt=pix_fmt,
                         progress=progress)
            if show_progress:
                click.echo("", err=True)
        except BrokenPipeError as exc:  # OutputPipeClosedError included
            _silence_stdout()
            _fail(str(exc) if isinstance(exc, OutputPipeClosedError)
                  else "stdout was closed by the process reading it (broken pipe)", 1, debug)


def _binary(stream: IO) -> BinaryIO:
    """The byte stream under a standard stream: its ``buffer`` (a text stream, the usual case, also
    under click's test runner), or the stream itself when it is binary already (replaced by a
    host). What ``click.get_binary_stream`` returned, without its deprecation (Click 8.5)."""
    return getattr(stream, "buffer", stream)


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush of a closed pipe stays quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
