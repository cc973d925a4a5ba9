"""Command line: ``alphagan-video INPUT -o OUTPUT [options]`` plus ``info``.

This is the only module that turns errors into exit codes (README "Errors, exit codes and files
left behind"): 0 success; 2 bad usage, bad input or an unusable environment (UserInputError:
unwritable or full output location, missing encoder, over the pixel or memory budget); 1 only for
our own bugs; 130 Ctrl-C (SIGINT); 143 SIGTERM. Errors print one line naming the file and the
problem; ``--debug`` adds the traceback.

Fail fast: every check that needs no model (paths, extensions, output kinds, mask specs, an
existing output, job files, frame sizes against ``--max-pixels``) runs in ``_preflight`` before
torch or the model is imported, and this module imports nothing heavy at import time, so
``alphagan-video info`` and bad invocations answer in well under a second or two.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import click

from alphagan_video import __version__
from alphagan_video.config import (OUTPUT_KINDS, TILING_MODES, MaskConfig, ModelConfig, OutputConfig, PipelineConfig,
                                   RefineConfig, TemporalConfig, TrimapConfig, check_config)
from alphagan_video.errors import (AlphaGANVideoError, ParameterError, ResourceLimitError, Terminated,
                                   UserInputError)
# Choice lists come from their registries. These modules import no torch (numpy, PyAV and OpenCV
# at most), so the CLI still answers before torch is loaded.
from alphagan_video.io.writer import CODEC_CHOICES
from alphagan_video.masks import MASK_SPEC_FORMS, SAM_MODELS
from alphagan_video.model.registry import DEFAULT_WEIGHTS_PATH, GENERATOR_VARIANTS
from alphagan_video.pipe import INPUT_PIX_FMTS

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


EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


#: Signals that arrive while click parses the command line (before any command runs) are held
#: here and raised when the command starts: raised inside click's parser they would become its
#: "Aborted!" with exit 1.
_SIGNALS = {"armed": False, "pending": None}


def _raise_for(signum: int) -> None:
    if signum == signal.SIGTERM:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: let the cleanup finish
        raise Terminated("terminated")
    raise KeyboardInterrupt


def _on_signal(signum, frame) -> None:
    """SIGTERM -> ``Terminated`` (exit 143), SIGINT -> KeyboardInterrupt (exit 130), in the main
    thread, with the same cleanup; held until a command runs (see ``_SIGNALS``)."""
    if not _SIGNALS["armed"]:
        _SIGNALS["pending"] = _SIGNALS["pending"] or signum
        return
    _raise_for(signum)


def _arm_signals() -> None:
    """A command starts: raise a held signal now, and any later one at once."""
    _SIGNALS["armed"] = True
    pending, _SIGNALS["pending"] = _SIGNALS["pending"], None
    if pending is not None:
        _raise_for(pending)


def _standalone() -> bool:
    """True in the installed script / ``python -m`` (not when a host calls the CLI in-process)."""
    return bool(getattr(_install_signal_handlers, "installed", False))


def _install_signal_handlers() -> None:
    """SIGTERM raises ``Terminated``; SIGINT raises KeyboardInterrupt (Python's default, restored
    if a host application changed it). Only from the main thread (``signal`` requires it)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    with contextlib.suppress(ValueError, OSError):
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        _install_signal_handlers.installed = True


def _inductor_cache_dir() -> Optional[str]:
    """torch's default inductor cache folder, ``$TMPDIR/torchinductor_<user>`` (as torch names it)."""
    import getpass
    import re
    import tempfile

    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return None
    try:
        user = re.sub(r'[\\/:*?"<>|]', "_", getpass.getuser())
    except (KeyError, OSError, ImportError):
        return None
    return os.path.join(tempfile.gettempdir(), "torchinductor_" + user)


def _work_is_done() -> None:
    """From here on a signal can undo nothing (OUTPUT is in place, or the run has failed and
    cleaned up): ignore SIGINT / SIGTERM so that one arriving during the interpreter's shutdown
    does not turn a finished run into a death by signal. Main thread only."""
    import threading

    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _interrupted(exc: BaseException, message: str, debug: bool) -> None:
    """Report an interruption and exit 143 (SIGTERM) or 130 (Ctrl-C)."""
    if isinstance(exc, Terminated):
        _fail(message.replace("interrupted", "terminated", 1), EXIT_SIGTERM, debug)
    _fail(message, EXIT_SIGINT, debug)


class _DefaultCommandGroup(click.Group):
    """A group whose default command is ``run``: ``alphagan-video IN -o OUT`` == ``alphagan-video run IN -o OUT``.

    It is also the safety net of the exit-code taxonomy: an interruption or an error that escapes
    a command's own mapping (e.g. raised while a command imports its modules) still becomes one
    line on stderr and exit 130/143, 2 or 1, never click's "Aborted!" or a traceback."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        ctx.meta["alphagan_debug"] = "--debug" in args
        return super().parse_args(ctx, args)

    def main(self, args=None, *rest, **kwargs):
        if args is not None:  # called in-process by a host (tests, scripts): leave its signals alone
            return super().main(args, *rest, **kwargs)
        _install_signal_handlers()  # the installed script or python -m alphagan_video
        try:
            return super().main(args, *rest, **kwargs)
        finally:
            _work_is_done()
            held = _SIGNALS["pending"]
            if held is not None:  # arrived while parsing, and no command ran (usage error, --help)
                click.echo(f"alphagan-video: error: {'terminated' if held == signal.SIGTERM else 'interrupted'}",
                           err=True)
                sys.exit(EXIT_SIGTERM if held == signal.SIGTERM else EXIT_SIGINT)

    def invoke(self, ctx: click.Context):
        debug = bool(ctx.meta.get("alphagan_debug"))
        _limit_malloc_arenas()
        inductor_dir = _inductor_cache_dir()
        inductor_existed = inductor_dir is None or os.path.lexists(inductor_dir)
        try:
            return self._invoke(ctx, debug)
        finally:
            if not inductor_existed:
                # Importing torchvision creates an empty $TMPDIR/torchinductor_<user>/; remove it
                # when this run created it and left it empty (a --compile run fills it: kept).
                with contextlib.suppress(OSError):
                    os.rmdir(inductor_dir)

    def _invoke(self, ctx: click.Context, debug: bool):
        try:
            if _standalone():
                _arm_signals()
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit, BrokenPipeError):
            raise  # click's own handling (BrokenPipeError: stdout closed by a pager, exit 1 quietly)
        except KeyboardInterrupt as exc:
            _interrupted(exc, "interrupted; no output was written", debug)
        except UserInputError as exc:
            _fail(user_message(exc), EXIT_USAGE, debug)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: our bug, exit 1
            _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                  EXIT_INTERNAL, debug)


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


#: glibc malloc arenas for this process (``_limit_malloc_arenas``).
MALLOC_ARENAS = 2


def _limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``) before the run starts its threads.

    glibc gives threads that allocate at the same time their own arenas (up to 8 per core), and
    memory freed in one arena is not reused by another: the overlapped stages' threads each
    keep a high-water mark of their own frames. Peak RSS of a default 720p run (6 frames,
    bench/peak_rss.py) was 2.28 GB with glibc's default and 2.01 GB with 2 arenas. A process-wide
    setting, so the CLI (which owns the process) makes it, not the library. No effect where the
    C library is not glibc."""
    from alphagan_video._malloc import limit_arenas

    limit_arenas(arenas)


#: Library parameter (``AlphaGANVideoError.about``'s ``param``: a dotted configuration path or a
#: function argument) -> the command-line flag that sets it. The library never spells a flag; an
#: error about a parameter listed here, or naming one (``AlphaGANVideoError.naming``), is shown
#: with the flag the user typed (``user_message``).
PARAMETER_FLAGS: dict[str, str] = {
    "model.batch_size": "--batch-size",
    "model.checkpoint": "--checkpoint",
    "model.variant": "--variant",
    "model.device": "--device",
    "temporal.strength": "--temporal-strength",
    "trimap.band_px": "--trimap-band",
    "trimap.trimap_path": "--trimap",
    "mask.source": "--mask",
    "mask.prompts_json": "--prompts",
    "mask.sam_checkpoint": "--sam-checkpoint",
    "mask.chroma_key": "--chroma-key",
    "max_pixels": "--max-pixels",
    "model.compile": "--compile",
    "output.background": "--background",
    "output.kind": "--output-kind",
    "context": "--context",
    "size": "--size",
    "rate": "--rate",
    "pix_fmt": "--pix-fmt",
    "output.overwrite": "--overwrite",
    "handles": "--handles",
    "output.copy_audio=False": "--no-audio",  # the flag turns copying off
    "output.codec": "--codec",
    "frames": "--frames",
    "frame_range": "--frames",
    "chunk_size": "--chunk-size",
    "address": "--address",
    "mask.box": "--box",
    "mask.points": "--point",
}


def flag_words(text: str, params: Iterable[str]) -> str:
    """``text`` with each of ``params`` that ``PARAMETER_FLAGS`` knows shown as its flag
    (``use mask.source person`` -> ``use --mask person``), where it stands as a word."""
    names = sorted((p for p in set(params) if p in PARAMETER_FLAGS), key=len, reverse=True)
    if not names:
        return text
    pattern = r"(?<![\w./\\-])(" + "|".join(map(re.escape, names)) + r")(?![\w-]|\.\w)"
    return re.sub(pattern, lambda m: PARAMETER_FLAGS[m.group(1)], text)


def user_message(exc: BaseException) -> str:
    """The one-line message of ``exc`` in the user's words: the parameter the error is about
    (``AlphaGANVideoError.about``) and those it names (``AlphaGANVideoError.naming``) by their
    flags (``PARAMETER_FLAGS``); other errors keep their message."""
    param = getattr(exc, "param", None)
    named = (*getattr(exc, "mentions", ()), *([param] if param else []))
    if param in PARAMETER_FLAGS:
        return f"{PARAMETER_FLAGS[param]} {exc.value_text}: {flag_words(exc.problem, named)}"
    return flag_words(str(exc), named)


@contextlib.contextmanager
def _exit_codes(debug: bool, interrupted: str = "interrupted",
                before_exit: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """Turn an error raised in the block into one line on stderr and the CLI's exit code.

    2: bad usage or input (click.BadParameter, UserInputError, MemoryError); 1: other
    AlphaGANVideoError and internal errors; 130: Ctrl-C (message ``interrupted``); 143: SIGTERM
    (``Terminated``, message ``terminated...``). ``before_exit`` runs first (e.g. to close a
    progress bar).
    """
    def fail(message: str, code: int) -> None:
        if before_exit is not None:
            before_exit()
        _fail(message, code, debug)

    try:
        yield
    except click.BadParameter as exc:
        fail(str(exc), EXIT_USAGE)
    except Terminated:
        fail(interrupted.replace("interrupted", "terminated", 1), EXIT_SIGTERM)
    except KeyboardInterrupt:
        fail(interrupted, EXIT_SIGINT)
    except UserInputError as exc:
        fail(user_message(exc), EXIT_USAGE)
    except BrokenPipeError:  # stdout closed by its reader (farm plan | head): the environment, not a bug
        _silence_stdout()
        fail("stdout was closed by the process reading it (broken pipe)", EXIT_USAGE)
    except MemoryError:
        fail("out of memory; lower --batch-size or --max-pixels, or use a machine with more memory",
             EXIT_USAGE)
    except AlphaGANVideoError as exc:
        fail(user_message(exc), EXIT_INTERNAL)
    except Exception as exc:  # noqa: BLE001 - the CLI is the one place that reports everything
        fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", EXIT_INTERNAL)


# --------------------------------------------------------------------------- shared options

def _mask_choices_help() -> str:
    """``person (default) | sam | chroma | plate:PATH | file:PATH`` (``masks.MASK_SPEC_FORMS``)."""
    default = MaskConfig().source
    return " | ".join(f"{form} (default)" if form == default else form for form in MASK_SPEC_FORMS)


#: One option of a table below: (declarations, attributes), as ``click.option`` takes them.
OptionSpec = tuple[tuple[str, ...], dict]

# Every option that _build_config reads, once: name (as click passes it and _build_config takes it)
# -> (declarations, attributes). ``run`` takes them all (the farm commands reuse ``run``'s); ``pipe``
# and ``timeline`` take subsets. Insertion order is the order --help lists them in.
_PIPELINE_OPTIONS: dict[str, OptionSpec] = {
    "overwrite": (("--overwrite",), dict(is_flag=True, help="Replace an existing OUTPUT.")),
    "output_kind": (("--output-kind",), dict(type=click.Choice(OUTPUT_KINDS), default=None,
                                             help="What to write (default rgba). See the table below.")),
    "codec": (("--codec",), dict(type=click.Choice(CODEC_CHOICES), default=None,
                                 help="Override the encoder chosen from the extension. prores_aw: faster ProRes 4444 "
                                      "encoder, larger deviation from Apple's reference.")),
    "background": (("--background",), dict(default=None, help="Composite background: #RRGGBB, R,G,B, a colour name "
                                                             "or an image path.")),
    "mask_source": (("--mask", "mask_source"), dict(default=None, metavar="SOURCE",
                                                    help=f"Coarse mask: {_mask_choices_help()}.")),
    "sam_checkpoint": (("--sam-checkpoint",), dict(type=click.Path(path_type=Path), default=None,
                                                   help="Official segment-anything checkpoint (.pth).")),
    "sam_model": (("--sam-model",), dict(type=click.Choice(SAM_MODELS), default=None,
                                         help="SAM model type of the checkpoint.")),
    "box": (("--box",), dict(default=None, metavar="X0,Y0,X1,Y1", help="SAM box prompt on the first frame.")),
    "points": (("--point", "points"), dict(multiple=True, metavar="X,Y[,LABEL]",
                                           help="SAM point prompt on the first frame (repeatable).")),
    "prompts_json": (("--prompts", "prompts_json"), dict(
        type=click.Path(path_type=Path), default=None,
        help='SAM prompts JSON keyed by frame index: {"0": {"box": [x0,y0,x1,y1], "points": [[x,y,1]]}}.')),
    "chroma_key": (("--chroma-key", "chroma_key"), dict(
        default=None, metavar="R,G,B",
        help="--mask chroma: fixed screen colour (R,G,B in 0..1 or #RRGGBB) instead of detecting it on the "
             "first frame; farm jobs fix it from frame 0 themselves.")),
    "trimap_path": (("--trimap", "trimap_path"), dict(
        type=click.Path(path_type=Path), default=None,
        help="Your own trimaps (video, sequence or image); skips mask and trimap derivation.")),
    "trimap_band": (("--trimap-band",), dict(type=int, default=None, metavar="PX",
                                             help="Unknown band width in pixels, AlphaGAN erosion/dilation (default: evidence trimap, band "
                                                  "scaling with resolution; 0 = binary trimap).")),
    "checkpoint": (("--checkpoint",), dict(type=click.Path(path_type=Path), default=None,
                                           help="Generator weights (.safetensors or .pt); default: shipped weights.")),
    "variant": (("--variant",), dict(type=click.Choice(tuple(GENERATOR_VARIANTS)), default=None,
                                     help="Generator variant of a --checkpoint that does not record it (bare state "
                                          "dicts).")),
    "batch_size": (("--batch-size",), dict(type=int, default=None, help="Frames per batch (memory grows with it).")),
    "device": (("--device",), dict(default=None, help="auto | cpu | cuda | cuda:N (default auto).")),
    "no_amp": (("--no-amp",), dict(is_flag=True, help="Disable mixed precision on GPU.")),
    "tiling": (("--tiling",), dict(type=click.Choice(TILING_MODES), default=None,
                                   help="Run the generator only on tiles covering the unknown band (on), the full "
                                        "frame (off, default), or tiles when they cover < 60% of the frame (auto).")),
    "prior_scale": (("--prior-scale",), dict(
        type=float, default=None, metavar="S",
        help="Working scale of the generator when the refine is on (its alpha is then the solve's prior): "
             "0.5 = half the side, short side kept >= 320 px; 1 = full resolution. Default: 0.5 on the CPU, 1 on "
             "CUDA. Refine off: always 1.")),
    "refine": (("--refine/--no-refine",), dict(default=None,
                                               help="Matting-Laplacian refinement of the generator's alpha.")),
    "temporal": (("--temporal/--no-temporal",), dict(
        default=None, help="Motion-compensated temporal smoothing of alpha and stable trimaps (default on); off: "
                           "every frame is matted on its own (flickers, slightly faster).")),
    "temporal_strength": (("--temporal-strength",), dict(
        type=float, default=None,
        help="0..1 (default 0.5): memory of the temporal filter (0.5 ~ 6 frames, 1 ~ 33). Higher: steadier mattes, "
             "more lag on low-contrast moving edges, longer warm-up for chunked runs.")),
    "compile_model": (("--compile", "compile_model"), dict(
        is_flag=True, default=None,
        help="torch.compile the generator (faster on GPU after a slow first batch per shape).")),
    "overlap": (("--overlap/--no-overlap",), dict(
        default=None, help="Decode, matte and encode concurrently (default on; same output either way).")),
    "no_audio": (("--no-audio",), dict(is_flag=True, help="Do not copy audio streams.")),
}


def _parse_max_pixels(ctx, param, value: Optional[str]) -> Optional[int]:
    """``--max-pixels N`` or ``WxH`` -> pixels per frame (None: the default budget)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    try:
        if "x" in text:
            w, h = (int(v) for v in text.split("x"))
            n = w * h
            if w < 1 or h < 1:
                raise ValueError
        else:
            n = int(text)
    except ValueError:
        raise click.BadParameter(f"--max-pixels {value!r}: expected a pixel count or WxH, e.g. 8192x8192") from None
    if n < 1:
        raise click.BadParameter(f"--max-pixels {value!r}: must be at least 1 pixel")
    return n


# The options every front-end (run, pipe, timeline, the farm commands) may take that are not
# pipeline settings: how the command reports, and the pixel budget. Same flags, same meaning
# everywhere; a command names the ones it takes (``_frontend_options``) and may reword the help.
_FRONTEND_OPTIONS: dict[str, OptionSpec] = {
    "max_pixels": (("--max-pixels", "max_pixels"), dict(
        default=None, callback=_parse_max_pixels, metavar="N|WxH",
        help="Pixel budget per frame (default 8192x8192): larger inputs are refused from their declared size, "
             "before anything is decoded.")),
    "quiet": (("-q", "--quiet"), dict(is_flag=True, help="No progress output.")),
    "json_report": (("--json-report",), dict(type=click.Path(path_type=Path), default=None,
                                             help="Write what was done as JSON.")),
    "debug": (("--debug",), dict(is_flag=True, help="Show tracebacks on errors.")),
}


def _options_from(table: dict[str, OptionSpec], names: tuple[str, ...], without: tuple[str, ...],
                  help: Optional[dict[str, str]]):
    """Decorator: add the options ``names`` of ``table`` (all when none are named) minus ``without``.

    They are listed in table order whatever the order of ``names``; ``help`` replaces the help
    text of options that mean something else for this command (e.g. "per-clip file")."""
    chosen = list(names or table)
    overrides = help or {}
    unknown = (set(chosen) | set(without) | set(overrides)) - set(table)
    if unknown:
        raise ValueError(f"unknown option names {sorted(unknown)}")

    def decorate(func):
        # click.option decorators run bottom-up: apply in reverse to list the options in order.
        for name in reversed(table):
            if name in chosen and name not in without:
                decls, attrs = table[name]
                if name in overrides:
                    attrs = {**attrs, "help": overrides[name]}
                func = click.option(*decls, **attrs)(func)
        return func

    return decorate


def _pipeline_options(*names: str, without: tuple[str, ...] = (), help: Optional[dict[str, str]] = None):
    """Decorator: the shared pipeline options ``names`` of ``_PIPELINE_OPTIONS`` (see ``_options_from``)."""
    return _options_from(_PIPELINE_OPTIONS, names, without, help)


def _frontend_options(*names: str, help: Optional[dict[str, str]] = None):
    """Decorator: the shared front-end options ``names`` of ``_FRONTEND_OPTIONS`` (see ``_options_from``)."""
    return _options_from(_FRONTEND_OPTIONS, names, (), help)


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
        # Checked first: a report that cannot be written must not fail the run after the output exists.
        if json_report is not None and not json_report.parent.is_dir():
            raise UserInputError(f"--json-report {json_report}: directory {json_report.parent} does not exist")
        if context is not None and context < 0:
            raise UserInputError(f"--context {context}: must be 0 or more frames")
        cfg = _preflight(input_path, output_path, cfg, max_pixels=max_pixels, warn=not quiet)
    _run(input_path, output_path, cfg, frames=frames, quiet=quiet, json_report=json_report, debug=debug,
         context=context, max_pixels=max_pixels, strict=strict)


# --------------------------------------------------------------------------- fail fast (issue 14)

#: Peak resident memory of a CPU run: BASE bytes (interpreter, torch, model, mask model), plus
#: FIXED bytes per pixel of the frame whatever the batch (refinement, temporal state, queues),
#: plus PER_FRAME bytes per pixel of each frame in a batch (decode, generator activations,
#: foreground, encode). Measured with /usr/bin/time on a 2-core CPU machine, default settings
#: with refinement, chroma mask: 640x360 batch 1: 1.15 GB, batch 4: 1.56 GB; 1280x720 batch 1:
#: 1.96 GB. The model (0.9 GiB + 600 + 600 x batch bytes per pixel) is at or above each.
MEMORY_BASE_BYTES = 900 * 2**20
MEMORY_FIXED_PER_PIXEL = 600
MEMORY_PER_FRAME_PIXEL = 600


def _check_config(cfg: PipelineConfig) -> None:
    """Option values that are wrong whatever the input (the library checks them again later)."""
    check_config(cfg)
    for param, path in (("model.checkpoint", cfg.model.checkpoint), ("mask.prompts_json", cfg.mask.prompts_json)):
        if path is not None and not Path(path).is_file():
            what = "is not a file" if Path(path).exists() else "not found"
            raise ParameterError.about(param, path, f"{what}; pass an existing file")
    if cfg.trimap.trimap_path is not None:
        return  # the mask source is not used
    from alphagan_video.masks import parse_mask_spec  # no torch: the package imports it when a source is built

    name, _ = parse_mask_spec(cfg.mask.source)
    if name == "sam" and cfg.mask.sam_checkpoint is not None and not Path(cfg.mask.sam_checkpoint).is_file():
        raise ParameterError.about("mask.sam_checkpoint", cfg.mask.sam_checkpoint,
                                   "not found; pass the official segment-anything checkpoint (.pth)")


def _check_side_input(path: str, param: str, value, max_pixels: Optional[int]) -> None:
    """A mask, plate or trimap medium (the setting ``param`` = ``value``): readable, within the
    pixel budget (sizes are checked by its reader)."""
    from alphagan_video.errors import InputMediaError, MaskSourceError
    from alphagan_video.io.reader import open_input

    try:
        with open_input(path, max_pixels=max_pixels):
            pass
    except InputMediaError as exc:
        error = MaskSourceError.about(param, value, str(exc))
        error.mentions = exc.mentions  # the reader's own hints (the pixel budget)
        raise error from None


def _check_band(cfg: PipelineConfig, width: int, height: int) -> None:
    """The trimap band fits a width x height frame."""
    band = cfg.trimap.band_px
    if band is not None and band > max(width, height):
        raise ParameterError.about("trimap.band_px", band, f"wider than the {width}x{height} frame; "
                                   f"give at most {max(width, height)} pixels")


def _available_memory() -> Optional[int]:
    """Bytes this process can still allocate: MemAvailable, a cgroup limit, RLIMIT_AS (the smallest)."""
    found = []
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    with contextlib.suppress(OSError, ValueError):
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as fh:
                found.append(int(limit) - int(fh.read().strip()))
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            found.append(soft)
    return min(found) if found else None


def estimate_peak_memory(width: int, height: int, batch_size: int) -> int:
    """Estimated peak resident bytes of a CPU run at this frame size and batch size."""
    pixels = width * height
    return MEMORY_BASE_BYTES + MEMORY_FIXED_PER_PIXEL * pixels + MEMORY_PER_FRAME_PIXEL * pixels * batch_size


def _fit_batch(cfg: PipelineConfig, width: int, height: int, *, adjustable: bool,
               warn: bool, available: Optional[int] = None) -> PipelineConfig:
    """Lower the batch size (with a message) when its estimated peak memory exceeds what is
    available; refuse (ResourceLimitError) when even one frame does not fit or the batch size is
    fixed (farm jobs: it sets the chunk grid)."""
    available = _available_memory() if available is None else available
    batch = cfg.model.batch_size
    if available is None or estimate_peak_memory(width, height, batch) <= available:
        return cfg
    gib = lambda n: f"{n / 2**30:.1f} GiB"  # noqa: E731
    pixels = width * height
    fits = max(0, (available - MEMORY_BASE_BYTES - MEMORY_FIXED_PER_PIXEL * pixels)
               // max(1, MEMORY_PER_FRAME_PIXEL * pixels))
    if fits < 1 or not adjustable:
        raise ResourceLimitError(
            f"{width}x{height} frames at batch size {batch} need about "
            f"{gib(estimate_peak_memory(width, height, batch))} of memory, {gib(available)} is available"
            + ("; lower --batch-size" if fits >= 1 else "; scale the input down or use a machine with more memory")
        )
    if warn:
        click.echo(f"alphagan-video: note: --batch-size lowered from {batch} to {fits}: {width}x{height} frames at "
                   f"batch size {batch} need about {gib(estimate_peak_memory(width, height, batch))} of memory, "
                   f"{gib(available)} is available", err=True)
    model = dataclasses.replace(cfg.model, batch_size=int(fits), auto_batch=False)
    return dataclasses.replace(cfg, model=model)


def _remove_stale(directory: str, warn: bool) -> None:
    """Remove temporaries of killed runs (their process is gone) from ``directory`` and say so."""
    from alphagan_video._atomic import remove_stale_temporaries

    for path, pid in remove_stale_temporaries(directory):
        if warn:
            click.echo(f"alphagan-video: note: removed {path}, a temporary left by process {pid}, "
                       "which is no longer running", err=True)


def _preflight(input_path: str, output_path: Optional[str], cfg: PipelineConfig, *, max_pixels: Optional[int],
               warn: bool = True, adjustable_batch: bool = True, check_output: bool = True) -> PipelineConfig:
    """Every check that needs no model, before torch is imported (fail in well under a second).

    Options, mask spec and side files; INPUT probed (frame 0 decoded, the declared frame size
    checked against ``max_pixels`` first); OUTPUT: extension, kind, codec, folder, existing file;
    ``--trimap-band`` against the frame; the batch size against the memory available (lowered
    with a message, or refused). Stale temporaries of killed runs beside OUTPUT are removed.
    Returns the config to run (batch size possibly lowered)."""
    from alphagan_video.io.reader import open_input
    from alphagan_video.io.writer import check_output as check_output_target

    _check_config(cfg)
    with open_input(input_path, max_pixels=max_pixels) as reader:
        info = reader.info
    _check_band(cfg, info.width, info.height)
    if cfg.trimap.trimap_path is not None:
        _check_side_input(str(cfg.trimap.trimap_path), "trimap.trimap_path", cfg.trimap.trimap_path, max_pixels)
    else:
        from alphagan_video.masks import MASK_SOURCES_WITH_PATH, parse_mask_spec

        name, arg = parse_mask_spec(cfg.mask.source)
        if name in MASK_SOURCES_WITH_PATH:
            _check_side_input(arg, "mask.source", cfg.mask.source, max_pixels)
    if output_path is not None:
        _remove_stale(os.path.dirname(os.path.abspath(output_path)), warn)
        if check_output:
            check_output_target(output_path, info, cfg.output)
    return _fit_batch(cfg, info.width, info.height, adjustable=adjustable_batch, warn=warn)


def _build_config(
    *, overwrite: Optional[bool] = None, output_kind: Optional[str] = None, codec: Optional[str] = None,
    background: Optional[str] = None, mask_source: Optional[str] = None, sam_checkpoint: Optional[Path] = None,
    sam_model: Optional[str] = None, box: Optional[str] = None, points: tuple[str, ...] = (),
    prompts_json: Optional[Path] = None, chroma_key: Optional[str] = None, trimap_path: Optional[Path] = None,
    trimap_band: Optional[int] = None, checkpoint: Optional[Path] = None, variant: Optional[str] = None,
    batch_size: Optional[int] = None, device: Optional[str] = None, no_amp: Optional[bool] = None,
    tiling: Optional[str] = None, prior_scale: Optional[float] = None, refine: Optional[bool] = None,
    temporal: Optional[bool] = None,
    temporal_strength: Optional[float] = None, compile_model: Optional[bool] = None, overlap: Optional[bool] = None,
    no_audio: Optional[bool] = None,
) -> PipelineConfig:
    """The run's config from the pipeline options (``_PIPELINE_OPTIONS``) as click passes them.

    Only the options the user set override the library defaults; an option a command does not
    take is simply not passed. ``box``, ``points`` and ``chroma_key`` are the raw command-line
    strings. Raises click.BadParameter for a malformed --box, --point or --chroma-key.
    """
    def set_fields(default, **fields):
        return dataclasses.replace(default, **{k: v for k, v in fields.items() if v is not None})

    mask = set_fields(MaskConfig(), source=mask_source, sam_checkpoint=sam_checkpoint, sam_model=sam_model,
                      box=_parse_box(box), points=tuple(_parse_point(p) for p in points) or None,
                      prompts_json=prompts_json, chroma_key=_parse_chroma_key(chroma_key))
    trimap = set_fields(TrimapConfig(), band_px=trimap_band, trimap_path=trimap_path)
    model = set_fields(ModelConfig(), checkpoint=checkpoint, variant=variant, batch_size=batch_size, device=device,
                       tiling=tiling, prior_scale=prior_scale, mixed_precision=False if no_amp else None,
                       compile=True if compile_model else None,
                       # An explicit --batch-size wins over sizing batches from free GPU memory.
                       auto_batch=False if batch_size is not None else None)
    refine_cfg = set_fields(RefineConfig(), enabled=refine)
    temporal_cfg = set_fields(TemporalConfig(), enabled=temporal, strength=temporal_strength)
    output = set_fields(OutputConfig(), kind=output_kind, codec=codec, background=background,
                        overwrite=True if overwrite else None, copy_audio=False if no_audio else None)
    cfg = PipelineConfig(mask=mask, trimap=trimap, model=model, refine=refine_cfg, temporal=temporal_cfg,
                         output=output)
    if overlap is not None:
        cfg = dataclasses.replace(cfg, overlap=overlap)
    return cfg


def _run(input_path: str, output_path: str, cfg: PipelineConfig, *, frames: Optional[tuple[int, int]], quiet: bool,
         json_report: Optional[Path], debug: bool, context: Optional[int] = None,
         max_pixels: Optional[int] = None, strict: bool = False) -> None:
    bar = None

    def progress(done: int, total: Optional[int]) -> None:
        nonlocal bar
        if quiet:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True, desc="matting")
        bar.update(done - bar.n)

    def close_bar() -> None:
        if bar is not None:
            bar.close()

    with _exit_codes(debug, "interrupted; no output was written", before_exit=close_bar):
        from alphagan_video.io.reader import pixel_budget
        from alphagan_video.pipeline import matte_video  # torch: imported inside the exit-code mapping

        with pixel_budget(max_pixels):
            report = matte_video(input_path, output_path, cfg, progress=progress, frame_range=frames,
                                 context=context)
        if _standalone():
            _work_is_done()  # OUTPUT is in place: an interrupt now would report a lie
        close_bar()
        if json_report is not None:
            json_report.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        if not quiet:
            fps = report.frames / max(report.seconds.get("total", 0.0), 1e-9)
            click.echo(f"wrote {output_path}: {report.frames} frame(s), {report.output_description}, {fps:.2f} fps",
                       err=True)
    for warning in report.warnings:  # empty/full mattes (issue 15): never a silent empty deliverable
        click.echo(f"alphagan-video: warning: {flag_words(warning, PARAMETER_FLAGS)}", err=True)
    if strict and report.warnings:
        _fail(f"--strict: {len(report.warnings)} warning(s) above; {output_path} was written", 2, False)


@main.command("info")
def info_command() -> None:
    """Print versions, devices, encoders and the model weights in use."""
    for line in collect_info():
        click.echo(line)


def collect_info() -> list[str]:
    """The ``info`` lines. Lazy: torch and the model are not imported (torch's version comes from
    its package metadata, CUDA from the driver, the weights from the safetensors header), so
    ``info`` answers in about a second."""
    import av

    torch_mod = sys.modules.get("torch")
    if torch_mod is not None:
        torch_version = torch_mod.__version__
        cuda = [torch_mod.cuda.get_device_name(i) for i in range(torch_mod.cuda.device_count())] \
            if torch_mod.cuda.is_available() else []
    else:
        torch_version, cuda_build = _torch_build()
        cuda = _cuda_devices() if cuda_build else []
    lines = [f"alphagan-video {__version__}", f"python {sys.version.split()[0]}",
             f"torch {torch_version} (CUDA available: {bool(cuda)}"
             + (f", {len(cuda)} device(s): " + ", ".join(cuda) if cuda else "") + ")",
             f"PyAV {av.__version__}, FFmpeg {getattr(av, 'ffmpeg_version_info', 'unknown')}"]
    encoders = []
    for name in ("prores_ks", "prores_aw", "ffv1", "png", "exr", "libx264", "libx265", "libvpx-vp9"):
        try:
            av.codec.Codec(name, "w")
            encoders.append(name)
        except Exception:  # noqa: BLE001 - absent encoder
            pass
    lines.append("encoders: " + ", ".join(encoders))
    lines.append("model weights: " + _describe_default_weights())
    return lines


def _torch_build() -> tuple[str, bool]:
    """(torch.__version__, built with CUDA) read from torch/version.py without importing torch."""
    import importlib.metadata
    import importlib.util
    import re

    try:
        spec = importlib.util.find_spec("torch")
        text = Path(next(iter(spec.submodule_search_locations)), "version.py").read_text()
        version = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", text, re.M).group(1)
        cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*(None|['\"][^'\"]*['\"])", text, re.M)
        return version, bool(cuda and cuda.group(1) != "None")
    except (AttributeError, ImportError, OSError, StopIteration, TypeError, ValueError):
        try:
            return importlib.metadata.version("torch"), True
        except importlib.metadata.PackageNotFoundError:
            return "not installed", False


def _describe_default_weights() -> str:
    """``PATH (variant V, norm N, sha256 H)`` from the safetensors header, or ``unavailable (why)``."""
    import hashlib
    import struct

    path = DEFAULT_WEIGHTS_PATH
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if not 2 <= size <= 100 * 2**20:
                raise ValueError("bad header size")
            header = json.loads(fh.read(size))
        meta = header.get("__metadata__") or {}
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        return f"unavailable (checkpoint file not found: {path})"
    except (OSError, ValueError, struct.error, AttributeError) as exc:
        return f"unavailable (cannot read {path}: {exc})"
    if not meta.get("variant"):
        return f"unavailable ({path} does not record its variant)"
    return f"{path} (variant {meta['variant']}, norm {meta.get('norm', 'gn')}, sha256 {digest.hexdigest()[:12]})"


def _cuda_devices() -> list[str]:
    """Names of the CUDA devices the driver reports (libcuda through ctypes); [] without a driver."""
    import ctypes

    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return []
    try:
        if lib.cuInit(0) != 0:
            return []
        count = ctypes.c_int()
        if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return []
        names = []
        for i in range(count.value):
            device, name = ctypes.c_int(), ctypes.create_string_buffer(256)
            if lib.cuDeviceGet(ctypes.byref(device), i) == 0 and lib.cuDeviceGetName(name, 256, device) == 0:
                names.append(name.value.decode(errors="replace"))
        return names
    except (AttributeError, OSError):
        return []


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
        _check_band(cfg, width, height)
        cfg = _fit_batch(cfg, width, height, adjustable=True, warn=not quiet)
    show_progress = show_progress and not quiet

    def progress(done: int, total: Optional[int]) -> None:
        if show_progress:
            click.echo(f"\ralphagan-video pipe: {done} frame(s)", err=True, nl=False)

    stdin = click.get_binary_stream("stdin")
    stdout = click.get_binary_stream("stdout") if sys.stdout is not None else None  # None: started with >&-
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


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush of a closed pipe stays quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # AttributeError: no sys.stdout at all (>&-)
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
        json_report.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
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


# --------------------------------------------------------------------------- farm (issue 6)

# Parameters that the writer, the farm and the frame-range parser name in their errors (kept
# here, beside the farm commands, as part of the one ``PARAMETER_FLAGS`` table).


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


def _make_job(input_path: str, output_path: str, chunk_size: int, context: Optional[int], opts: dict):
    """Check everything that needs no model, then write (or reuse) the job file."""
    from alphagan_video.farm import create_job

    opts = dict(opts)
    max_pixels = opts.pop("max_pixels", None)
    cfg = _build_config(**opts)
    if chunk_size < 1:
        raise UserInputError(f"--chunk-size {chunk_size}: must be at least 1 frame")
    if context is not None and context < 0:
        raise UserInputError(f"--context {context}: must be 0 or more frames")
    # The output may exist (a finished job is recognised by create_job); the batch size sets the
    # chunk grid, so it is refused rather than lowered when it does not fit in memory.
    _preflight(input_path, output_path, cfg, max_pixels=max_pixels, adjustable_batch=False, check_output=False)
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
        job = _make_job(input_path, output_path, chunk_size, context, opts)
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
        job = _make_job(input_path, output_path, chunk_size, context, opts)
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
        job = _make_job(input_path, output_path, chunk_size, context, opts)
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
