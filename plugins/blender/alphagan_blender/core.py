"""The parts of the add-on that need no Blender: frame ranges, strip placement, the command
line and progress parsing. Tested by tests/test_plugin_blender.py without bpy.

Frame conventions (Blender's movie strips): movie frame k (0-based) shows at scene frame
``frame_start + k``; the visible part is ``[frame_final_start, frame_final_end)``;
``frame_duration`` is the movie's length in frames.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
from typing import Optional, Sequence

MAX_CHANNEL = 128  # Blender's sequencer has channels 1..128

_PROGRESS_RE = re.compile(r"(\d+)/(\d+)\s*\[")


def used_frames(frame_start: float, frame_final_start: int, frame_final_end: int, frame_duration: int,
                handles: int = 0) -> tuple[int, int, int, int]:
    """Movie frames to process for a strip.

    Returns:
        (a, b, first, last): process movie frames a..b inclusive (the visible frames first..last
        widened by ``handles`` and clamped to 0..frame_duration-1).
    """
    if handles < 0:
        raise ValueError(f"handles {handles}: must be 0 or more")
    first = int(round(frame_final_start - frame_start))
    last = int(round(frame_final_end - frame_start)) - 1
    if last < first:
        raise ValueError(f"strip shows no frames (visible {frame_final_start}..{frame_final_end - 1})")
    a = max(0, first - handles)
    b = min(frame_duration - 1, last + handles)
    return a, b, first, last


def placement(frame_start: float, a: int, first: int, last: int, b: int) -> dict:
    """Where the result strip (holding movie frames a..b) goes so that it shows exactly the
    source strip's visible frames at the same scene frames: its frame_start and trims."""
    return {"frame_start": int(round(frame_start)) + a, "frame_offset_start": first - a, "frame_offset_end": b - last}


def free_channel(occupied: Sequence[tuple[int, int, int]], above: int, start: int, end: int,
                 max_channel: int = MAX_CHANNEL) -> int:
    """The lowest channel > ``above`` whose strips do not overlap scene frames [start, end).

    occupied: (channel, frame_final_start, frame_final_end) of every strip in the editor.
    Raises ValueError when every channel up to ``max_channel`` is taken there.
    """
    for channel in range(above + 1, max_channel + 1):
        if all(not (c == channel and s < end and start < e) for c, s, e in occupied):
            return channel
    raise ValueError(f"no free channel above {above} for frames {start}..{end - 1}")


def cli_argv(setting: str = "", which=shutil.which) -> list[str]:
    """The alphagan-video command from the add-on preference (a command line: a path, or e.g.
    ``/venv/bin/python -m alphagan_video``); empty = ``alphagan-video`` found on PATH."""
    if setting.strip():
        return shlex.split(setting)
    found = which("alphagan-video")
    if not found:
        raise ValueError("alphagan-video was not found on PATH: set its path in the add-on preferences "
                         "(Edit > Preferences > Add-ons > alphagan-video)")
    return [found]


def output_path(out_dir: str, source: str, strip_name: str, a: int, b: int, ext: str = ".mov") -> str:
    """``out_dir/<source stem>_<strip name>_<a>-<b>_alphagan.mov`` (file-system safe)."""
    stem = os.path.splitext(os.path.basename(source))[0]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{stem}_{strip_name}").strip("._") or "strip"
    return os.path.join(out_dir, f"{safe[:80]}_{a}-{b}_alphagan{ext}")


def build_command(cli: Sequence[str], source: str, output: str, a: int, b: int, output_kind: str = "rgba",
                  extra_args: Sequence[str] = ()) -> list[str]:
    """argv of ``alphagan-video SOURCE -o OUTPUT --frames a-b``; progress goes to stderr (tqdm)."""
    return [*cli, "run", source, "-o", output, "--frames", f"{a}-{b}", "--output-kind", output_kind,
            "--overwrite", *extra_args]


def parse_progress(text: str) -> Optional[tuple[int, int]]:
    """The last ``done/total [`` counter of a tqdm progress text, or None."""
    matches = _PROGRESS_RE.findall(text)
    if not matches:
        return None
    done, total = matches[-1]
    return int(done), int(total)


def last_error(text: str) -> str:
    """The CLI's last ``error:`` line (what to show the user when it fails)."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", text) if "error:" in line]
    return lines[-1] if lines else (text.strip().splitlines() or ["alphagan-video failed"])[-1]
