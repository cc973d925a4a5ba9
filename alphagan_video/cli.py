"""Command line: ``alphagan-video INPUT -o OUTPUT [options]`` plus ``info``.

This is the only module that turns errors into exit codes:
0 success, 2 bad usage or bad input (UserInputError), 1 internal error, 130 interrupted.
Errors print one line naming the file and the problem; ``--debug`` adds the traceback.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import traceback
from pathlib import Path
from typing import Optional

import click

from alphagan_video import __version__
from alphagan_video.config import MaskConfig, ModelConfig, OutputConfig, PipelineConfig, TemporalConfig, TrimapConfig
from alphagan_video.errors import AlphaGANVideoError, UserInputError

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


class _DefaultCommandGroup(click.Group):
    """A group whose default command is ``run``: ``alphagan-video IN -o OUT`` == ``alphagan-video run IN -o OUT``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def _parse_box(value: Optional[str]) -> Optional[tuple[float, float, float, float]]:
    if value is None:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"--box {value!r}: expected x0,y0,x1,y1 in pixels, e.g. 10,20,200,300") from None
    if x1 <= x0 or y1 <= y0:
        raise click.BadParameter(f"--box {value!r}: x1 must exceed x0 and y1 must exceed y0")
    return (x0, y0, x1, y1)


def _parse_point(value: str) -> tuple[float, float, int]:
    parts = value.split(",")
    try:
        if len(parts) == 2:
            return (float(parts[0]), float(parts[1]), 1)
        if len(parts) == 3 and parts[2].strip() in ("0", "1"):
            return (float(parts[0]), float(parts[1]), int(parts[2]))
    except ValueError:
        pass
    raise click.BadParameter(f"--point {value!r}: expected x,y or x,y,label with label 1 (foreground) or 0 (background)")


def _parse_chroma_key(value: Optional[str]) -> Optional[tuple[float, float, float]]:
    """``R,G,B`` in 0..1 or ``#RRGGBB`` -> (r, g, b) floats in [0, 1] (range checked by the keyer)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if text.startswith("#") and len(text) == 7:
            return tuple(int(text[i:i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]
        r, g, b = (float(v) for v in text.split(","))
        return (r, g, b)
    except ValueError:
        raise click.BadParameter(
            f"--chroma-key {value!r}: expected R,G,B with each value in 0..1 (e.g. 0.1,0.7,0.2) or #RRGGBB"
        ) from None


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    click.echo(f"alphagan-video: error: {message}", err=True)
    sys.exit(code)


@click.group(cls=_DefaultCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="alphagan-video")
def main() -> None:
    """Video matting: a clean alpha matte of the subject, written as ProRes 4444 with alpha.

    \b
    alphagan-video INPUT -o OUTPUT [options]     (see: alphagan-video run --help)
    alphagan-video info                          versions, devices, encoders, weights
    """


@main.command("run", epilog=OUTPUT_HELP)
@click.argument("input_path", metavar="INPUT", type=str)
@click.option("-o", "--output", "output_path", required=True, type=str, help="Output file or sequence pattern.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT.")
@click.option("--output-kind", type=click.Choice(["rgba", "alpha", "foreground", "composite"]), default=None,
              help="What to write (default rgba). See the table below.")
@click.option("--codec", type=click.Choice(["prores4444", "prores4444xq", "prores_aw", "prores422hq", "ffv1", "png", "h264"]),
              default=None, help="Override the encoder chosen from the extension. prores_aw: faster ProRes 4444 encoder, larger deviation from Apple's reference.")
@click.option("--background", default=None, help="Composite background: #RRGGBB, R,G,B, a colour name or an image path.")
@click.option("--mask", "mask_source", default=None, metavar="SOURCE",
              help="Coarse mask: person (default) | sam | chroma | plate:PATH | file:PATH.")
@click.option("--sam-checkpoint", type=click.Path(path_type=Path), default=None, help="Official segment-anything checkpoint (.pth).")
@click.option("--sam-model", type=click.Choice(["vit_b", "vit_l", "vit_h"]), default=None, help="SAM model type of the checkpoint.")
@click.option("--box", default=None, metavar="X0,Y0,X1,Y1", help="SAM box prompt on the first frame.")
@click.option("--point", "points", multiple=True, metavar="X,Y[,LABEL]", help="SAM point prompt on the first frame (repeatable).")
@click.option("--prompts", "prompts_json", type=click.Path(path_type=Path), default=None,
              help='SAM prompts JSON keyed by frame index: {"0": {"box": [x0,y0,x1,y1], "points": [[x,y,1]]}}.')
@click.option("--chroma-key", "chroma_key", default=None, metavar="R,G,B",
              help="--mask chroma: fixed screen colour (R,G,B in 0..1 or #RRGGBB) instead of detecting it on the "
                   "first frame; farm jobs fix it from frame 0 themselves.")
@click.option("--trimap", "trimap_path", type=click.Path(path_type=Path), default=None,
              help="Your own trimaps (video, sequence or image); skips mask and trimap derivation.")
@click.option("--trimap-band", type=int, default=None, metavar="PX", help="Unknown band width in pixels (default scales with resolution).")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Generator weights (.safetensors or .pt); default: shipped weights.")
@click.option("--variant", type=click.Choice(["resnet50", "resnet34", "resnet18", "tiny"]), default=None,
              help="Generator variant of a --checkpoint that does not record it (bare state dicts).")
@click.option("--batch-size", type=int, default=None, help="Frames per batch (memory grows with it).")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default auto).")
@click.option("--no-amp", is_flag=True, help="Disable mixed precision on GPU.")
@click.option("--tiling", type=click.Choice(["auto", "on", "off"]), default=None,
              help="Run the generator only on tiles covering the unknown band (on), the full frame (off, default), "
                   "or tiles when they cover < 60% of the frame (auto).")
@click.option("--refine/--no-refine", default=None, help="Matting-Laplacian refinement of the generator's alpha.")
@click.option("--temporal/--no-temporal", default=None, help="Motion-compensated temporal smoothing of alpha and stable trimaps (default on); off: every frame is matted on its own (flickers, slightly faster).")
@click.option("--temporal-strength", type=float, default=None, help="0..1 (default 0.5): memory of the temporal filter (0.5 ~ 6 frames, 1 ~ 33). Higher: steadier mattes, more lag on low-contrast moving edges, longer warm-up for chunked runs.")
@click.option("--compile", "compile_model", is_flag=True, default=None,
              help="torch.compile the generator (faster on GPU after a slow first batch per shape).")
@click.option("--overlap/--no-overlap", default=None,
              help="Decode, matte and encode concurrently (default on; same output either way).")
@click.option("--frames", "frame_range", default=None, metavar="A-B",
              help="Process only frames A..B (0-based, inclusive); their original timestamps are kept.")
@click.option("--context", "context", type=int, default=None, metavar="K",
              help="Chunk mode for render farms: warm up on K frames before A (temporal state, mask "
                   "propagation) and align batches with an unchunked run; only A..B are written.")
@click.option("--no-audio", is_flag=True, help="Do not copy audio streams.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json-report", type=click.Path(path_type=Path), default=None, help="Write what was done as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def run_command(input_path: str, output_path: str, overwrite: bool, output_kind, codec, background, mask_source,
                sam_checkpoint, sam_model, box, points, prompts_json, chroma_key, trimap_path, trimap_band, checkpoint,
                variant, batch_size, device, no_amp, tiling, refine, temporal, temporal_strength, compile_model, overlap,
                frame_range, context, no_audio, quiet, json_report, debug) -> None:
    """Matte INPUT (video, image, or sequence pattern like shots/%04d.png) into OUTPUT."""
    try:
        cfg = _build_config(
            overwrite=overwrite, output_kind=output_kind, codec=codec, background=background,
            mask_source=mask_source, sam_checkpoint=sam_checkpoint, sam_model=sam_model, box=_parse_box(box),
            points=tuple(_parse_point(p) for p in points), prompts_json=prompts_json, trimap_path=trimap_path,
            trimap_band=trimap_band, checkpoint=checkpoint, variant=variant, batch_size=batch_size, device=device,
            no_amp=no_amp, tiling=tiling, refine=refine, temporal=temporal, temporal_strength=temporal_strength,
            no_audio=no_audio, compile_model=compile_model, overlap=overlap,
            chroma_key=_parse_chroma_key(chroma_key),
        )
        frames = _parse_frame_range(frame_range)
    except click.BadParameter as exc:
        _fail(str(exc), 2, debug)
    _run(input_path, output_path, cfg, frames=frames, quiet=quiet, json_report=json_report, debug=debug,
         context=context)


def _build_config(**opts) -> PipelineConfig:
    """Only the options the user set override the library defaults."""
    def set_fields(default, **fields):
        return dataclasses.replace(default, **{k: v for k, v in fields.items() if v is not None})

    mask = set_fields(MaskConfig(), source=opts["mask_source"], sam_checkpoint=opts["sam_checkpoint"],
                      sam_model=opts["sam_model"], box=opts["box"], points=opts["points"] or None,
                      prompts_json=opts["prompts_json"], chroma_key=opts.get("chroma_key"))
    trimap = set_fields(TrimapConfig(), band_px=opts["trimap_band"], trimap_path=opts["trimap_path"])
    model = set_fields(ModelConfig(), checkpoint=opts["checkpoint"], variant=opts.get("variant"),
                       batch_size=opts["batch_size"],
                       device=opts["device"], refine=opts["refine"], tiling=opts.get("tiling"),
                       mixed_precision=False if opts["no_amp"] else None,
                       compile=True if opts.get("compile_model") else None,
                       # An explicit --batch-size wins over sizing batches from free GPU memory.
                       auto_batch=False if opts["batch_size"] is not None else None)
    temporal = set_fields(TemporalConfig(), enabled=opts["temporal"], strength=opts["temporal_strength"])
    output = set_fields(OutputConfig(), kind=opts["output_kind"], codec=opts["codec"], background=opts["background"],
                        overwrite=True if opts["overwrite"] else None, copy_audio=False if opts["no_audio"] else None)
    cfg = PipelineConfig(mask=mask, trimap=trimap, model=model, temporal=temporal, output=output)
    if opts.get("overlap") is not None:
        cfg = dataclasses.replace(cfg, overlap=opts["overlap"])
    return cfg


def _parse_frame_range(value: Optional[str]) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    try:
        first, last = (int(v) for v in value.split("-"))
    except ValueError:
        raise click.BadParameter(f"--frames {value!r}: expected A-B with 0-based frame numbers, e.g. 0-99") from None
    if first < 0 or last < first:
        raise click.BadParameter(f"--frames {value!r}: expected 0 <= A <= B")
    return (first, last)


def _run(input_path: str, output_path: str, cfg: PipelineConfig, *, frames: Optional[tuple[int, int]], quiet: bool,
         json_report: Optional[Path], debug: bool, context: Optional[int] = None) -> None:
    from alphagan_video.pipeline import matte_video

    bar = None
    try:
        def progress(done: int, total: Optional[int]) -> None:
            nonlocal bar
            if quiet:
                return
            if bar is None:
                from tqdm import tqdm

                bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True, desc="matting")
            bar.update(done - bar.n)

        # Checked first: a report that cannot be written must not fail the run after the output exists.
        if json_report is not None and not json_report.parent.is_dir():
            raise UserInputError(f"--json-report {json_report}: directory {json_report.parent} does not exist")
        report = matte_video(input_path, output_path, cfg, progress=progress, frame_range=frames,
                             context=context)
        if bar is not None:
            bar.close()
        if json_report is not None:
            json_report.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        if not quiet:
            fps = report.frames / max(report.seconds.get("total", 0.0), 1e-9)
            click.echo(f"wrote {output_path}: {report.frames} frame(s), {report.output_description}, {fps:.2f} fps",
                       err=True)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        _fail("interrupted; no output was written", 130, debug)
    except UserInputError as exc:
        if bar is not None:
            bar.close()
        _fail(str(exc), 2, debug)
    except AlphaGANVideoError as exc:
        if bar is not None:
            bar.close()
        _fail(str(exc), 1, debug)
    except Exception as exc:  # noqa: BLE001 - the CLI is the one place that reports everything
        if bar is not None:
            bar.close()
        _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", 1, debug)


@main.command("info")
def info_command() -> None:
    """Print versions, devices, encoders and the model weights in use."""
    for line in collect_info():
        click.echo(line)


def collect_info() -> list[str]:
    import av
    import torch

    lines = [f"alphagan-video {__version__}", f"python {sys.version.split()[0]}",
             f"torch {torch.__version__} (CUDA available: {torch.cuda.is_available()}"
             + (f", {torch.cuda.device_count()} device(s): "
                + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
                if torch.cuda.is_available() else "") + ")",
             f"PyAV {av.__version__}, FFmpeg {getattr(av, 'ffmpeg_version_info', 'unknown')}"]
    encoders = []
    for name in ("prores_ks", "prores_aw", "ffv1", "png", "exr", "libx264", "libx265", "libvpx-vp9"):
        try:
            av.codec.Codec(name, "w")
            encoders.append(name)
        except Exception:  # noqa: BLE001 - absent encoder
            pass
    lines.append("encoders: " + ", ".join(encoders))
    try:
        from alphagan_video.model import DEFAULT_WEIGHTS_PATH, load_generator

        _, meta = load_generator(None)
        lines.append(f"model weights: {DEFAULT_WEIGHTS_PATH} (variant {meta.variant}, norm {meta.norm}, sha256 {meta.sha256})")
    except AlphaGANVideoError as exc:
        lines.append(f"model weights: unavailable ({exc})")
    return lines


# --------------------------------------------------------------------------- pipe (issue 7)

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
@click.option("--pix-fmt", "pix_fmt", type=click.Choice(["rgb24", "rgb48le"]), default="rgb24", show_default=True,
              help="Pixel format of the raw input frames (ffmpeg -pix_fmt).")
@click.option("--output-kind", type=click.Choice(["rgba", "alpha", "foreground", "composite"]), default=None,
              help="What to write on stdout (default rgba).")
@click.option("--background", default=None, help="Composite background: #RRGGBB, R,G,B, a colour name or an image path.")
@click.option("--mask", "mask_source", default=None, metavar="SOURCE",
              help="Coarse mask: person (default) | sam | chroma | plate:PATH | file:PATH.")
@click.option("--sam-checkpoint", type=click.Path(path_type=Path), default=None, help="Official segment-anything checkpoint (.pth).")
@click.option("--sam-model", type=click.Choice(["vit_b", "vit_l", "vit_h"]), default=None, help="SAM model type of the checkpoint.")
@click.option("--box", default=None, metavar="X0,Y0,X1,Y1", help="SAM box prompt on the first frame.")
@click.option("--point", "points", multiple=True, metavar="X,Y[,LABEL]", help="SAM point prompt on the first frame (repeatable).")
@click.option("--prompts", "prompts_json", type=click.Path(path_type=Path), default=None, help="SAM prompts JSON keyed by frame index.")
@click.option("--trimap", "trimap_path", type=click.Path(path_type=Path), default=None,
              help="Your own trimaps (video, sequence or image) matching the piped frames.")
@click.option("--trimap-band", type=int, default=None, metavar="PX", help="Unknown band width in pixels.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Generator weights; default: shipped weights.")
@click.option("--variant", type=click.Choice(["resnet50", "resnet34", "resnet18", "tiny"]), default=None,
              help="Generator variant of a --checkpoint that does not record it (bare state dicts).")
@click.option("--batch-size", type=int, default=None, help="Frames per batch (memory grows with it).")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default auto).")
@click.option("--no-amp", is_flag=True, help="Disable mixed precision on GPU.")
@click.option("--tiling", type=click.Choice(["auto", "on", "off"]), default=None,
              help="Generator on tiles covering the unknown band (on), the full frame (off), or auto.")
@click.option("--refine/--no-refine", default=None, help="Matting-Laplacian refinement of the generator's alpha.")
@click.option("--temporal/--no-temporal", default=None, help="Motion-compensated temporal smoothing of alpha and stable trimaps (default on); off: every frame is matted on its own (flickers, slightly faster).")
@click.option("--temporal-strength", type=float, default=None, help="0..1 (default 0.5): memory of the temporal filter (0.5 ~ 6 frames, 1 ~ 33). Higher: steadier mattes, more lag on low-contrast moving edges, longer warm-up for chunked runs.")
@click.option("--progress", "show_progress", is_flag=True, help="Show a progress counter on stderr.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def pipe_command(size, rate, pix_fmt, output_kind, background, mask_source, sam_checkpoint, sam_model, box, points,
                 prompts_json, trimap_path, trimap_band, checkpoint, variant, batch_size, device, no_amp, tiling,
                 refine, temporal,
                 temporal_strength, show_progress, debug) -> None:
    """Matte raw frames from stdin to raw frames on stdout (a filter between two ffmpeg processes)."""
    from alphagan_video.pipe import OutputPipeClosedError, parse_rate, parse_size, run_pipe

    try:
        width, height = parse_size(size)
        frame_rate = parse_rate(rate)
        cfg = _build_config(
            overwrite=False, output_kind=output_kind, codec=None, background=background,
            mask_source=mask_source, sam_checkpoint=sam_checkpoint, sam_model=sam_model, box=_parse_box(box),
            points=tuple(_parse_point(p) for p in points), prompts_json=prompts_json, trimap_path=trimap_path,
            trimap_band=trimap_band, checkpoint=checkpoint, variant=variant, batch_size=batch_size, device=device,
            no_amp=no_amp, tiling=tiling, refine=refine, temporal=temporal, temporal_strength=temporal_strength,
            no_audio=False,
        )
    except (click.BadParameter, UserInputError) as exc:
        _fail(str(exc), 2, debug)

    def progress(done: int, total: Optional[int]) -> None:
        if show_progress:
            click.echo(f"\ralphagan-video pipe: {done} frame(s)", err=True, nl=False)

    stdin, stdout = click.get_binary_stream("stdin"), click.get_binary_stream("stdout")
    if stdin.isatty():
        _fail("pipe reads raw frames from stdin, which is a terminal; pipe ffmpeg into it "
              "(ffmpeg -i IN -f rawvideo -pix_fmt rgb24 - | alphagan-video pipe ...)", 2, debug)
    try:
        run_pipe(stdin, stdout, width, height, frame_rate, cfg, pix_fmt=pix_fmt,
                 progress=progress)
        if show_progress:
            click.echo("", err=True)
    except KeyboardInterrupt:
        _fail("interrupted", 130, debug)
    except OutputPipeClosedError as exc:
        _silence_stdout()
        _fail(str(exc), 1, debug)
    except UserInputError as exc:
        _fail(str(exc), 2, debug)
    except AlphaGANVideoError as exc:
        _fail(str(exc), 1, debug)
    except BrokenPipeError:
        _silence_stdout()
        _fail("stdout was closed by the process reading it (broken pipe)", 1, debug)
    except Exception as exc:  # noqa: BLE001 - the CLI is the one place that reports everything
        _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", 1, debug)


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush of a closed pipe stays quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


# --------------------------------------------------------------------------- timeline (issue 7)

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
@click.option("--overwrite", is_flag=True, help="Replace existing per-clip files and timeline.")
@click.option("--output-kind", type=click.Choice(["rgba", "alpha", "foreground", "composite"]), default=None,
              help="What each per-clip file holds (default rgba: ProRes 4444, straight alpha).")
@click.option("--codec", type=click.Choice(["prores4444", "prores4444xq", "prores_aw", "prores422hq", "ffv1", "png", "h264"]),
              default=None, help="Override the encoder chosen from --ext.")
@click.option("--background", default=None, help="Composite background: #RRGGBB, R,G,B, a colour name or an image path.")
@click.option("--mask", "mask_source", default=None, metavar="SOURCE",
              help="Coarse mask for every clip: person (default) | sam | chroma | plate:PATH | file:PATH.")
@click.option("--trimap-band", type=int, default=None, metavar="PX", help="Unknown band width in pixels.")
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Generator weights; default: shipped weights.")
@click.option("--variant", type=click.Choice(["resnet50", "resnet34", "resnet18", "tiny"]), default=None,
              help="Generator variant of a --checkpoint that does not record it (bare state dicts).")
@click.option("--batch-size", type=int, default=None, help="Frames per batch (memory grows with it).")
@click.option("--device", default=None, help="auto | cpu | cuda | cuda:N (default auto).")
@click.option("--no-amp", is_flag=True, help="Disable mixed precision on GPU.")
@click.option("--tiling", type=click.Choice(["auto", "on", "off"]), default=None,
              help="Generator on tiles covering the unknown band (on), the full frame (off), or auto.")
@click.option("--refine/--no-refine", default=None, help="Matting-Laplacian refinement of the generator's alpha.")
@click.option("--temporal/--no-temporal", default=None, help="Motion-compensated temporal smoothing of alpha and stable trimaps (default on); off: every frame is matted on its own (flickers, slightly faster).")
@click.option("--temporal-strength", type=float, default=None, help="0..1 (default 0.5): memory of the temporal filter (0.5 ~ 6 frames, 1 ~ 33). Higher: steadier mattes, more lag on low-contrast moving edges, longer warm-up for chunked runs.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output.")
@click.option("--json-report", type=click.Path(path_type=Path), default=None, help="Write the per-clip results as JSON.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
def timeline_command(edit_path, out_dir, handles, timeline_out, ext, edl_rate, overwrite, output_kind, codec, background,
                     mask_source, trimap_band, checkpoint, variant, batch_size, device, no_amp, tiling, refine, temporal,
                     temporal_strength, quiet, json_report, debug) -> None:
    """Matte the used ranges of every clip in EDIT and write a matching timeline of the results."""
    from alphagan_video.timeline import matte_timeline

    try:
        cfg = _build_config(
            overwrite=overwrite, output_kind=output_kind, codec=codec, background=background,
            mask_source=mask_source, sam_checkpoint=None, sam_model=None, box=None, points=(), prompts_json=None,
            trimap_path=None, trimap_band=trimap_band, checkpoint=checkpoint, variant=variant, batch_size=batch_size, device=device,
            no_amp=no_amp, tiling=tiling, refine=refine, temporal=temporal, temporal_strength=temporal_strength, no_audio=True,
        )
    except click.BadParameter as exc:
        _fail(str(exc), 2, debug)

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
        report = matte_timeline(edit_path, out_dir, cfg, handles=handles, ext=ext, timeline_path=timeline_out,
                                edl_rate=edl_rate, progress=progress)
    except KeyboardInterrupt:
        _fail("interrupted", 130, debug)
    except UserInputError as exc:
        _fail(str(exc), 2, debug)
    except AlphaGANVideoError as exc:
        _fail(str(exc), 1, debug)
    except Exception as exc:  # noqa: BLE001 - the CLI is the one place that reports everything
        _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", 1, debug)
    finally:
        if bar is not None:
            bar.close()
    if json_report is not None:
        json_report.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    for clip in report.clips:
        if clip.status == "ok":
            if not quiet:
                click.echo(f"clip {clip.name!r}: frames {clip.frames[0]}-{clip.frames[1]} -> {clip.output}", err=True)
        else:
            click.echo(f"alphagan-video: warning: skipped clip {clip.name!r} (track {clip.track}): {clip.reason}", err=True)
    if not report.processed:
        _fail(f"no clip of {edit_path} could be processed; wrote {report.timeline} anyway", 2, debug)
    if not quiet:
        click.echo(f"wrote {report.timeline}: {len(report.processed)} clip(s) matted, {len(report.skipped)} skipped",
                   err=True)


# --------------------------------------------------------------------------- farm (issue 6)

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

# Options of ``run`` that farm commands do not take (they set them per chunk themselves).
_FARM_SKIP = frozenset({"input_path", "output_path", "frame_range", "context", "quiet", "json_report", "debug"})


def _with_run_options(command):
    """Give a farm command every pipeline option of ``run`` (same names, same help)."""
    command.params.extend(p for p in run_command.params if p.name not in _FARM_SKIP)
    return command


def _farm_config(opts: dict) -> PipelineConfig:
    run_opts = {p.name: opts[p.name] for p in run_command.params if p.name in opts}
    run_opts["box"] = _parse_box(run_opts.get("box"))
    run_opts["points"] = tuple(_parse_point(p) for p in run_opts.get("points") or ())
    run_opts["chroma_key"] = _parse_chroma_key(run_opts.get("chroma_key"))
    return _build_config(**run_opts)


def _farm_guard(debug: bool, action) -> object:
    """Run ``action()``; map errors to exit codes like ``run`` does."""
    try:
        return action()
    except click.BadParameter as exc:
        _fail(str(exc), 2, debug)
    except KeyboardInterrupt:
        _fail("interrupted; finished segments are kept, rerun to resume", 130, debug)
    except UserInputError as exc:
        _fail(str(exc), 2, debug)
    except AlphaGANVideoError as exc:
        _fail(str(exc), 1, debug)
    except Exception as exc:  # noqa: BLE001 - the CLI is the one place that reports everything
        _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", 1, debug)


def _make_job(input_path: str, output_path: str, chunk_size: int, context: Optional[int], opts: dict):
    from alphagan_video.farm import create_job

    return create_job(input_path, output_path, _farm_config(opts), chunk_size=chunk_size, context=context)


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
        job = _make_job(input_path, output_path, chunk_size, context, opts)
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
    from alphagan_video.farm import load_job, parse_frames, run_chunk

    def action():
        job = load_job(job_path)
        first, last = parse_frames(frames)
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
        job = _make_job(input_path, output_path, chunk_size, context, opts)
        template_dir = str(template_path.resolve().parent) if template_path is not None else None
        text = json.dumps(openjd_template(job, executable=_executable(executable), gpus=num_gpus, cpus=num_cpus,
                                          template_dir=template_dir), indent=2) + "\n"
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
        job = _make_job(input_path, output_path, chunk_size, context, opts)
        ol = build_outline(job, executable=_executable(executable), show=show, shot=shot, user=user, cores=cores,
                           gpus=gpus)
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
    from alphagan_video.farm.prepass import run_prepass

    def action():
        cfg = _farm_config(opts)
        report = run_prepass(input_path, output_path, cfg, overwrite=cfg.output.overwrite)
        click.echo(f"wrote {output_path}: boxes for {report.boxes} of {report.frames} frame(s)"
                   + (f"; no subject on frames {report.empty[:10]}" if report.empty else ""), err=True)

    _farm_guard(debug, action)
