"""The top-level command group ``main``: ``run`` is its default command, and it is the
exit-code taxonomy's safety net (``_DefaultCommandGroup``). It also sets up the process before a
command runs (glibc malloc arenas) and tidies after it (torch's empty inductor cache folder)."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Optional

import click

from alphagan_video import __version__
from alphagan_video.cli.exits import (EXIT_INTERNAL, EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, _SIGNALS, _arm_signals,
                                      _fail, _install_signal_handlers, _interrupted, _standalone, _work_is_done)
from alphagan_video.cli.flags import user_message
from alphagan_video.errors import UserInputError


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


@click.group(cls=_DefaultCommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="alphagan-video")
def main() -> None:
    """Video matting: a clean alpha matte of the subject, written as ProRes 4444 with alpha.

    \b
    alphagan-video INPUT -o OUTPUT [options]     (see: alphagan-video run --help)
    alphagan-video info                          versions, devices, encoders, weights
    """
