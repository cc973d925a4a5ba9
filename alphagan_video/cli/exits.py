"""Exit codes and signals: 0 success; 2 bad usage, bad input or an unusable environment
(UserInputError: unwritable or full output location, missing encoder, over the pixel or memory
budget); 1 only for our own bugs; 130 Ctrl-C (SIGINT); 143 SIGTERM. Errors print one line
naming the file and the problem (``_fail``); ``--debug`` adds the traceback. The command line is
the only place that turns errors into exit codes (``_exit_codes``)."""
from __future__ import annotations

import contextlib
import signal
import sys
from typing import Callable, Iterator, Optional

from alphagan_video.cli.flags import user_message
from alphagan_video.errors import AlphaGANVideoError, Terminated, UserInputError

#: The exit codes (module docstring).
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


def _started_as_command() -> bool:
    """True when this process is the ``alphagan-video`` script or ``python -m alphagan_video``
    (not a host application that imports the CLI): then ``alphagan_video.cli`` installs the
    signal handlers before it imports anything heavy (PyAV, numpy, OpenCV), so that a Ctrl-C
    while the process starts is held and answered with one line and exit 130, not a traceback."""
    import os
    import re

    entry = sys.modules.get("__main__")
    spec = getattr(entry, "__spec__", None)
    if spec is not None and getattr(spec, "name", None) == "alphagan_video.__main__":
        return True
    name = os.path.basename(getattr(entry, "__file__", None) or "")
    return re.sub(r"(-script\.pyw?|\.exe)$", "", name) == "alphagan-video"


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


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exc()
    import click  # here, not at import: ``alphagan_video.cli`` imports this module first (signals)

    click.echo(f"alphagan-video: error: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def _exit_codes(debug: bool, interrupted: str = "interrupted",
                before_exit: Optional[Callable[[], None]] = None) -> Iterator[None]:
    """Turn an error raised in the block into one line on stderr and the CLI's exit code.

    2: bad usage or input (click.BadParameter, UserInputError, MemoryError); 1: other
    AlphaGANVideoError and internal errors; 130: Ctrl-C (message ``interrupted``); 143: SIGTERM
    (``Terminated``, message ``terminated...``). ``before_exit`` runs first (e.g. to close a
    progress bar).
    """
    import click

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


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush of a closed pipe stays quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # AttributeError: no sys.stdout at all (>&-)
        pass
