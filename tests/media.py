"""Synthetic test media (tiny, deterministic), made with PyAV / OpenCV independently of the
package under test. Import from other tests: ``from tests.media import make_video``.

Content of every frame (``synth_frame``): a smooth gradient background (R ramps left->right,
G top->bottom, B constant 64) and an axis-aligned square of colour (230, 40, 200) moving right
by 3 px per frame. ``mask`` is exactly the square (1 inside, 0 outside), so a matting pipeline
has a known answer.

Stable API:
    synth_frame(i, width, height, deep=False) -> (rgb, mask)
    make_video(path, ...) -> Clip
    make_image(path, width=64, height=48, gray=False, deep=False, index=0) -> np.ndarray
    make_sequence(directory, pattern="frame_%04d.png", frames=5, start=1, ...) -> Sequence
    make_audio_only(path, seconds=0.5) -> str
    make_empty_video(path) -> str   (a .mkv with a video stream but zero frames)
    read_packets(path, kind="audio") -> list[(stream_index, pts, dts, bytes)]
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import av
import cv2
import numpy as np

from alphagan_video.io.writer import deterministic_x264_options

SQUARE_COLOUR = (230, 40, 200)
VFR_DURATIONS = (3000, 3750, 1500)  # ticks of 1/90000: 30 fps, 24 fps, 60 fps frames


def synth_frame(i: int, width: int, height: int, deep: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``i``: rgb (H, W, 3) uint8 (uint16 full scale if deep) and mask (H, W) float32 {0, 1}."""
    maxv = 65535 if deep else 255
    x = np.linspace(0.0, 1.0, width, dtype=np.float64)[None, :]
    y = np.linspace(0.0, 1.0, height, dtype=np.float64)[:, None]
    r = np.broadcast_to(0.15 + 0.6 * x, (height, width))
    g = np.broadcast_to(0.2 + 0.5 * y, (height, width))
    b = np.full((height, width), 64 / 255)
    rgb = np.stack([r, g, b], axis=2)
    size = max(2, min(width, height) // 3)
    span = max(1, width - size)
    x0 = (3 * i) % span
    y0 = height // 4
    mask = np.zeros((height, width), np.float32)
    mask[y0:y0 + size, x0:x0 + size] = 1.0
    colour = np.array(SQUARE_COLOUR, np.float64) / 255
    rgb = np.where(mask[..., None] > 0, colour[None, None, :], rgb)
    out = np.rint(rgb * maxv).astype(np.uint16 if deep else np.uint8)
    return out, mask


@dataclass
class Clip:
    """A synthesised clip. ``rgb`` is what was fed to the encoder ((N,H,W,3) uint8 or uint16),
    ``pts``/``time_base`` are what the file stores (read back by demuxing, sorted)."""

    path: str
    rgb: np.ndarray
    mask: np.ndarray
    pts: list[int]
    time_base: Fraction
    rate: Fraction
    rotation: int
    audio_streams: int


def make_video(
    path: str,
    width: int = 64,
    height: int = 48,
    frames: int = 12,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: Fraction = Fraction(24),
    vfr: bool = False,
    rotation: int = 0,
    audio_streams: int = 0,
    ten_bit: bool = False,
    tag_bt709: bool = True,
    options: Optional[dict] = None,
) -> Clip:
    """Write a clip of the synthetic content.

    codec/pix_fmt: any PyAV encoder, e.g. ("libx264", "yuv420p"), ("libx265", "yuv420p10le"),
    ("prores_ks", "yuv422p10le"), ("ffv1", "yuv420p"), ("libvpx-vp9", "yuv420p").
    ten_bit: feed 16-bit RGB so a 10-bit pix_fmt gets real 10-bit content (rgb in the result is
    then uint16). vfr: time base 1/90000 with frame durations cycling through VFR_DURATIONS.
    rotation: display rotation in degrees stored in the container. audio_streams: that many AAC
    mono 48 kHz sine streams (different pitch each) spanning the clip.
    tag_bt709: convert with the BT.709 matrix and tag the stream bt709/tv (else BT.601, untagged).
    """
    rate = Fraction(rate)
    container = av.open(path, "w")
    vs = container.add_stream(codec, rate=rate)
    vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
    if vfr:
        tb = Fraction(1, 90000)
    else:
        tb = 1 / rate
    vs.time_base = tb
    vs.codec_context.time_base = tb
    opts = dict(options or {})
    if codec == "libx264":
        if "qp" not in opts:
            opts.setdefault("crf", "8")
        opts = {**deterministic_x264_options(), **opts}  # the same clip every time (io/writer/x264.py)
    if codec == "libx265":
        opts.setdefault("x265-params", "log-level=error:lossless=1")
    if codec == "prores_ks":
        opts.setdefault("profile", "3")
    vs.options = opts
    if tag_bt709:
        cc = vs.codec_context
        cc.color_primaries = cc.color_trc = cc.colorspace = 1
        cc.color_range = 1
    if rotation:
        vs.set_display_rotation(rotation)
    auds = []
    for k in range(audio_streams):
        a = container.add_stream("aac", rate=48000)
        a.layout = "mono"
        auds.append(a)

    rgbs, masks = [], []
    t = 0
    for i in range(frames):
        rgb, mask = synth_frame(i, width, height, deep=ten_bit)
        rgbs.append(rgb)
        masks.append(mask)
        f = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if ten_bit else "rgb24")
        if pix_fmt not in ("rgb24", "gbrp", "rgb48le"):
            f = f.reformat(
                format=pix_fmt,
                dst_colorspace="ITU709" if tag_bt709 else "ITU601",
                dst_color_range="MPEG",
            )
            if tag_bt709:
                f.color_primaries = f.color_trc = f.colorspace = 1
                f.color_range = 1
        f.pts = t
        f.time_base = tb
        t += VFR_DURATIONS[i % len(VFR_DURATIONS)] if vfr else 1
        for p in vs.encode(f):
            container.mux(p)
    for p in vs.encode():
        container.mux(p)
    if auds:
        seconds = float(t * tb)
        _encode_audio(container, auds, seconds)
    container.close()

    with av.open(path) as c:
        s = c.streams.video[0]
        pts = sorted(p.pts for p in c.demux(s) if p.pts is not None)
        stored_tb = Fraction(s.time_base)
    return Clip(
        path=path,
        rgb=np.stack(rgbs),
        mask=np.stack(masks),
        pts=pts,
        time_base=stored_tb,
        rate=rate,
        rotation=rotation,
        audio_streams=audio_streams,
    )


def _encode_audio(container, streams, seconds: float) -> None:
    n = int(round(seconds * 48000))
    for k, s in enumerate(streams):
        freq = 440.0 * (k + 1)
        pos = 0
        while pos < n:
            m = min(1024, n - pos)
            tt = (np.arange(pos, pos + m) / 48000.0).astype(np.float32)
            samples = (0.3 * np.sin(2 * np.pi * freq * tt)).astype(np.float32)[None, :]
            fr = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            fr.sample_rate = 48000
            fr.pts = pos
            fr.time_base = Fraction(1, 48000)
            for p in s.encode(fr):
                container.mux(p)
            pos += m
        for p in s.encode():
            container.mux(p)


def make_audio_only(path: str, seconds: float = 0.5) -> str:
    """An .m4a/.mp4 holding a single AAC stream and no video."""
    c = av.open(path, "w")
    a = c.add_stream("aac", rate=48000)
    a.layout = "mono"
    _encode_audio(c, [a], seconds)
    c.close()
    return path


def make_empty_video(path: str, width: int = 64, height: int = 48) -> str:
    """A Matroska file (use a .mkv path) declaring an H.264 video stream that holds zero frames,
    plus a short AAC stream (MP4/MOV drop empty tracks; Matroska keeps them)."""
    c = av.open(path, "w")
    s = c.add_stream("libx264", rate=24)
    s.width, s.height, s.pix_fmt = width, height, "yuv420p"
    a = c.add_stream("aac", rate=48000)
    a.layout = "mono"
    _encode_audio(c, [a], 0.2)
    c.close()
    return path


def make_image(
    path: str,
    width: int = 64,
    height: int = 48,
    gray: bool = False,
    deep: bool = False,
    index: int = 0,
) -> np.ndarray:
    """Write frame ``index`` of the synthetic content as an image (png/jpg/tif via OpenCV, exr via
    PyAV as float RGB). Returns what was written: (H, W, 3) RGB or (H, W) gray, uint8 or uint16
    (float32 in [0, 1] for .exr)."""
    rgb, _ = synth_frame(index, width, height, deep=deep)
    if gray:
        # BT.601 luma of the RGB content, kept as a single channel.
        img = np.rint(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).astype(rgb.dtype)
    else:
        img = rgb
    ext = os.path.splitext(path)[1].lower()
    if ext == ".exr":
        maxv = 65535.0 if deep else 255.0
        data = (img.astype(np.float32) / maxv)
        fmt = "grayf32le" if gray else "gbrpf32le"
        ctx = av.CodecContext.create("exr", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, fmt
        ctx.time_base = Fraction(1, 1)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(data), format=fmt)
        frame.pts = 0
        with open(path, "wb") as fh:
            for p in ctx.encode(frame):
                fh.write(bytes(p))
            for p in ctx.encode(None):
                fh.write(bytes(p))
        return data
    bgr = img if gray else img[..., ::-1]
    if not cv2.imwrite(path, np.ascontiguousarray(bgr)):
        raise RuntimeError(f"OpenCV could not write {path}")
    return img


@dataclass
class Sequence:
    pattern: str
    files: list[str]
    frames: list[np.ndarray]
    start: int


def make_sequence(
    directory: str,
    pattern: str = "frame_%04d.png",
    frames: int = 5,
    start: int = 1,
    width: int = 64,
    height: int = 48,
    gray: bool = False,
    deep: bool = False,
) -> Sequence:
    """Write ``frames`` images numbered from ``start`` (frame k holds synthetic frame k)."""
    os.makedirs(directory, exist_ok=True)
    files, imgs = [], []
    for k in range(frames):
        f = os.path.join(directory, pattern % (start + k))
        imgs.append(make_image(f, width, height, gray=gray, deep=deep, index=k))
        files.append(f)
    return Sequence(os.path.join(directory, pattern), files, imgs, start)


def make_truncated_faststart_video(directory: str) -> str:
    """An .mp4 whose index is intact (faststart) but whose media data is cut at 2/3: opening it
    works and reports 24 frames, decoding fails mid-clip. Returns the cut file's path."""
    path = os.path.join(directory, "fs.mp4")
    c = av.open(path, "w", options={"movflags": "faststart"})
    s = c.add_stream("libx264", rate=24)
    s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
    s.options = deterministic_x264_options()
    rng = np.random.default_rng(1)
    for i in range(24):  # noise: every frame has real payload
        f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        f.pts = i
        for p in s.encode(f):
            c.mux(p)
    for p in s.encode():
        c.mux(p)
    c.close()
    with open(path, "rb") as fh:
        data = fh.read()
    cut = os.path.join(directory, "cut.mp4")
    with open(cut, "wb") as fh:
        fh.write(data[: len(data) * 2 // 3])
    return cut


def read_packets(path: str, kind: str = "audio") -> list[tuple[int, Optional[int], Optional[int], bytes]]:
    """All packets of the given stream type: (index among streams of that type, pts, dts, payload)."""
    out = []
    with av.open(path) as c:
        streams = c.streams.audio if kind == "audio" else c.streams.video
        order = {s.index: k for k, s in enumerate(streams)}
        for p in c.demux(*streams):
            if p.dts is None and p.size == 0:
                continue
            out.append((order[p.stream_index], p.pts, p.dts, bytes(p)))
    return out
