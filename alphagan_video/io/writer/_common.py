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
#: Every ``%`` of a file name: ``%%`` (a literal %), a frame-number field, or anything else.
_PERCENT_RE = re.compile(r"%(%|0?\d*d|.?)")


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


#: Widest frame-number field a sequence pattern may ask for (``%0999999999d`` would build a
#: gigabyte name).
MAX_FIELD_WIDTH = 16


def check_sequence_pattern(path: str) -> bool:
    """Whether the file name of ``path`` is a sequence pattern (it has a ``%d`` field); raise
    OutputError for one that cannot number frames: more than one field (``seq_%d_%d.png``), a
    ``%`` that is neither ``%%`` nor the field (``%s``, ``%x``, a trailing ``%``), a field wider
    than MAX_FIELD_WIDTH. A name without any ``%d`` field is a single image (stray ``%`` allowed:
    it is never formatted)."""
    name = os.path.basename(path)
    if not PATTERN_RE.search(name):
        return False
    fields, bad = [], []
    for m in _PERCENT_RE.finditer(name):
        if m.group(1) == "%":
            continue
        (fields if m.group(1).endswith("d") else bad).append(m.group(0))
    hint = f"one frame-number field such as %04d (e.g. {_pattern_hint(_strip_fields(path))}); write %% for a literal %"
    if bad:
        raise OutputError(f"output pattern {name!r} has {', '.join(repr(b) for b in bad)}, which is not a "
                          f"frame-number field: a sequence pattern takes {hint}")
    if len(fields) != 1:
        raise OutputError(f"output pattern {name!r} has {len(fields)} frame-number fields "
                          f"({', '.join(fields)}): a sequence pattern takes {hint}")
    width = PATTERN_RE.search(fields[0]).group(2)
    if width and int(width) > MAX_FIELD_WIDTH:
        raise OutputError(f"output pattern {name!r}: the field {fields[0]} is wider than {MAX_FIELD_WIDTH} digits; "
                          f"a sequence pattern takes {hint}")
    return True


def _strip_fields(path: str) -> str:
    """``path`` without its %-fields (for the hint of a bad pattern)."""
    directory, name = os.path.split(path)
    stem, suffix = os.path.splitext(re.sub(r"[_.-]*%+0?\d*\w?", "", name))
    return os.path.join(directory, (stem or "frame") + suffix)


def _existing_sequence_files(pattern: str) -> list[str]:
    directory = os.path.dirname(os.path.abspath(pattern))
    name = os.path.basename(pattern)
    m = next((f for f in _PERCENT_RE.finditer(name) if f.group(1).endswith("d")), None)
    if m is None or not os.path.isdir(directory):
        return []
    literal = lambda text: re.escape(text.replace("%%", "%"))  # noqa: E731 - as ``name % index`` writes it
    rx = re.compile(literal(name[: m.start()]) + r"\s*(\d+)" + literal(name[m.end():]) + r"\Z")
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
