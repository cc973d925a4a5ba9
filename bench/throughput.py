"""End-to-end throughput of alphagan-video against closed-form matting (issue 4). Not a test.

    python bench/throughput.py                 # 720p, 1080p, 2160p + RSS rows (~10 min on 2 cores)
    python bench/throughput.py --res 720p --no-rss

For each resolution one synthetic-but-realistic clip is made (a textured subject -- scikit-image's
astronaut photo -- with a soft body edge and ~300 hair-like anti-aliased strands, drifting and
bobbing over a panning textured background -- scikit-image's rocket photo --, H.264 crf 18,
BT.709) together with its trimaps (unknown = a band around the soft edge, ~5% of the frame at
1080p; FFV1 gray, passed with ``--trimap`` so every row uses the same trimaps). Then, all in one
run on the same frames:

- ``alphagan-video`` end to end (``matte_video``: decode, trimap, generator, clamp, temporal,
  foreground, ProRes 4444 encode, overlapped) with the default (shipped) generator: tiled and
  full-frame, refine off and on (refine on: tiled only -- the matting-Laplacian refinement runs
  on the full-frame alpha whatever produced it, so its cost adds the same to both), and tiled
  without overlap (``overlap=False``: the stages one after the other);
  fps = frames / wall time of the call (model loading included: what a user waits for);
- the I/O floor: decode + trimap + ProRes encode of the frames with a constant alpha, same
  encoder, same overlap machinery (alphagan_video.engine.Threads);
- pymatting ``estimate_alpha_cf`` on the same frames and trimaps, alpha only, no I/O (its numba
  JIT is warmed up first, not timed);
- the same rows with the faster ``prores_aw`` encoder;
- ratios: end-to-end speed / closed-form speed, end-to-end / I/O floor.
Then peak RSS (the child process's own VmHWM) for a 100- and a 1000-frame 320x240 clip
with the ``tiny`` generator (memory flatness is a property of the streaming pipeline, not of the
model; the default model would take ~10 min for 1000 frames here).

The machine is shared (other jobs run on the same cores): the load average is printed at the
start and the end; compare rows of one run, not across runs.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alphagan_video.engine import Stage, Work  # noqa: E402
from alphagan_video.config import ModelConfig  # noqa: E402

RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080), "2160p": (3840, 2160)}
#: Frames per clip: small enough that the whole table finishes in ~10 minutes on 2 loaded cores
#: (the default generator takes seconds per 1080p frame on this CPU).
FRAMES = {"720p": 6, "1080p": 4, "2160p": 2}


# ----------------------------------------------------------------------------- synthetic clip

def _subject_sprite(height: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(rgb float32 (h,w,3), alpha float32 (h,w)) of a head-and-shoulders subject with hair strands."""
    from skimage import data

    h = int(height * 0.8)
    w = int(h * 0.8)
    ss = 2  # supersampling for anti-aliased edges
    body = np.zeros((h * ss, w * ss), np.float32)
    cx, head_cy, head_r = w * ss // 2, int(h * ss * 0.3), int(h * ss * 0.17)
    cv2.ellipse(body, (cx, head_cy), (int(head_r * 0.85), head_r), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    cv2.rectangle(body, (cx - head_r // 3, head_cy), (cx + head_r // 3, int(h * ss * 0.55)), 1.0, -1)
    cv2.ellipse(body, (cx, h * ss), (int(w * ss * 0.45), int(h * ss * 0.48)), 0, 180, 360, 1.0, -1, cv2.LINE_AA)
    canvas = body.copy()
    # Hair: curved anti-aliased strands leaving the top half of the head.
    thickness = max(1, round(height / 1080))
    for _ in range(300):
        angle = rng.uniform(-np.pi * 0.95, -np.pi * 0.05)
        r0 = head_r * rng.uniform(0.7, 0.95)
        length = head_r * rng.uniform(0.25, 0.7)
        bend = rng.uniform(-0.6, 0.6)
        t = np.linspace(0, 1, 12)
        ang = angle + bend * t
        rad = r0 + length * t
        pts = np.stack([cx + rad * np.cos(ang) * 0.85, head_cy + rad * np.sin(ang)], 1)
        cv2.polylines(canvas, [np.round(pts * 4).astype(np.int32)], False, float(rng.uniform(0.5, 1.0)),
                      thickness * ss, cv2.LINE_AA, shift=2)
    alpha = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.7 * max(1.0, height / 1080)).clip(0, 1)
    solid = cv2.resize(body, (w, h), interpolation=cv2.INTER_AREA)
    # The astronaut photo cropped so her face sits in the head ellipse; strands are brown hair.
    texture = cv2.resize(data.astronaut()[9:479, 32:408], (w, h), interpolation=cv2.INTER_CUBIC)
    texture = texture.astype(np.float32) / 255
    hair = np.array([0.30, 0.20, 0.12], np.float32) * rng.uniform(0.7, 1.3, (h, w, 1)).astype(np.float32)
    texture = np.where((solid < 0.5)[..., None], hair, texture).clip(0, 1)
    return texture, alpha


def make_clip(directory: Path, width: int, height: int, frames: int, seed: int = 0):
    """Write clip.mp4 and trimap.mkv; return (clip path, trimap path, rgb uint8 frames, trimaps uint8, unknown fraction)."""
    from skimage import data

    rng = np.random.default_rng(seed)
    fg, sprite_alpha = _subject_sprite(height, rng)
    sh, sw = sprite_alpha.shape
    pan = int(width * 0.2)
    background = cv2.resize(data.rocket(), (width + pan, height), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    band = max(2, round(10 * height / 1080))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    clip_path, trimap_path = directory / "clip.mp4", directory / "trimap.mkv"
    frames_rgb, trimaps = [], []
    with av.open(str(clip_path), "w") as video, av.open(str(trimap_path), "w") as tri_out:
        vs = video.add_stream("libx264", rate=24)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "18", "preset": "veryfast"}
        cc = vs.codec_context
        cc.color_primaries = cc.color_trc = cc.colorspace = 1
        cc.color_range = 1
        ts = tri_out.add_stream("ffv1", rate=24)
        ts.width, ts.height, ts.pix_fmt = width, height, "gray"
        for i in range(frames):
            x0 = int(width * 0.3 + i * width * 0.01)
            y0 = height - sh + int(height * 0.02 * np.sin(i / 3))
            alpha = np.zeros((height, width), np.float32)
            fgf = np.zeros((height, width, 3), np.float32)
            ys, xs = slice(max(0, y0), min(height, y0 + sh)), slice(max(0, x0), min(width, x0 + sw))
            alpha[ys, xs] = sprite_alpha[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
            fgf[ys, xs] = fg[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
            bg = background[:, i * pan // max(1, frames) :][:, :width]
            rgb = alpha[..., None] * fgf + (1 - alpha[..., None]) * bg
            rgb8 = np.round(rgb.clip(0, 1) * 255).astype(np.uint8)
            frames_rgb.append(rgb8)
            frame = av.VideoFrame.from_ndarray(rgb8, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            frame.pts = i
            for p in vs.encode(frame):
                video.mux(p)
            soft = ((alpha > 0.01) & (alpha < 0.99)).astype(np.uint8)
            unknown = cv2.dilate(soft, kernel) > 0
            tri = np.where(alpha >= 0.99, 255, 0).astype(np.uint8)
            tri[unknown] = 128
            trimaps.append(tri)
            tf = av.VideoFrame.from_ndarray(tri, format="gray")
            tf.pts = i
            for p in ts.encode(tf):
                tri_out.mux(p)
        for p in vs.encode():
            video.mux(p)
        for p in ts.encode():
            tri_out.mux(p)
    fraction = float(np.mean([np.mean(t == 128) for t in trimaps]))
    return str(clip_path), str(trimap_path), frames_rgb, trimaps, fraction


# ----------------------------------------------------------------------------- rows

def run_pipeline(clip: str, trimap: str, out: Path, *, tiling: str, refine: bool, codec, checkpoint=None,
                 batch_size: int = 2, overlap: bool = True, prior_scale: Optional[float] = None) -> tuple[float, int]:
    from alphagan_video.config import ModelConfig, OutputConfig, PipelineConfig, RefineConfig, TrimapConfig
    from alphagan_video.pipeline import matte_video

    model = ModelConfig(checkpoint=checkpoint, tiling=tiling, batch_size=batch_size, device="cpu")
    if prior_scale is not None:
        model = replace(model, prior_scale=prior_scale)
    cfg = PipelineConfig(
        trimap=TrimapConfig(trimap_path=Path(trimap)),
        model=model,
        refine=RefineConfig(enabled=refine),
        output=OutputConfig(codec=codec, overwrite=True),
        overlap=overlap,
    )
    t = time.perf_counter()
    report = matte_video(clip, out, cfg)
    return time.perf_counter() - t, report.frames


class _ConstantAlphaOutput(Stage):
    """The frames as colour with a constant alpha: what the writer encodes when matting is free."""

    name = "output"
    lane = "render"
    on_warm_up = False

    def __call__(self, work: Work) -> Work:
        from alphagan_video.types import OutputBatch

        batch = work.batch
        color = batch.rgb_float()
        alpha = np.ones(color.shape[:3], np.float32)
        work.output = OutputBatch(color, alpha, batch.pts, batch.index, batch.time_base)
        return work


def run_io_floor(clip: str, trimap: str, out: Path, codec, batch_size: int = 2) -> tuple[float, int]:
    """Decode + read trimap + encode ProRes 4444 with a constant alpha (the frames as colour),
    through the same run loop as the pipeline (decode | trimap | output, encode)."""
    import torch

    from alphagan_video.config import OutputConfig
    from alphagan_video.engine import run
    from alphagan_video.io import open_input, open_output
    from alphagan_video.stages.user_trimap import UserTrimapStage

    t = time.perf_counter()
    with open_input(clip) as reader:
        info = reader.info
        trimaps = UserTrimapStage(Path(trimap), info, torch.device("cpu"))  # read + decoded, as the pipeline does
        try:
            with open_output(out, info, OutputConfig(codec=codec, overwrite=True), has_color=True,
                             has_alpha=True) as writer:
                tally = run(reader.iter_batches(batch_size), [trimaps, _ConstantAlphaOutput()],
                            lambda work: writer.write(work.output))
        finally:
            trimaps.close()
    return time.perf_counter() - t, tally.frames


def run_closed_form(frames_rgb, trimaps) -> float:
    """Seconds per frame of pymatting.estimate_alpha_cf (alpha only)."""
    from pymatting import estimate_alpha_cf

    total = 0.0
    for rgb8, tri in zip(frames_rgb, trimaps):
        image = rgb8.astype(np.float64) / 255
        trimap = tri.astype(np.float64) / 255
        t = time.perf_counter()
        estimate_alpha_cf(image, trimap)
        total += time.perf_counter() - t
    return total / len(frames_rgb)


def warm_up_pymatting() -> None:
    from pymatting import estimate_alpha_cf

    rng = np.random.default_rng(0)
    image = rng.random((32, 32, 3))
    trimap = np.zeros((32, 32))
    trimap[8:24, 8:24] = 0.5
    trimap[12:20, 12:20] = 1
    estimate_alpha_cf(image, trimap)


# ----------------------------------------------------------------------------- RSS child

def rss_child(clip: str, checkpoint: str, out: str) -> None:
    """Run the pipeline once (tiny generator, chroma-free file mask: tiled band), nothing printed."""
    from alphagan_video.config import MaskConfig, ModelConfig, OutputConfig, PipelineConfig, RefineConfig
    from alphagan_video.pipeline import matte_video

    cfg = PipelineConfig(
        mask=MaskConfig(source="chroma"),
        model=ModelConfig(checkpoint=Path(checkpoint), tiling="auto", device="cpu"),
        refine=RefineConfig(enabled=False),
        output=OutputConfig(overwrite=True),
    )
    matte_video(clip, out, cfg)
    # VmHWM: this process's peak resident set since exec. (ru_maxrss of a child is not usable:
    # Linux carries the parent's high-water mark at fork/exec time into the child's maxrss.)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            print(f"VmHWM_KB {int(line.split()[1])}")


def make_green_clip(path: str, frames: int, width: int = 320, height: int = 240) -> None:
    """A textured magenta-ish blob moving over a noisy green screen (for the chroma mask source)."""
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 24, (height, width, 3), dtype=np.uint8)
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"crf": "18", "preset": "veryfast"}
        for i in range(frames):
            rgb = np.empty((height, width, 3), np.uint8)
            rgb[:] = (20, 170, 60)
            rgb = rgb + noise
            cx = int(width * (0.3 + 0.4 * (0.5 + 0.5 * np.sin(i / 15))))
            cv2.circle(rgb, (cx, height // 2), height // 4, (200, 60, 150), -1, cv2.LINE_AA)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def peak_rss_mb(directory: Path, frames: int, checkpoint: str) -> tuple[float, float]:
    clip = str(directory / f"rss_{frames}.mp4")
    make_green_clip(clip, frames)
    out = str(directory / f"rss_{frames}.mov")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--rss-child", clip, checkpoint, out],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"RSS child for {frames} frames failed ({proc.returncode}): {proc.stderr[-2000:]}")
    hwm = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("VmHWM_KB")]
    return hwm[-1] / 1024.0, time.perf_counter() - t


# ----------------------------------------------------------------------------- main

#: The instruction-set flags that decide the generator's speed on a CPU: oneDNN runs bf16
#: convolutions on AMX tiles (Sapphire Rapids and later), on AVX512-BF16 dot products (e.g. AMD
#: Zen 4) or emulates them; fp32 uses AVX-512 or AVX2 FMA.
_MATMUL_FLAGS = frozenset({"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni",
                           "amx_bf16", "amx_tile", "amx_int8", "amx_fp16"})


def machine_lines() -> list[str]:
    import torch

    model = platform.processor() or "?"
    flags: list[str] = []
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    # The first processor's lines: every core of these machines reports the same.
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    flags = next((sorted(f for f in line.split(":", 1)[1].split() if f in _MATMUL_FLAGS)
                  for line in cpuinfo if line.startswith("flags")), flags)
    from alphagan_video.device import cpu_has_fast_bf16

    return [
        f"cpu flags for matmul: {' '.join(flags) or '?'}; torch CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}; generator precision on this CPU: "
        f"{'bf16 autocast' if cpu_has_fast_bf16() else 'fp32'}",
        f"machine: {model}, {os.cpu_count()} logical cores, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info}), "
        f"Python {platform.python_version()}, device cpu",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--res", nargs="*", default=list(RESOLUTIONS), choices=list(RESOLUTIONS))
    parser.add_argument("--frames", type=int, default=None, help="override the frames per clip")
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="write clips/outputs here (default: temp dir)")
    parser.add_argument("--rss-child", nargs=3, metavar=("CLIP", "CKPT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    print("\n".join(machine_lines()))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(shared machine: other jobs use the same cores; compare rows within this run)")
    warm_up_pymatting()
    tmp = tempfile.TemporaryDirectory(prefix="agv-bench-")
    base = args.keep or Path(tmp.name)
    base.mkdir(parents=True, exist_ok=True)

    rows = []
    header = (f"{'res':>6} {'frames':>6} {'unknown':>7} | {'row':<60} {'fps':>7} {'s/frame':>8} | "
              f"{'x closed-form':>13} {'% of I/O floor':>14}")
    for res in args.res:
        width, height = RESOLUTIONS[res]
        n = args.frames or FRAMES[res]
        d = base / res
        d.mkdir(exist_ok=True)
        clip, trimap, frames_rgb, trimaps, unknown = make_clip(d, width, height, n)
        batch = ModelConfig().batch_size  # the product's default batch (2: two refine workers)
        cf = run_closed_form(frames_rgb, trimaps)
        del frames_rgb, trimaps
        measured = {}
        for codec, tag in ((None, "prores_ks"), ("prores_aw", "prores_aw")):
            sec, got = run_io_floor(clip, trimap, d / f"floor_{tag}.mov", codec, batch)
            measured[("floor", tag)] = (got / sec, sec / got)
        # "full", refine on = the product's default (tiling off, refine on, the generator at
        # ModelConfig.prior_scale, ProRes 4444); "full-res prior, batch 1" = the default before
        # prior_scale (generator at full resolution, one frame per batch, one refine worker).
        # Tiled rows tile the generator's working frame.
        configs = [("full", True, None), ("full-res prior, batch 1", True, None), ("tiled", False, None),
                   ("tiled", True, None), ("full", False, None),
                   ("tiled", False, "prores_aw"), ("tiled, no overlap", False, None)]
        for mode, refine, codec in configs:
            tag = codec or "prores_ks"
            sec, got = run_pipeline(clip, trimap, d / f"e2e_{mode.replace(', ', '_')}_{refine}_{tag}.mov",
                                    tiling="on" if mode.startswith("tiled") else "off", refine=refine, codec=codec,
                                    batch_size=1 if mode.endswith("batch 1") else batch,
                                    overlap=mode != "tiled, no overlap",
                                    prior_scale=1.0 if mode.startswith("full-res prior") else None)
            measured[(mode, refine, tag)] = (got / sec, sec / got)
        cf_fps = 1.0 / cf
        table = [("closed-form estimate_alpha_cf (alpha only)", cf_fps, cf, None)]
        for tag in ("prores_ks", "prores_aw"):
            fps, spf = measured[("floor", tag)]
            table.append((f"I/O floor, {tag}", fps, spf, None))
        for mode, refine, codec in configs:
            tag = codec or "prores_ks"
            fps, spf = measured[(mode, refine, tag)]
            floor = measured[("floor", tag)][0]
            table.append((f"alphagan-video {mode}, refine {'on' if refine else 'off'}, {tag}", fps, spf, floor))
        for name, fps, spf, floor in table:
            ratio = f"{fps / cf_fps:12.2f}x"
            pct = f"{100 * fps / floor:13.1f}%" if floor else f"{'':>14}"
            rows.append(f"{res:>6} {n:>6} {100 * unknown:6.1f}% | {name:<60} {fps:7.3f} {spf:8.3f} | {ratio:>13} {pct}")
        print("\n".join([header] + rows[-len(table):]), flush=True)

    if not args.no_rss:
        from alphagan_video.model import build_generator, save_generator

        torch.manual_seed(0)
        ckpt = str(base / "tiny.safetensors")
        save_generator(build_generator("tiny"), ckpt)
        rss = {}
        for frames in (100, 1000):
            rss[frames] = peak_rss_mb(base, frames, ckpt)
            print(f"peak RSS, {frames:4d}-frame 320x240 clip (tiny generator, chroma mask, tiling auto, ProRes 4444): "
                  f"{rss[frames][0]:.0f} MB ({rss[frames][1]:.0f} s)", flush=True)
        print(f"RSS 1000 / 100 frames: {rss[1000][0] / rss[100][0]:.3f}")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
