"""The AlphaGAN generator (Lutz, Amplianitis and Smolic, "AlphaGAN: Generative adversarial
networks for natural image matting", BMVC 2018), rebuilt as a plain ``nn.Module``.

Structure (paper, Sec. 3.1):

* **Encoder**: a ResNet (ResNet-50 in the paper) whose first convolution takes 4 channels
  (RGB + trimap). The last stage(s) use atrous (dilated) convolutions instead of a stride, so the
  encoder stops at output stride 16 (or 8). The stem's 3x3 max-pool returns its indices.
* **ASPP** (DeepLabv3): a 1x1 branch, three atrous 3x3 branches (rates 6/12/18 at output
  stride 16) and an image-pooling branch, concatenated and projected.
* **Decoder**: bilinear upsampling to stride 4, concatenated with a reduced skip from the first
  ResNet stage; max-unpooling with the stem's pooling indices to stride 2, concatenated with the
  stem features; bilinear upsampling to full resolution, concatenated with the network input
  (normalised RGB + trimap); a final convolution and a sigmoid give alpha.

Build generators with :func:`build_generator` from the :data:`GENERATOR_VARIANTS` registry
("resnet50" is the paper's configuration, "resnet18" the shipped CPU variant,
"efficientnet_lite0" the variant whose encoder training can start from ImageNet weights, "tiny"
the test variant). Weights start random here: the product loads trained checkpoints, and only
``training.pretrained`` maps ImageNet weights in.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from alphagan_video.errors import UserInputError
from alphagan_video.model.efficientnet import EfficientLiteEncoder, InvertedResidual
# The registry lives in a torch-free module (the CLI lists the variants without importing torch);
# it is re-exported here, where the networks it describes are built.
from alphagan_video.model.registry import GENERATOR_VARIANTS, NORM_KINDS, GeneratorSpec, NormKind


# The ResNet blocks, as torchvision defines them (same submodule names, so checkpoints and
# ImageNet weights map unchanged; same operations in the same order). Defined here rather than
# imported: importing torchvision.models loads the whole of torchvision and its compiled ops,
# ~170 MB of resident memory for four small definitions (measured with this project's CUDA
# build of torch on the CPU: 533 -> 704 MB RSS after the import).


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding = dilation, no bias (torchvision.models.resnet.conv3x3)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, groups=groups,
                     bias=False, dilation=dilation)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias (torchvision.models.resnet.conv1x1)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block (torchvision.models.resnet.BasicBlock): two 3x3 convolutions + identity."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise ValueError("BasicBlock only supports groups=1 and base_width=64")
        if dilation > 1:
            raise NotImplementedError("Dilation > 1 not supported in BasicBlock (use _DilatedBasicBlock)")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """ResNet bottleneck block (torchvision.models.resnet.Bottleneck, ResNet V1.5: stride on the 3x3)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None) -> None:
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


def _group_count(channels: int) -> int:
    """Largest divisor of ``channels`` that is <= min(32, channels // 2) (at least 1).

    32 groups is the GroupNorm paper's default; the cap at channels // 2 keeps >= 2 channels per
    group so narrow (tiny) layers do not degenerate into per-channel instance normalisation.
    """
    cap = max(1, min(32, channels // 2))
    for groups in range(cap, 0, -1):
        if channels % groups == 0:
            return groups
    return 1


def make_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Return a ``channels -> nn.Module`` factory for ``norm`` ("gn" or "bn")."""
    if norm == "gn":
        return lambda channels: nn.GroupNorm(_group_count(channels), channels)
    if norm == "bn":
        return nn.BatchNorm2d
    raise UserInputError(f"unknown norm {norm!r}; use one of {', '.join(NORM_KINDS)}")


class _DilatedBasicBlock(BasicBlock):
    """torchvision's BasicBlock refuses dilation > 1; this one dilates both 3x3 convolutions."""

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        groups: int = 1,
        base_width: int = 64,
        dilation: int = 1,
        norm_layer: Optional[Callable[[int], nn.Module]] = None,
    ) -> None:
        super().__init__(inplanes, planes, stride, downsample, norm_layer=norm_layer)
        if dilation > 1:
            self.conv1 = conv3x3(inplanes, planes, stride, dilation=dilation)
            self.conv2 = conv3x3(planes, planes, dilation=dilation)


def _conv_norm_relu(
    in_ch: int, out_ch: int, kernel: int, norm_layer: Callable[[int], nn.Module], dilation: int = 1
) -> nn.Sequential:
    padding = dilation * (kernel // 2)
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=padding, dilation=dilation, bias=False),
        norm_layer(out_ch),
        nn.ReLU(inplace=True),
    )


class AtrousEncoder(nn.Module):
    """ResNet encoder with atrous last stage(s); input (B, in_channels, H, W), H and W multiples
    of the output stride. Returns (stem features at stride 2, max-pool indices, stage-1 features
    at stride 4, deepest features at ``output_stride``)."""

    def __init__(self, spec: GeneratorSpec, in_channels: int, norm_layer: Callable[[int], nn.Module]):
        super().__init__()
        block: type[nn.Module] = Bottleneck if spec.block == "bottleneck" else _DilatedBasicBlock
        self._block = block
        self._norm_layer = norm_layer
        self.expansion = 4 if spec.block == "bottleneck" else 1
        self.inplanes = spec.stem_channels
        self.dilation = 1
        self.conv1 = nn.Conv2d(in_channels, spec.stem_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(spec.stem_channels)
        self.relu = nn.ReLU(inplace=True)
        # return_indices: the decoder max-unpools with these (AlphaGAN, after SegNet).
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, return_indices=True)
        dilate = {16: (False, False, True), 8: (False, True, True)}[spec.output_stride]
        p = spec.stage_planes
        self.layer1 = self._make_layer(p[0], spec.layers[0])
        self.layer2 = self._make_layer(p[1], spec.layers[1], stride=2, dilate=dilate[0])
        self.layer3 = self._make_layer(p[2], spec.layers[2], stride=2, dilate=dilate[1])
        self.layer4 = self._make_layer(p[3], spec.layers[3], stride=2, dilate=dilate[2])
        self.out_channels = p[3] * self.expansion
        self.skip_in_channels = p[0] * self.expansion

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        # Same logic as torchvision's ResNet._make_layer with replace_stride_with_dilation.
        norm_layer = self._norm_layer
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * self.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * self.expansion, stride),
                norm_layer(planes * self.expansion),
            )
        layers = [
            self._block(
                self.inplanes, planes, stride, downsample, dilation=previous_dilation, norm_layer=norm_layer
            )
        ]
        self.inplanes = planes * self.expansion
        for _ in range(1, blocks):
            layers.append(self._block(self.inplanes, planes, dilation=self.dilation, norm_layer=norm_layer))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))  # (B, stem, H/2, W/2)
        x, indices = self.maxpool(stem)  # (B, stem, H/4, W/4), int64 indices
        skip = self.layer1(x)  # (B, p0*exp, H/4, W/4)
        x = self.layer2(skip)
        x = self.layer3(x)
        x = self.layer4(x)  # (B, out_channels, H/os, W/os)
        return stem, indices, skip, x


def _build_encoder(spec: GeneratorSpec, in_channels: int, norm_layer: Callable[[int], nn.Module]) -> nn.Module:
    """The spec's encoder; every encoder returns (stride-2 features, their max-pool indices,
    stride-4 skip, deepest features) and has ``skip_in_channels`` and ``out_channels``."""
    if spec.encoder == "resnet":
        return AtrousEncoder(spec, in_channels, norm_layer)
    if spec.encoder == "efficientnet_lite0":
        encoder = EfficientLiteEncoder(in_channels, spec.output_stride)
        if encoder.stride2_channels != spec.stem_channels:
            raise UserInputError(
                f"stem_channels={spec.stem_channels} but EfficientNet-Lite0's stride-2 features have "
                f"{encoder.stride2_channels} channels; set stem_channels={encoder.stride2_channels}"
            )
        return encoder
    raise UserInputError(f"unknown encoder {spec.encoder!r}; use resnet or efficientnet_lite0")


class _SeparableAtrous(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, rate: int, norm_layer: Callable[[int], nn.Module]):
        super().__init__(
            nn.Conv2d(in_ch, in_ch, 3, padding=rate, dilation=rate, groups=in_ch, bias=False),
            norm_layer(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, out_ch, 1, bias=False),
            norm_layer(out_ch),
            nn.ReLU(inplace=True),
        )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabv3): (B, in_ch, h, w) -> (B, out_ch, h, w)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        rates: tuple[int, ...],
        norm_layer: Callable[[int], nn.Module],
        separable: bool = False,
    ):
        super().__init__()
        branches: list[nn.Module] = [_conv_norm_relu(in_ch, out_ch, 1, norm_layer)]
        for rate in rates:
            if separable:
                branches.append(_SeparableAtrous(in_ch, out_ch, rate, norm_layer))
            else:
                branches.append(_conv_norm_relu(in_ch, out_ch, 3, norm_layer, dilation=rate))
        self.branches = nn.ModuleList(branches)
        # Image-pooling branch without normalisation: on a 1x1 map BatchNorm fails at batch size 1
        # in training and GroupNorm collapses groups of a single value, so it is conv + bias.
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_ch, out_ch, 1), nn.ReLU(inplace=True))
        self.project = _conv_norm_relu(out_ch * (len(rates) + 2), out_ch, 1, norm_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        pooled = self.pool(x).expand(-1, -1, x.shape[-2], x.shape[-1])
        outs.append(pooled)
        return self.project(torch.cat(outs, dim=1))


class Decoder(nn.Module):
    """AlphaGAN decoder: ASPP features + skips + max-unpool indices -> alpha logits (B,1,H,W)."""

    def __init__(
        self,
        spec: GeneratorSpec,
        aspp_channels: int,
        skip_in_channels: int,
        in_channels: int,
        norm_layer: Callable[[int], nn.Module],
    ):
        super().__init__()
        d4, d2, d1 = spec.decoder_channels
        self.skip_reduce = _conv_norm_relu(skip_in_channels, spec.skip_channels, 1, norm_layer)
        self.stage4 = nn.Sequential(
            _conv_norm_relu(aspp_channels + spec.skip_channels, d4, 3, norm_layer),
            _conv_norm_relu(d4, d4, 3, norm_layer),
        )
        # Max-unpooling needs exactly the pooled tensor's channel count (the stem width).
        self.to_stem = _conv_norm_relu(d4, spec.stem_channels, 1, norm_layer)
        self.unpool = nn.MaxUnpool2d(kernel_size=3, stride=2, padding=1)
        self.stage2 = nn.Sequential(
            _conv_norm_relu(2 * spec.stem_channels, d2, 3, norm_layer),
            _conv_norm_relu(d2, d2, 3, norm_layer),
        )
        # Narrow the features *before* upsampling: full-resolution layers dominate the cost at
        # HD sizes (a 3x3 conv on 48+4 channels at 800x600 was ~23 % of ResNet-18's time).
        self.to_full = _conv_norm_relu(d2, d1, 1, norm_layer)
        self.stage1 = _conv_norm_relu(d1 + in_channels, d1, 3, norm_layer)
        self.head = nn.Conv2d(d1, 1, 3, padding=1)

    def forward(
        self,
        x: torch.Tensor,
        skip: torch.Tensor,
        indices: torch.Tensor,
        stem: torch.Tensor,
        net_input: torch.Tensor,
    ) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        x = self.stage4(_cat_features(x, self.skip_reduce(skip)))  # stride 4
        x = self.to_stem(x)
        # Under autocast max_unpool2d runs in float32: unpool in the features' own dtype instead
        # (it only moves values, so the result is the same numbers at half the memory).
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = self.unpool(x, indices, output_size=stem.shape[-2:])  # stride 2
        x = self.stage2(_cat_features(x, stem))
        x = F.interpolate(self.to_full(x), size=net_input.shape[-2:], mode="bilinear", align_corners=False)
        x = self.stage1(_cat_features(x, net_input))  # full resolution
        return self.head(x)


def _cat_features(features: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Concatenate along channels in ``features``' dtype. Under autocast the decoder's features
    are bf16 / fp16 while the network input is float32, and torch.cat would promote the whole
    full-resolution stack to float32 only for the next convolution to cast it back: the same
    numbers, but a 1080p frame spent ~30 % of the generator's CPU time in those copies and held
    ~0.5 GB more. Outside autocast both are float32 and nothing changes."""
    return torch.cat([features, other.to(features.dtype)], dim=1)


class AlphaGANGenerator(nn.Module):
    """AlphaGAN generator: (image, trimap) -> alpha.

    Build it with :func:`build_generator`. Attributes ``variant``, ``norm``, ``in_channels`` and
    ``spec`` describe the architecture (checkpoints store them).

    Example:
        >>> g = build_generator("tiny").eval()
        >>> g(torch.rand(2, 3, 47, 63), torch.full((2, 1, 47, 63), 0.5)).shape
        torch.Size([2, 1, 47, 63])
    """

    def __init__(self, spec: GeneratorSpec, *, variant: str = "custom", norm: str = "gn", in_channels: int = 4):
        super().__init__()
        if in_channels < 4:
            raise UserInputError(f"in_channels must be >= 4 (RGB + trimap), got {in_channels}")
        if spec.output_stride not in (8, 16):
            raise UserInputError(f"output_stride must be 8 or 16, got {spec.output_stride}")
        norm_layer = make_norm_layer(norm)
        self.spec = spec
        self.variant = variant
        self.norm = norm
        self.in_channels = in_channels
        self.stride = spec.output_stride
        self.register_buffer("mean", torch.tensor(spec.input_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.input_std).view(1, 3, 1, 1), persistent=False)
        self.encoder = _build_encoder(spec, in_channels, norm_layer)
        rate_scale = 16 // spec.output_stride
        rates = tuple(r * rate_scale for r in spec.aspp_rates)
        self.aspp = ASPP(self.encoder.out_channels, spec.aspp_channels, rates, norm_layer, spec.aspp_separable)
        self.decoder = Decoder(spec, spec.aspp_channels, self.encoder.skip_in_channels, in_channels, norm_layer)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # Residual branches start near identity (zero-init last norm), a standard trick that
        # helps training from scratch, which is the only option here.
        for m in self.encoder.modules():
            if isinstance(m, Bottleneck):
                nn.init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
            elif isinstance(m, InvertedResidual) and m.residual:
                nn.init.zeros_(m.project[1].weight)
        # Small head: the untrained generator predicts ~0.5 everywhere instead of saturated
        # 0/1 logits, so early training is not fighting a saturated sigmoid.
        nn.init.normal_(self.decoder.head.weight, std=1e-3)

    def num_parameters(self) -> int:
        """Total number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, image: torch.Tensor, trimap: torch.Tensor, extra: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Predict alpha.

        Args:
            image: (B, 3, H, W) float in [0, 1], RGB (normalised with ImageNet mean/std inside).
            trimap: (B, 1, H, W) float in {0, 0.5, 1} (background, unknown, foreground).
            extra: (B, in_channels - 4, H, W) float, only for variants built with in_channels > 4.

        Returns:
            alpha: (B, 1, H, W) float in [0, 1]. Any H, W >= 1 works: the input is padded by edge
            replication to a multiple of the output stride and the result cropped back.

        Raises:
            UserInputError: on wrong shapes or channel counts.
        """
        _check_bchw("image", image, 3)
        _check_bchw("trimap", trimap, 1)
        if trimap.shape[0] != image.shape[0] or trimap.shape[-2:] != image.shape[-2:]:
            raise UserInputError(
                f"trimap shape {tuple(trimap.shape)} does not match image shape {tuple(image.shape)}; "
                "expected (B,1,H,W) with the image's B, H, W"
            )
        n_extra = self.in_channels - 4
        parts = [(image - self.mean) / self.std, trimap * 2.0 - 1.0]  # trimap -> {-1, 0, 1}
        if n_extra:
            if extra is None:
                raise UserInputError(f"this generator takes {n_extra} extra input channel(s); pass extra=")
            _check_bchw("extra", extra, n_extra)
            if extra.shape[0] != image.shape[0] or extra.shape[-2:] != image.shape[-2:]:
                raise UserInputError(
                    f"extra shape {tuple(extra.shape)} does not match image shape {tuple(image.shape)}"
                )
            parts.append(extra)
        elif extra is not None:
            raise UserInputError("this generator takes no extra input channels (in_channels=4); drop extra=")
        x = torch.cat(parts, dim=1)
        height, width = x.shape[-2:]
        pad_h = (-height) % self.stride
        pad_w = (-width) % self.stride
        if pad_h or pad_w:
            # Replicate, not reflect: reflect needs pad < size, which fails for tiny inputs.
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        stem, indices, skip, deep = self.encoder(x)
        logits = self.decoder(self.aspp(deep), skip, indices, stem, x)
        return torch.sigmoid(logits[..., :height, :width])


def _check_bchw(name: str, t: object, channels: int) -> None:
    if not isinstance(t, torch.Tensor):
        raise UserInputError(f"{name}: expected a torch.Tensor (B,{channels},H,W), got {type(t).__name__}")
    if t.ndim != 4 or t.shape[1] != channels or t.shape[0] < 1 or t.shape[2] < 1 or t.shape[3] < 1:
        raise UserInputError(f"{name}: expected (B,{channels},H,W), got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise UserInputError(f"{name}: expected a float tensor in [0, 1], got dtype {t.dtype}")


def build_generator(variant: str = "resnet50", norm: str = "gn", *, in_channels: int = 4) -> AlphaGANGenerator:
    """Build a randomly initialised generator from :data:`GENERATOR_VARIANTS`.

    Args:
        variant: "resnet50" (the paper), "resnet34", "resnet18" (shipped CPU variant),
            "efficientnet_lite0" or "tiny".
        norm: "gn" (GroupNorm, robust to small batches) or "bn" (BatchNorm).
        in_channels: 4 (RGB + trimap) or more for variants with extra input channels.

    Raises:
        UserInputError: unknown variant or norm.
    """
    spec = GENERATOR_VARIANTS.get(variant)
    if spec is None:
        raise UserInputError(
            f"unknown generator variant {variant!r}; use one of {', '.join(sorted(GENERATOR_VARIANTS))}"
        )
    if norm not in NORM_KINDS:
        raise UserInputError(f"unknown norm {norm!r}; use one of {', '.join(NORM_KINDS)}")
    return AlphaGANGenerator(spec, variant=variant, norm=norm, in_channels=in_channels)


__all__ = [
    "ASPP",
    "AlphaGANGenerator",
    "AtrousEncoder",
    "Decoder",
    "GENERATOR_VARIANTS",
    "GeneratorSpec",
    "NORM_KINDS",
    "build_generator",
    "make_norm_layer",
]
