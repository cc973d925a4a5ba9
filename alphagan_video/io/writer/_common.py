"""Helpers shared by the writer's modules: error wording, file-system errors, sequence names."""
from __future__ import annotations

import errno
import os
import re
from typing import Optional, Union

from alphagan_video.errors import OutputError

PathLike = Union[str, "os.PathLike[str]"]

VIDEO_SUFFIXES = (".mov", ".mp4", ".mkv")
IMAGE_SUFFIXES = (".png", ".exr")
#: The frame-number field of a sequence pattern (``%04d``, ``%d``).
PATTERN_RE = re.compile(r"%(0?)(\d*)d")


def _reason(e: BaseException) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return str(text).strip().splitlines()[0] if text else type(e).__name__


#: errno values that mean the output location, not our code, is the problem (exit 2).
_ENVIRONMENT_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS", "EACCES", "EPERM", "ENOENT",
                                      "ENOTDIR", "EIO", "ESTALE", "ENAMETOOLONG")
    if hasattr(errno, name)
)


def _raise_if_environment(e: BaseException, path: str) -> None:
    """Raise OutputError for a write failure caused by the output location (full disk, quota,
    read-only or vanished folder, a file system that takes no files such as /proc)."""
    code = getattr(e, "errno", None)
    if code in _ENVIRONMENT_ERRNOS:
        what = "the disk is full" if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)) else _reason(e)
        raise OutputError(f"cannot write {path}: {what} ({os.strerror(code)}); free space or choose another "
                          "output location") from None


def _existing_sequence_files(pattern: str) -> list[str]:
    directory = os.path.dirname(os.path.abspath(pattern))
    name = os.path.basename(pattern)
    m = PATTERN_RE.search(name)
    if m is None or not os.path.isdir(directory):
        return []
    rx = re.compile(re.escape(name[: m.start()]) + r"(\d+)" + re.escape(name[m.end():]) + r"\Z")
    found = sorted(e for e in os.listdir(directory) if rx.match(e))
    return [os.path.join(directory, e) for e in found]


def _pattern_hint(path: str) -> str:
    stem, suffix = os.path.splitext(path)
    sep = "." if suffix == ".exr" else "_"
    return f"{stem}{sep}%04d{suffix}"


def _safe_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def _stream_codec_name(stream) -> Optional[str]:
    """The codec name of a stream, None when FFmpeg has no codec for it (no codec context)."""
    try:
        ctx = stream.codec_context
    except Exception:  # noqa: BLE001 - PyAV raises various errors for streams without a codec
        return None
    name = getattr(ctx, "name", None) if ctx is not None else None
    return name or None
