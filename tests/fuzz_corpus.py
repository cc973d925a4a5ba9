"""Seeded fuzz corpus for issue 14: three tiny generated inputs and their mutants.

Used by ``tests/test_fuzz.py`` (a fixed ~60-case corpus run in-process) and ``bench/fuzz.py``
(the long version, one subprocess per case with RSS polling). Everything here is deterministic
for a given seed: the same cases, in the same order, with the same bytes.

Bases (``make_bases``), all green-screen content so ``--mask chroma`` keys them:
- ``mp4``: H.264 + AAC, 64x48, 6 frames;
- ``mov``: ProRes 422 (prores_ks, yuv422p10le), 64x48, 4 frames;
- ``png``: one 64x48 RGB image.

Mutation operators (``mutate``): bit flips, random byte runs, truncation, zeroed runs, a
duplicated or deleted run, random insertions, MP4/MOV box renames (``mp4a``/``esds``/``avc1``/
``stsd``...), declared sizes patched in MP4/MOV sample entries and in the PNG header (incl.
16000x16000), and a PNG IHDR with a recomputed CRC so the decoder trusts it.
"""
from __future__ import annotations

import os
import random
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction

import av
import cv2
import numpy as np

from alphagan_video.io.writer import deterministic_x264_options

W, H = 64, 48
GREEN = (30, 200, 40)


def _frame(i: int, width: int = W, height: int = H) -> np.ndarray:
    """Green screen with a grey square moving right: (H, W, 3) uint8 RGB."""
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[:] = GREEN
    x = 16 + 2 * i
    rgb[12:36, x:x + 20] = (150, 120, 110)
    return rgb


def make_mp4(path: str, frames: int = 6, width: int = W, height: int = H, audio: bool = True) -> str:
    """H.264 (single-threaded, AVX-512 off: deterministic, see io/writer/x264.py) + AAC mono 48 kHz."""
    c = av.open(path, "w")
    v = c.add_stream("libx264", rate=24)
    v.width, v.height, v.pix_fmt = width, height, "yuv420p"
    v.options = {"crf": "18", "threads": "1", **deterministic_x264_options()}
    a = None
    if audio:
        a = c.add_stream("aac", rate=48000)
        a.layout = "mono"
    for i in range(frames):
        f = av.VideoFrame.from_ndarray(_frame(i, width, height), format="rgb24").reformat(format="yuv420p")
        f.pts = i
        for p in v.encode(f):
            c.mux(p)
    for p in v.encode():
        c.mux(p)
    if a is not None:
        n = int(48000 * frames / 24)
        t = np.arange(n) / 48000.0
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for k in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, k:k + 1024]), format="flt", layout="mono")
            af.sample_rate = 48000
            af.pts = k
            for p in a.encode(af):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    c.close()
    return path


def make_mov(path: str, frames: int = 4, codec: str = "prores_ks", pix_fmt: str = "yuv422p10le") -> str:
    c = av.open(path, "w")
    v = c.add_stream(codec, rate=24)
    v.width, v.height, v.pix_fmt = W, H, pix_fmt
    if codec == "prores_ks":
        v.options = {"profile": "3"}
    for i in range(frames):
        f = av.VideoFrame.from_ndarray(_frame(i), format="rgb24").reformat(format=pix_fmt)
        f.pts = i
        for p in v.encode(f):
            c.mux(p)
    for p in v.encode():
        c.mux(p)
    c.close()
    return path


def make_png(path: str) -> str:
    if not cv2.imwrite(path, np.ascontiguousarray(_frame(0)[..., ::-1])):
        raise RuntimeError(f"cannot write {path}")
    return path


def make_bases(directory: str) -> dict[str, str]:
    """The three base inputs in ``directory``: {"mp4": path, "mov": path, "png": path}."""
    os.makedirs(directory, exist_ok=True)
    return {"mp4": make_mp4(os.path.join(directory, "base.mp4")),
            "mov": make_mov(os.path.join(directory, "base.mov")),
            "png": make_png(os.path.join(directory, "base.png"))}


# ----------------------------------------------------------------------------- byte-level helpers

def png_with_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG ``data`` with its IHDR declaring width x height (CRC recomputed: decoders trust it)."""
    assert data[12:16] == b"IHDR"
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    chunk = b"IHDR" + bytes(ihdr)
    return data[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF) + data[33:]


def patch_sample_entry_size(data: bytes, fourcc: bytes, width: int, height: int) -> bytes:
    """Set width/height of every MP4/MOV visual sample entry ``fourcc`` (e.g. b"avc1", b"apcn")."""
    out = bytearray(data)
    start = 0
    while True:
        i = out.find(fourcc, start)
        if i < 4:
            return bytes(out)
        # VisualSampleEntry: type, 6 reserved, 2 dref, 16 pre-defined/reserved, width, height.
        if i + 28 <= len(out):
            out[i + 28:i + 32] = struct.pack(">HH", width & 0xFFFF, height & 0xFFFF)
        start = i + 4


def png_in_mov(path: str, width: int, height: int, frames: int = 3) -> str:
    """PNG-in-MOV whose sample entry AND every PNG frame declare width x height (tiny file)."""
    tmp = path + ".src.mov"
    make_mov(tmp, frames=frames, codec="png", pix_fmt="rgb24")
    data = open(tmp, "rb").read()
    os.remove(tmp)
    data = patch_sample_entry_size(data, b"png ", width, height)
    out = bytearray(data)
    start = 0
    while True:
        i = out.find(b"\x89PNG\r\n\x1a\n", start)
        if i < 0:
            break
        if out[i + 12:i + 16] == b"IHDR":
            patched = png_with_size(bytes(out[i:i + 33]) + b"", width, height)[:33]
            out[i:i + 33] = patched
        start = i + 8
    with open(path, "wb") as fh:
        fh.write(out)
    return path


def y4m_header_only(path: str, width: int, height: int) -> str:
    """A y4m stream declaring width x height with one short (truncated) frame."""
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode() + b"FRAME\n" + bytes(4096))
    return path


_BOXES = (b"mp4a", b"esds", b"avc1", b"avcC", b"stsd", b"stsz", b"stco", b"mdat", b"moov", b"trak",
          b"apcn", b"IHDR", b"IDAT", b"IEND", b"hdlr", b"mvhd", b"tkhd", b"stts", b"stsc")
_SIZES = ((0, 0), (1, 1), (65535, 65535), (16000, 16000), (8193, 8192), (3, 40000), (63, 47))


def mutate(data: bytes, rng: random.Random, kind: str) -> tuple[bytes, str]:
    """One mutant of ``data`` (base format ``kind``: mp4 / mov / png). Returns (bytes, description)."""
    b = bytearray(data)
    n = len(b)
    op = rng.choice(["flip", "bytes", "truncate", "zero", "dup", "delete", "insert", "box", "size", "size"])
    if op == "flip":
        k = rng.randint(1, 16)
        for _ in range(k):
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), f"flip {k} bit(s)"
    if op == "bytes":
        i = rng.randrange(n)
        k = rng.randint(1, 64)
        b[i:i + k] = bytes(rng.randrange(256) for _ in range(k))
        return bytes(b[:n]), f"{k} random byte(s) at {i}"
    if op == "truncate":
        i = rng.randrange(1, n)
        return bytes(b[:i]), f"truncated at {i} of {n}"
    if op == "zero":
        i = rng.randrange(n)
        k = rng.randint(1, 512)
        b[i:i + k] = bytes(min(k, n - i))
        return bytes(b), f"{k} zero byte(s) at {i}"
    if op == "dup":
        i = rng.randrange(n)
        k = rng.randint(1, 1024)
        return bytes(b[:i + k] + b[i:i + k] + b[i + k:]), f"duplicated {k} byte(s) at {i}"
    if op == "delete":
        i = rng.randrange(n)
        k = rng.randint(1, 256)
        return bytes(b[:i] + b[i + k:]), f"deleted {k} byte(s) at {i}"
    if op == "insert":
        i = rng.randrange(n)
        k = rng.randint(1, 256)
        return bytes(b[:i] + bytes(rng.randrange(256) for _ in range(k)) + b[i:]), f"inserted {k} byte(s) at {i}"
    if op == "box":
        present = [box for box in _BOXES if box in b]
        box = rng.choice(present) if present else b"zzzz"
        new = rng.choice([b"zzzz", b"\x00\x00\x00\x00", b"free", bytes(rng.randrange(97, 123) for _ in range(4))])
        return bytes(b).replace(box, new, 1), f"box {box.decode('latin-1')} -> {new!r}"
    w, h = rng.choice(_SIZES)
    if kind == "png":
        return png_with_size(bytes(b), w, h), f"PNG IHDR {w}x{h}"
    fourcc = b"avc1" if kind == "mp4" else b"apcn"
    return patch_sample_entry_size(bytes(b), fourcc, w, h), f"{fourcc.decode()} sample entry {w}x{h}"


@dataclass
class Case:
    """One fuzz case: run ``alphagan-video INPUT -o OUTDIR/<output> <args>``."""

    name: str
    category: str
    input: str
    output: str
    args: list = field(default_factory=list)
    note: str = ""


def mutant_cases(bases: dict[str, str], directory: str, count: int, seed: int) -> list[Case]:
    """``count`` mutants spread over the three bases (round robin), written into ``directory``."""
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    cases = []
    kinds = ["mp4", "mov", "png"]
    originals = {k: open(bases[k], "rb").read() for k in kinds}
    for i in range(count):
        kind = kinds[i % 3]
        data, note = mutate(originals[kind], rng, kind)
        path = os.path.join(directory, f"m{i:03d}.{kind}")
        with open(path, "wb") as fh:
            fh.write(data)
        out = "out.png" if kind == "png" else "out.mov"
        cases.append(Case(f"m{i:03d}-{kind}", f"mutant-{kind}", path, out, note=note))
    return cases


def hostile_cases(directory: str) -> list[Case]:
    """Hand-made hostile media from the issue: oversized declared frames, a codec-less audio track."""
    os.makedirs(directory, exist_ok=True)
    png = make_png(os.path.join(directory, "small.png"))
    big = os.path.join(directory, "big16k.png")
    with open(big, "wb") as fh:
        fh.write(png_with_size(open(png, "rb").read(), 16000, 16000))
    mov = png_in_mov(os.path.join(directory, "big16k.mov"), 16000, 16000)
    y4m = y4m_header_only(os.path.join(directory, "huge.y4m"), 60000, 40000)
    src = make_mp4(os.path.join(directory, "src.mp4"))
    data = bytearray(open(src, "rb").read())
    for box in (b"mp4a", b"esds"):
        i = data.find(box)
        data[i:i + 4] = b"zzzz"
    nocodec = os.path.join(directory, "audio_nocodec.mp4")
    with open(nocodec, "wb") as fh:
        fh.write(data)
    return [
        Case("png-16000x16000", "hostile-size", big, "out.png", note="746 KB-style PNG declaring 16000x16000"),
        Case("png-in-mov-16000x16000", "hostile-size", mov, "out.mov", note="three 16000x16000 PNG frames"),
        Case("y4m-60000x40000", "hostile-size", y4m, "out.mov", note="y4m header 60000x40000"),
        Case("audio-without-codec", "hostile-media", nocodec, "out.mov", note="mp4a/esds renamed"),
    ]


__all__ = ["Case", "hostile_cases", "make_bases", "make_mov", "make_mp4", "make_png", "mutant_cases", "mutate",
           "patch_sample_entry_size", "png_in_mov", "png_with_size", "y4m_header_only"]
