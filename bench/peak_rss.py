"""Peak resident memory of a default run at 720p and 1080p (issue 15/14 targets: < 2 GB / < 3 GB).

Makes a short clip per size (scikit-image's astronaut, public domain, drifting over ``rocket``),
runs ``alphagan-video CLIP -o OUT.mov`` with the default settings (person mask, automatic
trimap, generator, refine, temporal, ProRes 4444) in a child process, and prints the child's
peak RSS (``ru_maxrss`` of the waited-for child) and wall time.

    python bench/peak_rss.py [--frames 6] [--sizes 1280x720,1920x1080] [--extra "--trimap-band 22"]

``--frames 6,24`` runs each size at each length and prints the peak's ratio longest / shortest
(memory should be flat in clip length: issue 17).
"""
from __future__ import annotations

import argparse
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    bg = cv2.resize(data.rocket(), (width, height), interpolation=cv2.INTER_AREA)
    person = data.astronaut()
    side = int(height * 0.8)
    person = cv2.resize(person, (side, side), interpolation=cv2.INTER_AREA)
    mask = np.zeros((side, side), np.float32)
    cv2.ellipse(mask, (int(side * 0.35), int(side * 0.3)), (int(side * 0.19), int(side * 0.25)), 0, 0, 360, 1, -1)
    cv2.rectangle(mask, (int(side * 0.04), int(side * 0.5)), (int(side * 0.86), side), 1, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.5)[..., None]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(24))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in range(frames):
            frame = bg.astype(np.float32)
            x, y = int(width * 0.2) + 6 * k, height - side
            region = frame[y : y + side, x : x + side]
            frame[y : y + side, x : x + side] = mask * person + (1 - mask) * region
            vf = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _run(tmp: Path, script: Path, w: int, h: int, frames: int, extra: str):
    """One child run of the CLI on a fresh WxH clip of ``frames`` frames; prints its row and
    returns its peak RSS in GB (None when it failed)."""
    clip = tmp / f"clip_{w}x{h}_{frames}.mp4"
    make_clip(clip, w, h, frames)
    out = tmp / f"out_{w}x{h}_{frames}.mov"
    cmd = [str(script), str(clip), "-o", str(out), "-q", *shlex.split(extra)]
    tick = time.perf_counter()
    proc = subprocess.Popen(cmd, env=dict(os.environ))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - tick
    size = f"{w}x{h}"
    if status != 0:
        print(f"{size:>10}: run failed (status {status}): {' '.join(cmd)}")
        return None
    peak = usage.ru_maxrss / 1024 ** 2
    print(f"{size:>10} {frames:6d} {peak:12.2f} {wall:8.1f}  {extra or 'defaults'}", flush=True)
    return peak


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", default="6", help="frames per clip; a comma list compares lengths")
    parser.add_argument("--sizes", default="1280x720,1920x1080")
    parser.add_argument("--extra", default="", help="extra CLI options, e.g. '--trimap-band 22'")
    args = parser.parse_args(argv)
    script = Path(sys.executable).with_name("alphagan-video")
    print(f"{'size':>10} {'frames':>6} {'peak RSS GB':>12} {'wall s':>8}  options")
    lengths = [int(v) for v in str(args.frames).split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            peaks = {}
            for frames in lengths:
                peak = _run(Path(tmp), script, w, h, frames, args.extra)
                if peak is not None:
                    peaks[frames] = peak
            if len(peaks) > 1:
                longest, shortest = max(peaks), min(peaks)
                print(f"{size:>10}: peak RSS {longest} / {shortest} frames = {peaks[longest] / peaks[shortest]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
