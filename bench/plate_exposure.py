"""Plate mode against a separately shot, differently exposed handheld plate.

Material (made at run time into ``--work``, nothing committed; the alphamatting photos stay in
``--data``): a person-like subject of the dev photos (``GT03``: a doll's face with long orange hair,
foreground colour estimated from image + GT alpha) composited over a real scene (scikit-image's
``chelsea`` photo: the cat touches the hair) seen by a handheld camera (a small homography per
frame), sensor noise, 8-bit. The plate is the same scene shot a moment apart: another small
homography, and a different exposure and white balance (``gain`` x per-channel white balance
``wb``, plus ``offset``), its own noise. Ground truth is the composite's alpha.

Scores, per frame then the mean, for the coarse mask (the plate source alone) and for the
product (``python -m alphagan_video run FRAMES --mask plate:PLATE --output-kind alpha``):
*see-through* px = true alpha > 0.98 where ours < 0.9, *kept* px = true alpha < 0.02 where
ours > 0.5, whole-frame SAD (sum |a - g| / 1000). ``--save DIR`` writes per frame the alpha and
a checkerboard composite of the product (and the coarse mask).

    python bench/plate_exposure.py [--frames 3] [--size 480x360] [--gain 1.15] [--no-product]
        [--save /tmp/plate_look] [--tag before] [--plate-scene same|other]
"""
from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.product_cli import checkerboard_composite, read_alpha_png, run_cli  # noqa: E402

DEFAULT_DATA = Path("/work/shared/data/alphamatting-dev")


def _homography(rng: np.random.Generator, w: int, h: int, shift: float, rot: float, persp: float) -> np.ndarray:
    """A small random camera motion: rotation (deg), shift (px), a little perspective."""
    a = np.deg2rad(rng.uniform(-rot, rot))
    c, s = np.cos(a), np.sin(a)
    t = rng.uniform(-shift, shift, 2)
    centre = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1.0]])
    back = np.array([[1, 0, w / 2 + t[0]], [0, 1, h / 2 + t[1]], [0, 0, 1.0]])
    m = np.array([[c, -s, 0], [s, c, 0], [rng.uniform(-persp, persp), rng.uniform(-persp, persp), 1.0]])
    return back @ m @ centre


def _scene(name: str, w: int, h: int) -> np.ndarray:
    """A skimage photo scaled to cover a 1.2x larger canvas than the frame (room for camera motion)."""
    import skimage.data as skd

    img = np.asarray(getattr(skd, name)())[..., :3].astype(np.float32) / 255.0
    big_w, big_h = int(w * 1.2), int(h * 1.2)
    s = max(big_w / img.shape[1], big_h / img.shape[0])
    size = (int(np.ceil(img.shape[1] * s)), int(np.ceil(img.shape[0] * s)))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    y0, x0 = (img.shape[0] - big_h) // 2, (img.shape[1] - big_w) // 2
    return np.ascontiguousarray(img[y0 : y0 + big_h, x0 : x0 + big_w])


def _view(scene: np.ndarray, hom: np.ndarray, w: int, h: int) -> np.ndarray:
    """The frame-sized view of the scene's centre under the camera motion ``hom``."""
    off = np.array([[1, 0, -(scene.shape[1] - w) / 2], [0, 1, -(scene.shape[0] - h) / 2], [0, 0, 1.0]])
    return cv2.warpPerspective(scene, hom @ off, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _u8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def make_material(work: Path, frames: int, w: int, h: int, gain: float, offset: float, wb: tuple, noise: float,
                  data: Path, plate_scene: str = "same", seed: int = 27,
                  gamma: float = 1.0, scene_name: str = "chelsea") -> tuple[list[Path], Path, np.ndarray]:
    """-> (frame PNG paths, plate PNG path, true alpha (T,H,W))."""
    from bench.temporal_clips import _load_alphamatting

    rng = np.random.default_rng(seed)
    fg, alpha = _load_alphamatting("GT03", data, work / "cache")
    scene = _scene(scene_name, w, h)
    (work / "frames").mkdir(parents=True, exist_ok=True)
    paths, truths = [], []
    fh = int(0.92 * h)
    s = fh / alpha.shape[0]
    fg_s = cv2.resize(fg, (int(alpha.shape[1] * s), fh), interpolation=cv2.INTER_AREA)
    a_s = cv2.resize(alpha, (int(alpha.shape[1] * s), fh), interpolation=cv2.INTER_AREA)
    for t in range(frames):
        bg = _view(scene, _homography(rng, w, h, 6.0, 1.0, 2e-5), w, h)
        # the subject: lower right, drifting left a few px per frame (its cut edges leave the frame)
        x0, y0 = int(0.78 * w - fg_s.shape[1] / 2) - 3 * t, h - fh + int(0.08 * h)
        a = np.zeros((h, w), np.float32)
        f = np.zeros((h, w, 3), np.float32)
        ys, xs = slice(max(0, y0), min(h, y0 + fh)), slice(max(0, x0), min(w, x0 + fg_s.shape[1]))
        a[ys, xs] = a_s[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        f[ys, xs] = fg_s[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        a = np.round(a * 255) / 255
        comp = a[..., None] * f + (1 - a[..., None]) * bg
        comp = comp + noise * (0.6 + 0.8 * comp) * rng.standard_normal(comp.shape).astype(np.float32)
        p = work / "frames" / f"f_{t:04d}.png"
        cv2.imwrite(str(p), cv2.cvtColor(_u8(comp), cv2.COLOR_RGB2BGR))
        paths.append(p)
        truths.append(a)
    plate_src = scene if plate_scene == "same" else _scene(plate_scene, w, h)
    plate = _view(plate_src, _homography(rng, w, h, 8.0, 1.5, 3e-5), w, h)
    plate = np.clip(plate, 0, 1) ** gamma * (gain * np.asarray(wb, np.float32)) + offset  # gamma: another tone curve
    plate = plate + noise * (0.6 + 0.8 * np.clip(plate, 0, 1)) * rng.standard_normal(plate.shape).astype(np.float32)
    plate_path = work / "plate.png"
    cv2.imwrite(str(plate_path), cv2.cvtColor(_u8(plate), cv2.COLOR_RGB2BGR))
    return paths, plate_path, np.stack(truths)


def scores(pred: np.ndarray, gt: np.ndarray) -> dict:
    see = ((gt > 0.98) & (pred < 0.9)).sum(axis=(1, 2))
    kept = ((gt < 0.02) & (pred > 0.5)).sum(axis=(1, 2))
    sad = np.abs(np.rint(pred * 255) / 255 - gt).sum(axis=(1, 2)) / 1000.0
    return {"see_through": float(see.mean()), "kept": float(kept.mean()), "sad": float(sad.mean()),
            "see_per_frame": [int(v) for v in see], "kept_per_frame": [int(v) for v in kept]}


def save_look(folder: Path, tag: str, name: str, frames: list[Path], alphas: np.ndarray) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for t, (p, a) in enumerate(zip(frames, alphas)):
        comp = checkerboard_composite(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), a)
        sheet = np.hstack([_u8(np.repeat(a[..., None], 3, 2)), comp])
        path = folder / f"{tag}_{name}_{t:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        out.append(path)
    return out


def coarse_masks(frames: list[Path], plate: Path) -> tuple[np.ndarray, object]:
    import torch

    from alphagan_video.config import MaskConfig
    from alphagan_video.masks import build_mask_source
    from alphagan_video.types import VideoInfo

    rgb = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in frames])
    h, w = rgb.shape[1:3]
    info = VideoInfo(path=str(frames[0]), kind="sequence", width=w, height=h, time_base=Fraction(1, 24),
                     frame_rate=Fraction(24), frame_count=len(frames), pix_fmt="rgb24", bit_depth=8)
    src = build_mask_source(MaskConfig(source=f"plate:{plate}"), info, torch.device("cpu"))
    try:
        x = torch.from_numpy(rgb.astype(np.float32) / 255).permute(0, 3, 1, 2)
        m = np.concatenate([src(x[i : i + 1], [i])[:, 0].numpy() for i in range(len(frames))])
        return m, src
    finally:
        src.close()


def run_product(frames: list[Path], plate: Path, out: Path, extra: list[str]) -> tuple[np.ndarray, dict, str, float]:
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.json"
    pattern = str(frames[0].parent / "f_%04d.png")
    proc, wall = run_cli(["run", pattern, "-o", str(out / "m_%04d.png"), "--output-kind", "alpha", "--overwrite",
                          "-q", "--json-report", str(report), "--mask", f"plate:{plate}", *extra], "product")
    alphas = [read_alpha_png(out / f"m_{i:04d}.png") for i in range(len(frames))]
    return np.stack(alphas), json.loads(report.read_text()), proc.stderr, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--size", default="480x360")
    ap.add_argument("--gain", type=float, default=1.15)
    ap.add_argument("--offset", type=float, default=0.02)
    ap.add_argument("--wb", default="1.04,1.0,0.94", help="per-channel white balance of the plate (R,G,B)")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--gamma", type=float, default=1.0, help="the plate's tone curve: plate = scene^gamma (x gain)")
    ap.add_argument("--scene", default="chelsea", help="the shot's background: a skimage photo (chelsea, rocket, ...)")
    ap.add_argument("--plate-scene", default="same", help="'same' or another skimage photo (a wrong plate)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--work", type=Path, default=Path("/tmp/plate_bench"))
    ap.add_argument("--save", type=Path, default=None)
    ap.add_argument("--tag", default="run")
    ap.add_argument("--no-product", action="store_true", help="score the coarse mask only (fast)")
    ap.add_argument("extra", nargs="*", help="options for alphagan-video run (after --)")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    wb = tuple(float(v) for v in args.wb.split(","))
    frames, plate, gt = make_material(args.work, args.frames, w, h, args.gain, args.offset, wb, args.noise,
                                      args.data, args.plate_scene, gamma=args.gamma,
                                      scene_name=args.scene)
    masks, src = coarse_masks(frames, plate)
    reg = src.registrations
    print(f"plate gain {args.gain} offset {args.offset} wb {wb} gamma {args.gamma}, scene {args.plate_scene}; "
          f"{len(frames)} frames "
          f"{w}x{h}; registered {sum(r['registered'] for r in reg)}/{len(reg)}, residual "
          f"{np.median([r['residual_px'] for r in reg]):.2f} px")
    for r in reg:
        print(f"  frame {r['frame']}: colour gain {r.get('colour_gain')} offset {r.get('colour_offset')}, noise sigma "
              f"{r.get('noise_sigma')}, unexplained {r.get('unexplained_share')}")
    for note in getattr(src, "warnings", []) or []:
        print(f"  source warning: {note}")
    c = scores(masks, gt)
    print(f"coarse mask: see-through {c['see_through']:.0f} px/frame {c['see_per_frame']}, kept {c['kept']:.0f} "
          f"{c['kept_per_frame']}, SAD {c['sad']:.2f}")
    if args.save:
        save_look(args.save, args.tag, "mask", frames, masks)
    if args.no_product:
        return
    alphas, report, stderr, wall = run_product(frames, plate, args.work / f"out_{args.tag}", args.extra)
    p = scores(alphas, gt)
    print(f"product:     see-through {p['see_through']:.0f} px/frame {p['see_per_frame']}, kept {p['kept']:.0f} "
          f"{p['kept_per_frame']}, SAD {p['sad']:.2f}  ({wall / len(frames):.1f} s/frame wall)")
    print(f"  warnings: {report.get('warnings')}")
    if args.save:
        for path in save_look(args.save, args.tag, "alpha", frames, alphas):
            print(f"  wrote {path}")


if __name__ == "__main__":
    main()
