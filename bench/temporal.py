"""Temporal coherence bench: the pipeline with and without temporal smoothing on composited
clips with ground truth (``bench/temporal_clips.py``). Not a test.

For every clip both runs use the same pipeline (``FrameMatter``: generator with the shipped or
given weights, no matting-Laplacian refine unless ``--refine``, the clip's ground-truth-derived
trimaps as user trimaps, batches of ``--batch-size``), reading the H.264 clip with the package
reader; only ``TemporalConfig`` differs. Metrics (``alphagan_video.metrics``): dtSSD and MESSDdt
with the TCVOM conventions (alpha in [0,1], sum over frame t's unknown region of the GT trimap,
unnormalised, forward difference, last frame counts as 0; MESSDdt uses the generator's known
motion), mean per-frame SAD (/1000) and MSE (raw, printed x1e3) with the DIM conventions over
the unknown region. fps = frames / wall time of ``FrameMatter.process`` (model included).

A second table measures trimap stability on mask-derived trimaps: coarse masks = the GT alpha
thresholded after per-frame jitter (blur + smooth random field, like a segmenter's noise),
trimaps from ``make_trimap`` with and without ``stabilize_mask``; "band flips" = fraction of
pixels whose trimap label changes between consecutive frames (static clip: ideally ~0).

    OMP_NUM_THREADS=1 python bench/temporal.py [--strength 0.5] [--clips static_GT25,fast_GT15]
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

from alphagan_video.config import ModelConfig, OutputConfig, PipelineConfig, TemporalConfig, TrimapConfig  # noqa: E402
from alphagan_video.io import open_input  # noqa: E402
from alphagan_video.metrics import score_video  # noqa: E402
from alphagan_video.pipeline import FrameMatter  # noqa: E402
from alphagan_video.temporal import TemporalState, stabilize_mask  # noqa: E402
from alphagan_video.trimap import make_trimap, trimap_to_uint8  # noqa: E402
from bench.temporal_clips import DEFAULT_CLIPS, DEFAULT_DATA, EvalClip, make_clip  # noqa: E402


def run_pipeline(clip: EvalClip, cfg: PipelineConfig) -> tuple[np.ndarray, float, float]:
    """-> (alpha (T,H,W) float32, seconds in FrameMatter.process, seconds in the temporal stage)."""
    alphas = []
    seconds = 0.0
    with open_input(str(clip.video)) as reader, FrameMatter(reader.info, cfg) as matter:
        for batch in reader.iter_batches(cfg.model.batch_size):
            tick = time.perf_counter()
            out = matter.process(batch)
            seconds += time.perf_counter() - tick
            alphas.append(out.alpha)
        temporal_seconds = matter.seconds["temporal"]
    return np.concatenate(alphas, 0), seconds, temporal_seconds


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--strength", type=float, default=TemporalConfig().strength)
    parser.add_argument("--clips", default=",".join(c.name for c in DEFAULT_CLIPS))
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--refine", action="store_true", help="also run the matting-Laplacian refine (slow)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default: the clip's)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    names = args.clips.split(",")
    specs = [s for s in DEFAULT_CLIPS if s.name in names]
    if args.frames:
        specs = [replace(s, frames=args.frames) for s in specs]
    rows = []
    flips = []
    sha = ""
    for spec in specs:
        clip = make_clip(spec, args.cache, args.data)
        base = PipelineConfig(
            trimap=TrimapConfig(trimap_path=Path(clip.trimap_pattern)),
            model=ModelConfig(checkpoint=args.checkpoint, refine=args.refine, batch_size=args.batch_size,
                              device="cpu"),
            output=OutputConfig(kind="alpha"),
        )
        result = {}
        for label, temporal in (("off", TemporalConfig(enabled=False)),
                                ("on", TemporalConfig(enabled=True, strength=args.strength))):
            alpha, seconds, t_seconds = run_pipeline(clip, replace(base, temporal=temporal))
            scores = score_video(alpha, clip.alpha, clip.trimaps, clip.flows)
            result[label] = (scores, len(alpha) / seconds, t_seconds / len(alpha))
        rows.append((spec.name, result))
        flips.append((spec.name, band_flips(clip, TemporalConfig(enabled=False)),
                      band_flips(clip, TemporalConfig(enabled=True, strength=args.strength))))
        if not sha:
            from alphagan_video.model import load_generator

            sha = load_generator(args.checkpoint)[1].sha256

    def pct(off: float, on: float) -> str:
        return f"{100.0 * (on - off) / off:+.1f}%" if off else "n/a"

    print(f"weights sha256 {sha}, strength {args.strength}, refine {args.refine}, "
          f"{specs[0].width}x{specs[0].height}, {specs[0].frames} frames/clip, H.264 crf {specs[0].crf}")
    header = (f"{'clip':<12} | {'dtSSD off':>9} {'on':>7} {'chg':>7} | {'MESSDdt off':>11} {'on':>7} {'chg':>7} | "
              f"{'SAD off':>7} {'on':>7} {'chg':>6} | {'MSEe3 off':>9} {'on':>6} | {'fps off':>7} {'on':>5} "
              f"{'ms/f tmp':>8}")
    print(header)
    print("-" * len(header))
    means = {k: [] for k in ("dt0", "dt1", "me0", "me1", "sad0", "sad1", "mse0", "mse1", "fps0", "fps1", "tms")}
    for name, r in rows:
        s0, f0, _ = r["off"]
        s1, f1, tms = r["on"]
        print(f"{name:<12} | {s0.dtssd:9.3f} {s1.dtssd:7.3f} {pct(s0.dtssd, s1.dtssd):>7} | {s0.messddt:11.4f} "
              f"{s1.messddt:7.4f} {pct(s0.messddt, s1.messddt):>7} | {s0.sad:7.3f} {s1.sad:7.3f} "
              f"{pct(s0.sad, s1.sad):>6} | {1e3 * s0.mse:9.2f} {1e3 * s1.mse:6.2f} | {f0:7.2f} {f1:5.2f} "
              f"{1e3 * tms:8.1f}")
        for key, v in (("dt0", s0.dtssd), ("dt1", s1.dtssd), ("me0", s0.messddt), ("me1", s1.messddt),
                       ("sad0", s0.sad), ("sad1", s1.sad), ("mse0", s0.mse), ("mse1", s1.mse), ("fps0", f0),
                       ("fps1", f1), ("tms", tms)):
            means[key].append(v)
    m = {k: float(np.mean(v)) for k, v in means.items()}
    print("-" * len(header))
    print(f"{'mean':<12} | {m['dt0']:9.3f} {m['dt1']:7.3f} {pct(m['dt0'], m['dt1']):>7} | {m['me0']:11.4f} "
          f"{m['me1']:7.4f} {pct(m['me0'], m['me1']):>7} | {m['sad0']:7.3f} {m['sad1']:7.3f} "
          f"{pct(m['sad0'], m['sad1']):>6} | {1e3 * m['mse0']:9.2f} {1e3 * m['mse1']:6.2f} | {m['fps0']:7.2f} "
          f"{m['fps1']:5.2f} {1e3 * m['tms']:8.1f}")
    print()
    print("trimap stability, mask-derived trimaps (jittered GT masks, band 10 px): fraction of pixels whose")
    print("trimap label changes between consecutive frames")
    print(f"{'clip':<12} | {'no stabilise':>12} | {'stabilise_mask':>14}")
    for name, off, on in flips:
        print(f"{name:<12} | {off:12.4f} | {on:14.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
