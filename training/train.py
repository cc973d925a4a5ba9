"""AlphaGAN training loop: generator + PatchGAN discriminator on on-the-fly composites.

Run: ``python -m training --config training/configs/default.json [--resume PATH] [--out DIR]
[--steps N] [--device cpu|cuda] [--set field=value ...]``; export the generator for shipping with
``python -m training --export-from RUN/last.pt --export-to alphagan_video/model/weights/alphagan_default.safetensors``.

Data-parallel training on several GPUs (or CPU processes, backend gloo) uses PyTorch DDP started
by ``torchrun``: ``torchrun --nproc_per_node 8 -m training --config ...``. ``batch_size`` is the
global batch (split evenly over the processes); losses are weighted so that the gradient equals
the single-process gradient of the same global batch; rank 0 validates, logs and saves.

Checkpoints (``OUT/last.pt``, ``OUT/best.pt``) hold generator, discriminator, both optimisers,
AMP scalers, step, samples seen, best validation score, the config and torch RNG states; they
are written atomically (temp file + ``os.replace``). Data are a pure function of (seed, global
sample index), so ``--resume`` continues exactly where the run stopped.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from alphagan_video._atomic import atomic_write
from alphagan_video.device import resolve_device
from alphagan_video.model import build_discriminator, build_generator, save_generator
from training.config import TrainConfig, coerce_override, config_to_dict, load_config
from training.schedule import BudgetPlanner, scale_schedule
from training.data import (
    DIMMattingDataset,
    IndexStream,
    MixedMattingDataset,
    SyntheticMattingDataset,
    worker_init,
)
from training.losses import (
    alpha_loss,
    composition_loss,
    discriminator_inputs,
    gan_discriminator_loss,
    gan_generator_loss,
    unknown_mask,
)

__all__ = ["build_dataset", "lr_factor", "reuse_variants", "Trainer", "validate", "export_generator", "main"]

CSV_FIELDS = ["step", "samples", "loss_g", "l_alpha", "l_comp", "l_adv", "loss_d", "lr", "samples_per_s",
              "elapsed_s", "val_sad", "val_mse"]


def build_dataset(cfg: TrainConfig, seed: Optional[int] = None) -> Dataset:
    """The training dataset for ``cfg``: synthetic, or a seeded mixture with the DIM data."""
    seed = cfg.seed if seed is None else seed
    synth = SyntheticMattingDataset(size=cfg.size, seed=seed, supersample=cfg.synth_supersample)
    if not cfg.dim_root:
        return synth
    dim = DIMMattingDataset(cfg.dim_root, cfg.dim_bg_dir, cfg.dim_list or None, size=cfg.size, seed=seed,
                            length=10**9)
    return MixedMattingDataset([synth, dim], [1.0 - cfg.dim_weight, cfg.dim_weight], seed=seed)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup over ``warmup_steps`` then cosine decay to ``min_lr_ratio`` at ``steps``."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def reuse_variants(batch: dict, times: int, rng: torch.Generator):
    """Yield ``batch``, then ``times - 1`` variants made from it on its own device.

    Each variant composites the batch's foregrounds and alphas over the background of another
    sample of the batch (a cyclic shift by 1..B-1, so never its own) and mirrors the whole batch
    left-right with probability 1/2. The variant's image is the clean composite a*F + (1-a)*B
    (the loaded image also carries the synthetic JPEG/noise degradations). Trimaps travel with
    their alphas. ``rng`` (a CPU generator) draws shifts and flips, so a seeded run repeats.

    Args:
        batch: dict of (B, C, H, W) float tensors "image", "trimap", "alpha", "fg", "bg".
        times: >= 1 batches in all.
        rng: torch.Generator on the CPU.
    """
    yield batch
    n = batch["image"].shape[0]
    for _ in range(times - 1):
        shift = int(torch.randint(1, n, (1,), generator=rng)) if n > 1 else 0
        alpha, fg, bg = batch["alpha"], batch["fg"], torch.roll(batch["bg"], shifts=shift, dims=0)
        variant = {"alpha": alpha, "fg": fg, "bg": bg, "trimap": batch["trimap"], "image": alpha * fg + (1 - alpha) * bg}
        if bool(torch.rand((), generator=rng) < 0.5):
            variant = {k: v.flip(-1) for k, v in variant.items()}
        yield variant


def _distributed_env() -> tuple[int, int, int]:
    """(world size, rank, local rank) from torchrun's environment; (1, 0, 0) without it."""
    return (int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")),
            int(os.environ.get("LOCAL_RANK", "0")))


def _amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype:
    """bf16 where the GPU has it (no loss scaling needed, fp32's range), else fp16."""
    if cfg.amp_dtype == "bf16" or (cfg.amp_dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def _atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        torch.save(obj, fh)


@torch.no_grad()
def validate(generator: torch.nn.Module, batches: Sequence[dict], device: torch.device) -> dict[str, float]:
    """Held-out synthetic validation, DIM conventions on 8-bit values over the unknown region.

    Prediction is clamped to the trimap in known regions. Returns mean per-image SAD (/1000) and
    MSE (over unknown pixels).
    """
    was_training = generator.training
    generator.eval()
    sads, mses = [], []
    for b in batches:
        img, tri, gt = (b[k].to(device) for k in ("image", "trimap", "alpha"))
        pred = generator(img, tri).float()
        unk = unknown_mask(tri)
        pred = torch.where(unk > 0, pred, tri)
        p8 = torch.round(pred * 255.0)
        g8 = torch.round(gt * 255.0)
        err = (p8 - g8) / 255.0
        for i in range(err.shape[0]):
            m = unk[i] > 0
            n = int(m.sum())
            sads.append(float(err[i].abs()[m].sum()) / 1000.0)
            mses.append(float((err[i][m] ** 2).mean()) if n else 0.0)
    generator.train(was_training)
    return {"val_sad": float(np.mean(sads)), "val_mse": float(np.mean(mses))}


def _validation_batches(cfg: TrainConfig, batch: int = 4) -> list[dict]:
    """Fixed held-out synthetic set: seed ``val_seed`` (never used for training)."""
    if cfg.val_samples <= 0:
        return []
    ds = SyntheticMattingDataset(size=cfg.size, seed=cfg.val_seed, supersample=cfg.synth_supersample)
    items = [ds[i] for i in range(cfg.val_samples)]
    out = []
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        out.append({k: torch.stack([c[k] for c in chunk]) for k in chunk[0]})
    return out


def export_generator(checkpoint: Path | str, out_path: Path | str, fp16: bool = True) -> Path:
    """Write the generator of a training checkpoint as a shippable .safetensors (fp16 by default)."""
    ckpt = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
    cfg = TrainConfig(**{**ckpt["config"], "betas": tuple(ckpt["config"]["betas"])})
    g = build_generator(cfg.variant, cfg.norm)
    g.load_state_dict(ckpt["generator"])
    extra = {
        "trained_steps": str(ckpt["step"]),
        "trained_samples": str(ckpt["samples"]),
        "train_size": str(cfg.size),
        "val_sad_synthetic": f"{ckpt.get('last_val', {}).get('val_sad', float('nan')):.4f}",
        "training_data": "synthetic composites (training/synthetic.py, scikit-image CC0/PD photos)"
        + (" + Adobe DIM" if cfg.dim_root else ""),
        "encoder_init": cfg.encoder_init,
    }
    out = save_generator(g, out_path, fp16=fp16, extra=extra)
    os.chmod(out, 0o644)  # shipped file: world-readable whatever the umask
    return out


class Trainer:
    """Owns models, optimisers, data and the step counter. ``run()`` trains to ``cfg.steps``."""

    def __init__(self, cfg: TrainConfig, device: Optional[torch.device] = None) -> None:
        self.cfg = cfg
        self.base_cfg = cfg  # the config as given; a time budget rescales self.cfg from it
        self.world, self.rank, local_rank = _distributed_env()
        self.is_main = self.rank == 0
        if cfg.batch_size % self.world:
            raise ValueError(f"batch_size={cfg.batch_size} is the global batch; it must divide evenly over "
                             f"{self.world} processes")
        self.local_batch = cfg.batch_size // self.world
        if device is None and self.world > 1 and cfg.device in ("auto", "cuda") and torch.cuda.is_available():
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        self.device = device if device is not None else resolve_device(cfg.device)
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        cv2.setNumThreads(1)
        torch.manual_seed(cfg.seed)
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.G = build_generator(cfg.variant, cfg.norm)
        if cfg.encoder_init == "imagenet":
            from training.pretrained import init_encoder_from_imagenet

            init_encoder_from_imagenet(self.G)
        self.G = self.G.to(self.device)
        self.use_gan = cfg.w_adv > 0
        self.D = build_discriminator(cfg.norm, in_channels=4, base_width=cfg.disc_width).to(self.device)
        self.cl = cfg.channels_last
        if self.cl:
            self.G = self.G.to(memory_format=torch.channels_last)
            self.D = self.D.to(memory_format=torch.channels_last)
        # Training passes go through the DDP wrappers (gradients all-reduced); validation, saving
        # and the generator's adversarial pass (no gradient for D) use the bare modules.
        self.G_train: torch.nn.Module = self.G
        self.D_train: torch.nn.Module = self.D
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G_train = DDP(self.G, device_ids=ids)
            self.D_train = DDP(self.D, device_ids=ids)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999))
        self.amp = cfg.amp and self.device.type == "cuda"
        self.amp_dtype = _amp_dtype(cfg, self.device)
        scale_loss = self.amp and self.amp_dtype == torch.float16  # bf16 has fp32's range
        self.scaler_g = torch.amp.GradScaler("cuda", enabled=scale_loss)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=scale_loss)
        self.step = 0
        self.samples = 0  # training samples (with reuse, each loaded sample counts `reuse` times)
        self.loaded = 0  # distinct samples drawn from the data stream
        self.best_val = float("inf")
        self.last_val: dict[str, float] = {}
        self.elapsed = 0.0
        self.val_fingerprint = ""
        self.dataset = build_dataset(cfg)
        self._val_batches: Optional[list[dict]] = None

    # ---------------------------------------------------------------- checkpoints
    def state(self) -> dict:
        return {
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(),
            "scaler_d": self.scaler_d.state_dict(),
            "step": self.step,
            "samples": self.samples,
            "loaded": self.loaded,
            "best_val": self.best_val,
            "last_val": self.last_val,
            "elapsed": self.elapsed,
            "val_fingerprint": self.val_fingerprint,
            "config": config_to_dict(self.cfg),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def save(self, name: str = "last.pt") -> Path:
        """Write a checkpoint (rank 0 only: all ranks hold the same weights)."""
        path = self.out / name
        if self.is_main:
            _atomic_torch_save(self.state(), path)
        return path

    def load(self, path: Path | str) -> None:
        """Restore a checkpoint written by ``save`` (architecture must match the config)."""
        ck = torch.load(str(path), map_location="cpu", weights_only=False)
        old = ck.get("config", {})
        for key in ("variant", "norm", "disc_width"):
            if key in old and old[key] != getattr(self.cfg, key):
                raise ValueError(f"--resume {path}: checkpoint has {key}={old[key]!r} but the config says "
                                 f"{getattr(self.cfg, key)!r}; use the run's config")
        self.G.load_state_dict(ck["generator"])
        self.D.load_state_dict(ck["discriminator"])
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        self.scaler_g.load_state_dict(ck["scaler_g"])
        self.scaler_d.load_state_dict(ck["scaler_d"])
        self.step = int(ck["step"])
        self.samples = int(ck["samples"])
        self.loaded = int(ck.get("loaded", ck["samples"]))
        self.best_val = float(ck["best_val"])
        self.last_val = dict(ck.get("last_val", {}))
        self.elapsed = float(ck.get("elapsed", 0.0))
        self.val_fingerprint = str(ck.get("val_fingerprint", ""))
        torch.set_rng_state(ck["torch_rng"])
        if ck.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ck["cuda_rng"])

    # ---------------------------------------------------------------- one step
    def _to(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if self.cl else t

    def train_step(self, batch: dict) -> dict[str, float]:
        cfg = self.cfg
        img, tri, gt, fg, bg = (self._to(batch[k]) for k in ("image", "trimap", "alpha", "fg", "bg"))
        factor = lr_factor(self.step, cfg)
        for group in self.opt_g.param_groups:
            group["lr"] = cfg.lr * factor
        for group in self.opt_d.param_groups:
            group["lr"] = cfg.disc_lr * factor
        adv_on = self.use_gan and self.step >= cfg.adv_start_step
        unk = unknown_mask(tri)
        ac = torch.autocast(device_type="cuda", dtype=self.amp_dtype) if self.amp else torch.autocast("cpu", enabled=False)

        # ---- generator
        with ac:
            pred = self.G_train(img, tri)
        pred = pred.float()
        l_alpha = alpha_loss(pred, gt, unk)
        l_comp = composition_loss(pred, gt, fg, bg, unk)
        loss_g = self._global_share(unk) * (cfg.w_alpha * l_alpha + cfg.w_comp * l_comp)
        l_adv = torch.zeros((), device=self.device)
        if adv_on:
            pred_k = torch.where(unk > 0, pred, tri)  # the discriminator judges only the unknown band
            fake, real, tri_d = discriminator_inputs(pred_k, gt, fg, bg, tri, cfg.new_background)
            for p in self.D.parameters():
                p.requires_grad_(False)
            with ac:
                l_adv = gan_generator_loss(self.D(fake, tri_d).float(), cfg.gan_mode)
            for p in self.D.parameters():
                p.requires_grad_(True)
            loss_g = loss_g + cfg.w_adv * l_adv
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler_g.scale(loss_g).backward()
        if cfg.grad_clip > 0:
            self.scaler_g.unscale_(self.opt_g)
            torch.nn.utils.clip_grad_norm_(self.G.parameters(), cfg.grad_clip)
        self.scaler_g.step(self.opt_g)
        self.scaler_g.update()

        # ---- discriminator
        loss_d = torch.zeros((), device=self.device)
        if adv_on:
            with ac:
                loss_d = gan_discriminator_loss(self.D_train(real, tri_d).float(),
                                                self.D_train(fake.detach(), tri_d).float(), cfg.gan_mode)
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler_d.scale(loss_d).backward()
            self.scaler_d.step(self.opt_d)
            self.scaler_d.update()

        self.step += 1
        self.samples += img.shape[0] * self.world
        return {
            "loss_g": float(loss_g.detach()),
            "l_alpha": float(l_alpha.detach()),
            "l_comp": float(l_comp.detach()),
            "l_adv": float(l_adv.detach()),
            "loss_d": float(loss_d.detach()),
            "lr": cfg.lr * factor,
        }

    def _global_share(self, unk: torch.Tensor) -> float:
        """Weight of this process's masked-mean losses so that DDP's gradient average equals the
        gradient of the masked mean over the whole global batch: world * local / global unknown
        pixel count (1.0 in a single process)."""
        if self.world == 1:
            return 1.0
        counts = unk.sum().detach().float().reshape(1)
        local = float(counts)
        torch.distributed.all_reduce(counts)
        return self.world * local / max(float(counts), 1.0)

    # ---------------------------------------------------------------- loop
    def _loader(self) -> DataLoader:
        cfg = self.cfg
        return DataLoader(
            self.dataset,
            batch_size=self.local_batch,
            sampler=IndexStream(self.loaded, self.rank, self.world, self.local_batch),
            num_workers=cfg.num_workers,
            worker_init_fn=worker_init if cfg.num_workers > 0 else None,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if cfg.num_workers > 0 else None,
        )

    def validate_and_export(self) -> dict[str, float]:
        """Synthetic validation (rank 0 only); keeps ``best.pt`` (and the export) when it improves."""
        if not self.is_main:
            return {}
        if self._val_batches is None:
            self._val_batches = _validation_batches(self.cfg)
            fp = f"{sum(float(b['alpha'].double().sum() + b['image'].double().sum()) for b in self._val_batches):.6f}"
            if fp != self.val_fingerprint:
                # A different validation set (e.g. the synthetic generator changed): old best is moot.
                self.best_val = float("inf")
                self.val_fingerprint = fp
        if not self._val_batches:
            return {}
        res = validate(self.G, self._val_batches, self.device)
        self.last_val = res
        if res["val_sad"] < self.best_val:
            self.best_val = res["val_sad"]
            best = self.save("best.pt")
            if self.cfg.export_path:
                export_generator(best, self.cfg.export_path)
        return res

    def _planner(self) -> Optional[BudgetPlanner]:
        """A planner for the time left of the budget (``elapsed`` counts earlier parts of a
        resumed run), or None without a budget."""
        if self.base_cfg.time_budget_s <= 0:
            return None
        return BudgetPlanner(deadline=time.time() + max(0.0, self.base_cfg.time_budget_s - self.elapsed))

    def _replan(self, planner: BudgetPlanner) -> None:
        """After every step: rank 0 checks the deadline and, at log steps, re-plans the total from
        its measured rate; every rank adopts rank 0's plan."""
        total = planner.observe(self.step, time.time(), replan=self.step % self.base_cfg.log_every == 0)
        if self.world > 1:
            box = torch.tensor([total], dtype=torch.int64,
                               device=self.device if self.device.type == "cuda" else "cpu")
            torch.distributed.broadcast(box, src=0)
            total = int(box)
        if total > 0:
            self.cfg = scale_schedule(self.base_cfg, total)

    def _variant_rng(self) -> torch.Generator:
        # Seeded by (seed, step): a resumed run draws the same backgrounds and flips.
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step)

    def run(self, progress: bool = True) -> dict[str, float]:
        """Train from ``self.step`` to ``cfg.steps`` (or to the time budget's planned total);
        returns the last logged values."""
        log_path = self.out / "log.csv"
        new_log = not log_path.exists()
        if self.is_main:
            (self.out / "config.json").write_text(json.dumps(config_to_dict(self.base_cfg), indent=2))
        writer_tb = self._tensorboard() if self.is_main else None
        planner = self._planner()
        bar = None
        if progress and self.is_main:
            from tqdm import tqdm

            bar = tqdm(total=self.cfg.steps if planner is None else None, initial=self.step, dynamic_ncols=True,
                       mininterval=5.0)
        last: dict[str, float] = {}
        acc: dict[str, list[float]] = {}
        t_window, n_window = time.time(), 0
        t_prev = time.time()
        with open(log_path, "a", newline="") if self.is_main else open(os.devnull, "w") as fh:
            log = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
            if new_log and self.is_main:
                log.writeheader()
            it = iter(self._loader())
            while self.step < self.cfg.steps:
                loaded = next(it)
                self.loaded += loaded["image"].shape[0] * self.world
                loaded = {k: self._to(v) for k, v in loaded.items()}
                for batch in reuse_variants(loaded, self.cfg.reuse, self._variant_rng()):
                    vals = self.train_step(batch)
                    now = time.time()
                    self.elapsed += now - t_prev
                    t_prev = now
                    n_window += batch["image"].shape[0] * self.world
                    for k, v in vals.items():
                        acc.setdefault(k, []).append(v)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{vals['loss_g']:.4f}", a=f"{vals['l_alpha']:.4f}")
                    if planner is not None:
                        self._replan(planner)
                    cfg = self.cfg
                    row_val: dict[str, float] = {}
                    if cfg.val_every > 0 and (self.step % cfg.val_every == 0 or self.step >= cfg.steps):
                        t_val = time.time()
                        row_val = self.validate_and_export()
                        if planner is not None:  # keep room for the final validation + save
                            planner.reserve_s = 2.0 * (time.time() - t_val)
                        t_prev = time.time()
                    if self.step % cfg.log_every == 0 or row_val or self.step >= cfg.steps:
                        dt = max(1e-9, time.time() - t_window)
                        last = {k: float(np.mean(v)) for k, v in acc.items()}
                        row = {"step": self.step, "samples": self.samples, **{k: f"{v:.6g}" for k, v in last.items()},
                               "samples_per_s": f"{n_window / dt:.4g}", "elapsed_s": f"{self.elapsed:.1f}",
                               "val_sad": f"{row_val['val_sad']:.5g}" if row_val else "",
                               "val_mse": f"{row_val['val_mse']:.5g}" if row_val else ""}
                        log.writerow(row)
                        fh.flush()
                        if writer_tb is not None:
                            for k, v in {**last, **row_val}.items():
                                writer_tb.add_scalar(k, v, self.step)
                        acc.clear()
                        t_window, n_window = time.time(), 0
                    if cfg.ckpt_every > 0 and self.step % cfg.ckpt_every == 0:
                        self.save("last.pt")
                    if self.step >= cfg.steps:
                        break
        self.save("last.pt")
        if bar is not None:
            bar.close()
        if writer_tb is not None:
            writer_tb.close()
        return last

    def _tensorboard(self):
        if not self.cfg.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter

            return SummaryWriter(str(self.out / "tb"))
        except Exception:  # tensorboard not installed: CSV only
            return None


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, help="JSON (or YAML) config file; omitted = defaults")
    p.add_argument("--resume", type=Path, help="checkpoint to continue from (e.g. RUN/last.pt)")
    p.add_argument("--out", type=str, help="output folder for checkpoints and logs (config out_dir)")
    p.add_argument("--steps", type=int, help="total training steps (config steps)")
    p.add_argument("--device", type=str, help="auto | cpu | cuda | cuda:N (config device)")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--size", type=int)
    p.add_argument("--variant", type=str)
    p.add_argument("--threads", type=int, help="torch CPU threads (0 = torch default)")
    p.add_argument("--time-budget", type=float, dest="time_budget_s", metavar="SECONDS",
                   help="wall-clock budget: plan the step count from the measured rate so the warm-up + cosine "
                        "schedule ends on time (config time_budget_s)")
    p.add_argument("--export-path", type=str, dest="export_path",
                   help="write the best generator (fp16 safetensors) here whenever validation improves")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override any config field")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar (logs still go to OUT/log.csv)")
    p.add_argument("--export-from", type=Path, help="export mode: training checkpoint to read")
    p.add_argument("--export-to", type=Path, help="export mode: .safetensors to write (fp16)")
    p.add_argument("--fp32", action="store_true", help="export mode: keep fp32 weights")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parse(argv)
    if args.export_from is not None:
        if args.export_to is None:
            print("--export-from needs --export-to PATH.safetensors", file=sys.stderr)
            return 2
        out = export_generator(args.export_from, args.export_to, fp16=not args.fp32)
        print(f"exported {args.export_from} -> {out} ({out.stat().st_size / 1e6:.1f} MB)")
        return 0
    overrides: dict[str, Any] = {}
    for item in args.set:
        if "=" not in item:
            print(f"--set {item!r}: expected FIELD=VALUE", file=sys.stderr)
            return 2
        k, v = item.split("=", 1)
        overrides[k.strip()] = coerce_override(k.strip(), v)
    for name, field_name in (("out", "out_dir"), ("steps", "steps"), ("device", "device"), ("batch_size", "batch_size"),
                             ("size", "size"), ("variant", "variant"), ("threads", "threads"),
                             ("export_path", "export_path"), ("time_budget_s", "time_budget_s")):
        val = getattr(args, name)
        if val is not None:
            overrides[field_name] = val
    cfg = load_config(args.config, overrides)
    if args.resume is not None and not args.out:
        # Default: keep writing next to the checkpoint being resumed.
        cfg = replace(cfg, out_dir=str(Path(args.resume).parent))
    trainer = Trainer(cfg)
    if args.resume is not None:
        trainer.load(args.resume)
    try:
        last = trainer.run(progress=not args.no_progress)
    finally:
        if trainer.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if trainer.is_main:
        print(json.dumps({"step": trainer.step, "samples": trainer.samples, "loaded": trainer.loaded, **last,
                          **trainer.last_val}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
