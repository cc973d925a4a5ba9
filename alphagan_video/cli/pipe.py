"""``alphagan-video pipe``: raw frames from stdin to raw frames on stdout, a filter between two
ffmpeg processes."""
from __future__ import annotations

import sys
from typing import IO, BinaryIO, Optional

import click

from alphagan_video.cli.exits import _exit_codes, _fail, _silence_stdout
from alphagan_video.cli.flags import user_message
from alphagan_video.errors import UserInputError
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
Progress and errors go to stderr; a truncated last frame, a closed stdout and a full one
(> /dev/full) exit 2.
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
        from alphagan_video.device import check_device

        check_device(cfg.model.device)  # before the model loads
        _check_band(cfg, width, height)
        cfg = _fit_batch(cfg, width, height, adjustable=True, warn=not quiet)
    show_progress = show_progress and not quiet

    def progress(done: int, total: Optional[int]) -> None:
        if show_progress:
            click.echo(f"\ralphagan-video pipe: {done} frame(s)", err=True, nl=False)

    stdin = _binary(sys.stdin)
    stdout = _binary(sys.stdout) if sys.stdout is not None else None  # None: started with >&-
    if stdin.isatty():
        _fail("pipe reads raw frames from stdin, which is a terminal; pipe ffmpeg into it "
              "(ffmpeg -i IN -f rawvideo -pix_fmt rgb24 - | alphagan-video pipe ...)", 2, debug)
    with _exit_codes(debug):
        from alphagan_video.io.reader import pixel_budget
        from alphagan_video.pipe import OutputStreamError, run_pipe

        try:
            with pixel_budget(max_pixels):
                run_pipe(stdin, stdout, width, height, frame_rate, cfg, pix_fmt=pix_fmt,
                         progress=progress)
            if show_progress:
                click.echo("", err=True)
        except (BrokenPipeError, OutputStreamError) as exc:  # stdout closed or full: exit 2
            _silence_stdout()
            _fail(user_message(exc) if isinstance(exc, UserInputError)
                  else "stdout was closed by the process reading it (broken pipe)", 2, debug)


def _binary(stream: IO) -> BinaryIO:
    """The byte stream under a standard stream: its ``buffer`` (a text stream, the usual case, also
    under click's test runner), or the stream itself when it is binary already (replaced by a
    host). What ``click.get_binary_stream`` returned, without its deprecation (Click 8.5)."""
    return getattr(stream, "buffer", stream)

