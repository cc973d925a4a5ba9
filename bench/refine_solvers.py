"""Direct sparse solve vs matrix-free PCG for the refine's matting-Laplacian system. Not a test.

Both solve the product's system (RefineConfig's defaults: expansion 9 px, sampling flow 0.1,
generator prior mu 3e-5; radius 1, eps 1e-7) with the shipped generator's alpha as the prior:

* ``direct``: what the product does on the CPU: assemble L_UU (refine.matting_system),
  factorise L_UU + diag(mu + flow*eta) (mixed-precision sparse LU), solve;
* ``pcg``: refine.pcg's matrix-free operator on the band's tiles + Jacobi PCG warm-started from
  the combined prior, relative residual refine.pcg.DEFAULT_RTOL, float64 (and a float32 column
  with the iteration cap 600, to show whether float32 holds the accuracy target).

The expansion and sampling flow are the same code for both and timed once ("shared"); the
solver columns time only what differs. Sections:

1. ``--synthetic N`` composites of the training generator (8-bit): mean |pcg - direct| over the
   unknown band against the PCG tolerance (how DEFAULT_RTOL was chosen; not the dev photos);
2. each dev photo: mean |pcg - direct| over trimap == 128, SAD of both against GT (DIM
   conventions), seconds, PCG iterations warm (prior) and cold (0.5 start);
3. one dev photo (``--hd-photo``) with its trimap and generator alpha upscaled to 1920x1080:
   the issue's "not slower than today's solve at 1080p" check.

``--profile`` (issue 29) instead times the product's refine per stage on video-like material, in
CPU seconds of this process (``time.process_time``: on a CPU shared with other work, wall time
measures the neighbours, CPU time the code), minimum over ``--repeats``: one dev photo
(``--hd-photo``) placed at frame height in a 854x480 / 1280x720 / 1920x1080 frame (sides: its
own edge columns reflected), a person-mask trimap of the product's band width
(``trimap.default_band_px``) around its alpha plus its soft pixels, a blurred alpha as the
generator's prior -- for timing only, nothing is scored or tuned on it -- and a second frame
moved by (3, 1.5) px whose temporal term is the first frame's solution moved the same way
(weight ``TemporalConfig.solve_weight`` where it agrees with the prior within 0.2, as the
smoother's alpha gate does). Stages: the RefineStep's tensor -> float64 copies, sampling flow,
Laplacian assembly, factorisation, solve without and with the temporal term; then the
matrix-free PCG (float64 and float32) cold (from the data-term target) and warm (from the
moved previous solution), iterations and max |alpha - direct| on the unknown pixels.
For a before / after table run a copy of this file from outside the repository with
``PYTHONPATH`` set to each checkout, alternately.

Runs on one thread (OMP_NUM_THREADS=1, torch.set_num_threads(1)) unless --threads is given:

    python bench/refine_solvers.py --data ../shared/data/alphamatting-dev [--synthetic 6] [--device cpu]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_THREADS = "1"
for _i, _a in enumerate(sys.argv):  # before numpy / torch start their pools
    if _a == "--threads" and _i + 1 < len(sys.argv):
        _THREADS = sys.argv[_i + 1]
    elif _a.startswith("--threads="):
        _THREADS = _a.split("=", 1)[1]
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = _THREADS

import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from alphagan_video.config import RefineConfig  # noqa: E402
from alphagan_video.metrics import score_all, to_uint8  # noqa: E402
from alphagan_video.refine import (  # noqa: E402
    RefineProblem, combine_priors, expand_known, matting_system, prepare_refine, sampling_flow, solve_refine,
    with_factor, trimap_regions,
)
from alphagan_video.refine.pcg import DEFAULT_RTOL, matrix_free_system, solve_pcg  # noqa: E402

PRODUCT = RefineConfig()
MU, FLOW, EXPAND = PRODUCT.mu, PRODUCT.flow, PRODUCT.expand


def shared_part(image: np.ndarray, trimap: np.ndarray):
    """Expansion + sampling flow (identical for both solvers). Returns (expanded trimap,
    alpha_s, eta, seconds)."""
    t0 = time.perf_counter()
    tri = expand_known(image, trimap, radius=EXPAND)
    unknown = trimap_regions(tri)[2]
    alpha_s, eta = sampling_flow(image, trimap, only=unknown)
    return tri, alpha_s, eta, time.perf_counter() - t0


def solve_direct(image, tri, alpha_s, eta, prior):
    """The CPU solve: assembly + factorisation + solve, as prepare_refine/solve_refine run it."""
    t0 = time.perf_counter()
    system = matting_system(image, tri)
    u = system.unknown_index
    problem = with_factor(RefineProblem(system, FLOW * eta.ravel()[u], alpha_s.ravel()[u]), MU)
    alpha = solve_refine(problem, prior, PRODUCT)
    return alpha, time.perf_counter() - t0, u.size


def solve_matrix_free(image, tri, alpha_s, eta, prior, *, device, dtype, rtol, max_iter=2000, x0_value=None):
    """solve_refine's PCG branch, spelled out to get the iteration count. Returns
    (alpha (H, W) float32, seconds, iterations, converged)."""
    t0 = time.perf_counter()
    fg, _bg, unknown = trimap_regions(tri)
    system = matrix_free_system(image, fg, unknown, device=device, dtype=dtype)
    u = system.unknown_index
    w, target = combine_priors(MU, np.clip(prior.ravel()[u], 0, 1), FLOW * eta.ravel()[u], alpha_s.ravel()[u])
    x0 = None if x0_value is None else np.full(u.size, x0_value)
    res = solve_pcg(system.operator, w, target, x0=x0, rtol=rtol, max_iter=max_iter)
    out = system.alpha_known.ravel().copy()
    out[u] = res.x.double().cpu().numpy()
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return np.clip(out, 0, 1).reshape(tri.shape).astype(np.float32), seconds, res.iterations, res.converged


def mean_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64))[mask].mean()) if mask.any() else 0.0


def synthetic_section(n: int, generator, device: str) -> None:
    from training.data import SyntheticMattingDataset

    rtols = (1e-4, 3e-5, 1e-5, 3e-6, 1e-6)
    print(f"\n## 1. synthetic composites ({n}, 480-640 px, seed 20261204): mean |pcg - direct| over the band")
    print("| composite | unknowns | " + " | ".join(f"rtol {r:g} (iters)" for r in rtols) + " |")
    print("|---|---:|" + "---:|" * len(rtols))
    sizes = (480, 560, 640)
    dsets = {s: SyntheticMattingDataset(size=s, seed=20261204, min_unknown=0.03) for s in sizes}
    worst = {r: 0.0 for r in rtols}
    for i in range(n):
        image, tri, _alpha, _fg, _bg = dsets[sizes[i % 3]].sample_numpy(i)
        image = np.round(np.clip(image, 0, 1) * 255).astype(np.float64) / 255  # 8-bit, as photos are
        tri = np.where(tri >= 0.9, 1.0, np.where(tri <= 0.1, 0.0, 0.5))
        prior = generator(image, tri)
        etri, alpha_s, eta, _ = shared_part(image, tri)
        direct, _, n_u = solve_direct(image, etri, alpha_s, eta, prior)
        band = tri == 0.5
        cells = []
        for r in rtols:
            alpha, _, it, _ok = solve_matrix_free(image, etri, alpha_s, eta, prior, device=device,
                                                  dtype=torch.float64, rtol=r)
            d = mean_diff(alpha, direct, band)
            worst[r] = max(worst[r], d)
            cells.append(f"{d:.1e} ({it})")
        print(f"| syn{i:02d} | {n_u} | " + " | ".join(cells) + " |")
    print("| worst | | " + " | ".join(f"{worst[r]:.1e}" for r in rtols) + " |")


def dev_section(data: str, trimap_dir: str, generator, device: str, float32: bool):
    from training.evaluate import list_samples, load_sample, trimap_to_float

    print(f"\n## 2. {data} ({trimap_dir}): direct vs pcg (float64, rtol {DEFAULT_RTOL:g})")
    head = ("| photo | unknowns | shared s | direct s | pcg s | pcg/direct | iters warm / cold | "
            "mean abs diff | SAD direct | SAD pcg |" + (" f32 iters | f32 diff |" if float32 else ""))
    print(head)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if float32 else ""))
    rows = []
    priors = {}
    for sample in list_samples(data, trimap_dir):
        img_u8, gt, tri_u8 = load_sample(sample)
        image, tri = img_u8 / 255.0, trimap_to_float(tri_u8)
        prior = generator(image, tri)
        priors[sample.name] = (image, tri, prior)
        etri, alpha_s, eta, t_shared = shared_part(image, tri)
        direct, t_direct, n_u = solve_direct(image, etri, alpha_s, eta, prior)
        pcg_a, t_pcg, it, ok = solve_matrix_free(image, etri, alpha_s, eta, prior, device=device,
                                                 dtype=torch.float64, rtol=DEFAULT_RTOL)
        _, _, it_cold, _ = solve_matrix_free(image, etri, alpha_s, eta, prior, device=device,
                                             dtype=torch.float64, rtol=DEFAULT_RTOL, x0_value=0.5)
        band = tri_u8 == 128
        diff = mean_diff(pcg_a, direct, band)
        sad_d = score_all(to_uint8(direct), gt, tri_u8).sad
        sad_p = score_all(to_uint8(pcg_a), gt, tri_u8).sad
        row = [sample.name, n_u, t_shared, t_direct, t_pcg, it, it_cold, diff, sad_d, sad_p, ok]
        extra = ""
        if float32:
            a32, _, it32, ok32 = solve_matrix_free(image, etri, alpha_s, eta, prior, device=device,
                                                   dtype=torch.float32, rtol=DEFAULT_RTOL, max_iter=600)
            d32 = mean_diff(a32, direct, band)
            row += [it32, ok32, d32]
            extra = f" {it32}{'' if ok32 else ' (cap)'} | {d32:.1e} |"
        rows.append(row)
        print(f"| {sample.name} | {n_u} | {t_shared:.2f} | {t_direct:.2f} | {t_pcg:.2f} | {t_pcg / t_direct:.1f} | "
              f"{it}{'' if ok else ' (cap)'} / {it_cold} | {diff:.1e} | {sad_d:.3f} | {sad_p:.3f} |" + extra,
              flush=True)
    m = lambda k: float(np.mean([r[k] for r in rows]))  # noqa: E731
    extra = f" {m(11):.0f} | {m(13):.1e} |" if float32 else ""
    print(f"| **mean** | {m(1):.0f} | {m(2):.2f} | {m(3):.2f} | {m(4):.2f} | {m(4) / m(3):.1f} | "
          f"{m(5):.0f} / {m(6):.0f} | {m(7):.1e} (max {max(r[7] for r in rows):.1e}) | {m(8):.3f} | "
          f"{m(9):.3f} |" + extra)
    return priors


def hd_section(priors, name: str, device: str) -> None:
    image, tri, prior = priors[name]
    size = (1920, 1080)
    image = np.clip(cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), 0, 1)
    image = np.round(image * 255) / 255
    tri = cv2.resize(tri, size, interpolation=cv2.INTER_NEAREST)
    prior = np.clip(cv2.resize(prior, size, interpolation=cv2.INTER_LINEAR), 0, 1)
    print(f"\n## 3. 1920x1080: {name} upscaled (image bicubic, trimap nearest, generator alpha bilinear); "
          f"{100 * float((tri == 0.5).mean()):.1f} % unknown")
    etri, alpha_s, eta, t_shared = shared_part(image, tri)
    direct, t_direct, n_u = solve_direct(image, etri, alpha_s, eta, prior)
    pcg_a, t_pcg, it, ok = solve_matrix_free(image, etri, alpha_s, eta, prior, device=device,
                                             dtype=torch.float64, rtol=DEFAULT_RTOL)
    diff = mean_diff(pcg_a, direct, tri == 0.5)
    print("| unknowns after expansion | shared s | direct s | pcg s | pcg/direct | pcg iters | mean abs diff |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {n_u} | {t_shared:.2f} | {t_direct:.2f} | {t_pcg:.2f} | {t_pcg / t_direct:.1f} | "
          f"{it}{'' if ok else ' (cap)'} | {diff:.1e} |")


def video_frame(data: str, name: str, width: int, height: int, shift: float = 0.0):
    """(image (H, W, 3) float64 8-bit steps, trimap (H, W) {0, 0.5, 1}, prior (H, W) float64)
    of dev photo ``name`` at frame height in a width x height frame, moved by (shift, shift/2)
    px; see ``--profile``. Timing material only."""
    from alphagan_video.trimap.band import default_band_px

    img = cv2.cvtColor(cv2.imread(f"{data}/image/{name}.png"), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    gt = cv2.imread(f"{data}/alpha/{name}.png", cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    nw = int(round(img.shape[1] * height / img.shape[0]))
    img = cv2.resize(img, (nw, height), interpolation=cv2.INTER_AREA)
    gt = cv2.resize(gt, (nw, height), interpolation=cv2.INTER_AREA)
    move = np.float32([[1, 0, (width - nw) // 2 + shift], [0, 1, shift / 2]])
    frame = cv2.warpAffine(img, move, (width, height), borderMode=cv2.BORDER_REFLECT)
    alpha = cv2.warpAffine(gt, move, (width, height), borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    band = default_band_px(height, width)
    mask = (alpha > 0.5).astype(np.uint8)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (band + 1, band + 1))
    edge = cv2.dilate(mask, disc) - cv2.erode(mask, disc)
    soft = cv2.dilate(((alpha > 0.02) & (alpha < 0.98)).astype(np.uint8), np.ones((3, 3), np.uint8))
    tri = mask.astype(np.float64)
    tri[(edge > 0) | (soft > 0)] = 0.5
    prior = np.clip(cv2.GaussianBlur(alpha.astype(np.float64), (0, 0), 2.0), 0, 1)
    return np.round(np.clip(frame, 0, 1) * 255).astype(np.float64) / 255, tri, prior


def profile_section(data: str, name: str, repeats: int, pcg_too: bool) -> None:
    from alphagan_video.config import TemporalConfig
    from alphagan_video.refine import PriorTerm, fold_prior_term

    cfg = PRODUCT.effective_for(user_trimap=False)  # a video run's trimap comes from the mask
    shift = 3.0
    print(f"\n## refine per frame, CPU s (process_time, min of {repeats}); {name} at frame height, "
          f"mask-trimap config (expand {cfg.expand}, flow {cfg.flow}, mu {cfg.mu})")
    stages = ("copies", "flow", "laplacian", "factor", "solve", "solve temporal")
    print("| frame | unknowns | " + " | ".join(stages) + " | prepare + temporal solve |")
    print("|---|---:|" + "---:|" * (len(stages) + 1))
    for width, height in ((854, 480), (1280, 720), (1920, 1080)):
        img_a, tri_a, prior_a = video_frame(data, name, width, height)
        image, tri, prior = video_frame(data, name, width, height, shift)
        sol_a = solve_refine(prepare_refine(img_a, tri_a, cfg, factorise=True), prior_a, cfg)
        move = np.float32([[1, 0, shift], [0, 1, shift / 2]])
        warped = cv2.warpAffine(sol_a, move, (width, height), borderMode=cv2.BORDER_REFLECT).astype(np.float64)
        weight = TemporalConfig().solve_weight * (np.abs(warped - prior) < 0.2)
        term = PriorTerm(warped, weight)
        best: dict[str, float] = {}

        def timed(key, fn, *args, **kwargs):
            t0 = time.process_time()
            out = fn(*args, **kwargs)
            best[key] = min(best.get(key, np.inf), time.process_time() - t0)
            return out

        frame_t = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
        for _ in range(repeats):
            timed("copies", lambda: frame_t[0].permute(1, 2, 0).double().cpu().numpy())
            unknown = trimap_regions(tri)[2]
            alpha_s, eta = timed("flow", sampling_flow, image, tri, only=unknown)
            system = timed("laplacian", matting_system, image, tri)
            u = system.unknown_index
            problem = timed("factor", with_factor,
                            RefineProblem(system, cfg.flow * eta.ravel()[u], alpha_s.ravel()[u]), cfg.mu)
            timed("solve", solve_refine, problem, prior, cfg)
            direct_t = timed("solve temporal", solve_refine, problem, prior, cfg, term=term)
        total = best["flow"] + best["laplacian"] + best["factor"] + best["solve temporal"] + best["copies"]
        print(f"| {width}x{height} | {u.size} | " + " | ".join(f"{best[k]:.3f}" for k in stages)
              + f" | {total:.3f} |", flush=True)
        if not pcg_too:
            continue
        fg, _bg, unknown = trimap_regions(tri)
        pr, wt = fold_prior_term(prior, None, cfg.mu, term)
        d, target = combine_priors(cfg.mu * wt.ravel()[u], np.clip(pr.ravel()[u], 0, 1),
                                   problem.flow_weight, problem.flow_alpha)
        exact = direct_t.ravel()[u]
        for dtype in (torch.float64, torch.float32):
            t0 = time.process_time()
            mf = matrix_free_system(image, fg, unknown, dtype=dtype)
            t_op = time.process_time() - t0
            for start, x0 in (("cold", None), ("warm", warped.ravel()[u])):
                t0 = time.process_time()
                res = solve_pcg(mf.operator, d, target, x0=x0, rtol=DEFAULT_RTOL, max_iter=600)
                t_pcg = time.process_time() - t0
                err = float(np.abs(np.clip(res.x.double().numpy(), 0, 1) - exact).max())
                print(f"  pcg {str(dtype)[6:]} {start}: operator {t_op:.3f} s + solve {t_pcg:.3f} s, "
                      f"{res.iterations} iterations{'' if res.converged else ' (cap, not converged)'}, "
                      f"max |alpha - direct| {err:.1e}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "alphamatting-dev"))
    ap.add_argument("--trimap-dir", default="trimap")
    ap.add_argument("--synthetic", type=int, default=6, help="synthetic composites for the tolerance sweep (0 = skip)")
    ap.add_argument("--hd-photo", default="GT19", help="dev photo upscaled to 1080p (GT19: 5.5 %% unknown)")
    ap.add_argument("--device", default="cpu", help="where PCG runs (cpu | cuda)")
    ap.add_argument("--no-float32", action="store_true", help="skip the float32 PCG column")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="per-stage CPU seconds of a video frame (issue 29)")
    ap.add_argument("--repeats", type=int, default=3, help="--profile: repeats per stage (the minimum counts)")
    ap.add_argument("--no-pcg", action="store_true", help="--profile: skip the matrix-free PCG rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.profile:
        profile_section(args.data, args.hd_photo, args.repeats, not args.no_pcg)
        return

    from training.evaluate import make_generator

    generator = make_generator(None, "cpu", None, args.threads)
    print(f"threads: {args.threads}  device (pcg): {args.device}  torch {torch.__version__}  "
          f"mu {MU} flow {FLOW} expand {EXPAND}  pcg rtol {DEFAULT_RTOL:g}")
    if args.synthetic > 0:
        synthetic_section(args.synthetic, generator, args.device)
    priors = dev_section(args.data, args.trimap_dir, generator, args.device, not args.no_float32)
    if args.hd_photo:
        hd_section(priors, args.hd_photo, args.device)


if __name__ == "__main__":
    main()
