"""Evaluate matting methods on a folder of real photos with ground-truth alpha.

``python -m training.evaluate --data ../shared/data/alphamatting-dev [--trimap-dir trimap|trimap2]
[--checkpoint PATH] [--methods generator,refined,closed_form,pymatting_cf] [--out results.csv]``

Folder layout: ``image/NAME.png`` (RGB), ``alpha/NAME.png`` (ground truth; a 3-channel file is
read from its first channel, as the DIM MATLAB code does), ``<trimap-dir>/NAME.png`` (values
{0, 128, 255}). For every image each method predicts alpha, the prediction is quantised to 8 bits
(as a saved PNG would be), forced to the trimap in known regions, and scored with the DIM MATLAB
conventions of :mod:`alphagan_video.metrics` over the unknown region (trimap == 128):
SAD /1000, MSE raw (printed x1e3 too), Grad /1000, Conn /1000.

Methods:
  generator     the AlphaGAN generator alone (``--checkpoint``, default = shipped weights)
  refined       the product's solve: generator alpha as prior (``--mu``) plus the sampling
                (known-to-unknown flow) term with RefineConfig.flow, on the trimap after
                known-region expansion (RefineConfig.expand); run and timed as the
                pipeline runs it: expansion, sampling and Laplacian in a worker thread while
                the generator runs, then the solve (generator time included)
  refined_nogen the same solve without the generator (sampling term only): the "solve +
                sampling, no generator" row
  refined_noflow the solve with the generator prior only (flow 0): the "generator + solve" row
  refined_noexpand the product's solve without known-region expansion
  closed_form   our matting-Laplacian solve with no prior (closed-form matting)
  pymatting_cf  pymatting.estimate_alpha_cf (the reference closed-form implementation)
  refined_const the solve with a constant 0.5 prior (the "solve alone" row)
  refined_ramp  the solve with a prior ramping 0 -> 1 across the trimap band (distance based)
  pipeline      the product end to end: ``alphagan-video IMAGE -o pred.png --trimap TRIMAP
                --output-kind alpha`` (same code path as the CLI: decode, generator, refine with the
                pipeline's defaults, 16-bit PNG out), read back and scored
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import cv2
import numpy as np

from alphagan_video.config import ModelConfig, RefineConfig
from alphagan_video.errors import InputMediaError, UserInputError
from alphagan_video.metrics import force_known, score_all, to_uint8
from alphagan_video.refine import closed_form_alpha, prepare_refine, refine_alpha, solve_refine, trimap_ramp_prior

__all__ = [
    "METHODS",
    "Sample",
    "ImageResult",
    "EvalResults",
    "list_samples",
    "load_sample",
    "evaluate_folder",
    "format_table",
    "write_csv",
    "main",
]

METHODS = ("generator", "refined", "refined_nogen", "refined_noflow", "refined_noexpand", "pipeline",
           "closed_form", "pymatting_cf", "refined_const", "refined_ramp")
_NEEDS_GENERATOR = {"generator", "refined", "refined_noflow", "refined_noexpand"}
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Sample:
    """One evaluation triplet (paths)."""

    name: str
    image: Path
    alpha: Path
    trimap: Path


@dataclass(frozen=True)
class ImageResult:
    """Scores of one method on one image. seconds: wall time of the prediction only."""

    name: str
    method: str
    sad: float
    mse: float
    grad: float
    conn: float
    seconds: float


@dataclass
class EvalResults:
    """All per-image results, in evaluation order."""

    rows: list[ImageResult]

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r.method for r in self.rows))

    def mean(self, method: str) -> ImageResult:
        """Arithmetic mean over images of each metric and of the time, for one method."""
        sel = [r for r in self.rows if r.method == method]
        if not sel:
            raise KeyError(f"no results for method {method!r}; have {self.methods}")
        avg = lambda key: float(np.mean([getattr(r, key) for r in sel]))  # noqa: E731
        return ImageResult("mean", method, avg("sad"), avg("mse"), avg("grad"), avg("conn"), avg("seconds"))


def _find(folder: Path, stem: str) -> Optional[Path]:
    for ext in _IMAGE_EXTS:
        for candidate in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def list_samples(data_dir: str | Path, trimap_dir: str = "trimap") -> list[Sample]:
    """The (image, alpha, trimap) triplets of ``data_dir``, sorted by name.

    Raises:
        InputMediaError: the folder or one of its sub-folders is missing, it holds no image,
            or an image has no alpha / trimap of the same name.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InputMediaError(
            f"evaluation data folder not found: {root}; pass --data pointing at a folder with "
            "image/, alpha/ and trimap/ (e.g. ../shared/data/alphamatting-dev)"
        )
    folders = {"image": root / "image", "alpha": root / "alpha", "trimap": root / trimap_dir}
    for key, folder in folders.items():
        if not folder.is_dir():
            raise InputMediaError(
                f"{root}: missing sub-folder {folder.name}/ ({key}); expected image/, alpha/ and {trimap_dir}/"
            )
    images = sorted(p for p in folders["image"].iterdir() if p.suffix.lower() in _IMAGE_EXTS)
    if not images:
        raise InputMediaError(f"{folders['image']}: no images ({', '.join(_IMAGE_EXTS)}) found")
    samples = []
    for image in images:
        alpha = _find(folders["alpha"], image.stem)
        trimap = _find(folders["trimap"], image.stem)
        if alpha is None or trimap is None:
            missing = folders["alpha"] if alpha is None else folders["trimap"]
            raise InputMediaError(f"{image.name}: no file named {image.stem}.* in {missing}; every image needs one")
        samples.append(Sample(image.stem, image, alpha, trimap))
    return samples


def _read(path: Path) -> np.ndarray:
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputMediaError(f"cannot read image {path}; is it a valid PNG/JPEG?")
    return arr


def _to_u8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
    raise InputMediaError(f"unsupported image dtype {arr.dtype}; use 8- or 16-bit PNG")


def _first_channel(arr: np.ndarray) -> np.ndarray:
    # OpenCV loads colour as BGR(A); the DIM code reads channel 1 of RGB, i.e. index 2 here.
    # Evaluation alphas/trimaps have equal channels, so this only matters for odd files.
    return arr if arr.ndim == 2 else arr[..., 2]


def load_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read one triplet.

    Returns image (H, W, 3) uint8 RGB, gt (H, W) uint8, trimap (H, W) uint8.
    Raises InputMediaError on unreadable files or mismatched sizes.
    """
    img = _to_u8(_read(sample.image))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = np.ascontiguousarray(img[..., 2::-1])  # BGR(A) -> RGB
    gt = _to_u8(_first_channel(_read(sample.alpha)))
    trimap = _to_u8(_first_channel(_read(sample.trimap)))
    if gt.shape != img.shape[:2] or trimap.shape != img.shape[:2]:
        raise InputMediaError(
            f"{sample.name}: sizes differ: image {img.shape[:2]}, alpha {gt.shape}, trimap {trimap.shape}"
        )
    return img, gt, trimap


def trimap_to_float(trimap: np.ndarray) -> np.ndarray:
    """(H, W) uint8 {0, 128, 255} -> (H, W) float64 {0, 0.5, 1}; any value other than 0 / 255
    counts as unknown (0.5)."""
    out = np.full(trimap.shape, 0.5)
    out[trimap == 0] = 0.0
    out[trimap == 255] = 1.0
    return out


def _parse_methods(methods: Iterable[str] | str) -> list[str]:
    items = [m.strip() for m in (methods.split(",") if isinstance(methods, str) else methods) if m.strip()]
    if not items:
        raise UserInputError(f"--methods is empty; choose from {','.join(METHODS)}")
    bad = [m for m in items if m not in METHODS]
    if bad:
        raise UserInputError(f"unknown method(s) {','.join(bad)}; choose from {','.join(METHODS)}")
    return list(dict.fromkeys(items))


def evaluate_folder(
    data_dir: str | Path,
    methods: Iterable[str] | str = ("closed_form", "pymatting_cf"),
    trimap_dir: str = "trimap",
    checkpoint: Optional[str | Path] = None,
    *,
    limit: Optional[int] = None,
    mu: float = RefineConfig.mu,
    gate: float = RefineConfig.gate,
    threads: Optional[int] = None,
    device: str = "cpu",
    mixed_precision: Optional[bool] = None,
    save_dir: Optional[str | Path] = None,
    progress: Optional[Callable[[ImageResult], None]] = None,
) -> EvalResults:
    """Run ``methods`` on every triplet of ``data_dir`` and score them (DIM conventions).

    checkpoint: generator weights for ``generator`` / ``refined`` (None = shipped weights).
    limit: only the first N images (sorted by name). mu: prior strength of the refined methods;
    gate: confidence gate of ``refined`` (the other settings are RefineConfig's, as the pipeline's).
    threads: torch.set_num_threads for the generator (None = leave as is). device: torch device
    spec for the generator (see alphagan_video.device). mixed_precision: the generator's
    precision policy (device.autocast_for; None = ModelConfig.mixed_precision, as the pipeline;
    False = fp32, as ``--no-amp``). save_dir: also write each prediction as
    ``save_dir/<method>/<name>.png`` (8-bit, known regions forced). progress: called per result.
    """
    chosen = _parse_methods(methods)
    samples = list_samples(data_dir, trimap_dir)
    if limit is not None:
        if limit < 1:
            raise UserInputError(f"--limit must be >= 1, got {limit}")
        samples = samples[:limit]

    generator: Optional[Callable[[np.ndarray, np.ndarray], np.ndarray]] = None
    if _NEEDS_GENERATOR & set(chosen):
        generator = make_generator(checkpoint, device, mixed_precision, threads)

    if "pymatting_cf" in chosen:
        from pymatting import estimate_alpha_cf

    product = RefineConfig(mu=mu, gate=gate)
    # The "solve alone" rows: the prior-anchored closed-form solve without flow or expansion.
    plain = RefineConfig(mu=mu, flow=0.0, expand=0)
    prepare_pool = ThreadPoolExecutor(1, thread_name_prefix="refine-prepare")
    out_dir = Path(save_dir) if save_dir is not None else None
    rows: list[ImageResult] = []
    try:
        for sample in samples:
            img_u8, gt, tri_u8 = load_sample(sample)
            image_f = img_u8.astype(np.float64) / 255.0
            trimap_f = trimap_to_float(tri_u8)
            gen_alpha = None
            gen_seconds = 0.0
            if generator is not None:
                t0 = time.perf_counter()
                gen_alpha = generator(image_f, trimap_f)
                gen_seconds = time.perf_counter() - t0
            for method in chosen:
                t0 = time.perf_counter()
                if method == "generator":
                    alpha = gen_alpha
                elif method == "refined" and gate == 0:
                    # As the pipeline runs it (refine.frames.RefineStep.prepare): the prior-independent
                    # half of the solve in a worker thread while the generator runs, then the solve;
                    # timed end to end (generator included), so its seconds are the product's.
                    alpha = refine_overlapped(prepare_pool, generator, image_f, trimap_f, product)
                elif method == "refined":
                    # A gate needs the generator's alpha first: no overlap.
                    alpha = refine_alpha(image_f, trimap_f, gen_alpha, product)
                elif method == "refined_nogen":
                    alpha = refine_alpha(image_f, trimap_f, np.full(trimap_f.shape, 0.5), RefineConfig(mu=0.0))
                elif method == "refined_noflow":
                    alpha = refine_alpha(image_f, trimap_f, gen_alpha, dataclasses.replace(product, flow=0.0))
                elif method == "refined_noexpand":
                    alpha = refine_alpha(image_f, trimap_f, gen_alpha, dataclasses.replace(product, expand=0))
                elif method == "pipeline":
                    alpha = _run_pipeline(sample, checkpoint, device, mixed_precision)
                elif method == "closed_form":
                    alpha = closed_form_alpha(image_f, trimap_f)
                elif method == "pymatting_cf":
                    alpha = estimate_alpha_cf(image_f, trimap_f)
                elif method == "refined_const":
                    alpha = refine_alpha(image_f, trimap_f, np.full(trimap_f.shape, 0.5), plain)
                else:  # refined_ramp
                    alpha = refine_alpha(image_f, trimap_f, trimap_ramp_prior(trimap_f), plain)
                seconds = time.perf_counter() - t0
                if method in _NEEDS_GENERATOR and not (method == "refined" and gate == 0):
                    seconds += gen_seconds
                pred = force_known(to_uint8(alpha), tri_u8)
                if out_dir is not None:
                    (out_dir / method).mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(out_dir / method / f"{sample.name}.png"), pred)
                s = score_all(pred, gt, tri_u8, force=False)
                row = ImageResult(sample.name, method, s.sad, s.mse, s.grad, s.conn, seconds)
                rows.append(row)
                if progress is not None:
                    progress(row)
    finally:
        prepare_pool.shutdown(wait=True, cancel_futures=True)
    return EvalResults(rows)


def make_generator(
    checkpoint: Optional[str | Path] = None, device: str = "cpu", mixed_precision: Optional[bool] = None,
    threads: Optional[int] = None,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The generator as a function (image (H, W, 3) float [0, 1], trimap (H, W) float) -> alpha
    (H, W) float32, with the pipeline's layout (channels-last) and precision policy
    (device.autocast_for; mixed_precision None = ModelConfig's, False = fp32). threads: torch
    intra-op threads (None = leave as is). Raises UserInputError for non-RGB+trimap weights."""
    import torch

    from alphagan_video.device import autocast_for, resolve_device
    from alphagan_video.model import load_generator

    if threads is not None:
        torch.set_num_threads(int(threads))
    model, _meta = load_generator(checkpoint)
    if model.in_channels != 4:
        raise UserInputError(
            f"checkpoint {checkpoint}: generator takes {model.in_channels} input channels; "
            "evaluate supports RGB + trimap (4) generators only"
        )
    dev = resolve_device(device)
    model = model.to(dev).eval().to(memory_format=torch.channels_last)
    precision = ModelConfig.mixed_precision if mixed_precision is None else mixed_precision

    def run_generator(image_f: np.ndarray, trimap_f: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), autocast_for(dev, precision):
            x = torch.from_numpy(image_f.astype(np.float32)).permute(2, 0, 1)[None].to(dev)
            t = torch.from_numpy(trimap_f.astype(np.float32))[None, None].to(dev)
            x = x.contiguous(memory_format=torch.channels_last)
            return model(x, t)[0, 0].float().cpu().numpy()

    return run_generator


def refine_overlapped(
    pool: ThreadPoolExecutor, generator: Callable[[np.ndarray, np.ndarray], np.ndarray],
    image_f: np.ndarray, trimap_f: np.ndarray, config: RefineConfig = RefineConfig(),
) -> np.ndarray:
    """The product's refined alpha for one photo, computed as the pipeline computes it: the
    prior-independent half (``refine.prepare_refine``: expansion, sampling flow, Laplacian and,
    with uniform weighting, its factorisation) in ``pool`` while ``generator`` runs, then the
    solve. image_f: (H, W, 3) float64 [0, 1]; trimap_f: (H, W) float64 {0, 0.5, 1}; config:
    the solve's settings (its gate is not applied: gating needs the generator's alpha first).
    Returns (H, W) float32 alpha in [0, 1]."""
    pending = pool.submit(prepare_refine, image_f, trimap_f, config, factorise=True)
    prior = generator(image_f, trimap_f)
    return solve_refine(pending.result(), prior, config)


def _run_pipeline(sample: Sample, checkpoint: Optional[str | Path], device: str,
                  mixed_precision: Optional[bool] = None) -> np.ndarray:
    """alpha (H, W) float in [0, 1] from the product's own pipeline (what the CLI runs)."""
    import tempfile

    from alphagan_video.config import MaskConfig, OutputConfig, PipelineConfig, TemporalConfig, TrimapConfig
    from alphagan_video.pipeline import matte_video

    cfg = PipelineConfig(
        mask=MaskConfig(),
        trimap=TrimapConfig(trimap_path=sample.trimap),
        model=ModelConfig(checkpoint=Path(checkpoint) if checkpoint else None, device=device,
                          mixed_precision=ModelConfig.mixed_precision if mixed_precision is None else mixed_precision),
        temporal=TemporalConfig(enabled=False),
        output=OutputConfig(kind="alpha"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{sample.name}.png"
        matte_video(sample.image, out, cfg)
        matte = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    if matte is None:
        raise InputMediaError(f"pipeline output for {sample.name} could not be read back")
    if matte.ndim == 3:
        matte = matte[..., 0]
    return matte.astype(np.float64) / (65535.0 if matte.dtype == np.uint16 else 255.0)


def format_table(results: EvalResults, *, per_image: bool = True) -> str:
    """A fixed-width text table: per-image rows (optional) then the mean of each method."""
    header = f"{'image':<10} {'method':<14} {'SAD':>8} {'MSE':>8} {'MSEx1e3':>8} {'Grad':>8} {'Conn':>8} {'s/img':>7}"
    lines = [header, "-" * len(header)]

    def fmt(r: ImageResult) -> str:
        return (
            f"{r.name:<10} {r.method:<14} {r.sad:8.3f} {r.mse:8.5f} {r.mse * 1e3:8.3f} "
            f"{r.grad:8.3f} {r.conn:8.3f} {r.seconds:7.2f}"
        )

    if per_image:
        lines += [fmt(r) for r in results.rows]
        lines.append("-" * len(header))
    lines += [fmt(results.mean(m)) for m in results.methods]
    return "\n".join(lines)


def write_csv(results: EvalResults, path: str | Path) -> Path:
    """Per-image rows then one ``mean`` row per method; columns as ImageResult."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(ImageResult.__dataclass_fields__)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in results.rows + [results.mean(m) for m in results.methods]:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else v) for k, v in asdict(r).items()})
    return path


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description="Score matting methods on image/ alpha/ trimap/ folders (DIM MATLAB metrics, unknown region).",
    )
    p.add_argument("--data", required=True, help="folder with image/, alpha/ and trimap folders")
    p.add_argument("--trimap-dir", default="trimap", help="trimap sub-folder (trimap = Trimap1, trimap2)")
    p.add_argument("--checkpoint", default=None, help="generator weights (default: shipped weights)")
    p.add_argument("--methods", default="closed_form,pymatting_cf", help=f"comma list of {','.join(METHODS)}")
    p.add_argument("--mu", type=float, default=RefineConfig.mu,
                   help="prior strength of the refined methods (default: the pipeline's)")
    p.add_argument("--gate", type=float, default=RefineConfig.gate,
                   help="confidence gate of the refined method (default: the pipeline's)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the generator")
    p.add_argument("--device", default="cpu", help="generator device: cpu, cuda, cuda:N, auto")
    p.add_argument("--no-amp", action="store_true",
                   help="generator in fp32 (default: the pipeline's mixed precision, bf16 on CPUs with native bf16)")
    p.add_argument("--save-dir", default=None, help="also write predictions as <dir>/<method>/<name>.png")
    p.add_argument("--out", default=None, help="write per-image and mean rows to this CSV")
    p.add_argument("--quiet", action="store_true", help="print only the mean rows")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; returns the exit code (0 ok, 2 bad input)."""
    args = _build_parser().parse_args(argv)
    try:
        results = evaluate_folder(
            args.data, args.methods, args.trimap_dir, args.checkpoint, limit=args.limit, mu=args.mu, gate=args.gate,
            threads=args.threads, device=args.device, save_dir=args.save_dir,
            mixed_precision=False if args.no_amp else None,
        )
    except UserInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"data: {args.data}  trimaps: {args.trimap_dir}/  scored on trimap==128; SAD/Grad/Conn /1000, MSE raw")
    print(format_table(results, per_image=not args.quiet))
    if args.out:
        print(f"wrote {write_csv(results, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
