"""Composited evaluation clips with ground truth, for temporal-coherence metrics. Not a test.

Each clip: a foreground with ground-truth alpha moving over a moving real-photo background.

- Foregrounds: alphamatting-dev photos (``../shared/data/alphamatting-dev``; evaluation only,
  never copied into the repo) with their foreground colour estimated from image + GT alpha
  (pymatting ``estimate_foreground_ml``), or samples of ``training/synthetic.py``.
- Backgrounds: scikit-image ``data`` photos (CC0 / public domain, see
  ``training.synthetic.PHOTO_SOURCES``) -- never the alphamatting images.
- Motion: per frame a known affine (translation, rotation, scale) of the foreground and a
  known affine (pan, zoom) of the background, as smooth functions of time. Motion blur
  integrates ``substeps`` sub-frame positions over the shutter (premultiplied), so the
  ground-truth alpha is the blurred alpha.
- Sampling: each frame is composited at ``supersample`` x the resolution and box-filtered down,
  so every pixel integrates its area like a sensor does. (Point-sampled bilinear warping of a
  shrunk foreground aliases: hair strands appear and vanish with their sub-pixel phase, a
  shimmer of the ground truth itself that no temporal method can or should follow.)
- Camera: Gaussian sensor noise (plus a signal-dependent part), then H.264 (PyAV libx264,
  yuv420p, BT.709 tagged, ``crf``) encoded and decoded back with the package's reader.
- Ground truth per frame: alpha (float32 [0,1], 8-bit quantised), a GT-derived trimap (uint8
  {0,128,255}: unknown = dilate(alpha > 0) minus erode(alpha = 1), ellipse radius
  ``trimap_radius``), and the forward motion t -> t+1 (foreground affine where GT alpha_t > 0,
  background affine elsewhere) for MESSDdt.

Clips are made on demand into a cache directory (default ``$TMPDIR/alphagan_video_temporal``),
never committed. ``make_clip(spec, cache_dir)`` returns a :class:`EvalClip` whose ``video`` is
an .mp4 and ``trimap_pattern`` a PNG sequence usable as ``--trimap``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in __import__("sys").path:  # run as a script: make training/ importable
    __import__("sys").path.insert(0, str(_ROOT))

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "alphamatting-dev"

__all__ = ["ClipSpec", "EvalClip", "DEFAULT_CLIPS", "make_clip", "default_cache_dir"]


@dataclass(frozen=True)
class ClipSpec:
    """How to make one clip. Motion is a function of time tau (in frames):

    foreground centre = (cx, cy) + (vx, vy) * tau + (ax, ay) * sin(2 pi tau / period);
    rotation (degrees) = rot0 + rot_per_frame * tau; scale = scale0 * (1 + scale_amp * sin(2 pi tau / period));
    background: pan (bvx, bvy) px/frame, zoom (1 + bzoom * tau / frames).
    fg: ``alphamatting:GT05`` or ``synthetic:SEED``; bg: a skimage.data photo name.
    fg_height: foreground bounding-box height as a fraction of the frame height.
    shutter: exposure as a fraction of the frame interval (0 = no motion blur).
    supersample: each frame is rendered at this many times the resolution and box-filtered
        down (INTER_AREA), i.e. every pixel integrates its area like a camera's sensor (with
        its optical low-pass filter). 1 = point sampling: a foreground shrunk by bilinear
        warping then aliases (thin hair strands appear and vanish as their sub-pixel phase
        changes), so the ground truth itself shimmers in a way no camera records.
    """

    name: str
    fg: str
    bg: str
    frames: int = 32
    width: int = 320
    height: int = 240
    cx: float = 0.5
    cy: float = 0.55
    vx: float = 0.0
    vy: float = 0.0
    ax: float = 0.0
    ay: float = 0.0
    period: float = 32.0
    rot0: float = 0.0
    rot_per_frame: float = 0.0
    scale0: float = 1.0
    scale_amp: float = 0.0
    bvx: float = 0.0
    bvy: float = 0.0
    bzoom: float = 0.0
    fg_height: float = 0.9
    shutter: float = 0.0
    substeps: int = 1
    supersample: int = 4
    noise: float = 0.012
    crf: int = 23
    trimap_radius: int = 4
    seed: int = 0


# A slow clip, a near-static clip, a fast motion-blurred clip, and a synthetic (hair) clip.
DEFAULT_CLIPS: tuple[ClipSpec, ...] = (
    ClipSpec("static_GT25", "alphamatting:GT25", "coffee", cx=0.5, vx=0.03, bvx=0.0, fg_height=0.95, seed=1),
    ClipSpec("slow_GT05", "alphamatting:GT05", "chelsea", cx=0.45, vx=0.6, vy=-0.1, rot_per_frame=0.15,
             scale_amp=0.04, bvx=-0.4, bzoom=0.03, fg_height=0.9, seed=2),
    ClipSpec("slow_synth", "synthetic:3", "rocket", cx=0.45, cy=0.5, vx=0.5, ay=3.0, rot_per_frame=-0.2,
             scale0=1.0, scale_amp=0.06, bvx=0.3, fg_height=0.8, seed=3),
    ClipSpec("fast_GT15", "alphamatting:GT15", "astronaut", cx=0.3, vx=5.0, ay=10.0, period=20.0,
             rot_per_frame=0.8, scale_amp=0.08, bvx=-2.5, bvy=0.8, fg_height=0.85, shutter=0.5, substeps=9,
             seed=4),
)


@dataclass
class EvalClip:
    """A made clip.

    video: .mp4 path (H.264, what the pipeline reads); frames: (T,H,W,3) uint8 decoded frames;
    alpha: (T,H,W) float32 [0,1] ground truth; trimaps: (T,H,W) uint8 {0,128,255};
    trimap_pattern: PNG sequence pattern of the trimaps (``--trimap``);
    flows: (T-1,H,W,2) float32 forward motion t -> t+1 in pixels (x, y);
    fg_affines, bg_affines: (T,2,3) float64 maps (source pixel -> frame pixel) at mid-shutter.
    """

    spec: ClipSpec
    video: Path
    trimap_pattern: str
    frames: np.ndarray
    alpha: np.ndarray
    trimaps: np.ndarray
    flows: np.ndarray
    fg_affines: np.ndarray
    bg_affines: np.ndarray


def default_cache_dir() -> Path:
    return Path(os.environ.get("ALPHAGAN_TEMPORAL_CACHE", Path(tempfile.gettempdir()) / "alphagan_video_temporal"))


# --------------------------------------------------------------------------- sources

def _load_alphamatting(name: str, data_dir: Path, cache_dir: Path, max_side: int = 480) -> tuple[np.ndarray, np.ndarray]:
    """(fg (h,w,3) float32 straight colour, alpha (h,w) float32) cropped to the alpha's bbox."""
    cached = cache_dir / f"fg_{name}_{max_side}.npz"
    if cached.is_file():
        z = np.load(cached)
        return z["fg"], z["alpha"]
    img = cv2.imread(str(data_dir / "image" / f"{name}.png"), cv2.IMREAD_COLOR)
    alpha = cv2.imread(str(data_dir / "alpha" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
    if img is None or alpha is None:
        raise FileNotFoundError(f"{data_dir}/image|alpha/{name}.png not found; pass --data DIR (alphamatting-dev)")
    scale = max_side / max(img.shape[:2])
    size = (round(img.shape[1] * scale), round(img.shape[0] * scale))
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)[..., ::-1].astype(np.float64) / 255.0
    a = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA).astype(np.float64) / 255.0
    from pymatting import estimate_foreground_ml

    fg = estimate_foreground_ml(img, a)
    ys, xs = np.nonzero(a > 0)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    fg, a = fg[y0:y1, x0:x1].astype(np.float32), a[y0:y1, x0:x1].astype(np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cached, fg=fg, alpha=a)
    return fg, a


def _load_synthetic(seed: int, size: int = 320) -> tuple[np.ndarray, np.ndarray]:
    from training.synthetic import SyntheticForegrounds

    gen = SyntheticForegrounds(size=size, p_motion_blur=0.0, p_hair=1.0, p_foliage=0.0, p_mesh=0.0,
                               p_transparent=0.0)
    sample = gen.sample(np.random.default_rng(seed))
    a = sample.alpha
    ys, xs = np.nonzero(a > 0)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return sample.fg[y0:y1, x0:x1], a[y0:y1, x0:x1]


def _load_background(name: str) -> np.ndarray:
    import skimage.data as skd

    img = np.asarray(getattr(skd, name)())
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3].astype(np.float32) / 255.0


# --------------------------------------------------------------------------- motion

def _affine(scale: float, rot_deg: float, src_centre: tuple[float, float], dst_centre: tuple[float, float]) -> np.ndarray:
    """2x3 map x_dst = scale * R(rot) (x_src - src_centre) + dst_centre."""
    t = math.radians(rot_deg)
    r = scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    off = np.asarray(dst_centre) - r @ np.asarray(src_centre)
    return np.hstack([r, off[:, None]])


def _fg_affine(spec: ClipSpec, tau: float, fg_shape: tuple[int, int]) -> np.ndarray:
    h, w = fg_shape
    base = spec.fg_height * spec.height / h
    wave = math.sin(2 * math.pi * tau / spec.period)
    scale = base * spec.scale0 * (1 + spec.scale_amp * wave)
    cx = spec.cx * spec.width + spec.vx * tau + spec.ax * wave
    cy = spec.cy * spec.height + spec.vy * tau + spec.ay * math.cos(2 * math.pi * tau / spec.period)
    return _affine(scale, spec.rot0 + spec.rot_per_frame * tau, (w / 2, h / 2), (cx, cy))


def _bg_affine(spec: ClipSpec, tau: float, bg_shape: tuple[int, int]) -> np.ndarray:
    h, w = bg_shape
    cover = 1.15 * max(spec.width / w, spec.height / h) * (1 + spec.bzoom * tau / max(spec.frames, 1))
    return _affine(cover, 0.0, (w / 2 + spec.bvx * tau / cover, h / 2 + spec.bvy * tau / cover),
                   (spec.width / 2, spec.height / 2))


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """2x3 affine a o b."""
    A = np.vstack([a, [0, 0, 1]])
    B = np.vstack([b, [0, 0, 1]])
    return (A @ B)[:2]


def _invert(a: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(a)


def _flow_from_affines(a_t: np.ndarray, a_next: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H,W,2) forward displacement of frame-t pixels under a_next o a_t^-1."""
    m = _compose(a_next, _invert(a_t))
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    nx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    ny = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return np.stack([nx - xs, ny - ys], axis=-1).astype(np.float32)


# --------------------------------------------------------------------------- rendering

def _render(spec: ClipSpec, fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """-> clean frames (T,H,W,3) float32, alpha (T,H,W) float32, fg and bg affines (T,2,3).

    Every frame is composited at ``spec.supersample`` times the resolution and box-filtered
    down (area integration per pixel); the returned affines map to the output pixel grid."""
    ss = max(1, int(spec.supersample))
    size = (spec.width * ss, spec.height * ss)
    # Output pixel centre x sits at x*ss + (ss-1)/2 on the fine grid (pixel centres at integers).
    to_fine = np.array([[ss, 0.0, (ss - 1) / 2.0], [0.0, ss, (ss - 1) / 2.0]])
    prem_src = fg * alpha[..., None]
    frames, alphas, fg_aff, bg_aff = [], [], [], []
    k = max(1, spec.substeps if spec.shutter > 0 else 1)
    out_size = (spec.width, spec.height)
    for t in range(spec.frames):
        acc_p = np.zeros((size[1], size[0], 3), np.float32)
        acc_a = np.zeros((size[1], size[0]), np.float32)
        acc_b = np.zeros((size[1], size[0], 3), np.float32)
        for s in range(k):
            tau = t + ((s + 0.5) / k - 0.5) * spec.shutter if k > 1 else float(t)
            fa = _compose(to_fine, _fg_affine(spec, tau, alpha.shape))
            ba = _compose(to_fine, _bg_affine(spec, tau, bg.shape[:2]))
            p = cv2.warpAffine(prem_src, fa, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            a = cv2.warpAffine(alpha, fa, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            b = cv2.warpAffine(bg, ba, size, flags=cv2.INTER_AREA if ba[0, 0] < 1 else cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
            acc_p += p
            acc_a += a
            acc_b += (1.0 - a)[..., None] * b
        if ss > 1:
            acc_p, acc_a, acc_b = (cv2.resize(x, out_size, interpolation=cv2.INTER_AREA) for x in (acc_p, acc_a, acc_b))
        a = np.round(np.clip(acc_a / k, 0, 1) * 255.0) / 255.0  # 8-bit GT like every real GT
        frames.append(np.clip(acc_p / k + acc_b / k, 0, 1))
        alphas.append(a.astype(np.float32))
        fg_aff.append(_fg_affine(spec, float(t), alpha.shape))
        bg_aff.append(_bg_affine(spec, float(t), bg.shape[:2]))
    return np.stack(frames), np.stack(alphas), np.stack(fg_aff), np.stack(bg_aff)


def gt_trimap(alpha: np.ndarray, radius: int) -> np.ndarray:
    """(H,W) float [0,1] -> uint8 {0,128,255}: unknown = dilate(alpha > 0) - erode(alpha == 1)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    a8 = np.rint(alpha * 255)
    outer = cv2.dilate((a8 > 0).astype(np.uint8), kernel)
    inner = cv2.erode((a8 >= 255).astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE)
    tri = np.zeros(alpha.shape, np.uint8)
    tri[outer > 0] = 128
    tri[inner > 0] = 255
    return tri


def _encode_h264(path: Path, frames_u8: np.ndarray, crf: int, rate: int = 24) -> None:
    import av

    with av.open(str(path), "w") as container:
        vs = container.add_stream("libx264", rate=rate)
        vs.width, vs.height, vs.pix_fmt = frames_u8.shape[2], frames_u8.shape[1], "yuv420p"
        vs.options = {"crf": str(crf), "preset": "medium"}
        cc = vs.codec_context
        cc.color_primaries = cc.color_trc = cc.colorspace = 1
        cc.color_range = 1
        for i, rgb in enumerate(frames_u8):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            f = f.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
            f.color_primaries = f.color_trc = f.colorspace = 1
            f.color_range = 1
            f.pts = i
            for p in vs.encode(f):
                container.mux(p)
        for p in vs.encode():
            container.mux(p)


def _decode(path: Path) -> np.ndarray:
    from alphagan_video.io import open_input

    out = []
    with open_input(str(path)) as reader:
        for batch in reader.iter_batches(8):
            out.append(batch.rgb)
    return np.concatenate(out, 0)


def make_clip(spec: ClipSpec, cache_dir: Optional[Path] = None, data_dir: Path = DEFAULT_DATA) -> EvalClip:
    """Make (or load from ``cache_dir``) the clip described by ``spec``. Deterministic."""
    cache_dir = Path(cache_dir or default_cache_dir())
    key = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_dir / f"{spec.name}_{key}"
    video = folder / "clip.mp4"
    gt_file = folder / "gt.npz"
    pattern = str(folder / "trimap" / "tri_%04d.png")
    if not (video.is_file() and gt_file.is_file()):
        kind, _, arg = spec.fg.partition(":")
        if kind == "alphamatting":
            fg, alpha = _load_alphamatting(arg, Path(data_dir), cache_dir)
        elif kind == "synthetic":
            fg, alpha = _load_synthetic(int(arg))
        else:
            raise ValueError(f"ClipSpec.fg {spec.fg!r}: expected alphamatting:NAME or synthetic:SEED")
        bg = _load_background(spec.bg)
        clean, alphas, fg_aff, bg_aff = _render(spec, fg, alpha, bg)
        rng = np.random.default_rng(spec.seed)
        # Sensor noise: read noise plus a shot-noise part growing with the signal.
        sigma = spec.noise * (0.6 + 0.8 * clean)
        noisy = np.clip(clean + sigma * rng.standard_normal(clean.shape).astype(np.float32), 0, 1)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "trimap").mkdir(exist_ok=True)
        _encode_h264(video, np.rint(noisy * 255).astype(np.uint8), spec.crf)
        trimaps = np.stack([gt_trimap(a, spec.trimap_radius) for a in alphas])
        for i, tri in enumerate(trimaps):
            cv2.imwrite(pattern % i, tri)
        flows = []
        for t in range(spec.frames - 1):
            f_fg = _flow_from_affines(fg_aff[t], fg_aff[t + 1], spec.height, spec.width)
            f_bg = _flow_from_affines(bg_aff[t], bg_aff[t + 1], spec.height, spec.width)
            flows.append(np.where((alphas[t] > 0)[..., None], f_fg, f_bg))
        np.savez_compressed(gt_file, alpha=alphas, trimaps=trimaps, flows=np.stack(flows),
                            fg_affines=fg_aff, bg_affines=bg_aff)
    z = np.load(gt_file)
    return EvalClip(spec=spec, video=video, trimap_pattern=pattern, frames=_decode(video), alpha=z["alpha"],
                    trimaps=z["trimaps"], flows=z["flows"], fg_affines=z["fg_affines"], bg_affines=z["bg_affines"])


if __name__ == "__main__":  # quick look: write a contact sheet of every default clip
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sheet", type=Path, default=None, help="write a PNG contact sheet here")
    args = parser.parse_args()
    rows = []
    for spec in DEFAULT_CLIPS:
        clip = make_clip(spec, args.cache, args.data)
        print(f"{spec.name}: {clip.video} frames={len(clip.frames)} unknown/frame="
              f"{(clip.trimaps == 128).sum(axis=(1, 2)).mean():.0f}px")
        picks = [0, len(clip.frames) // 2, len(clip.frames) - 1]
        rows.append(np.hstack([clip.frames[i] for i in picks]
                              + [np.repeat((clip.alpha[i] * 255).astype(np.uint8)[..., None], 3, 2) for i in picks]))
    if args.sheet:
        cv2.imwrite(str(args.sheet), np.vstack(rows)[..., ::-1])
