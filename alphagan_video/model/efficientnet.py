"""EfficientNet-Lite0 as an atrous AlphaGAN encoder.

EfficientNet-Lite (Tan and Le 2019; the "Lite" variants drop squeeze-excitation and use ReLU6 so
they quantise well) is a stack of inverted-residual blocks (1x1 expand -> depthwise kxk -> 1x1
project). Lite0: a 3x3 stride-2 stem of 32 channels, then 16 blocks in 7 stages

    stage  blocks  kernel  stride  expand  out
    1      0       3       1       1       16
    2      1-2     3       2       6       24
    3      3-4     5       2       6       40
    4      5-7     3       2       6       80
    5      8-10    5       1       6       112
    6      11-14   5       2       6       192
    7      15      3       1       6       320

(the 1280-channel head and the classifier are not used). TensorFlow "same" padding, as in the
original network, so ImageNet weights converted from TensorFlow line up pixel for pixel.

For matting the encoder follows the AlphaGAN recipe:

* the stem takes 4 channels (RGB + trimap, more with extra inputs);
* the last stage(s) trade their stride for dilation, so the deepest features sit at output
  stride 16 (stage 6 dilated by 2) or 8 (stages 4-5 by 2, 6-7 by 4);
* it returns the stride-2 features (after block 0) with the indices of a 3x3/2 max-pool over
  them, for the decoder's max-unpooling, the stride-4 features (after block 2) for the skip, and
  the deepest features.

Normalisation is a per-channel affine map (:class:`ChannelAffine`), not BatchNorm or GroupNorm:
ImageNet BatchNorm statistics fold into it exactly, it does not depend on the batch (training
batches here are 2-32 crops), and it does not depend on the picture either, so a tile of a frame
sees the same normalisation as the full frame.

Weights start random here; ``training.pretrained`` maps ImageNet weights into this encoder for
training. The product only ever loads full generator checkpoints.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ChannelAffine", "EfficientLiteEncoder", "InvertedResidual", "LITE0_BLOCKS", "LiteBlockSpec"]


class LiteBlockSpec(tuple):
    """(kernel, stride, expand_ratio, in_channels, out_channels) of one inverted-residual block."""

    __slots__ = ()

    def __new__(cls, kernel: int, stride: int, expand: int, in_ch: int, out_ch: int):
        return super().__new__(cls, (kernel, stride, expand, in_ch, out_ch))


def _stage(repeats: int, kernel: int, stride: int, expand: int, in_ch: int, out_ch: int) -> list[LiteBlockSpec]:
    first = LiteBlockSpec(kernel, stride, expand, in_ch, out_ch)
    return [first] + [LiteBlockSpec(kernel, 1, expand, out_ch, out_ch) for _ in range(repeats - 1)]


#: The 16 blocks of EfficientNet-Lite0 (width and depth multipliers 1.0).
LITE0_BLOCKS: tuple[LiteBlockSpec, ...] = tuple(
    _stage(1, 3, 1, 1, 32, 16)
    + _stage(2, 3, 2, 6, 16, 24)
    + _stage(2, 5, 2, 6, 24, 40)
    + _stage(3, 3, 2, 6, 40, 80)
    + _stage(3, 5, 1, 6, 80, 112)
    + _stage(4, 5, 2, 6, 112, 192)
    + _stage(1, 3, 1, 6, 192, 320)
)
LITE0_STEM_CHANNELS = 32
_SKIP_BLOCK = 2  # last block at stride 4
_STRIDE2_BLOCK = 0  # last block at stride 2


class ChannelAffine(nn.Module):
    """y = x * weight + bias per channel: (B, C, H, W) -> (B, C, H, W).

    A BatchNorm layer in inference mode is exactly this map (weight = gamma / sqrt(var + eps),
    bias = beta - mean * weight); both stay trainable.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class _SameConv(nn.Conv2d):
    """Conv2d with TensorFlow "same" padding: output size ceil(input / stride) for any input.

    Stride 1 pads symmetrically inside the convolution; stride 2 pads (possibly asymmetrically,
    more on the bottom/right, as TensorFlow does) from the input size at run time.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, dilation: int = 1, groups: int = 1):
        effective = (kernel - 1) * dilation + 1
        padding = (effective - 1) // 2 if stride == 1 else 0
        super().__init__(in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation,
                         groups=groups, bias=False)
        self._effective = effective

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad order: last dim first
                out = math.ceil(size / self.stride[0])
                total = max((out - 1) * self.stride[0] + self._effective - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


class InvertedResidual(nn.Module):
    """EfficientNet-Lite block: [1x1 expand, affine, ReLU6] -> depthwise, affine, ReLU6 -> 1x1
    project, affine; + input when stride 1 and channels match. (B, in, H, W) -> (B, out, H/s, W/s)."""

    def __init__(self, spec: LiteBlockSpec, stride: int, dilation: int):
        super().__init__()
        kernel, _, expand, in_ch, out_ch = spec
        mid = in_ch * expand
        self.expand = None
        if expand != 1:
            self.expand = nn.Sequential(nn.Conv2d(in_ch, mid, 1, bias=False), ChannelAffine(mid), nn.ReLU6(inplace=True))
        self.depthwise = nn.Sequential(
            _SameConv(mid, mid, kernel, stride=stride, dilation=dilation, groups=mid), ChannelAffine(mid),
            nn.ReLU6(inplace=True),
        )
        self.project = nn.Sequential(nn.Conv2d(mid, out_ch, 1, bias=False), ChannelAffine(out_ch))
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class EfficientLiteEncoder(nn.Module):
    """EfficientNet-Lite0 encoder with atrous last stages: input (B, in_channels, H, W), H and W
    multiples of ``output_stride``. Returns (stride-2 features (B, 16, H/2, W/2), int64 max-pool
    indices of those (B, 16, H/4, W/4), stride-4 skip (B, 24, H/4, W/4), deepest features
    (B, 320, H/os, W/os)).

    ``output_stride`` 32 builds the plain (undilated) network; it exists so the ImageNet mapping
    can be checked against the classifier and is not used for matting.
    """

    def __init__(self, in_channels: int = 4, output_stride: int = 16, blocks: Sequence[LiteBlockSpec] = LITE0_BLOCKS):
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        self.stem = nn.Sequential(
            _SameConv(in_channels, LITE0_STEM_CHANNELS, 3, stride=2), ChannelAffine(LITE0_STEM_CHANNELS),
            nn.ReLU6(inplace=True),
        )
        current_stride, dilation = 2, 1
        layers = []
        for spec in blocks:
            stride = spec[1]
            if stride > 1 and current_stride * stride > output_stride:
                # DeepLab's atrous trick: keep the resolution, widen the receptive field instead.
                dilation *= stride
                stride = 1
            elif stride > 1:
                current_stride *= stride
            layers.append(InvertedResidual(spec, stride, dilation))
        self.blocks = nn.ModuleList(layers)
        self.stride2_channels = blocks[_STRIDE2_BLOCK][4]
        self.skip_in_channels = blocks[_SKIP_BLOCK][4]
        self.out_channels = blocks[-1][4]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        stride2 = skip = x
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index == _STRIDE2_BLOCK:
                stride2 = x
            elif index == _SKIP_BLOCK:
                skip = x
        # Indices only (the encoder itself downsamples by a strided convolution): where the
        # stride-2 features peak in each 3x3 window, for the decoder's max-unpooling.
        _, indices = F.max_pool2d(stride2, kernel_size=3, stride=2, padding=1, return_indices=True)
        return stride2, indices, skip, x
