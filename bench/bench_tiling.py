"""Benchmark unknown-region (tiled) inference against full-frame inference. Not a test.

Builds a synthetic 1080p frame (scikit-image's rocket as the plate, a person-shaped silhouette
textured with the astronaut, unknown band sized to ~5 % of the frame), then for each generator
variant times ``infer_alpha(tiling="off")`` and ``infer_alpha(tiling="on")`` and measures how far
the tiled alpha is from the full-frame alpha inside the unknown band.

Weights: random (``build_generator``) with every parameter perturbed by N(0, 0.1) so the output
depends on the input (a fresh generator predicts ~0.5 everywhere and would agree trivially), or
a checkpoint given with ``--checkpoint PATH`` (its variant replaces the list).

    OMP_NUM_THREADS=1 python bench/bench_tiling.py [--size 1920x1080] [--band 0.05]
        [--variants tiny,resnet18] [--tile 192] [--margin 32] [--repeats 1] [--checkpoint PATH]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from alphagan_video.model import build_generator, load_generator
from alphagan_video.generator.tiling import infer_alpha
from alphagan_video.trimap import make_trimap


def silhouette(height: int, width: int) -> torch.Tensor:
    """(1, 1, H, W) float {0, 1}: head (disc) + shoulders/torso (rounded box) + an arm, centred."""
    y = torch.arange(height, dtype=torch.float32)[:, None] / height
    x = torch.arange(width, dtype=torch.float32)[None, :] / width
    aspect = width / height
    head = ((x - 0.5) * aspect) ** 2 + (y - 0.3) ** 2 < 0.11**2
    torso = ((((x - 0.5) * aspect) / 0.3) ** 4 + ((y - 0.85) / 0.45) ** 4) < 1
    arm = (((x - 0.68) * aspect / 0.06) ** 2 + ((y - 0.7) / 0.3) ** 2) < 1
    return (head | torso | arm).float()[None, None]


def make_scene(height: int, width: int, band_fraction: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """-> image (1,3,H,W) in [0,1], trimap (1,1,H,W) {0,.5,1}, band width in px (~band_fraction unknown)."""
    from skimage import data

    def resized(rgb: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0
        return F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)

    mask = silhouette(height, width)
    image = resized(data.astronaut()) * mask + resized(data.rocket()) * (1 - mask)
    band = 2
    while True:  # smallest band reaching the requested unknown fraction
        trimap = make_trimap(mask, band)
        if float((trimap == 0.5).float().mean()) >= band_fraction or band > min(height, width) // 4:
            return image.clamp(0, 1), trimap, band
        band += 2


def perturbed(variant: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_generator(variant).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best = float("inf")
    out = None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


class CallCounter(torch.nn.Module):
    """Counts model calls and tiles (samples) seen."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self.stride = inner.stride
        self.calls = 0
        self.samples = 0

    def forward(self, image, trimap):
        self.calls += 1
        self.samples += image.shape[0]
        return self.inner(image, trimap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--band", type=float, default=0.05, help="unknown fraction of the frame")
    parser.add_argument("--variants", default="tiny,resnet18")
    parser.add_argument("--tile", type=int, default=192)
    parser.add_argument("--margin", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--skip-full", action="store_true", help="time tiled only (no agreement)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    image, trimap, band = make_scene(height, width, args.band)
    unknown = trimap == 0.5
    print(f"frame {width}x{height}, band {band} px, unknown {float(unknown.float().mean()):.1%} of the frame, "
          f"tile {args.tile} + margin {args.margin}, max_batch {args.max_batch}, {args.threads} thread(s), "
          f"best of {args.repeats}")
    if args.checkpoint:
        model, meta = load_generator(args.checkpoint)
        models = [(f"{meta.variant} ({meta.sha256})", model.eval())]
    else:
        models = [(f"{v} (random, perturbed)", perturbed(v)) for v in args.variants.split(",")]
    print(f"{'model':32s} {'full s/frame':>12s} {'tiled s/frame':>13s} {'speed-up':>8s} {'tiles':>5s} "
          f"{'calls':>5s} {'area':>6s} {'px cost':>7s} {'max|d|':>7s} {'mean|d|':>8s} {'p99|d|':>7s}")
    for name, model in models:
        counter = CallCounter(model)
        t_tile, tiled = timed(lambda: infer_alpha(counter, image, trimap, tiling="on", tile=args.tile,
                                                  margin=args.margin, max_batch=args.max_batch), args.repeats)
        tiles = counter.samples // args.repeats
        calls = counter.calls // args.repeats
        win = (args.tile + 2 * args.margin) ** 2
        area = tiles * win / (-(-height // 16) * 16 * -(-width // 16) * 16)
        if args.skip_full:
            print(f"{name:32s} {'-':>12s} {t_tile:13.3f} {'-':>8s} {tiles:5d} {calls:5d} {area:6.1%}")
            continue
        t_full, full = timed(lambda: infer_alpha(model, image, trimap, tiling="off"), args.repeats)
        diff = (tiled - full).abs()[unknown]
        # px cost: time per tile-window pixel relative to time per full-frame pixel.
        print(f"{name:32s} {t_full:12.3f} {t_tile:13.3f} {t_full / t_tile:7.1f}x {tiles:5d} {calls:5d} "
              f"{area:6.1%} {t_tile / area / t_full:7.2f} {float(diff.max()):7.4f} {float(diff.mean()):8.5f} "
              f"{float(diff.quantile(0.99)):7.4f}")


if __name__ == "__main__":
    main()
