"""Generator checkpoints: save (atomic, fp32 or fp16) and load (safe, with clear errors).

Two formats, chosen by the file extension when saving and by the file's content when loading:

* ``.safetensors`` (preferred, shipped): tensors + string metadata ``format`` =
  "alphagan-video-generator", ``format_version``, ``variant``, ``norm``, ``in_channels``,
  ``dtype`` and any user ``extra`` keys.
* ``.pt`` / ``.pth``: ``torch.save`` of a dict ``{"format", "format_version", "variant", "norm",
  "in_channels", "extra", "state_dict"}``. Loaded with ``weights_only=True``. A bare state dict
  (e.g. from another training script) also loads when ``variant`` is passed.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from alphagan_video._atomic import atomic_write
from alphagan_video._files import sha256_file
from alphagan_video._state_dict import preview, state_dict_mismatch, strip_prefixes
from alphagan_video.errors import CheckpointError, UserInputError
from alphagan_video.model.generator import GENERATOR_VARIANTS, NORM_KINDS, AlphaGANGenerator, build_generator
from alphagan_video.model.registry import DEFAULT_WEIGHTS_PATH

FORMAT_NAME = "alphagan-video-generator"
FORMAT_VERSION = 1

_RESERVED_META = {"format", "format_version", "variant", "norm", "in_channels", "dtype"}

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class GeneratorMeta:
    """What a loaded checkpoint says about itself.

    Attributes:
        path: the checkpoint file.
        variant: key of :data:`GENERATOR_VARIANTS`.
        norm: "gn" or "bn".
        in_channels: generator input channels (4 = RGB + trimap).
        sha256: first 12 hex digits of the file's SHA-256 (for logs and reproducibility).
        extra: free-form string metadata stored with the weights (e.g. training step, data).
    """

    path: Path
    variant: str
    norm: str
    in_channels: int
    sha256: str
    extra: dict[str, str] = field(default_factory=dict, hash=False)


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel / DataParallel keep the real model in .module, torch.compile in
    # ._orig_mod; the checkpoint must hold the bare generator.
    for _ in range(4):
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        elif hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        else:
            break
    return model


def save_generator(
    model: nn.Module,
    path: PathLike,
    *,
    fp16: bool = False,
    extra: Optional[dict[str, str]] = None,
) -> Path:
    """Write ``model``'s weights and architecture metadata to ``path`` atomically.

    Args:
        model: an :class:`AlphaGANGenerator` (possibly wrapped by DDP or ``torch.compile``).
        path: destination ending in ``.safetensors`` (preferred) or ``.pt``/``.pth``.
        fp16: store floating-point tensors as float16 (half the size; loading upcasts to fp32).
        extra: string metadata to store alongside (keys must not be reserved names).

    Returns:
        The path written.

    Raises:
        CheckpointError: unknown extension, not a generator, or bad ``extra``.
    """
    path = Path(path)
    bare = _unwrap(model)
    if not isinstance(bare, AlphaGANGenerator):
        raise CheckpointError(
            f"save_generator expects an AlphaGANGenerator, got {type(bare).__name__} (writing {path})"
        )
    extra = dict(extra or {})
    for key, value in extra.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise CheckpointError(f"extra metadata must map str to str, got {key!r}: {type(value).__name__}")
        if key in _RESERVED_META:
            raise CheckpointError(f"extra metadata key {key!r} is reserved; rename it (writing {path})")
    suffix = path.suffix.lower()
    if suffix not in (".safetensors", ".pt", ".pth"):
        raise CheckpointError(f"unknown checkpoint extension {path.suffix!r} in {path}; use .safetensors or .pt")

    state: dict[str, torch.Tensor] = {}
    for key, tensor in strip_prefixes(bare.state_dict()).items():
        tensor = tensor.detach().to("cpu")
        if fp16 and tensor.is_floating_point():
            tensor = tensor.half()
        state[key] = tensor.contiguous().clone()
    meta = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "variant": bare.variant,
        "norm": bare.norm,
        "in_channels": str(bare.in_channels),
        "dtype": "float16" if fp16 else "float32",
    }

    path.parent.mkdir(parents=True, exist_ok=True)
    # Temp file in the same directory, then os.replace: readers never see a half-written file.
    with atomic_write(path) as fh:
        if suffix == ".safetensors":
            from safetensors.torch import save as st_save

            fh.write(st_save(state, metadata={**extra, **meta}))
        else:
            payload = {
                **meta,
                "format_version": FORMAT_VERSION,
                "in_channels": bare.in_channels,
                "extra": extra,
                "state_dict": state,
            }
            torch.save(payload, fh)
    return path


def _read_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Return (state_dict, string metadata) of a .safetensors or torch checkpoint."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    if zipfile.is_zipfile(path) or head[:2] == b"\x80\x02":
        # torch.save zip container (or a legacy pickle): never unpickle arbitrary objects.
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for corrupt files
            raise CheckpointError(
                f"cannot read checkpoint {path}: not a valid torch checkpoint ({_one_line(exc)}); "
                "re-download or re-save it with save_generator"
            ) from None
        return _split_torch_object(obj, path)
    try:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as reader:
            metadata = dict(reader.metadata() or {})
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: not a .safetensors or torch checkpoint file "
            f"({_one_line(exc)}); re-download or re-save it with save_generator"
        ) from None
    return tensors, metadata


def _split_torch_object(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"cannot read checkpoint {path}: expected a dict, found {type(obj).__name__}; "
            "save the generator with save_generator"
        )
    metadata: dict[str, str] = {}
    state = obj
    for key in ("state_dict", "generator", "model"):
        if key in obj and isinstance(obj[key], dict):
            state = obj[key]
            for meta_key in ("format", "format_version", "variant", "norm", "in_channels"):
                if meta_key in obj and obj[meta_key] is not None:
                    metadata[meta_key] = str(obj[meta_key])
            extra = obj.get("extra")
            if isinstance(extra, dict):
                for k, v in extra.items():
                    metadata.setdefault(str(k), str(v))
            break
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(
            f"cannot read checkpoint {path}: it holds no tensors (keys: {preview(list(obj))}); "
            "save the generator with save_generator"
        )
    return tensors, metadata


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:160] + "...") if len(text) > 160 else (text or type(exc).__name__)


def _checkpoint_path(path: Optional[PathLike]) -> Path:
    """The file to load (None = the shipped weights); CheckpointError when it is not a file."""
    if path is None:
        path = DEFAULT_WEIGHTS_PATH
        if not path.is_file():
            raise CheckpointError.naming(
                f"the shipped generator weights are missing: {path}; reinstall alphagan-video from a "
                "release (the wheel includes them) or train weights with the training/ scripts and "
                "pass them with model.checkpoint PATH", "model.checkpoint"
            )
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint file not found: {path}; pass an existing .safetensors or .pt file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}; pass a .safetensors or .pt file")
    return path


def _check_format(path: Path, metadata: dict[str, str]) -> None:
    """The file is ours (``format``) and not from a newer alphagan-video (``format_version``)."""
    fmt = metadata.get("format")
    if fmt is not None and fmt != FORMAT_NAME:
        raise CheckpointError(f"checkpoint {path} has format {fmt!r}, expected {FORMAT_NAME!r}")
    version = metadata.get("format_version")
    if version is not None and version.isdigit() and int(version) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format_version {version}, newer than this alphagan-video "
            f"understands ({FORMAT_VERSION}); upgrade alphagan-video"
        )


def _choose_variant(path: Path, metadata: dict[str, str], variant: Optional[str]) -> str:
    """The generator variant: the file's own, else the requested one; they must agree."""
    file_variant = metadata.get("variant")
    if file_variant is not None and variant is not None and file_variant != variant:
        raise CheckpointError(
            f"checkpoint {path} holds variant {file_variant!r} but variant {variant!r} was requested; "
            "drop the variant option or pass a matching checkpoint"
        )
    chosen = file_variant or variant
    if chosen is None:
        raise CheckpointError.naming(
            f"checkpoint {path} does not say which generator variant it holds; pass model.variant "
            f"on the command line or variant= in Python (one of {', '.join(sorted(GENERATOR_VARIANTS))})",
            "model.variant"
        )
    if chosen not in GENERATOR_VARIANTS:
        raise CheckpointError(
            f"checkpoint {path} names unknown variant {chosen!r}; known: {', '.join(sorted(GENERATOR_VARIANTS))}"
        )
    return chosen


def _norm_and_channels(path: Path, metadata: dict[str, str], tensors: dict[str, torch.Tensor]) -> tuple[str, int]:
    """(norm, in_channels) from the metadata, else inferred from the tensors."""
    # Norm: from metadata, else inferred (BatchNorm leaves running statistics in the state dict).
    norm = metadata.get("norm") or ("bn" if any(k.endswith("running_mean") for k in tensors) else "gn")
    if norm not in NORM_KINDS:
        raise CheckpointError(f"checkpoint {path} names unknown norm {norm!r}; expected one of {NORM_KINDS}")
    in_channels_text = metadata.get("in_channels")
    if in_channels_text is not None:
        if not in_channels_text.isdigit():
            raise CheckpointError(f"checkpoint {path} has a bad in_channels value {in_channels_text!r}")
        return norm, int(in_channels_text)
    first = tensors.get("encoder.conv1.weight")
    return norm, int(first.shape[1]) if first is not None and first.ndim == 4 else 4


def _fitted_state(path: Path, model: nn.Module, tensors: dict[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """``tensors`` checked against ``model``'s state dict (names, shapes, finite values) and cast
    to its dtypes. ``what`` describes the architecture for the message."""
    expected = model.state_dict()
    parts = state_dict_mismatch(expected, tensors)
    if parts:
        raise CheckpointError(
            f"checkpoint {path} does not fit {what}: " + "; ".join(parts)
            + "; pass the matching variant or a checkpoint saved by save_generator"
        )
    # fp16 storage is upcast: the model's dtype (float32) wins; integer buffers keep their dtype.
    converted = {k: (v.to(expected[k].dtype) if v.is_floating_point() else v) for k, v in tensors.items()}
    # NaN / Inf weights (a diverged training run, a corrupt file) would turn every matte into NaN.
    for key in expected:  # the model's own order: the first bad tensor in the network
        value = converted[key]
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise CheckpointError(
                f"checkpoint {path}: tensor {key!r} has {bad} non-finite value(s) (NaN or Inf) of {value.numel()}; "
                "the weights are unusable (diverged training or a corrupt file): pass another checkpoint"
            )
    return converted


def load_generator(
    path: Optional[PathLike] = None, *, variant: Optional[str] = None
) -> tuple[AlphaGANGenerator, GeneratorMeta]:
    """Load a generator checkpoint on the CPU, in eval mode, as float32.

    Args:
        path: a ``.safetensors`` or ``.pt`` file; None = :data:`DEFAULT_WEIGHTS_PATH`.
        variant: expected variant. Needed only for files without metadata; if the file names a
            different variant, loading fails rather than silently building the wrong network.

    Returns:
        (generator, meta). Move the generator to a device yourself (``device.py`` decides).

    Raises:
        CheckpointError: file missing, not a checkpoint (corrupt), variant conflict, or weights
            that do not fit the architecture (the message names missing/unexpected keys and
            shape mismatches).
    """
    path = _checkpoint_path(path)
    tensors, metadata = _read_file(path)
    tensors = strip_prefixes(tensors)
    _check_format(path, metadata)
    chosen = _choose_variant(path, metadata, variant)
    norm, in_channels = _norm_and_channels(path, metadata, tensors)
    try:
        model = build_generator(chosen, norm, in_channels=in_channels)
    except UserInputError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from None
    what = f"generator variant {chosen!r} (norm {norm!r}, in_channels {in_channels})"
    model.load_state_dict(_fitted_state(path, model, tensors, what), strict=True)
    model.eval()
    extra = {k: v for k, v in metadata.items() if k not in _RESERVED_META}
    meta = GeneratorMeta(
        path=path,
        variant=chosen,
        norm=norm,
        in_channels=in_channels,
        sha256=sha256_file(path)[:12],
        extra=extra,
    )
    return model, meta


__all__ = [
    "DEFAULT_WEIGHTS_PATH",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GeneratorMeta",
    "load_generator",
    "save_generator",
    "strip_prefixes",
]
