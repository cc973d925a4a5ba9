"""Training configuration: one frozen dataclass, loaded from JSON (or YAML when PyYAML is
installed) with command-line overrides. Defaults here are the single source of truth."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Optional

__all__ = ["TrainConfig", "load_config", "config_to_dict", "coerce_override"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on (saved into every checkpoint and the run folder).

    Model: variant (a key of ``alphagan_video.model.GENERATOR_VARIANTS``), norm ("gn"|"bn"),
      disc_width (PatchGAN first-layer width), encoder_init ("random" | "imagenet": start the
      encoder from ImageNet weights, variants in ``training.pretrained.PRETRAINED_ENCODERS``).
    Data: size (training crop side), batch_size, num_workers, seed; dim_root/dim_bg_dir/dim_list
      (Adobe DIM layout, optional) with dim_weight = share of DIM samples when given;
      synth_supersample (hair drawn at this factor).
    Optimisation: steps, lr, disc_lr, betas, weight_decay, warmup_steps then cosine decay to
      lr * min_lr_ratio; grad_clip (0 = off); amp (CUDA only) with amp_dtype ("auto" = bf16 on
      GPUs that support it, else fp16 with loss scaling; "fp16"; "bf16");
      time_budget_s (> 0: wall-clock budget; the number of steps is planned from the measured
      rate and warm-up, adversarial start, validation and checkpoint intervals keep their share
      of ``steps``, see training.schedule); reuse (train each loaded batch this many times: as
      loaded, then composited over other backgrounds of the batch and randomly mirrored, on the
      training device -- the synthetic generator is CPU-bound, the GPU is not).
    Objective: w_alpha, w_comp, w_adv (0 disables the GAN), gan_mode ("bce" paper | "lsgan"),
      adv_start_step (generator trains alone before this step), new_background.
    Bookkeeping: out_dir, log_every, ckpt_every, val_every, val_samples (held-out synthetic
      samples, seed val_seed), export_path (best-so-far fp16 export; "" = none), threads,
      device ("auto"|"cpu"|"cuda"), channels_last, tensorboard.
    """

    variant: str = "resnet18"
    norm: str = "gn"
    encoder_init: str = "random"
    disc_width: int = 64
    size: int = 320
    batch_size: int = 4
    num_workers: int = 0
    seed: int = 0
    dim_root: str = ""
    dim_bg_dir: str = ""
    dim_list: str = ""
    dim_weight: float = 0.5
    synth_supersample: int = 4
    steps: int = 100000
    lr: float = 2e-4
    disc_lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 500
    min_lr_ratio: float = 0.02
    grad_clip: float = 1.0
    amp: bool = True
    amp_dtype: str = "auto"
    time_budget_s: float = 0.0
    reuse: int = 1
    w_alpha: float = 0.5
    w_comp: float = 0.5
    w_adv: float = 0.05
    gan_mode: str = "bce"
    adv_start_step: int = 2000
    new_background: bool = True
    out_dir: str = "runs/alphagan"
    log_every: int = 10
    ckpt_every: int = 200
    val_every: int = 500
    val_samples: int = 32
    val_seed: int = 1_000_003
    export_path: str = ""
    threads: int = 0
    device: str = "auto"
    channels_last: bool = True
    tensorboard: bool = True

    def __post_init__(self) -> None:
        from alphagan_video.model.generator import GENERATOR_VARIANTS

        if self.variant not in GENERATOR_VARIANTS:
            raise ValueError(f"config variant={self.variant!r}: use one of {', '.join(sorted(GENERATOR_VARIANTS))}")
        if self.encoder_init not in ("random", "imagenet"):
            raise ValueError(f"config encoder_init={self.encoder_init!r}: use random or imagenet")
        if self.amp_dtype not in ("auto", "fp16", "bf16"):
            raise ValueError(f"config amp_dtype={self.amp_dtype!r}: use auto, fp16 or bf16")
        if self.time_budget_s < 0 or self.reuse < 1:
            raise ValueError(f"config time_budget_s={self.time_budget_s}, reuse={self.reuse}: need >= 0 and >= 1")
        if self.norm not in ("gn", "bn"):
            raise ValueError(f"config norm={self.norm!r}: use gn or bn")
        if self.gan_mode not in ("bce", "lsgan"):
            raise ValueError(f"config gan_mode={self.gan_mode!r}: use bce or lsgan")
        if self.size < 32 or self.size % 16:
            raise ValueError(f"config size={self.size}: use a multiple of 16, at least 32")
        if self.batch_size < 1 or self.steps < 0:
            raise ValueError(f"config batch_size={self.batch_size}, steps={self.steps}: need batch_size >= 1, steps >= 0")


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """JSON-serialisable dict of a config (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def coerce_override(name: str, value: str) -> Any:
    """Parse a ``--set name=value`` string into the field's type (bool/int/float/str/tuple)."""
    types = {f.name: f.type for f in fields(TrainConfig)}
    if name not in types:
        raise KeyError(f"unknown config field {name!r}; known: {', '.join(sorted(types))}")
    default = getattr(TrainConfig(), name)
    if isinstance(default, bool):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"config {name}={value!r}: expected true or false")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, tuple):
        return tuple(float(x) for x in value.strip("()[] ").split(","))
    return value


def load_config(path: Optional[Path | str] = None, overrides: Optional[Mapping[str, Any]] = None) -> TrainConfig:
    """Defaults <- file (JSON, or YAML by extension) <- overrides. Unknown keys are errors."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"training config {p} not found; pass an existing .json/.yaml file")
        text = p.read_text()
        if p.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError:
                raise ImportError(f"config {p} is YAML but PyYAML is not installed; pip install pyyaml or use JSON") from None
            data = dict(yaml.safe_load(text) or {})
        else:
            data = dict(json.loads(text))
    data.update(dict(overrides or {}))
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise KeyError(f"unknown config field(s) {unknown}; known: {', '.join(sorted(known))}")
    if "betas" in data:
        data["betas"] = tuple(float(b) for b in data["betas"])
    return TrainConfig(**data)
