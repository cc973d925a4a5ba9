"""Automatic trimap vs the hand-drawn trimap, through the product (issue 15).

For every photo of a matting benchmark folder (``image/``, ``alpha/`` ground truth, ``trimap/``
hand-drawn Trimap1) this runs the product twice, as the CLI runs it, and scores the whole image:

``coarse``   the coarse mask itself (a hard cut-out), for reference;
``auto``     ``alphagan-video IMAGE -o matte.png --mask file:COARSE.png --output-kind alpha``:
             the product derives its own trimap from the coarse mask and the image;
``band``     the same with ``--trimap-band`` at the default width (the AlphaGAN routine alone,
             as before issue 15), for reference;
``hand``     ``alphagan-video IMAGE -o matte.png --trimap TRIMAP1 --output-kind alpha``.

The coarse mask imitates a 256-px segmenter, errors included: the ground truth resized to 256 px
on the long side (INTER_AREA) and thresholded at 0.5; on that grid, 3 filled discs of radius
4-10 px centred on random boundary pixels are added (swallowed background) and 2 removed
(bites), from a generator seeded per photo (``--seed`` and the photo's name); then upsampled
bilinear to the photo's size and thresholded at 0.5.

SAD here is whole-image: sum |pred - gt| / 255 over every pixel, / 1000 (8-bit prediction and
ground truth, DIM conventions otherwise). Temporal smoothing is off (single photos).

    python bench/autotrimap.py [--data ../shared/data/alphamatting-dev] [--seed 0]
        [--methods coarse,auto,band,hand] [--save /tmp/autotrimap] [--synthetic N] [--soft]

``--save DIR`` writes, per photo, the coarse mask, the product's trimap, each matte and a
composite over a checkerboard (PNG) for looking at. The photos themselves never leave ``--data``.

``--speed 1280x720,1920x1080`` (issue 29) times the trimap alone instead: per photo and size, the
photo and its soft coarse mask resized to the frame size, ``trimap.auto_trimap`` timed as the
trimap stage calls it (float tensors, the soft mask as the probability and its 0.5 threshold as
the stabilised contour; minimum wall-clock of ``--repeats`` runs); printed per size: mean and max
s/frame.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.product_cli import checkerboard_composite  # noqa: E402

#: Coarse-mask recipe (issue 15).
GRID = 256
ADD_DISCS, REMOVE_DISCS = 3, 2
DISC_RADII = (4, 10)


def coarse_mask(gt: np.ndarray, rng: np.random.Generator, soft: bool = False) -> np.ndarray:
    """Imitation of a 256-px segmenter's mask for ground truth ``gt`` (H, W) uint8 -> (H, W) uint8 {0, 255}.

    ``soft``: the segmenter's soft probability instead, (H, W) uint16: the 256-px mask (errors
    included, each as certain as the rest) smoothed with sigma 1 grid px and upsampled bilinear,
    not thresholded -- what the person source hands the trimap stage (issue 27)."""
    h, w = gt.shape
    scale = GRID / max(h, w)
    sw, sh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    small = cv2.resize(gt.astype(np.float32) / 255.0, (sw, sh), interpolation=cv2.INTER_AREA) > 0.5
    small = small.astype(np.uint8)
    cross = np.ones((3, 3), np.uint8)
    boundary = (small > 0) & (cv2.erode(small, cross, borderType=cv2.BORDER_REPLICATE) == 0)
    ys, xs = np.nonzero(boundary)
    if len(ys):
        for value, count in ((1, ADD_DISCS), (0, REMOVE_DISCS)):
            for _ in range(count):
                k = int(rng.integers(len(ys)))
                radius = int(rng.integers(DISC_RADII[0], DISC_RADII[1] + 1))
                cv2.circle(small, (int(xs[k]), int(ys[k])), radius, int(value), -1)
    if soft:
        smooth = cv2.GaussianBlur(small.astype(np.float32), (5, 5), 1.0, borderType=cv2.BORDER_REPLICATE)
        up = np.clip(cv2.resize(smooth, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
        return np.rint(up * 65535.0).astype(np.uint16)
    up = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.where(up > 0.5, 255, 0).astype(np.uint8)


def photo_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def whole_sad(pred8: np.ndarray, gt8: np.ndarray) -> float:
    return float(np.abs(pred8.astype(np.float64) - gt8.astype(np.float64)).sum() / 255.0 / 1000.0)


def run_product(image: Path, out: Path, *, mask: Path | None = None, trimap: Path | None = None,
                band: int | None = None, trimap_out: Path | None = None) -> np.ndarray:
    """alpha (H, W) float64 in [0,1] from ``matte_video`` (the CLI's code path), alpha output."""
    from alphagan_video.config import MaskConfig, ModelConfig, OutputConfig, PipelineConfig, TemporalConfig, TrimapConfig
    from alphagan_video.pipeline import matte_video

    cfg = PipelineConfig(
        mask=MaskConfig(source=f"file:{mask}") if mask is not None else MaskConfig(),
        trimap=TrimapConfig(trimap_path=trimap, band_px=band),
        model=ModelConfig(),
        temporal=TemporalConfig(enabled=False),
        output=OutputConfig(kind="alpha", overwrite=True),
    )
    report = matte_video(image, out, cfg)
    matte = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    if matte.ndim == 3:
        matte = matte[..., 0]
    scale = 65535.0 if matte.dtype == np.uint16 else 255.0
    return matte.astype(np.float64) / scale, report


def make_synthetic(root: Path, n: int) -> Path:
    """Write ``n`` synthetic composites (training.data, fixed seed) as an image/alpha/trimap folder."""
    from training.data import SyntheticMattingDataset

    for sub in ("image", "alpha", "trimap"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    sizes = (480, 560, 640)
    dsets = {s: SyntheticMattingDataset(size=s, seed=20261204, min_unknown=0.03) for s in sizes}
    for i in range(n):
        image, tri, alpha, _fg, _bg = dsets[sizes[i % 3]].sample_numpy(i)
        to8 = lambda a: np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)  # noqa: E731
        tri8 = np.where(tri >= 0.9, 255, np.where(tri <= 0.1, 0, 128)).astype(np.uint8)
        cv2.imwrite(str(root / "image" / f"syn{i:03d}.png"), to8(image)[..., ::-1])
        cv2.imwrite(str(root / "alpha" / f"syn{i:03d}.png"), to8(alpha))
        cv2.imwrite(str(root / "trimap" / f"syn{i:03d}.png"), tri8)
    return root


def speed(args) -> int:
    """``--speed``: seconds per frame of the evidence trimap alone (see the module doc)."""
    import torch

    from alphagan_video.trimap import auto_trimap
    from training.evaluate import list_samples, load_sample

    samples = list_samples(args.data)
    if args.only:
        samples = [s for s in samples if s.name in set(args.only.split(","))]
    print(f"auto_trimap seconds per frame (min of {args.repeats}), data {args.data}, soft coarse masks")
    for size in args.speed.split(","):
        w, h = (int(v) for v in size.lower().split("x"))
        times = []
        for sample in samples:
            rgb, gt, _tri = load_sample(sample)
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
            gt = cv2.resize(gt, (w, h), interpolation=cv2.INTER_LINEAR)
            prob = coarse_mask(gt, photo_rng(args.seed, sample.name), soft=True).astype(np.float32) / 65535.0
            image = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
            soft = torch.from_numpy(prob)[None, None]
            best = float("inf")
            for _ in range(max(1, args.repeats)):
                tick = time.perf_counter()
                auto_trimap(image, soft, None, binary=(soft > 0.5).float())
                best = min(best, time.perf_counter() - tick)
            times.append(best)
        print(f"{w}x{h}: mean {np.mean(times):.4f} s/frame, max {np.max(times):.4f} ({len(times)} photos)", flush=True)
    return 0


def main(argv=None) -> int:
    from training.evaluate import list_samples, load_sample

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "alphamatting-dev"))
    parser.add_argument("--seed", type=int, default=0, help="base seed of the coarse-mask errors")
    parser.add_argument("--methods", default="coarse,auto,hand")
    parser.add_argument("--only", default="", help="comma-separated photo names (default: all)")
    parser.add_argument("--save", default="", help="folder for masks, trimaps, mattes and composites")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help="instead of --data: N synthetic composites of training/synthetic.py (seed "
                             "20261204; 'hand' = their random training trimap), for checks away from the photos")
    parser.add_argument("--soft", action="store_true",
                        help="hand the product the coarse mask as a soft probability (16-bit PNG, a segmenter's "
                             "smoothed 256-px map) instead of a binary mask; 'coarse' scores it thresholded at 0.5")
    parser.add_argument("--speed", default="", metavar="WxH,...",
                        help="time the evidence trimap at these frame sizes instead of scoring")
    parser.add_argument("--repeats", type=int, default=5, help="with --speed: runs per photo and size (minimum)")
    args = parser.parse_args(argv)
    if args.speed:
        return speed(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    synth_dir = tempfile.TemporaryDirectory() if args.synthetic else None
    samples = list_samples(make_synthetic(Path(synth_dir.name), args.synthetic) if synth_dir else args.data)
    if args.only:
        keep = set(args.only.split(","))
        samples = [s for s in samples if s.name in keep]
    save = Path(args.save) if args.save else None
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    rows = []
    print(f"whole-image SAD (/1000), data {f'{args.synthetic} synthetic composites' if synth_dir else args.data}, "
          f"seed {args.seed}{', soft coarse masks' if args.soft else ''}")
    header = "photo  " + "".join(f"{m:>9}" for m in methods) + "   auto/hand  s(auto)"
    print(header)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for sample in samples:
            rgb, gt, _tri = load_sample(sample)
            coarse = coarse_mask(gt, photo_rng(args.seed, sample.name), soft=args.soft)
            mask_path = tmp / f"{sample.name}_coarse.png"
            cv2.imwrite(str(mask_path), coarse)
            row, times = {}, {}
            for method in methods:
                tick = time.perf_counter()
                if method == "coarse":
                    pred = (coarse > np.iinfo(coarse.dtype).max // 2).astype(np.float64)
                elif method == "auto":
                    pred, _ = run_product(sample.image, tmp / "auto.png", mask=mask_path)
                elif method == "band":
                    from alphagan_video.trimap import default_band_px

                    pred, _ = run_product(sample.image, tmp / "band.png", mask=mask_path,
                                          band=default_band_px(*gt.shape))
                elif method == "hand":
                    pred, _ = run_product(sample.image, tmp / "hand.png", trimap=sample.trimap)
                else:
                    raise SystemExit(f"unknown method {method!r}; use coarse, auto, band, hand")
                times[method] = time.perf_counter() - tick
                pred8 = np.clip(np.rint(pred * 255.0), 0, 255).astype(np.uint8)
                row[method] = whole_sad(pred8, gt)
                if save is not None:
                    cv2.imwrite(str(save / f"{sample.name}_{method}_alpha.png"), pred8)
                    comp = checkerboard_composite(rgb, pred8.astype(np.float32) / 255.0)
                    cv2.imwrite(str(save / f"{sample.name}_{method}_comp.png"), comp[..., ::-1])
            if save is not None:
                cv2.imwrite(str(save / f"{sample.name}_coarse.png"), coarse)
                if "auto" in methods:
                    from alphagan_video.trimap import auto_trimap_numpy

                    tri = auto_trimap_numpy(rgb, coarse.astype(np.float32) / float(np.iinfo(coarse.dtype).max))
                    cv2.imwrite(str(save / f"{sample.name}_auto_trimap.png"), tri)
            rows.append(row)
            ratio = (f"{row['auto'] / row['hand']:10.2f}" if "auto" in row and "hand" in row and row["hand"] > 0
                     else " " * 10)
            t = f"{times.get('auto', 0.0):8.2f}"
            print(f"{sample.name:6} " + "".join(f"{row[m]:9.3f}" for m in methods) + f"  {ratio} {t}", flush=True)
    mean = {m: float(np.mean([r[m] for r in rows])) for m in methods}
    ratio = f"{mean['auto'] / mean['hand']:10.2f}" if "auto" in mean and "hand" in mean and mean["hand"] > 0 else ""
    print("mean   " + "".join(f"{mean[m]:9.3f}" for m in methods) + f"  {ratio}")
    if "auto" in mean and "hand" in mean:
        print(f"auto / hand on the mean: {mean['auto'] / mean['hand']:.3f} (target <= 1.3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
