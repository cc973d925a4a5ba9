"""Temporal coherence bench: the pipeline with and without temporal smoothing on composited
clips with ground truth (``bench/temporal_clips.py``). Not a test.

For every clip both runs use the same pipeline (``pipeline.build_chain`` run by ``engine.run``: generator with the shipped or
given weights, no matting-Laplacian refine unless ``--refine``, the clip's ground-truth-derived
trimaps as user trimaps, batches of ``--batch-size``), reading the H.264 clip with the package
reader; only ``TemporalConfig`` differs. Metrics (``alphagan_video.metrics``): dtSSD and MESSDdt
with the TCVOM conventions (alpha in [0,1], sum over frame t's unknown region of the GT trimap,
unnormalised, forward difference, last frame counts as 0; MESSDdt uses the generator's known
motion), mean per-frame SAD (/1000) and MSE (raw, printed x1e3) with the DIM conventions over
the unknown region. fps = frames / wall time of the run (model and decode included, first batch
not timed; the machine is shared, so fps is noisy -- "tmp ms/f" is the temporal stage alone).

Reference rows (from the --no-temporal run) bound what temporal filtering can do on these clips:
the run's middle-frame error carried rigidly with the subject (perfect coherence, same per-frame
error) and the mean of frames t-4..t+4 warped with the clips' exact motion (perfect flow,
non-causal).

A second table measures trimap stability on mask-derived trimaps: coarse masks = the GT alpha
thresholded after per-frame jitter (blur + smooth random field, like a segmenter's noise),
trimaps from ``make_trimap`` with and without ``stabilize_mask``; "band flips" = fraction of
pixels whose trimap label changes between consecutive frames (static clip: ideally ~0).

    OMP_NUM_THREADS=1 python bench/temporal.py [--strength 0.5[,0.75,...]] [--clips static_GT25,fast_GT15]
        [--checkpoint PATH] [--refine] [--frames 32] [--cache DIR] [--data DIR]
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from alphagan_video.config import (  # noqa: E402
    ModelConfig, OutputConfig, PipelineConfig, RefineConfig, TemporalConfig, TrimapConfig,
)
from alphagan_video.io import open_input  # noqa: E402
from alphagan_video.metrics import score_video  # noqa: E402
from alphagan_video.engine import run  # noqa: E402
from alphagan_video.pipeline import build_chain  # noqa: E402
from alphagan_video.stages.temporal import TemporalStage  # noqa: E402
from alphagan_video.temporal.smoothing import TemporalState, max_blend, stabilize_mask  # noqa: E402
from alphagan_video.trimap import make_trimap, trimap_to_uint8  # noqa: E402
from bench.temporal_clips import DEFAULT_CLIPS, DEFAULT_DATA, EvalClip, make_clip  # noqa: E402


def run_pipeline(clip: EvalClip, cfg: PipelineConfig) -> tuple[np.ndarray, float, float]:
    """-> (alpha (T,H,W) float32, frames per second of the run, temporal-stage seconds per
    frame). The chain runs through ``engine.run`` without overlap; the first batch is not timed
    (one-off allocations and warm-up), decoding of the others is."""
    alphas, marks = [], []
    with open_input(str(clip.video)) as reader, build_chain(reader.info, cfg) as chain:
        temporal = next(stage for stage in chain.stages if isinstance(stage, TemporalStage))

        def sink(work) -> None:
            marks.append((time.perf_counter(), temporal.laps["temporal"], len(work.batch.index)))
            alphas.append(work.output.alpha)

        run(reader.iter_batches(cfg.model.batch_size), chain.stages, sink, overlap=False)
    seconds = marks[-1][0] - marks[0][0]
    timed = sum(m[2] for m in marks[1:])
    temporal_seconds = marks[-1][1] - marks[0][1]
    return np.concatenate(alphas, 0), timed / max(seconds, 1e-9), temporal_seconds / max(timed, 1)


def coherent_error_dtssd(clip: EvalClip, alpha: np.ndarray) -> float:
    """dtSSD of a reference prediction whose error is the given run's error at the middle frame,
    carried rigidly with the subject (foreground affine) to every frame: the temporally most
    coherent answer with that per-frame error. dtSSD cannot go much below it without the
    per-frame error itself shrinking."""
    import cv2

    from alphagan_video.metrics import dtssd
    from bench.temporal_clips import _compose, _invert

    ref = len(alpha) // 2
    err = (alpha[ref] - clip.alpha[ref]).astype(np.float32)
    h, w = err.shape
    preds = []
    for t in range(len(alpha)):
        m = _compose(clip.fg_affines[t], _invert(clip.fg_affines[ref]))
        preds.append(np.clip(clip.alpha[t] + cv2.warpAffine(err, m, (w, h), flags=cv2.INTER_LINEAR), 0, 1))
    return dtssd(np.stack(preds), clip.alpha, clip.trimaps)


def known_motion_average(clip: EvalClip, alpha: np.ndarray, radius: int = 4) -> np.ndarray:
    """(T,H,W) reference: each frame's unknown region replaced by the mean of the given alphas of
    frames t-radius..t+radius warped to frame t with the clip's known foreground motion
    (bicubic). A non-causal filter with perfect motion: what temporal filtering could reach on
    these clips if the flow were exact and the future were known."""
    import cv2

    from bench.temporal_clips import _compose, _invert

    h, w = alpha.shape[1:]
    out = []
    for t in range(len(alpha)):
        acc = []
        for s in range(max(0, t - radius), min(len(alpha), t + radius + 1)):
            m = _compose(clip.fg_affines[s], _invert(clip.fg_affines[t]))  # frame-t pixel -> frame s
            acc.append(cv2.warpAffine(alpha[s], m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                      borderMode=cv2.BORDER_REPLICATE))
        mean = np.clip(np.mean(acc, 0), 0, 1)
        out.append(np.where(clip.trimaps[t] == 128, mean, alpha[t]).astype(np.float32))
    return np.stack(out)


def jittered_masks(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(T,H,W) GT alpha -> (T,H,W) float soft masks with per-frame segmenter-like jitter."""
    import cv2

    out = []
    for a in alpha:
        soft = cv2.GaussianBlur(a, (0, 0), 2.0)
        h, w = a.shape
        field = cv2.resize(rng.standard_normal((h // 16 + 1, w // 16 + 1)).astype(np.float32), (w, h),
                           interpolation=cv2.INTER_CUBIC)
        out.append(np.clip(soft + 0.12 * field + 0.05 * rng.standard_normal(a.shape).astype(np.float32), 0, 1))
    return np.stack(out)


def band_flips(clip: EvalClip, temporal: TemporalConfig, band_px: int = 10) -> float:
    rng = np.random.default_rng(clip.spec.seed + 100)
    masks = torch.from_numpy(jittered_masks(clip.alpha, rng))[:, None]
    image = torch.from_numpy(clip.frames).permute(0, 3, 1, 2).float() / 255.0
    state = TemporalState()
    trimaps = []
    for i in range(0, len(masks), 4):
        m, state = stabilize_mask(masks[i : i + 4], image[i : i + 4], state, temporal)
        trimaps.append(trimap_to_uint8(make_trimap(m, band_px))[:, 0])
    t = np.concatenate(trimaps)
    return float((t[1:] != t[:-1]).mean())


def _pct(off: float, on: float) -> str:
    return f"{100.0 * (on - off) / off:+.1f}%" if off else "n/a"


def print_table(strength: float, rows: list) -> None:
    """rows: (clip name, off (scores, fps, temporal s/frame), on (...))."""
    print(f"\n--temporal-strength {strength} (max blend weight {max_blend(strength):.3f}) vs --no-temporal")
    header = (f"{'clip':<12} | {'dtSSD off':>9} {'on':>7} {'chg':>7} | {'MESSDdt off':>11} {'on':>8} {'chg':>7} | "
              f"{'SAD off':>7} {'on':>7} {'chg':>6} | {'MSEe3 off':>9} {'on':>6} | {'fps off':>7} {'on':>5} "
              f"{'tmp ms/f':>8}")
    print(header)
    print("-" * len(header))
    keys = ("dt0", "dt1", "me0", "me1", "sad0", "sad1", "mse0", "mse1", "fps0", "fps1", "tms")
    means: dict[str, list] = {k: [] for k in keys}

    def line(name, v):
        print(f"{name:<12} | {v['dt0']:9.3f} {v['dt1']:7.3f} {_pct(v['dt0'], v['dt1']):>7} | {v['me0']:11.3f} "
              f"{v['me1']:8.3f} {_pct(v['me0'], v['me1']):>7} | {v['sad0']:7.3f} {v['sad1']:7.3f} "
              f"{_pct(v['sad0'], v['sad1']):>6} | {1e3 * v['mse0']:9.2f} {1e3 * v['mse1']:6.2f} | {v['fps0']:7.2f} "
              f"{v['fps1']:5.2f} {1e3 * v['tms']:8.1f}")

    for name, (s0, f0, _), (s1, f1, tms) in rows:
        v = dict(dt0=s0.dtssd, dt1=s1.dtssd, me0=s0.messddt, me1=s1.messddt, sad0=s0.sad, sad1=s1.sad,
                 mse0=s0.mse, mse1=s1.mse, fps0=f0, fps1=f1, tms=tms)
        line(name, v)
        for k in keys:
            means[k].append(v[k])
    print("-" * len(header))
    line("mean", {k: float(np.mean(v)) for k, v in means.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strength", default=str(TemporalConfig().strength),
                        help="one strength or a comma list (each is a separate pipeline run)")
    parser.add_argument("--solve-weight", type=float, default=TemporalConfig().solve_weight,
                        help="TemporalConfig.solve_weight (with --refine: weight of the warped previous "
                             "alpha inside the solve; 0 = refine then blend)")
    parser.add_argument("--clips", default=",".join(c.name for c in DEFAULT_CLIPS))
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--refine", action="store_true", help="also run the matting-Laplacian refine (slow)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: the clip's)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    strengths = [float(v) for v in args.strength.split(",")]

    import shutil
    import tempfile

    from alphagan_video.model import load_generator

    # Snapshot the weights: a training run may rewrite the shipped file while the bench runs,
    # and every row must use the same weights.
    meta = load_generator(args.checkpoint)[1]
    snapshot = Path(tempfile.mkdtemp(prefix="temporal_bench_")) / Path(meta.path).name
    shutil.copyfile(meta.path, snapshot)
    args.checkpoint = snapshot
    sha = load_generator(snapshot)[1].sha256
    names = args.clips.split(",")
    specs = [s for s in DEFAULT_CLIPS if s.name in names]
    if args.frames:
        specs = [replace(s, frames=args.frames) for s in specs]
    results: dict[float, list] = {s: [] for s in strengths}
    flips = []
    coherent = []
    for spec in specs:
        clip = make_clip(spec, args.cache, args.data)
        base = PipelineConfig(
            trimap=TrimapConfig(trimap_path=Path(clip.trimap_pattern)),
            model=ModelConfig(checkpoint=args.checkpoint, batch_size=args.batch_size, device="cpu"),
            refine=RefineConfig(enabled=args.refine),
            output=OutputConfig(kind="alpha"),
        )

        def measure(temporal: TemporalConfig):
            alpha, fps, t_per_frame = run_pipeline(clip, replace(base, temporal=temporal))
            return score_video(alpha, clip.alpha, clip.trimaps, clip.flows), fps, t_per_frame, alpha

        *off, off_alpha = measure(TemporalConfig(enabled=False))
        coherent.append((spec.name, off[0], coherent_error_dtssd(clip, off_alpha),
                         score_video(known_motion_average(clip, off_alpha), clip.alpha, clip.trimaps, clip.flows)))
        for strength in strengths:
            on_cfg = TemporalConfig(enabled=True, strength=strength, solve_weight=args.solve_weight)
            results[strength].append((spec.name, off, measure(on_cfg)[:3]))
        flips.append((spec.name, band_flips(clip, TemporalConfig(enabled=False)),
                      band_flips(clip, TemporalConfig(enabled=True, strength=strengths[0]))))
    print(f"weights {meta.path} sha256 {sha} (snapshot), "
          f"refine {args.refine} (solve_weight {args.solve_weight}), {specs[0].width}x{specs[0].height}, {specs[0].frames} frames/clip, "
          f"H.264 crf {specs[0].crf}, GT trimaps (radius {specs[0].trimap_radius}), CPU 1 thread")
    print("dtSSD, MESSDdt: TCVOM (alpha in [0,1], sum over frame t's unknown, not normalised); SAD /1000 and "
          "MSE x1e3: DIM, unknown region, per-frame mean")
    for strength in strengths:
        print_table(strength, results[strength])
    print()
    print("References from the --no-temporal run: 'coherent': its middle-frame error carried rigidly with the")
    print("subject to every frame (perfectly coherent, same per-frame error; dtSSD cannot go much lower without")
    print("the per-frame error shrinking); 'known-motion avg': every frame replaced by the mean of frames t-4..t+4")
    print("warped with the clip's exact foreground motion (non-causal, perfect flow: a bound for filtering)")
    print(f"{'clip':<12} | {'dtSSD off':>9} | {'coherent':>8} {'chg':>7} | {'known-motion avg: dtSSD':>23} "
          f"{'MESSDdt':>8} {'SAD':>7}")
    sums = np.zeros(5)  # dtSSD off, coherent, known-motion avg; MESSDdt off, known-motion avg
    for name, off_s, ref_dt, avg in coherent:
        print(f"{name:<12} | {off_s.dtssd:9.3f} | {ref_dt:8.3f} {_pct(off_s.dtssd, ref_dt):>7} | "
              f"{_pct(off_s.dtssd, avg.dtssd):>23} {_pct(off_s.messddt, avg.messddt):>8} {_pct(off_s.sad, avg.sad):>7}")
        sums += [off_s.dtssd, ref_dt, avg.dtssd, off_s.messddt, avg.messddt]
    n = len(coherent)
    mean_off_sad = float(np.mean([c[1].sad for c in coherent]))
    mean_avg_sad = float(np.mean([c[3].sad for c in coherent]))
    print(f"{'mean':<12} | {sums[0] / n:9.3f} | {sums[1] / n:8.3f} {_pct(sums[0], sums[1]):>7} | "
          f"{_pct(sums[0], sums[2]):>23} {_pct(sums[3], sums[4]):>8} {_pct(mean_off_sad, mean_avg_sad):>7}")
    print()
    print(f"trimap stability at strength {strengths[0]}, mask-derived trimaps (jittered GT masks, band 10 px):")
    print("fraction of pixels whose trimap label changes between consecutive frames (moving clips: real motion counts)")
    print(f"{'clip':<12} | {'no stabilise':>12} | {'stabilize_mask':>14}")
    for name, off, on in flips:
        print(f"{name:<12} | {off:12.4f} | {on:14.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
