"""The output plan: which encoder, pixel format and options an OUTPUT gets.

The choice is a table (``OUTPUT_TABLE``): one row per (extension, codec, layout) that can be
written, in the order the error messages list the codecs; the first row of an
(extension, layout) is the extension's default codec for that layout. ``plan_output`` looks a
row up; a combination without a row is refused with the codecs that would work.

Layouts: ``rgba`` (colour + alpha), ``matte`` (alpha only), ``color`` (colour only).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from alphagan_video.config import OutputConfig
from alphagan_video.errors import OutputError
from alphagan_video.io.writer._common import IMAGE_SUFFIXES, VIDEO_SUFFIXES, PathLike, check_sequence_pattern

#: Values accepted in ``OutputConfig.codec`` (None = the extension's default).
CODEC_CHOICES = (
    "prores4444",
    "prores4444xq",
    "prores_aw",
    "prores422hq",
    "ffv1",
    "png",
    "h264",
    "exr",
)

LAYOUTS = ("rgba", "matte", "color")


def supported_output_suffixes() -> tuple[str, ...]:
    """Output extensions understood by ``open_output`` (images may be a ``%04d`` pattern)."""
    return VIDEO_SUFFIXES + IMAGE_SUFFIXES


@dataclass(frozen=True)
class OutputPlan:
    """How one output is encoded.

    target: ``video`` | ``image`` | ``sequence``. encoder: FFmpeg encoder name. label: human
    description. layout: which data go in (``LAYOUTS``). options: encoder options. profile:
    ``AVCodecContext.profile`` name (prores_aw only). premultiplied: RGB is stored times alpha
    (EXR). lossless: the stored values decode exactly (at the format's bit depth).
    """

    target: str
    encoder: str
    pix_fmt: str
    label: str
    layout: str
    options: dict = field(default_factory=dict)
    profile: Optional[str] = None
    premultiplied: bool = False
    lossless: bool = False


@dataclass(frozen=True)
class PlanRow:
    """One row of ``OUTPUT_TABLE``: ``suffix`` + ``codec`` + ``layout`` -> the encoding."""

    suffix: str
    codec: str
    layout: str
    encoder: str
    pix_fmt: str
    label: str
    options: tuple[tuple[str, str], ...] = ()
    profile: Optional[str] = None
    premultiplied: bool = False
    lossless: bool = False


_PRORES_KS_VENDOR = "apl0"  # makes Apple's decoders trust the stream (FFmpeg default "fmpg")
_16BIT_LABELS = {"rgba": "16-bit RGBA, straight alpha", "matte": "16-bit gray matte", "color": "16-bit RGB"}
_PNG_PIX = {"rgba": "rgba64be", "matte": "gray16be", "color": "rgb48be"}


def _prores_ks(suffix: str, codec: str, layout: str, profile: str, pix_fmt: str, label: str) -> PlanRow:
    options = (("profile", profile), ("vendor", _PRORES_KS_VENDOR))
    if pix_fmt.startswith("yuva"):
        options += (("alpha_bits", "16"),)
    return PlanRow(suffix, codec, layout, "prores_ks", pix_fmt, label, options)


def _prores_aw(suffix: str, codec: str, layout: str, profile: str, pix_fmt: str, label: str) -> PlanRow:
    # prores_aw takes the profile through AVCodecContext.profile, not an option string.
    return PlanRow(suffix, codec, layout, "prores_aw", pix_fmt, label, (("vendor", _PRORES_KS_VENDOR),), profile)


def _h264(suffix: str, layout: str) -> PlanRow:
    # H.264 quality: crf 16 is visually lossless for most material; yuv420p keeps every player happy.
    if layout == "matte":
        return PlanRow(suffix, "h264", layout, "libx264", "yuv420p",
                       "H.264 (libx264 crf 12), matte in luma, yuv420p, lossy (a few levels)",
                       (("crf", "12"), ("preset", "medium")))
    return PlanRow(suffix, "h264", layout, "libx264", "yuv420p", "H.264 (libx264 crf 16), yuv420p, BT.709, lossy",
                   (("crf", "16"), ("preset", "medium")))


def _lossless_16bit(suffix: str, codec: str, encoder: str, prefix: str, pix: dict, options=()) -> list[PlanRow]:
    return [PlanRow(suffix, codec, layout, encoder, pix[layout], f"{prefix} {_16BIT_LABELS[layout]}", options,
                    lossless=True) for layout in LAYOUTS]


def _exr_rows(suffix: str) -> list[PlanRow]:
    pix = {"rgba": "gbrapf32le", "matte": "grayf32le", "color": "gbrpf32le"}
    label = {"rgba": "float RGBA, premultiplied alpha", "matte": "float gray matte", "color": "float RGB"}
    return [PlanRow(suffix, "exr", layout, "exr", pix[layout], f"OpenEXR {label[layout]}",
                    (("compression", "zip1"), ("format", "float")), premultiplied=(layout == "rgba"), lossless=True)
            for layout in LAYOUTS]


_MOV_ROWS = [
    _prores_ks(".mov", "prores4444", "rgba", "4444", "yuva444p10le",
               "ProRes 4444 (prores_ks), straight alpha, yuva444p10le"),
    _prores_ks(".mov", "prores4444xq", "rgba", "4444xq", "yuva444p10le",
               "ProRes 4444 XQ (prores_ks), straight alpha, yuva444p10le"),
    _prores_aw(".mov", "prores_aw", "rgba", "4444", "yuva444p10le",
               "ProRes 4444 (prores_aw, fast), straight alpha, yuva444p10le"),
    _prores_ks(".mov", "prores422hq", "matte", "hq", "yuv422p10le",
               "ProRes 422 HQ (prores_ks), matte in luma, yuv422p10le"),
    _prores_ks(".mov", "prores4444", "matte", "4444", "yuv444p10le",
               "ProRes 4444 (prores_ks), matte in luma, yuv444p10le"),
    _prores_ks(".mov", "prores4444xq", "matte", "4444xq", "yuv444p10le",
               "ProRes 4444XQ (prores_ks), matte in luma, yuv444p10le"),
    _prores_aw(".mov", "prores_aw", "matte", "HQ", "yuv422p10le",
               "ProRes 422 HQ (prores_aw, fast), matte in luma, yuv422p10le"),
    _prores_ks(".mov", "prores4444", "color", "4444", "yuv444p10le", "ProRes 4444 (prores_ks), no alpha, yuv444p10le"),
    _prores_ks(".mov", "prores4444xq", "color", "4444xq", "yuv444p10le",
               "ProRes 4444 XQ (prores_ks), no alpha, yuv444p10le"),
    _prores_aw(".mov", "prores_aw", "color", "4444", "yuv444p10le",
               "ProRes 4444 (prores_aw, fast), no alpha, yuv444p10le"),
    _prores_ks(".mov", "prores422hq", "color", "hq", "yuv422p10le", "ProRes 422 HQ (prores_ks), yuv422p10le"),
    *_lossless_16bit(".mov", "png", "png", "PNG-in-MOV lossless", _PNG_PIX),
    _h264(".mov", "matte"),
    _h264(".mov", "color"),
]

#: Every output that can be written, in the order error messages list the codecs.
OUTPUT_TABLE: tuple[PlanRow, ...] = (
    *_MOV_ROWS,
    *_lossless_16bit(".mkv", "ffv1", "ffv1", "FFV1 lossless",
                     {"rgba": "gbrap16le", "matte": "gray16le", "color": "gbrp16le"},
                     (("level", "3"), ("slicecrc", "1"))),
    _h264(".mkv", "matte"),
    _h264(".mkv", "color"),
    _h264(".mp4", "matte"),
    _h264(".mp4", "color"),
    *_lossless_16bit(".png", "png", "png", "PNG", _PNG_PIX),
    *_exr_rows(".exr"),
)

_ROWS = {(row.suffix, row.codec, row.layout): row for row in OUTPUT_TABLE}


def codecs_for(suffix: str, layout: str) -> list[str]:
    """The codecs ``OUTPUT_TABLE`` has for ``suffix`` and ``layout``, the default first."""
    return [row.codec for row in OUTPUT_TABLE if row.suffix == suffix and row.layout == layout]


#: Output kind (``OutputConfig.kind``) -> (has colour, has alpha).
KIND_CONTENT = {
    "rgba": (True, True),
    "alpha": (False, True),
    "foreground": (True, False),
    "composite": (True, False),
}


def kind_content(kind: str) -> tuple[bool, bool]:
    """(has colour, has alpha) of an output of ``kind`` (unknown kinds: both)."""
    return KIND_CONTENT.get(kind, (True, True))


def layout_of(has_color: bool, has_alpha: bool) -> str:
    """The layout (``LAYOUTS``) of an output with this content; OutputError when empty."""
    if has_color and has_alpha:
        return "rgba"
    if has_alpha:
        return "matte"
    if has_color:
        return "color"
    raise OutputError("nothing to write: the output has neither colour nor alpha")


def _check_names(path: str, suffix: str, cfg: OutputConfig) -> Optional[str]:
    """The lower-case codec of ``cfg``; OutputError for an unknown extension or codec."""
    if suffix not in supported_output_suffixes():
        raise OutputError(
            f"unknown output extension {suffix or '(none)'!r} in {path}; "
            f"supported: {', '.join(supported_output_suffixes())}"
        )
    codec = cfg.codec.lower() if cfg.codec else None
    if codec is not None and codec not in CODEC_CHOICES:
        raise OutputError(
            f"unknown output codec {cfg.codec!r}; choose one of {', '.join(CODEC_CHOICES)}"
        )
    return codec


def plan_output(
    path: PathLike,
    cfg: OutputConfig,
    *,
    has_color: Optional[bool] = None,
    has_alpha: Optional[bool] = None,
) -> OutputPlan:
    """Pick encoder, pixel format and options from the extension, codec and content.

    has_color/has_alpha default to what ``cfg.kind`` implies. Raises OutputError for an unknown
    extension or codec and for a combination the format cannot hold."""
    path = os.fspath(path)
    color, alpha = kind_content(cfg.kind)
    layout = layout_of(color if has_color is None else has_color, alpha if has_alpha is None else has_alpha)
    suffix = Path(path).suffix.lower()
    codec = _check_names(path, suffix, cfg)
    if suffix == ".mp4" and layout == "rgba":
        raise OutputError(
            f"{suffix} (H.264) has no alpha channel: {path}; write .mov (ProRes 4444), "
            ".mkv (FFV1) or a .png/.exr sequence, or use the alpha/foreground output kinds"
        )
    available = codecs_for(suffix, layout)
    row = _ROWS.get((suffix, codec or available[0], layout))
    if row is None:
        what = {"rgba": "colour + alpha", "matte": "a matte", "color": "colour"}[layout]
        raise OutputError(
            f"codec {codec!r} cannot write {what} into {suffix}; codecs for {suffix}: {', '.join(available)}"
        )
    if suffix in IMAGE_SUFFIXES:
        target = "sequence" if check_sequence_pattern(path) else "image"
    else:
        target = "video"
    return OutputPlan(target, row.encoder, row.pix_fmt, row.label, layout, dict(row.options), row.profile,
                      row.premultiplied, row.lossless)


def takes_planes(plan: OutputPlan, channels: int) -> bool:
    """True when an output planned as ``plan`` can take ``OutputBatch.planes`` with ``channels``
    10-bit YCbCr(A) planes directly (ProRes 4444 / 4444 XQ video: 4 with alpha, 3 without).
    Known from the plan alone, so a run fixes it before the writer opens (``plan.plan_run``)."""
    if plan.target != "video" or plan.layout == "matte":
        return False
    return {"yuva444p10le": 4, "yuv444p10le": 3}.get(plan.pix_fmt) == channels


def describe_output(
    path: PathLike,
    cfg: OutputConfig,
    *,
    has_color: Optional[bool] = None,
    has_alpha: Optional[bool] = None,
) -> str:
    """One-line description of what ``open_output`` would write, e.g.
    ``"ProRes 4444 (prores_ks), straight alpha, yuva444p10le"``. has_color/has_alpha default to
    what ``cfg.kind`` implies. Raises OutputError for unsupported combinations."""
    plan = plan_output(path, cfg, has_color=has_color, has_alpha=has_alpha)
    extra = " sequence" if plan.target == "sequence" else ""
    return f"{plan.label}{extra}"
