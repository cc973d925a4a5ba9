"""Per-stage GPU throughput of alphagan-video in one command (issue 17, item 4). Not a test.

    python bench/gpu.py --out gpu_bench.json        # one CUDA GPU: ~6 minutes (--budget-s 330)
    timeout -s TERM 420 python3 bench/gpu.py --out "$OUT/gpu_bench.json"   # a killed run still prints
    python bench/gpu.py --smoke --out smoke.json    # rehearsal on the CPU, tiny frames, < 60 s
    python bench/gpu.py --device cpu --res 1080p --clip-frames 2 --no-cpu   # CPU rows only

Needs the repository and its dependencies, no network. The device machines' image has torch,
OpenCV and scikit-image but no PyAV (``av``, required) and no ``ai-edge-litert`` (only the
"person mask" row needs it; that row records the error and the run goes on): carry their wheels
(see the device README). The first lines printed say which modules are missing.

For each resolution (1080p, 2160p) one synthetic clip with its trimaps is made by
``bench/throughput.py``'s ``make_clip`` (a textured subject with hair strands over a panning
photo, H.264, ~5 % unknown). Every row runs the product's own chain (``pipeline.build_chain``
driven by ``engine.run``, nothing re-implemented) with product defaults except what the row
names. The rows use the clip's trimaps (``TrimapConfig.trimap_path``: the mask source does not
dominate), except "person mask" (the default mask source and its automatic trimap). "prores4444"
is the default ``.mov`` output (prores_ks, ProRes 4444 with alpha); "ffv1" writes ``.mkv``.
Rows run in priority order; the budget (``--budget-s``) is checked between rows and passes, so the
table always comes out with what was measured, and ``--out`` (JSON) is rewritten after every
row, so a killed run leaves its numbers. SIGTERM / Ctrl-C print the table too.

Header: the GPU (``torch.cuda.get_device_name``, memory, SMs), driver, torch / CUDA / cuDNN,
CPU model and cores, PyAV / FFmpeg, the clips' unknown fraction.

Columns:
  res, row        resolution; the row's settings
  B               frames per batch (``--batch``; fixed so rows compare, not the automatic size)
  n seq / n       frames of the sequential pass / of the overlapped pass
  decode..encode  ms per frame of each stage (``RunReport.seconds`` names: decode = the source,
                  encode = the sink; mask = reading the user's trimaps in trimap rows; refine =
                  its prepare stage + the solves inside the temporal stage), from a sequential
                  pass (overlap off) with the device synchronised after every stage, so GPU work
                  counts in the stage that queued it; work a stage hands to a worker thread counts
                  where it is waited for. "generator alone" rows: the model stage alone, repeated
                  on one batch of the clip's frames and trimaps (upload and mask run once before)
  sum             the sum of the stage columns (ms per frame)
  seq fps         frames / wall time of that sequential pass (model loading excluded)
  fps             ``pipeline.matte_video`` with overlap (the product path): frames after the first
                  batch / time from the first batch written to the last (steady state; with one
                  batch only: frames / whole call, model loading included, marked *)
  peak GiB        ``torch.cuda.max_memory_allocated`` during that overlapped call
  cpu fps         the same row with ``--device cpu`` on ``--cpu-frames`` frames (frames / whole
                  ``matte_video`` call, model loading included: an affordable indication, not a
                  steady state; ``--no-cpu`` skips it; run after all device rows, as time allows)
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

T0 = time.perf_counter()
RESOLUTIONS = {"1080p": (1920, 1080), "2160p": (3840, 2160)}
SMOKE_RESOLUTIONS = {"1080p": (192, 108), "2160p": (320, 180)}
BATCH = {"1080p": 8, "2160p": 4}
CLIP_FRAMES = {"1080p": 96, "2160p": 32}
STAGES = ("decode", "upload", "mask", "trimap", "model", "refine", "temporal", "coverage", "foreground", "encode")
#: (resolution, label, settings) in priority order: the rows the issue's targets name first.
#: settings: alone (generator alone), refine, tiling, codec, ext, mask ("person": default source).
ROWS = (
    ("1080p", "generator alone, full frame", {"alone": True}),
    ("1080p", "refine off, prores4444", {"refine": False}),
    ("1080p", "refine on (default), prores4444", {}),
    ("2160p", "generator alone, full frame", {"alone": True}),
    ("2160p", "refine off, prores4444", {"refine": False}),
    ("2160p", "refine on (default), prores4444", {}),
    ("1080p", "refine off, prores_aw", {"refine": False, "codec": "prores_aw"}),
    ("1080p", "refine off, ffv1 (.mkv)", {"refine": False, "ext": ".mkv"}),
    ("1080p", "refine off, tiling auto, prores4444", {"refine": False, "tiling": "auto"}),
    ("1080p", "person mask + auto trimap, refine off, prores4444", {"refine": False, "mask": "person"}),
    ("2160p", "refine off, prores_aw", {"refine": False, "codec": "prores_aw"}),
    ("2160p", "refine off, ffv1 (.mkv)", {"refine": False, "ext": ".mkv"}),
    ("2160p", "refine off, tiling auto, prores4444", {"refine": False, "tiling": "auto"}),
)


def log(message: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {message}", flush=True)


# ----------------------------------------------------------------------------- machine

def missing_modules() -> list[str]:
    """Python modules this bench imports that are not installed (checked before anything runs)."""
    wanted = ("torch", "av", "cv2", "numpy", "skimage", "scipy", "safetensors", "ai_edge_litert")
    return [name for name in wanted if importlib.util.find_spec(name) is None]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _command_line(args: list[str]) -> Optional[str]:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10, cwd=REPO)
        return (done.stdout.strip() or None) if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine(device: str) -> dict:
    """What the numbers were measured on: the card, driver, torch / CUDA / cuDNN, CPU, PyAV."""
    import av
    import torch

    from alphagan_video.device import cpu_has_fast_bf16

    info = {"device": device, "cpu": cpu_model(), "cpu_cores": os.cpu_count(), "cpu_native_bf16": cpu_has_fast_bf16(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "pyav": av.__version__, "ffmpeg": str(av.ffmpeg_version_info), "python": platform.python_version(),
            "commit": _command_line(["git", "describe", "--always", "--dirty"]),
            "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if device.startswith("cuda"):
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        info.update(gpu=torch.cuda.get_device_name(index), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    gpu_sms=props.multi_processor_count, gpu_capability=f"{props.major}.{props.minor}",
                    driver=_command_line(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]))
    return info


def header_lines(info: dict) -> list[str]:
    gpu = (f"GPU: {info['gpu']} (compute {info['gpu_capability']}, {info['gpu_memory_gib']} GiB, "
           f"{info['gpu_sms']} SMs), driver {info.get('driver') or '?'}" if "gpu" in info else
           f"device: {info['device']} (no GPU column)")
    return [gpu,
            f"torch {info['torch']} (CUDA {info['cuda']}, cuDNN {info['cudnn']}, {info['torch_threads']} CPU threads), "
            f"PyAV {info['pyav']} (FFmpeg {info['ffmpeg']}), Python {info['python']}, commit {info['commit']}",
            f"CPU: {info['cpu']}, {info['cpu_cores']} logical cores, native bf16 {info['cpu_native_bf16']}; "
            f"{info['date_utc']}"]


# ----------------------------------------------------------------------------- passes

def synchronizer(device) -> Callable[[], None]:
    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> Optional[float]:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def pipeline_config(settings: dict, trimap: str, device: str, batch: Optional[int], checkpoint: Optional[Path]):
    """Product defaults, with the row's settings, the device, a fixed batch (None: automatic) and
    a checkpoint (None: the shipped generator)."""
    from alphagan_video.config import PipelineConfig

    base = PipelineConfig()
    model = replace(base.model, device=device, tiling=settings.get("tiling", base.model.tiling), checkpoint=checkpoint,
                    **({} if batch is None else {"batch_size": batch, "auto_batch": False}))
    trimaps = base.trimap if settings.get("mask") == "person" else replace(base.trimap, trimap_path=Path(trimap))
    return replace(base, model=model, trimap=trimaps,
                   refine=replace(base.refine, enabled=settings.get("refine", base.refine.enabled)),
                   output=replace(base.output, codec=settings.get("codec"), overwrite=True))


def _synced_stage(stage, sync: Callable[[], None]):
    """``stage`` wrapped so the device is synchronised after it (its seconds then hold its GPU
    work); name, lane, warm-up flag and self-reported laps are the stage's own."""
    from alphagan_video.engine import Stage

    class Synced(Stage):
        name, lane, on_warm_up = stage.name, stage.lane, stage.on_warm_up

        @property
        def laps(self):
            return stage.laps

        def __call__(self, work):
            work = stage(work)
            sync()
            return work

    return Synced()


def _time_boxed(batches, seconds: float):
    """The batches until ``seconds`` have passed (checked after each batch has gone through:
    exact without overlap), at least one."""
    start = time.perf_counter()
    try:
        for batch in batches:
            yield batch
            if time.perf_counter() - start > seconds:
                return
    finally:
        batches.close()


def sequential_pass(clip: str, out: Optional[Path], cfg, max_frames: int, seconds: float) -> dict:
    """build_chain's stages, each followed by a device sync, through engine.run without overlap
    on the first frames (up to ``max_frames``, stopping after ``seconds``) into ``out`` (the
    writer set up as ``matte_video`` sets it up; None: the output is dropped, no encoder).
    -> frames, wall seconds (model loading excluded), seconds per stage, batch size."""
    from alphagan_video.engine import run
    from alphagan_video.io import open_input, open_output
    from alphagan_video.pipeline import build_chain

    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(open_input(clip))
        # The run plan fixes the device planes from the output path (plan.plan_run), as in matte_video.
        chain = stack.enter_context(build_chain(reader.info, cfg, output_path=out))
        sink: Callable = lambda work: None  # noqa: E731
        if out is not None:
            writer = stack.enter_context(open_output(out, reader.info, cfg.output, has_color=chain.has_color,
                                                     has_alpha=chain.has_alpha))
            sink = lambda work: writer.write(work.output) if len(work.output) else None  # noqa: E731
        sync = synchronizer(chain.device)
        stages = [_synced_stage(stage, sync) for stage in chain.stages]
        source = _time_boxed(reader.iter_batches(chain.batch_size, stop=max_frames), seconds)
        sync()
        tick = time.perf_counter()
        tally = run(source, stages, sink, overlap=False)
        stack.close()  # the encoder's flush and the stages' workers count too
        wall = time.perf_counter() - tick
    return {"frames": tally.frames, "wall_s": wall, "seconds": dict(tally.seconds), "batch": chain.batch_size}


def overlapped_pass(clip: str, out: Path, cfg, frames: int, device: str) -> dict:
    """``pipeline.matte_video`` with overlap on the first ``frames`` frames: its RunReport, the
    steady-state fps from the progress calls, the whole call's fps and the GPU memory peak."""
    from alphagan_video.pipeline import matte_video

    calls: list[tuple[float, int]] = []
    reset_peak(device)
    tick = time.perf_counter()
    report = matte_video(clip, out, cfg, progress=lambda done, _total: calls.append((time.perf_counter(), done)),
                         frame_range=(0, frames - 1))
    whole = time.perf_counter() - tick
    result = {"frames": report.frames, "call_s": round(whole, 3), "call_fps": report.frames / whole,
              "peak_gib": peak_gib(device), "report_seconds": report.seconds,
              "batch": report.settings.get("batch_size")}
    if len(calls) >= 2:
        (t_first, n_first), (t_last, n_last) = calls[0], calls[-1]
        result["fps"], result["steady"] = (n_last - n_first) / max(t_last - t_first, 1e-9), True
    else:
        result["fps"], result["steady"] = result["call_fps"], False
    return result


def generator_alone(clip: str, trimap: str, device: str, batch: int, seconds: float,
                    checkpoint: Optional[Path]) -> dict:
    """The chain's model stage alone, repeated on one batch (upload and mask run once before),
    synchronised; one untimed call first. -> ms per frame, fps, GPU memory peak."""
    from alphagan_video.io import open_input
    from alphagan_video.pipeline import build_chain
    from alphagan_video.engine import Work

    cfg = pipeline_config({"refine": False}, trimap, device, batch, checkpoint)
    with open_input(clip) as reader, build_chain(reader.info, cfg) as chain:
        batches = reader.iter_batches(chain.batch_size)
        work = Work(batch=next(batches))
        batches.close()
        names = [stage.name for stage in chain.stages]
        for stage in chain.stages[: names.index("model")]:
            work = stage(work)
        model, sync = chain.stages[names.index("model")], synchronizer(chain.device)
        model(work)
        reset_peak(device)
        sync()
        tick, reps = time.perf_counter(), 0
        while reps < 2 or (time.perf_counter() - tick < seconds and reps < 50):
            model(work)
            sync()
            reps += 1
        wall = time.perf_counter() - tick
    frames = reps * len(work.batch.index)
    return {"frames": frames, "batch": len(work.batch.index), "stage_ms": {"model": 1000 * wall / frames},
            "fps": frames / wall, "peak_gib": peak_gib(device)}


# ----------------------------------------------------------------------------- rows

class Bench:
    """The run's state: arguments, deadline, clips, results (saved to --out after every change)."""

    def __init__(self, args, info: dict, work_dir: Path):
        self.args, self.work_dir = args, work_dir
        self.deadline = T0 + args.budget_s
        self.clips: dict[str, tuple[str, str, float]] = {}
        self.data = {"machine": info, "args": {k: str(v) for k, v in vars(args).items()}, "clips": {},
                     "rows": [], "skipped": [], "complete": False}

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def save(self) -> None:
        if self.args.out is None:
            return
        self.data["elapsed_s"] = round(time.perf_counter() - T0, 1)
        tmp = Path(str(self.args.out) + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.args.out)

    def batch(self, res: str) -> Optional[int]:
        return None if self.args.batch == "auto" else int(self.args.batch or BATCH[res])

    def clip(self, res: str) -> tuple[str, str, float]:
        """(clip, trimaps, unknown fraction) for ``res``, made on first use."""
        from bench.throughput import make_clip

        if res not in self.clips:
            width, height = (SMOKE_RESOLUTIONS if self.args.smoke else RESOLUTIONS)[res]
            frames = self.args.clip_frames or CLIP_FRAMES[res]
            folder = self.work_dir / res
            folder.mkdir(exist_ok=True)
            tick = time.perf_counter()
            clip, trimap, _frames, _trimaps, unknown = make_clip(folder, width, height, frames)
            self.clips[res] = (clip, trimap, unknown)
            self.data["clips"][res] = {"size": f"{width}x{height}", "frames": frames,
                                       "unknown_pct": round(100 * unknown, 2)}
            log(f"clip {res}: {width}x{height}, {frames} frames, {100 * unknown:.1f}% unknown "
                f"({time.perf_counter() - tick:.1f} s)")
        return self.clips[res]

    def frames_for(self, res: str, seconds_per_frame: float, batch: int) -> int:
        """Frames of the overlapped pass: about --row-s of work in whole batches, at most the clip;
        at least two batches (for a steady-state fps) unless they take over 3 x --row-s or 40 %
        of the budget left, at least one."""
        total = self.args.clip_frames or CLIP_FRAMES[res]
        want = min(self.args.row_s, max(self.left() * 0.4, 0.0)) / max(seconds_per_frame, 1e-6)
        two = 2 * batch * seconds_per_frame
        floor = 2 * batch if two <= min(3 * self.args.row_s, self.left() * 0.4) else batch
        return int(min(total, max(floor, math.ceil(want / batch) * batch)))


def measure_row(bench: Bench, res: str, settings: dict) -> dict:
    """One row on the bench's device: the sequential per-stage pass, then the overlapped call."""
    args, device = bench.args, bench.args.device
    clip, trimap, _unknown = bench.clip(res)
    if settings.get("alone"):
        return generator_alone(clip, trimap, device, bench.batch(res) or BATCH[res], args.row_s / 2,
                               args.checkpoint)
    cfg = pipeline_config(settings, trimap, device, bench.batch(res), args.checkpoint)
    out = bench.work_dir / f"out{settings.get('ext', '.mov')}"
    # One untimed frame through a chain of its own first: lazy imports, kernels, allocator pools
    # and per-shape caches are the process's, so the timed passes see a warm process.
    sequential_pass(clip, None, cfg, 1, 0.0)
    seq = sequential_pass(clip, out, cfg, args.clip_frames or CLIP_FRAMES[res],
                          min(args.seq_s, max(bench.left() * 0.25, 0.1)))
    frames = seq["frames"]
    row = {"n_seq": frames, "batch": seq["batch"], "seq_fps": frames / seq["wall_s"],
           "stage_ms": {k: 1000 * v / frames for k, v in seq["seconds"].items() if k != "total"}}
    if bench.left() > 1.2 * seq["wall_s"] / frames * seq["batch"]:
        n = bench.frames_for(res, seq["wall_s"] / frames, seq["batch"])
        overlapped = overlapped_pass(clip, out, cfg, n, device)
        row.update(n=overlapped["frames"], fps=overlapped["fps"], steady=overlapped["steady"],
                   peak_gib=overlapped["peak_gib"], overlapped=overlapped)
    out.unlink(missing_ok=True)
    return row


def cpu_cell(bench: Bench, row: dict) -> float:
    """The row's settings on the CPU, --cpu-frames frames: frames / whole matte_video call."""
    from alphagan_video.pipeline import matte_video

    n = bench.args.cpu_frames
    clip, trimap, _unknown = bench.clip(row["res"])
    if row["settings"].get("alone"):
        return generator_alone(clip, trimap, "cpu", n, 0.0, bench.args.checkpoint)["fps"]
    cfg = pipeline_config(row["settings"], trimap, "cpu", n, bench.args.checkpoint)
    out = bench.work_dir / f"cpu{row['settings'].get('ext', '.mov')}"
    tick = time.perf_counter()
    report = matte_video(clip, out, cfg, frame_range=(0, n - 1))
    out.unlink(missing_ok=True)
    return report.frames / (time.perf_counter() - tick)


def run_rows(bench: Bench) -> None:
    """Every selected row on the device, in priority order, while the budget lasts."""
    for res, label, settings in ROWS:
        if res not in bench.args.res:
            continue
        if bench.left() < bench.args.min_row_s:
            bench.data["skipped"].append(f"{res} {label}")
            log(f"skipped (budget): {res} {label}")
            continue
        row = {"res": res, "row": label, "settings": settings}
        try:
            row.update(measure_row(bench, res, settings))
        except Exception as e:  # noqa: BLE001 - every other row is still worth having
            row["error"] = f"{type(e).__name__}: {e}"[:400]
            traceback.print_exc()
        bench.data["rows"].append(row)
        bench.save()
        log(format_row(row, STAGES))


def run_cpu_column(bench: Bench) -> None:
    """The CPU column for the measured rows, in priority order, while the budget lasts."""
    for row in bench.data["rows"]:
        if "error" in row:
            continue
        if bench.left() < bench.args.min_cpu_s:
            log(f"CPU column stops (budget) before: {row['res']} {row['row']}")
            break
        try:
            row["cpu_fps"] = cpu_cell(bench, row)
            log(f"cpu {row['res']} {row['row']}: {row['cpu_fps']:.3f} fps")
        except Exception as e:  # noqa: BLE001
            row["cpu_error"] = f"{type(e).__name__}: {e}"[:400]
            traceback.print_exc()
        bench.save()


# ----------------------------------------------------------------------------- table

def _num(value: Optional[float], digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def format_row(row: dict, stages) -> str:
    """One markdown table line (see the module docstring for the columns)."""
    if "error" in row:
        return f"| {row['res']} | {row['row']} | error: {row['error']} |"
    ms = row.get("stage_ms", {})
    cells = [row["res"], row["row"], str(row.get("batch", "")), str(row.get("n_seq", "")), str(row.get("n", ""))]
    cells += [_num(ms.get(name)) for name in stages]
    cells.append(_num(sum(ms.get(name, 0.0) for name in stages)))
    cells += [_num(row.get("seq_fps"), 2), _num(row.get("fps"), 2) + ("" if row.get("steady", True) else "*"),
              _num(row.get("peak_gib"), 2),
              _num(row.get("cpu_fps"), 3) if "cpu_error" not in row else "error"]
    return "| " + " | ".join(cells) + " |"


def table(bench: Bench) -> str:
    rows = bench.data["rows"]
    stages = [s for s in STAGES if any(s in r.get("stage_ms", {}) for r in rows)]
    stages += sorted({k for r in rows for k in r.get("stage_ms", {})} - set(stages))
    head = ["res", "row", "B", "n seq", "n", *stages, "sum ms", "seq fps", "fps", "peak GiB", "cpu fps"]
    lines = header_lines(bench.data["machine"])
    lines += [f"clip {res}: {c['size']}, {c['frames']} frames, {c['unknown_pct']}% unknown"
              for res, c in bench.data["clips"].items()]
    lines += ["stage columns: ms per frame, sequential pass, device synchronised after each stage", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---:|" * (len(head) - 2)]
    lines += [format_row(row, stages) for row in rows]
    lines += ["* one batch only: frames / whole matte_video call (model loading included)"] if any(
        not r.get("steady", True) for r in rows) else []
    lines += [f"skipped (budget): {', '.join(bench.data['skipped'])}"] if bench.data["skipped"] else []
    lines += [f"cpu errors: {r['res']} {r['row']}: {r['cpu_error']}" for r in rows if "cpu_error" in r]
    lines.append(f"elapsed {time.perf_counter() - T0:.0f} s of a {bench.args.budget_s:.0f} s budget"
                 + ("" if bench.data["complete"] else " (incomplete)"))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None, help="JSON results, rewritten after every row")
    p.add_argument("--budget-s", type=float, default=None, help="global deadline (default 330; smoke 50)")
    p.add_argument("--device", default=None, help="device of the main columns (default cuda; smoke cpu)")
    p.add_argument("--res", nargs="*", default=list(RESOLUTIONS), choices=list(RESOLUTIONS))
    p.add_argument("--batch", default=None, help="frames per batch (default 8 at 1080p, 4 at 2160p; 'auto')")
    p.add_argument("--clip-frames", type=int, default=None, help="frames per clip (default 96 / 32)")
    p.add_argument("--seq-s", type=float, default=None, help="time box of a sequential pass (default 4)")
    p.add_argument("--row-s", type=float, default=None, help="work per overlapped pass (default 8)")
    p.add_argument("--min-row-s", type=float, default=None, help="budget a row needs to start (default 12)")
    p.add_argument("--cpu-frames", type=int, default=None, help="frames per CPU cell (default 2)")
    p.add_argument("--min-cpu-s", type=float, default=None, help="budget a CPU cell needs (default 25)")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU column")
    p.add_argument("--checkpoint", type=Path, default=None, help="generator weights (default: the shipped one)")
    p.add_argument("--smoke", action="store_true",
                   help="the same code paths on the CPU: tiny frames, a random 'tiny' generator, < 60 s")
    args = p.parse_args(argv)
    smoke = {"budget_s": 50, "device": "cpu", "batch": "2", "clip_frames": 4, "seq_s": 0.3, "row_s": 0.5,
             "min_row_s": 2, "cpu_frames": 1, "min_cpu_s": 2}
    full = {"budget_s": 330, "device": "cuda", "seq_s": 4, "row_s": 8, "min_row_s": 12, "cpu_frames": 2,
            "min_cpu_s": 25}
    for key, value in (smoke if args.smoke else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = missing_modules()
    if missing:
        print(f"missing Python modules: {', '.join(missing)} (carry their wheels; see the module docstring)")
        if set(missing) - {"ai_edge_litert"}:
            return 2
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run with --smoke or --device cpu")
        return 2
    with tempfile.TemporaryDirectory(prefix="agv-gpubench-") as tmp:
        if args.smoke and args.checkpoint is None:
            from alphagan_video.model import build_generator, save_generator

            torch.manual_seed(0)
            args.checkpoint = save_generator(build_generator("tiny"), Path(tmp) / "tiny.safetensors")
        bench = Bench(args, machine(args.device), Path(tmp))
        print("\n".join(header_lines(bench.data["machine"])), flush=True)

        def stop(signum, _frame):
            raise KeyboardInterrupt(f"signal {signum}")

        signal.signal(signal.SIGTERM, stop)
        try:
            run_rows(bench)
            if not args.no_cpu and (args.smoke or args.device != "cpu"):  # smoke: rehearse the column
                run_cpu_column(bench)
            bench.data["complete"] = True
        except KeyboardInterrupt as e:
            log(f"interrupted ({e}): printing what was measured")
            return 130
        finally:
            bench.save()
            print("\n" + table(bench), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
