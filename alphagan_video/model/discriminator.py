"""AlphaGAN's discriminator: a PatchGAN (pix2pix, Isola et al. 2017) with a 70x70 receptive field.

As in the AlphaGAN paper, it sees the composite made with an alpha (predicted or ground truth)
over a new background, concatenated with the trimap: 4 input channels. Each output value scores
one 70x70 patch (logits; pair with ``BCEWithLogitsLoss`` or an LSGAN/hinge loss).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from alphagan_video.errors import UserInputError
from alphagan_video.model.generator import NORM_KINDS, make_norm_layer


class PatchDiscriminator(nn.Module):
    """70x70 PatchGAN: C64-C128-C256-C512 (4x4 convs; strides 2, 2, 2, 1) then a 1-channel conv.

    Input: (B, in_channels, H, W) float in [0, 1] (mapped to [-1, 1] inside).
    Output: (B, 1, H', W') logits with H' = floor(H/8) - 2 for H divisible by 8 (e.g. 320 -> 38).
    H and W must be >= 32 or so for a non-empty output.
    """

    def __init__(self, in_channels: int = 4, base_width: int = 64, norm: str = "gn", n_layers: int = 3):
        super().__init__()
        if norm not in NORM_KINDS:
            raise UserInputError(f"unknown norm {norm!r}; use one of {', '.join(NORM_KINDS)}")
        if in_channels < 1 or base_width < 1:
            raise UserInputError(f"in_channels and base_width must be >= 1, got {in_channels}, {base_width}")
        norm_layer = make_norm_layer(norm)
        self.in_channels = in_channels
        self.norm = norm
        # First layer without normalisation (pix2pix).
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        width = base_width
        for i in range(1, n_layers + 1):
            prev, width = width, base_width * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [
                nn.Conv2d(prev, width, 4, stride=stride, padding=1, bias=False),
                norm_layer(width),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)  # pix2pix initialisation
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, image: torch.Tensor, trimap: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Score patches.

        Args:
            image: (B, 3, H, W) composite in [0, 1] when ``trimap`` is given, else the full
                (B, in_channels, H, W) input (composite and trimap already concatenated).
            trimap: optional (B, 1, H, W) float in {0, 0.5, 1}.

        Returns:
            (B, 1, H', W') patch logits.
        """
        x = image if trimap is None else torch.cat([image, trimap], dim=1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise UserInputError(
                f"discriminator: expected (B,{self.in_channels},H,W) input (composite + trimap), "
                f"got {tuple(x.shape)}"
            )
        return self.model(x * 2.0 - 1.0)


def build_discriminator(norm: str = "gn", in_channels: int = 4, base_width: int = 64) -> PatchDiscriminator:
    """Build a randomly initialised 70x70 PatchGAN discriminator.

    Args:
        norm: "gn" (GroupNorm) or "bn" (BatchNorm).
        in_channels: 4 = composite RGB + trimap (the paper).
        base_width: channels of the first layer (64 in pix2pix; smaller for tests).
    """
    return PatchDiscriminator(in_channels=in_channels, base_width=base_width, norm=norm)


__all__ = ["PatchDiscriminator", "build_discriminator"]
