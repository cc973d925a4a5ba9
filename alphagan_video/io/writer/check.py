"""The checks made on OUTPUT before anything is created (``check_output``, ``open_output``)."""
from __future__ import annotations

import os
from typing import Optional

from alphagan_video._atomic import temp_name
from alphagan_video.config import OutputConfig
from alphagan_video.errors import OutputError
from alphagan_video.io.writer._common import PathLike, _existing_sequence_files, _pattern_hint
from alphagan_video.io.writer.audio import check_audio_codecs
from alphagan_video.io.writer.plan import OutputPlan, plan_output
from alphagan_video.types import VideoInfo

#: Parameter whose setting replaces an existing output (the CLI shows its flag).
OVERWRITE = "output.overwrite"


def exists_error(message: str) -> OutputError:
    """OutputError ``"<message>; pass <overwrite> or choose another name"``."""
    return OutputError.naming(f"{message}; pass {OVERWRITE} or choose another name", OVERWRITE)


def check_can_create(directory: str) -> None:
    """Raise OutputError unless a file can be created (and removed) in ``directory``.

    ``os.access`` says yes for /proc and for read-only mounts of root; creating a real file is the
    only test that tells."""
    probe = os.path.join(directory, temp_name("probe"))
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise OutputError(f"cannot create files in the output directory {directory}: {e.strerror or e}; "
                          "choose another output location") from None
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError:
        pass


def _check_location(path: str) -> None:
    """The output folder exists and takes files; ``path`` is not a folder and its name fits."""
    directory = os.path.dirname(os.path.abspath(path))
    given = os.path.dirname(path) or "."  # as the OS walks it: missing/../x.mov needs missing/
    if not os.path.isdir(directory) or not os.path.isdir(given):
        missing = directory if not os.path.isdir(directory) else given
        raise OutputError(f"output directory does not exist: {missing} (for {path})")
    if not os.access(directory, os.W_OK):
        raise OutputError(f"output directory is not writable: {directory}")
    check_can_create(directory)
    if os.path.isdir(path):
        raise OutputError(f"output path is a directory: {path}; give a file name")
    try:
        name_max = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(os.path.basename(path))) > name_max:
        raise OutputError(f"output file name is too long ({len(os.fsencode(os.path.basename(path)))} bytes, "
                          f"the file system takes {name_max}): {path}; choose a shorter name")


def _check_sizes(path: str, plan: OutputPlan, info: VideoInfo) -> None:
    """Frame sizes and counts the encoder or target cannot take."""
    w, h = info.width, info.height
    if plan.encoder == "libx264" and (w % 2 or h % 2):
        raise OutputError(
            f"H.264 yuv420p needs an even frame size, the input is {w}x{h}: {path}; "
            "write .mov (ProRes) or .mkv (FFV1) instead"
        )
    if plan.encoder == "prores_aw" and w % 2:
        raise OutputError(
            f"prores_aw needs an even width, the input is {w}x{h}: {path}; "
            "use the default prores4444 (prores_ks) codec"
        )
    if plan.target == "image" and info.kind != "video" and (
        (info.frame_count or 1) > 1
    ):
        raise OutputError(
            f"{info.frame_count} frames cannot go into the single image {path}; "
            f"use a pattern such as {_pattern_hint(path)}"
        )


def check_target(path: str, plan: OutputPlan, info: VideoInfo, cfg: OutputConfig) -> None:
    """The checks ``open_output`` makes on OUTPUT (planned as ``plan``) before creating anything."""
    _check_location(path)
    if plan.target == "sequence":
        existing = _existing_sequence_files(path)
        if existing and not cfg.overwrite:
            raise exists_error(f"output sequence {path} already has files (e.g. {os.path.basename(existing[0])})")
    elif os.path.exists(path) and not cfg.overwrite:
        raise exists_error(f"output exists: {path}")
    _check_sizes(path, plan, info)
    if plan.target == "video" and cfg.copy_audio and info.kind == "video" and info.audio_stream_count > 0:
        check_audio_codecs(info.path)


def check_output(
    path: PathLike,
    info: VideoInfo,
    cfg: OutputConfig,
    *,
    has_color: Optional[bool] = None,
    has_alpha: Optional[bool] = None,
) -> None:
    """Every check ``open_output`` makes before writing, without creating anything: extension,
    codec and kind, output folder (exists, a file can be created in it), an existing output
    without ``cfg.overwrite``, frame sizes the encoder cannot take. Raises OutputError.

    The CLI calls it before loading the model, so a bad OUTPUT fails in a fraction of a second.
    has_color/has_alpha default to what ``cfg.kind`` implies."""
    path = os.fspath(path)
    plan = plan_output(path, cfg, has_color=has_color, has_alpha=has_alpha)
    check_target(path, plan, info, cfg)
