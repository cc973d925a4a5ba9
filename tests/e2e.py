"""Helpers for the end-to-end tests (tests/test_pipeline.py, tests/test_cli.py): run the real
CLI in-process with click's CliRunner and read the results back with PyAV / OpenCV directly
(independently of alphagan_video.io, except where the package's own decode is the reference).

Every run uses a tiny randomly initialised generator (``tiny_checkpoint`` fixture) because the
shipped weights may be absent, and masks or trimaps written by the test so the truth is known.
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Optional

import av
import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from alphagan_video.cli import main
from alphagan_video.model import build_generator, save_generator
from tests.media import Clip, make_video

torch.set_num_threads(1)  # 2 shared cores on the test machine


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A seeded ``tiny`` generator saved with save_generator (.safetensors)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_generator(build_generator("tiny"), path)
    return str(path)


# ----------------------------------------------------------------------------- running

def cli(*args: object) -> Result:
    """Invoke ``alphagan-video ARGS`` in-process. Unexpected exceptions propagate (a bug)."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run_ok(*args: object) -> Result:
    result = cli(*args)
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}"
    return result


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("alphagan-video: error:")]


def assert_clean_failure(result: Result, code: int, *needles: str, out_dir, before: Optional[list] = None,
                         whole_stderr: bool = True) -> str:
    """Exit ``code``, exactly one error line containing every needle, no traceback, and the
    output directory exactly as it was (no output, no temporaries). Returns the error line.

    whole_stderr: the error line is all of stderr (errors found before any frame was written;
    later ones may follow a progress bar)."""
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}: {result.output}"
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    if whole_stderr:
        assert result.stderr.strip() == lines[0], result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert listing(out_dir) == (before or []), "output directory changed after a failed run"
    return lines[0]


def listing(directory) -> list[str]:
    """All names in ``directory`` including hidden ones (temporaries are hidden)."""
    return sorted(os.listdir(directory))


# ----------------------------------------------------------------------------- inputs

def write_gray_sequence(directory, images: np.ndarray, pattern: str = "m_%04d.png") -> str:
    """Write (N,H,W) uint8 images as ``directory/pattern`` numbered from 0; return the pattern path."""
    os.makedirs(directory, exist_ok=True)
    for i, img in enumerate(images):
        if not cv2.imwrite(os.path.join(directory, pattern % i), np.ascontiguousarray(img)):
            raise RuntimeError(f"cannot write {pattern % i}")
    return os.path.join(str(directory), pattern)


def mask_images(masks: np.ndarray) -> np.ndarray:
    """(N,H,W) float {0,1} -> uint8 {0,255}."""
    return (np.asarray(masks) * 255).round().astype(np.uint8)


def trimap_images(masks: np.ndarray, radius: int = 3) -> np.ndarray:
    """(N,H,W) {0,1} masks -> (N,H,W) uint8 trimaps {0,128,255}: unknown = dilated - eroded."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    out = []
    for m in np.asarray(masks):
        m8 = (m > 0.5).astype(np.uint8)
        fg = cv2.erode(m8, kernel)
        band = cv2.dilate(m8, kernel)
        tri = np.zeros(m8.shape, np.uint8)
        tri[band > 0] = 128
        tri[fg > 0] = 255
        out.append(tri)
    return np.stack(out)


def make_green_screen_video(path: str, width: int = 64, height: int = 48, frames: int = 5) -> np.ndarray:
    """FFV1 clip of a magenta square moving over a flat green screen; returns masks (N,H,W)."""
    c = av.open(path, "w")
    s = c.add_stream("ffv1", rate=24)
    s.width, s.height, s.pix_fmt = width, height, "bgr0"
    masks = []
    for i in range(frames):
        rgb = np.empty((height, width, 3), np.uint8)
        rgb[:] = (20, 180, 60)
        m = np.zeros((height, width), np.float32)
        m[14:34, 10 + 3 * i : 30 + 3 * i] = 1
        rgb[m > 0] = (200, 40, 160)
        f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")
        f.pts = i
        for p in s.encode(f):
            c.mux(p)
        masks.append(m)
    for p in s.encode():
        c.mux(p)
    c.close()
    return np.stack(masks)


def clip_with_masks(tmp_path, name: str = "in.mp4", **kwargs) -> tuple[Clip, str]:
    """make_video + its true masks as a PNG sequence; returns (clip, ``file:PATTERN`` spec)."""
    kwargs.setdefault("frames", 6)
    clip = make_video(str(tmp_path / name), **kwargs)
    pattern = write_gray_sequence(tmp_path / f"{name}_masks", mask_images(clip.mask))
    return clip, f"file:{pattern}"


# ----------------------------------------------------------------------------- outputs

def video_pts(path: str) -> tuple[list[int], Fraction, int]:
    """(sorted pts of the first video stream's packets, its time base, number of audio streams)."""
    with av.open(path) as c:
        s = c.streams.video[0]
        pts = sorted(p.pts for p in c.demux(s) if p.pts is not None)
        return pts, Fraction(s.time_base), len(c.streams.audio)


def decode_frames(path: str) -> list[av.VideoFrame]:
    with av.open(path) as c:
        return list(c.decode(video=0))


def plane(frame: av.VideoFrame, k: int, width: int) -> np.ndarray:
    """Plane k of a 16-bit-per-sample planar frame as (H, width) uint16 (padding removed)."""
    p = frame.planes[k]
    a = np.frombuffer(p, np.uint16).reshape(p.height, p.line_size // 2)
    return a[:, :width]


def prores_alpha(path: str) -> np.ndarray:
    """(N,H,W) float64 alpha straight from the ProRes decoder's alpha plane (no swscale)."""
    out = []
    for f in decode_frames(path):
        name = f.format.name
        assert name.startswith("yuva444p"), name
        depth = 12 if "12" in name else 10
        out.append(plane(f, 3, f.width) / (2 ** depth - 1))
    return np.stack(out)


def luma_matte(path: str) -> np.ndarray:
    """(N,H,W) float64 matte stored in limited-range luma (Y = 64 + 876 a at 10 bit)."""
    out = []
    for f in decode_frames(path):
        depth = 12 if "12" in f.format.name else 10
        y = plane(f, 0, f.width).astype(np.float64) / 2 ** (depth - 10)
        out.append((y - 64) / 876)
    return np.stack(out)


def read_png(path: str) -> np.ndarray:
    """PNG -> float64 in [0,1]: (H,W,4) RGBA, (H,W,3) RGB or (H,W) gray."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, path
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    if img.ndim == 3:
        img = img[..., [2, 1, 0, 3]] if img.shape[2] == 4 else img[..., ::-1]
    return img.astype(np.float64) / scale


def read_exr(path: str) -> np.ndarray:
    """EXR -> float32 (H,W,4) RGBA (or (H,W) gray) as stored."""
    with av.open(str(path)) as c:
        f = next(c.decode(video=0))
    if f.format.name == "grayf32le":
        return f.to_ndarray()
    assert f.format.name == "gbrapf32le", f.format.name
    return f.to_ndarray(format="gbrapf32le")


def read_rgb(path: str) -> np.ndarray:
    """All frames decoded by the package's reader as float64 (N,H,W,3) in [0,1] (the colour
    the pipeline itself saw for an input)."""
    from alphagan_video.io import open_input

    with open_input(path) as r:
        rgb = np.concatenate([b.rgb for b in r.iter_batches(8)])
    return rgb.astype(np.float64) / (65535.0 if rgb.dtype == np.uint16 else 255.0)


def remux_with_offset(src: str, dst: str, offset: int) -> None:
    """Copy src's video and audio packets into dst with ``offset`` ticks added to every video
    timestamp (a clip that does not start at 0, as cut or broadcast files do)."""
    with av.open(src) as probe:  # the default movie timescale (1000) would round the start time
        timescale = str(Fraction(probe.streams.video[0].time_base).denominator)
    with av.open(src) as inp, av.open(dst, "w", options={"movie_timescale": timescale}) as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for p in inp.demux(*[inp.streams[i] for i in mapping]):
            if p.dts is None:
                continue
            if p.stream.type == "video":
                p.pts += offset
                p.dts += offset
            p.stream = mapping[p.stream_index]
            out.mux(p)
