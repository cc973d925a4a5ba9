"""Per-photo speed of the product's matting against closed-form matting. Not a test.

For every image of a folder of image/alpha/trimap triplets (e.g. ``../shared/data/alphamatting-dev``),
times, alternately in the same run so both see the same machine state:

* ``product``: what ``alphagan-video`` does per frame with the shipped weights and defaults
  (training.evaluate.refine_overlapped: expansion, sampling flow, Laplacian and its factorisation
  in a worker thread while the generator runs, then the solve), generator threads set as the
  pipeline sets them on the CPU (all cores but one);
* ``pymatting_cf``: pymatting's ``estimate_alpha_cf`` on the same image and trimap;

``--repeats`` times each, and prints the median seconds per image, their ratio and the SAD of
both (so a speed-up that broke quality shows). Model loading and file IO are excluded for both.

    python bench/matting_speed.py --data ../shared/data/alphamatting-dev [--trimap-dir trimap] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]  # the training package lives beside bench/
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from alphagan_video.metrics import force_known, score_all, to_uint8  # noqa: E402
from training.evaluate import (  # noqa: E402
    list_samples, load_sample, make_generator, refine_overlapped, trimap_to_float,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--trimap-dir", default="trimap")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()

    from pymatting import estimate_alpha_cf

    cores = os.cpu_count() or 1
    generator = make_generator(args.checkpoint, "cpu", None, max(1, torch.get_num_threads() - 1))
    pool = ThreadPoolExecutor(1)
    print(f"cpu cores: {cores}  generator threads: {torch.get_num_threads()}  repeats: {args.repeats}")
    print(f"{'image':8s} {'product s':>10s} {'cf s':>8s} {'ratio':>6s} {'SAD prod':>9s} {'SAD cf':>8s}")
    rows = []
    for sample in list_samples(args.data, args.trimap_dir):
        img_u8, gt, tri_u8 = load_sample(sample)
        image_f, trimap_f = img_u8 / 255.0, trimap_to_float(tri_u8)
        t_prod, t_cf = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            a_prod = refine_overlapped(pool, generator, image_f, trimap_f)
            t_prod.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            a_cf = estimate_alpha_cf(image_f, trimap_f)
            t_cf.append(time.perf_counter() - t0)
        sad_prod = score_all(force_known(to_uint8(a_prod), tri_u8), gt, tri_u8, force=False).sad
        sad_cf = score_all(force_known(to_uint8(a_cf), tri_u8), gt, tri_u8, force=False).sad
        row = (statistics.median(t_prod), statistics.median(t_cf), sad_prod, sad_cf)
        rows.append(row)
        print(f"{sample.name:8s} {row[0]:10.3f} {row[1]:8.3f} {row[1] / row[0]:6.2f} {row[2]:9.3f} {row[3]:8.3f}",
              flush=True)
    mean = [sum(r[i] for r in rows) / len(rows) for i in range(4)]
    print(f"{'mean':8s} {mean[0]:10.3f} {mean[1]:8.3f} {mean[1] / mean[0]:6.2f} {mean[2]:9.3f} {mean[3]:8.3f}")
    print("ratio = closed-form seconds / product seconds (> 1: the product is faster)")
    pool.shutdown()


if __name__ == "__main__":
    main()
