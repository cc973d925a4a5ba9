"""Regenerate the bundled sample clip ``alphagan_video/data/sample_astronaut.mp4``.

The subject is Eileen Collins in scikit-image's ``data.astronaut()`` (NASA, public domain),
cut out with OpenCV GrabCut from a fixed rectangle, drifting and bobbing over scikit-image's
``data.rocket()`` (NASA, public domain). 36 frames, 480x270, 12 fps, H.264 + a quiet AAC tone,
so the default person mask source has a person to find and audio copy has something to copy.

    python bench/make_sample_clip.py alphagan_video/data/sample_astronaut.mp4
"""
from __future__ import annotations

import sys
from fractions import Fraction

import av
import cv2
import numpy as np
from skimage import data

WIDTH, HEIGHT, FRAMES, RATE = 480, 270, 36, 12


def cut_out_astronaut() -> tuple[np.ndarray, np.ndarray]:
    """-> (rgb uint8 (H,W,3), alpha float32 (H,W) in [0,1]) of the astronaut, soft edges."""
    rgb = data.astronaut()
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    # Seed GrabCut by hand: definite background at the sides and the flag at top right,
    # definite foreground in the face and suit, "probably foreground" for head and shoulders.
    mask = np.full(rgb.shape[:2], cv2.GC_BGD, np.uint8)
    cv2.ellipse(mask, (180, 150), (95, 125), 0, 0, 360, cv2.GC_PR_FGD, -1)  # head and hair
    cv2.rectangle(mask, (20, 250), (440, 511), cv2.GC_PR_FGD, -1)  # shoulders and suit
    cv2.rectangle(mask, (120, 200), (250, 300), cv2.GC_PR_FGD, -1)  # neck
    cv2.ellipse(mask, (180, 150), (55, 75), 0, 0, 360, cv2.GC_FGD, -1)
    cv2.rectangle(mask, (100, 330), (330, 511), cv2.GC_FGD, -1)
    cv2.rectangle(mask, (150, 220), (220, 300), cv2.GC_FGD, -1)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(bgr, mask, None, bgd, fgd, 5, cv2.GC_INIT_WITH_MASK)
    hard = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.float32)
    hard = cv2.morphologyEx(hard, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    alpha = cv2.GaussianBlur(hard, (0, 0), 1.5)
    return rgb, alpha


def main(out_path: str) -> None:
    person, alpha = cut_out_astronaut()
    scale = 230 / person.shape[0]
    person = cv2.resize(person, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    background = cv2.resize(data.rocket(), (WIDTH + 120, HEIGHT), interpolation=cv2.INTER_AREA)
    ph, pw = alpha.shape
    with av.open(out_path, "w") as container:
        video = container.add_stream("libx264", rate=RATE)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"crf": "20", "preset": "slow"}
        cc = video.codec_context
        cc.color_primaries = cc.color_trc = cc.colorspace = 1
        cc.color_range = 1
        audio = container.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for i in range(FRAMES):
            t = i / (FRAMES - 1)
            pan = int(120 * t)  # slow camera pan over the background
            frame_bg = background[:, pan : pan + WIDTH].astype(np.float32)
            x = int(40 + 200 * t)
            y = HEIGHT - ph + int(6 * np.sin(2 * np.pi * 2 * t))
            canvas = frame_bg.copy()
            y0, y1 = max(y, 0), min(y + ph, HEIGHT)
            a = alpha[y0 - y : y1 - y, :, None]
            canvas[y0:y1, x : x + pw] = a * person[y0 - y : y1 - y] + (1 - a) * canvas[y0:y1, x : x + pw]
            frame = av.VideoFrame.from_ndarray(np.clip(canvas + 0.5, 0, 255).astype(np.uint8), format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        samples_per_frame = 1024
        total = 48000 * FRAMES // RATE
        tone = (0.05 * np.sin(2 * np.pi * 440 * np.arange(total) / 48000)).astype(np.float32)
        for start in range(0, total, samples_per_frame):
            chunk = tone[start : start + samples_per_frame][None]
            aframe = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
            aframe.sample_rate = 48000
            aframe.pts = start
            aframe.time_base = Fraction(1, 48000)
            for packet in audio.encode(aframe):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "alphagan_video/data/sample_astronaut.mp4")
