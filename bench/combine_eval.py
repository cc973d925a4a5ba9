"""How the generator and the matting-Laplacian solve should be combined at inference time.

Builds (once, cached under ``--cache``) a synthetic validation set of composites with ground-truth
alpha and the seed's random trimaps (``training.data.SyntheticMattingDataset``, fixed seed, sizes
480/560/640), runs the generator once per image (cached with its time), then scores combination
rules of ``alphagan_video.refine`` with the DIM conventions of ``alphagan_video.metrics``.
Choices (thresholds, mu) are made on the synthetic set; the dev photos are for confirmation only.

    OMP_NUM_THREADS=1 python bench/combine_eval.py --set val --checkpoint /tmp/gen_snapshot.safetensors \
        --configs cf,const,prior:1e-5,gate:0.05:1e-5
    OMP_NUM_THREADS=1 python bench/combine_eval.py --set dev --data ../shared/data/alphamatting-dev ...

Config syntax: ``gen`` (generator alone), ``cf`` (closed form), ``const:MU`` (constant 0.5
prior), ``prior:MU`` (generator prior, uniform weight), ``conf:MU:POW`` (weight (2a-1)^(2*POW)
+ floor), ``gate:T:MU[:ERODE]`` (generator-confident pixels become known, remaining band solved
with the generator prior), ``pipe`` (``refine_alpha`` with the RefineConfig defaults = what the
pipeline runs, sampling flow and known-region expansion included). Every other config solves
with the sampling flow and the expansion off (``STUDY``): the study predates both. ``--tiling full|tiled|half``: generator on the full frame, on tiles over the
band (``tiling.infer_alpha(tiling="on")``) or at the product's reduced working scale on the CPU
(``config.CPU_PRIOR_SCALE``, ``scale.infer_alpha_at_scale``) with the alpha upsampled.
Columns: s_solve = the solve (or closed form) alone; s_total adds the cached generator time.
Generator outputs are cached per image under ``--cache``/gen/<tiling>/: delete it after
changing the checkpoint.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from alphagan_video.metrics import force_known, score_all, to_uint8  # noqa: E402
from alphagan_video.config import RefineConfig  # noqa: E402
from alphagan_video.refine import closed_form_alpha, refine_alpha  # noqa: E402

#: The solve this study compared: the generator prior alone (no sampling flow, no expansion).
STUDY = RefineConfig(flow=0.0, expand=0)


def make_val(cache: Path, n: int, seed: int) -> list[Path]:
    """Synthetic composites quantised to 8 bits, as photos are: image/gt/trimap uint8 .npz."""
    from training.data import SyntheticMattingDataset

    out = cache / "val"
    out.mkdir(parents=True, exist_ok=True)
    sizes = (480, 560, 640)
    dsets = {s: SyntheticMattingDataset(size=s, seed=seed, min_unknown=0.03) for s in sizes}
    paths = []
    for i in range(n):
        p = out / f"val{i:03d}.npz"
        if not p.exists():
            image, tri, alpha, _fg, _bg = dsets[sizes[i % 3]].sample_numpy(i)
            tri8 = np.where(tri >= 0.9, 255, np.where(tri <= 0.1, 0, 128)).astype(np.uint8)
            np.savez(p, image=to_uint8(image), gt=to_uint8(alpha), trimap=tri8)
        paths.append(p)
    return paths


def load_dev(data: Path, trimap_dir: str) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    from training.evaluate import list_samples, load_sample

    return [(s.name, *load_sample(s)) for s in list_samples(data, trimap_dir)]


def tri_float(tri8: np.ndarray) -> np.ndarray:
    out = np.full(tri8.shape, 0.5)
    out[tri8 == 0] = 0.0
    out[tri8 == 255] = 1.0
    return out


def generator_alpha(cache: Path, key: str, checkpoint: str, image_f: np.ndarray, tri_f: np.ndarray,
                    tiling: str) -> tuple[np.ndarray, float]:
    """Cached generator alpha (H, W) float32 and its wall time (one thread)."""
    p = cache / "gen" / tiling / f"{key}.npz"
    if p.exists():
        z = np.load(p)
        return z["alpha"], float(z["seconds"])
    import torch

    from alphagan_video.model import load_generator
    from alphagan_video.generator.tiling import infer_alpha

    torch.set_num_threads(1)
    global _MODEL
    if _MODEL is None:
        _MODEL, _ = load_generator(checkpoint)
        _MODEL.eval()
    x = torch.from_numpy(image_f.astype(np.float32)).permute(2, 0, 1)[None]
    t = torch.from_numpy(tri_f.astype(np.float32))[None, None]
    t0 = time.perf_counter()
    with torch.inference_mode():
        if tiling == "full":
            a = _MODEL(x, t)
        elif tiling == "half":
            # The product's reduced working scale on the CPU (ModelConfig.prior_scale, scale.py):
            # half the side (short side kept >= 320 px), alpha upsampled as the solve's prior.
            from alphagan_video.config import CPU_PRIOR_SCALE
            from alphagan_video.generator.scale import infer_alpha_at_scale

            a = infer_alpha_at_scale(_MODEL, x, t, CPU_PRIOR_SCALE, tiling="off")
        else:
            a = infer_alpha(_MODEL, x, t, tiling="on")
    secs = time.perf_counter() - t0
    a = a[0, 0].float().numpy()
    p.parent.mkdir(parents=True, exist_ok=True)
    np.savez(p, alpha=a, seconds=secs)
    return a, secs


_MODEL = None


def run_config(cfg: str, image_f: np.ndarray, tri_f: np.ndarray, gen: np.ndarray) -> np.ndarray:
    parts = cfg.split(":")
    kind = parts[0]
    if kind == "gen":
        return gen
    if kind == "cf":
        return closed_form_alpha(image_f, tri_f)
    if kind == "const":
        return refine_alpha(image_f, tri_f, np.full(tri_f.shape, 0.5), replace(STUDY, mu=float(parts[1])))
    if kind == "prior":
        return refine_alpha(image_f, tri_f, gen, replace(STUDY, mu=float(parts[1])))
    if kind == "conf":
        return refine_alpha(image_f, tri_f, gen, replace(STUDY, mu=float(parts[1]), weighting="confidence"))
    if kind == "gate":
        erode = int(parts[3]) if len(parts) > 3 else 0
        return refine_alpha(image_f, tri_f, gen, replace(STUDY, mu=float(parts[2]), gate=float(parts[1])),
                            gate_erode=erode)
    if kind == "gatec":
        erode = int(parts[3]) if len(parts) > 3 else 0
        return refine_alpha(image_f, tri_f, gen, replace(STUDY, mu=float(parts[2]), gate=float(parts[1]),
                                                         weighting="confidence"), gate_erode=erode)
    if kind == "pipe":
        return refine_alpha(image_f, tri_f, gen, RefineConfig())
    raise SystemExit(f"unknown config {cfg!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=("val", "dev"), default="val")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/alphamatting-dev"))
    ap.add_argument("--trimap-dir", default="trimap")
    ap.add_argument("--cache", default="/tmp/combine_cache")
    ap.add_argument("--checkpoint", default="/tmp/gen_snapshot.safetensors")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--tiling", choices=("full", "tiled", "half"), default="full")
    ap.add_argument("--configs", default="gen,cf,prior:1e-5")
    ap.add_argument("--per-image", action="store_true")
    args = ap.parse_args(argv)
    cache = Path(args.cache)
    if args.set == "val":
        items = []
        for p in make_val(cache, args.n, args.seed):
            z = np.load(p)
            items.append((p.stem, z["image"], z["gt"], z["trimap"]))
    else:
        items = load_dev(Path(args.data), args.trimap_dir)
    configs = [c for c in args.configs.split(",") if c]
    res = {c: [] for c in configs}
    for name, img8, gt, tri8 in items:
        image_f = img8.astype(np.float64) / 255.0
        tri_f = tri_float(tri8)
        key = f"{args.set}_{args.trimap_dir}_{name}"
        gen, gsec = generator_alpha(cache, key, args.checkpoint, image_f, tri_f, args.tiling)
        for c in configs:
            t0 = time.perf_counter()
            a = run_config(c, image_f, tri_f, gen)
            sec = time.perf_counter() - t0
            pred = force_known(to_uint8(a), tri8)
            s = score_all(pred, gt, tri8, force=False)
            uses_gen = not (c == "cf" or c.startswith("const"))
            res[c].append((s.sad, s.mse * 1e3, s.grad, s.conn, sec, sec + (gsec if uses_gen else 0.0)))
            if args.per_image:
                print(f"{name:8s} {c:22s} SAD {s.sad:7.3f} Grad {s.grad:7.3f} {sec:.2f}s", flush=True)
    print(f"set={args.set} trimap={args.trimap_dir} n={len(items)} tiling={args.tiling} ckpt={args.checkpoint}")
    print(f"{'config':24s} {'SAD':>7s} {'MSEe3':>7s} {'Grad':>7s} {'Conn':>7s} {'s_solve':>8s} {'s_total':>8s}")
    for c in configs:
        m = np.mean(np.array(res[c]), axis=0)
        print(f"{c:24s} {m[0]:7.3f} {m[1]:7.3f} {m[2]:7.3f} {m[3]:7.3f} {m[4]:8.3f} {m[5]:8.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
