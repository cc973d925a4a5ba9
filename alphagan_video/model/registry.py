"""The generator registry and the shipped weights' location, without torch.

The CLI lists the variants (a choice of the command line) and describes the shipped weights
before torch is imported; :mod:`alphagan_video.model.generator` builds the networks these specs
describe and :mod:`alphagan_video.model.checkpoint` loads the weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: Where the shipped default weights live (may be absent in a source checkout).
DEFAULT_WEIGHTS_PATH: Path = Path(__file__).resolve().parent / "weights" / "alphagan_default.safetensors"

NormKind = Literal["gn", "bn"]
NORM_KINDS: tuple[str, ...] = ("gn", "bn")


@dataclass(frozen=True)
class GeneratorSpec:
    """Architecture of one generator variant.

    Attributes:
        block: "bottleneck" (ResNet-50/101) or "basic" (ResNet-18/34); ResNet encoders only.
        layers: number of residual blocks in each of the four ResNet stages; ResNet encoders only.
        stage_planes: "planes" of each stage (output channels are planes * block expansion).
        stem_channels: channels of the stride-2 features the decoder max-unpools into (the 7x7
            stem of a ResNet; 16, the output of block 0, for EfficientNet-Lite0).
        encoder: "resnet" (:class:`~alphagan_video.model.generator.AtrousEncoder`) or "efficientnet_lite0"
            (:class:`~alphagan_video.model.efficientnet.EfficientLiteEncoder`).
        input_mean, input_std: per-channel RGB normalisation the encoder expects (ImageNet
            statistics for the ResNets; [-1, 1] scaling for EfficientNet-Lite, as it was trained).
        output_stride: 16 (stage 4 dilated) or 8 (stages 3 and 4 dilated).
        aspp_channels: width of every ASPP branch and of its projection.
        aspp_rates: atrous rates of the three 3x3 ASPP branches at ``output_stride`` 16
            (doubled automatically at output stride 8, as in DeepLabv3).
        aspp_separable: depthwise-separable atrous branches (DeepLabv3+ style) to save parameters.
        skip_channels: the stride-4 skip from stage 1 is reduced to this many channels.
        decoder_channels: widths of the decoder at stride 4, stride 2 and full resolution.
    """

    block: Literal["basic", "bottleneck"] = "basic"
    layers: tuple[int, int, int, int] = (2, 2, 2, 2)
    stage_planes: tuple[int, int, int, int] = (64, 128, 256, 512)
    stem_channels: int = 64
    output_stride: int = 16
    aspp_channels: int = 256
    aspp_rates: tuple[int, int, int] = (6, 12, 18)
    aspp_separable: bool = False
    skip_channels: int = 48
    decoder_channels: tuple[int, int, int] = (256, 64, 32)
    encoder: Literal["resnet", "efficientnet_lite0"] = "resnet"
    input_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    input_std: tuple[float, float, float] = (0.229, 0.224, 0.225)


GENERATOR_VARIANTS: dict[str, GeneratorSpec] = {
    # The paper: ResNet-50 encoder, atrous last stage (output stride 16), DeepLabv3 ASPP.
    "resnet50": GeneratorSpec(block="bottleneck", layers=(3, 4, 6, 3)),
    "resnet34": GeneratorSpec(block="basic", layers=(3, 4, 6, 3), decoder_channels=(128, 64, 32)),
    # Shippable CPU variant: <= 12.5 M parameters (<= 25 MB in fp16). The ResNet-18 encoder
    # alone is ~11.2 M, so ASPP uses separable atrous convolutions and narrower widths.
    "resnet18": GeneratorSpec(
        block="basic",
        layers=(2, 2, 2, 2),
        aspp_channels=128,
        aspp_separable=True,
        skip_channels=32,
        decoder_channels=(96, 32, 24),
    ),
    # EfficientNet-Lite0 encoder (3.4 M parameters before the ASPP), the variant that can start
    # from ImageNet weights in training (training.pretrained); same ASPP/decoder widths as
    # resnet18. Its stride-2 features (block 0) have 16 channels.
    "efficientnet_lite0": GeneratorSpec(
        encoder="efficientnet_lite0",
        stem_channels=16,
        aspp_channels=128,
        aspp_separable=True,
        skip_channels=32,
        decoder_channels=(96, 32, 24),
        input_mean=(0.5, 0.5, 0.5),
        input_std=(0.5, 0.5, 0.5),
    ),
    # Test variant: same structure, a few tens of thousands of parameters.
    "tiny": GeneratorSpec(
        block="basic",
        layers=(1, 1, 1, 1),
        stage_planes=(8, 16, 24, 32),
        stem_channels=8,
        aspp_channels=16,
        aspp_rates=(2, 4, 6),
        aspp_separable=True,
        skip_channels=8,
        decoder_channels=(16, 8, 8),
    ),
}


__all__ = ["DEFAULT_WEIGHTS_PATH", "GENERATOR_VARIANTS", "GeneratorSpec", "NORM_KINDS", "NormKind"]
