"""Command line: ``alphagan-video INPUT -o OUTPUT [options]`` plus ``info``, ``pipe``, ``timeline``
and ``farm ...``. The console script is ``alphagan_video.cli:main``.

This package is the only place that turns errors into exit codes (README "Errors, exit codes and
files left behind": ``exits``) and the only one that spells command-line flags (``flags``).
Fail fast: every check that needs no model runs in ``preflight._preflight`` before torch or the
model is imported, and nothing here imports anything heavy at import time, so
``alphagan-video info`` and bad invocations answer in well under a second or two.

Modules:
  flags      ``PARAMETER_FLAGS`` (library parameter -> flag), ``user_message``
  exits      exit codes, signals (SIGINT -> 130, SIGTERM -> 143), ``_exit_codes``
  group      the top-level group ``main`` (``run`` is its default command)
  options    the shared option tables, their parsers, ``_build_config``
  preflight  the checks that need no model, the batch size against the memory available
  run, info, pipe, timeline, farm   the commands
"""
from __future__ import annotations

# First, before the command modules import PyAV, numpy and OpenCV (~0.3 s): in the installed
# script (or python -m alphagan_video) a Ctrl-C / SIGTERM from now on is held and answered with
# one line and exit 130 / 143 (``exits``), never an import's KeyboardInterrupt traceback.
from alphagan_video.cli.exits import _install_signal_handlers, _started_as_command

if _started_as_command():
    _install_signal_handlers()

from alphagan_video.cli.flags import PARAMETER_FLAGS, flag_words, user_message
from alphagan_video.cli.group import main
# The command modules register their commands on ``main`` when imported.
from alphagan_video.cli import run, info, pipe, timeline, farm  # noqa: E402,F401  isort: skip
from alphagan_video.cli.farm import worker_commands
from alphagan_video.cli.info import collect_info

__all__ = ["PARAMETER_FLAGS", "collect_info", "flag_words", "main", "user_message", "worker_commands"]
