"""Training data: DIM-style on-the-fly compositing of foregrounds over backgrounds.

Two sources, one sample format:
- ``SyntheticMattingDataset``: procedural foregrounds from ``training.synthetic`` (no data needed).
- ``DIMMattingDataset``: the Adobe Deep Image Matting layout (``fg/``, ``alpha/``, a backgrounds
  folder such as MSCOCO train2014, a text file listing foreground names), for users who have it.

Every item is a dict of float32 tensors:
  image (3,H,W) [0,1] = alpha*fg + (1-alpha)*bg, then sometimes JPEG/noise-degraded;
  trimap (1,H,W) in {0, 0.5, 1}; alpha (1,H,W) [0,1]; fg (3,H,W) [0,1]; bg (3,H,W) [0,1].

Determinism: item ``i`` is drawn from ``np.random.default_rng([seed, i])`` -- the data depend on
the base seed and the global sample index only, never on worker ids or process history, so a
resumed run sees exactly the samples it would have seen (the training loop feeds global indices).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from training.synthetic import SyntheticForegrounds, composite

__all__ = [
    "trimap_from_alpha",
    "crop_around_unknown",
    "degrade",
    "to_item",
    "SyntheticMattingDataset",
    "DIMMattingDataset",
    "MixedMattingDataset",
    "IndexStream",
    "worker_init",
]

_IMG_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def trimap_from_alpha(alpha: np.ndarray, rng: np.random.Generator, wide_prob: float = 0.3) -> np.ndarray:
    """Random trimap for a ground-truth alpha, as float32 (H,W) in {0, 0.5, 1}.

    Uses the seed's generator (``alphagan_video.trimap.random_trimap``: elliptical kernel 2-4,
    5-14 erode/dilate iterations). With probability ``wide_prob`` the band is widened further
    (extra 3-20 px dilation of the unknown region), because the pipeline's trimaps from coarse
    person masks are often wider than the seed's.
    """
    from alphagan_video.trimap import random_trimap

    tri = random_trimap(alpha.astype(np.float32), rng)
    if rng.random() < wide_prob:
        unknown = (tri == 128).astype(np.uint8)
        r = int(rng.integers(3, 21))
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        unknown = cv2.dilate(unknown, k)
        tri = np.where(unknown > 0, 128, tri).astype(np.uint8)
    out = np.zeros(tri.shape, np.float32)
    out[tri == 128] = 0.5
    out[tri == 255] = 1.0
    return out


def crop_around_unknown(
    arrays: Sequence[np.ndarray],
    unknown: np.ndarray,
    crop: int,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Crop every array (same H, W) to crop x crop around a random unknown pixel.

    Arrays smaller than ``crop`` are padded by reflection first. When there is no unknown pixel
    the crop is centred at a random position. Returns new arrays (H=W=crop).
    """
    h, w = unknown.shape[:2]
    if h < crop or w < crop:
        ph, pw = max(0, crop - h), max(0, crop - w)
        pads = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        arrays = [np.pad(a, pads + ((0, 0),) * (a.ndim - 2), mode="reflect") for a in arrays]
        unknown = np.pad(unknown, pads, mode="constant")
        h, w = unknown.shape[:2]
    ys, xs = np.nonzero(unknown)
    if ys.size:
        j = int(rng.integers(ys.size))
        cy, cx = int(ys[j]), int(xs[j])
    else:
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
    y0 = int(np.clip(cy - crop // 2, 0, h - crop))
    x0 = int(np.clip(cx - crop // 2, 0, w - crop))
    return [np.ascontiguousarray(a[y0 : y0 + crop, x0 : x0 + crop]) for a in arrays]


def degrade(image: np.ndarray, rng: np.random.Generator, p_jpeg: float = 0.25, p_noise: float = 0.25) -> np.ndarray:
    """Camera/codec degradations of the composite only: JPEG (quality 40-95) and Gaussian noise."""
    out = image
    if rng.random() < p_jpeg:
        q = int(rng.integers(40, 96))
        u8 = (out.clip(0, 1) * 255 + 0.5).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
    if rng.random() < p_noise:
        sigma = rng.uniform(0.002, 0.03)
        out = out + rng.normal(0.0, sigma, size=out.shape).astype(np.float32)
    return out.clip(0.0, 1.0).astype(np.float32)


def to_item(image: np.ndarray, trimap: np.ndarray, alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> dict:
    """numpy HWC -> dict of CHW float32 tensors (see module docstring)."""

    def chw(a: np.ndarray) -> torch.Tensor:
        a = np.ascontiguousarray(a, dtype=np.float32)
        return torch.from_numpy(a[None] if a.ndim == 2 else a.transpose(2, 0, 1).copy())

    return {"image": chw(image), "trimap": chw(trimap), "alpha": chw(alpha), "fg": chw(fg), "bg": chw(bg)}


def _flip(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    if rng.random() < 0.5:
        arrays = [np.ascontiguousarray(a[:, ::-1]) for a in arrays]
    return arrays


class SyntheticMattingDataset(Dataset):
    """Procedural composites, ``length`` items (any index >= 0 works; length is nominal).

    size: output side in pixels. seed: base seed. min_unknown: minimum fraction of unknown
    pixels; samples below it are redrawn (up to 8 times) so every crop teaches something.
    synth_kwargs: passed to ``SyntheticForegrounds``.
    """

    def __init__(self, size: int = 320, seed: int = 0, length: int = 10**9, min_unknown: float = 0.02,
                 supersample: int = 4, **synth_kwargs) -> None:
        self.size = int(size)
        self.seed = int(seed)
        self.length = int(length)
        self.min_unknown = float(min_unknown)
        self.gen = SyntheticForegrounds(self.size, supersample, **synth_kwargs)

    def __len__(self) -> int:
        return self.length

    def sample_numpy(self, index: int) -> tuple[np.ndarray, ...]:
        """(image, trimap, alpha, fg, bg) as HWC/HW float32 numpy arrays for item ``index``."""
        rng = np.random.default_rng([self.seed, int(index)])
        for _ in range(8):
            s = self.gen.sample(rng)
            tri = trimap_from_alpha(s.alpha, rng)
            if float((tri == 0.5).mean()) >= self.min_unknown:
                break
        fg, alpha, bg, tri = _flip([s.fg, s.alpha, s.bg, tri], rng)
        image = degrade(composite(fg, alpha, bg), rng)
        return image, tri, alpha, fg, bg

    def __getitem__(self, index: int) -> dict:
        return to_item(*self.sample_numpy(index))


def _read_image(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}: missing or not an image; check the DIM data folders")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    scale = 65535.0 if img.dtype == np.uint16 else 255.0
    return img.astype(np.float32) / scale


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMG_EXT)


class DIMMattingDataset(Dataset):
    """Adobe Deep Image Matting layout, composited on the fly.

    root/fg/NAME, root/alpha/NAME (same file name; alpha is 8- or 16-bit grayscale), backgrounds
    in ``bg_dir`` (e.g. MSCOCO train2014; any images), names in ``list_file`` (one per line;
    default: every image in root/fg). Item ``i`` uses foreground ``i % n_fg`` and a random
    background. crop_sizes: crops centred on unknown pixels (clipped to the image), resized to
    ``size``. Foreground hue/saturation jitter and random rescale 0.8-1.25x before cropping.
    """

    def __init__(self, root: os.PathLike | str, bg_dir: os.PathLike | str, list_file: Optional[os.PathLike | str] = None,
                 size: int = 320, seed: int = 0, crop_sizes: Sequence[int] = (320, 480, 640),
                 length: Optional[int] = None) -> None:
        self.root = Path(root)
        fg_dir, alpha_dir = self.root / "fg", self.root / "alpha"
        for d in (fg_dir, alpha_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"DIM root {self.root}: missing folder {d.name}/; expected fg/ and alpha/ inside")
        if list_file is not None:
            names = [ln.strip() for ln in Path(list_file).read_text().splitlines() if ln.strip()]
        else:
            names = [p.name for p in _list_images(fg_dir)]
        missing = [n for n in names if not (fg_dir / n).exists() or not (alpha_dir / n).exists()]
        if missing:
            raise FileNotFoundError(
                f"DIM root {self.root}: {len(missing)} listed foreground(s) lack fg/ or alpha/ files, "
                f"e.g. {missing[0]!r}; fix the list file or the folders")
        if not names:
            raise FileNotFoundError(f"DIM root {self.root}: no foregrounds found in fg/ (or the list file is empty)")
        self.names = names
        bgd = Path(bg_dir)
        if not bgd.is_dir():
            raise FileNotFoundError(f"background folder {bgd} does not exist; pass the MSCOCO (or other) image folder")
        self.bgs = _list_images(bgd)
        if not self.bgs:
            raise FileNotFoundError(f"background folder {bgd} holds no images")
        self.size = int(size)
        self.seed = int(seed)
        self.crop_sizes = tuple(int(c) for c in crop_sizes)
        self.length = int(length) if length is not None else len(self.names) * 100

    def __len__(self) -> int:
        return self.length

    def sample_numpy(self, index: int) -> tuple[np.ndarray, ...]:
        rng = np.random.default_rng([self.seed, int(index)])
        name = self.names[int(index) % len(self.names)]
        fg = _read_image(self.root / "fg" / name)
        alpha = _read_image(self.root / "alpha" / name, cv2.IMREAD_UNCHANGED)
        if alpha.ndim == 3:
            alpha = alpha[..., 0]
        if alpha.shape != fg.shape[:2]:
            raise ValueError(f"DIM sample {name}: alpha {alpha.shape} and fg {fg.shape[:2]} sizes differ; fix the data")
        # Hue / saturation / value jitter of the foreground (HSV in float: H in [0,360)).
        hsv = cv2.cvtColor(fg, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-20, 20)) % 360.0
        hsv[..., 1] = (hsv[..., 1] * rng.uniform(0.7, 1.3)).clip(0, 1)
        hsv[..., 2] = (hsv[..., 2] * rng.uniform(0.8, 1.2)).clip(0, 1)
        fg = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).clip(0, 1)
        sc = rng.uniform(0.8, 1.25)
        h, w = alpha.shape
        nh, nw = max(8, int(round(h * sc))), max(8, int(round(w * sc)))
        fg = cv2.resize(fg, (nw, nh), interpolation=cv2.INTER_LINEAR)
        alpha = cv2.resize(alpha, (nw, nh), interpolation=cv2.INTER_LINEAR).clip(0, 1)
        bg = _read_image(self.bgs[int(rng.integers(len(self.bgs)))])
        bh, bw = bg.shape[:2]
        cover = max(nh / bh, nw / bw)
        bg = cv2.resize(bg, (max(nw, int(np.ceil(bw * cover))), max(nh, int(np.ceil(bh * cover)))),
                        interpolation=cv2.INTER_LINEAR)[:nh, :nw]
        crop = int(rng.choice(self.crop_sizes))
        crop = min(crop, max(nh, nw))
        unknown = (alpha > 0.0) & (alpha < 1.0)
        fg, alpha, bg = crop_around_unknown([fg, alpha, bg], unknown, crop, rng)
        if crop != self.size:
            interp = cv2.INTER_AREA if crop > self.size else cv2.INTER_LINEAR
            fg = cv2.resize(fg, (self.size, self.size), interpolation=interp)
            alpha = cv2.resize(alpha, (self.size, self.size), interpolation=interp)
            bg = cv2.resize(bg, (self.size, self.size), interpolation=interp)
        fg, alpha, bg = _flip([fg, alpha, bg], rng)
        alpha = alpha.clip(0, 1).astype(np.float32)
        tri = trimap_from_alpha(alpha, rng)
        image = degrade(composite(fg, alpha, bg), rng)
        return image, tri, alpha, fg.astype(np.float32), bg.astype(np.float32)

    def __getitem__(self, index: int) -> dict:
        return to_item(*self.sample_numpy(index))


class MixedMattingDataset(Dataset):
    """Item ``i`` comes from ``datasets[k]`` with probability ``weights[k]``, chosen by an rng
    seeded from (seed, i), so the mixture is deterministic per index."""

    def __init__(self, datasets: Sequence[Dataset], weights: Sequence[float], seed: int = 0) -> None:
        if len(datasets) != len(weights) or not datasets:
            raise ValueError(f"MixedMattingDataset: {len(datasets)} datasets vs {len(weights)} weights; give one weight each")
        w = np.asarray(weights, np.float64)
        self.datasets = list(datasets)
        self.p = w / w.sum()
        self.seed = int(seed)

    def __len__(self) -> int:
        return min(len(d) for d in self.datasets)

    def __getitem__(self, index: int) -> dict:
        k = int(np.random.default_rng([self.seed, 7919, int(index)]).choice(len(self.datasets), p=self.p))
        return self.datasets[k][index]


class IndexStream(torch.utils.data.Sampler):
    """Global sample indices from ``start`` on (endless): resuming at sample ``start`` replays
    exactly the data an uninterrupted run would have seen.

    Data-parallel runs split each global batch of ``per_rank * world`` consecutive indices into
    ``world`` slices of ``per_rank``: rank r takes slice r. With ``world`` 1 this is
    start, start + 1, ...; the union over ranks of one step is always the same global batch.
    """

    def __init__(self, start: int = 0, rank: int = 0, world: int = 1, per_rank: int = 1) -> None:
        if not 0 <= rank < world or per_rank < 1:
            raise ValueError(f"IndexStream rank={rank}, world={world}, per_rank={per_rank}: need 0 <= rank < world")
        self.start = int(start)
        self.rank, self.world, self.per_rank = rank, world, per_rank

    def __iter__(self):
        base = self.start
        while True:
            first = base + self.rank * self.per_rank
            yield from range(first, first + self.per_rank)
            base += self.per_rank * self.world


def worker_init(_worker_id: int) -> None:
    """DataLoader worker init: one thread per worker (the data are seeded per index, not per worker)."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
