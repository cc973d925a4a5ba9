"""The AlphaGAN objective (Lutz et al., BMVC 2018, Sec. 3.2).

L_G = w_alpha * L_alpha + w_comp * L_comp + w_adv * L_GAN(G)

- L_alpha: sqrt((a_pred - a_gt)^2 + eps^2), averaged over the trimap's unknown region
  (eps = 1e-6 as in Deep Image Matting).
- L_comp: the same Charbonnier penalty on the composite a_pred*F + (1-a_pred)*B versus the real
  composite a_gt*F + (1-a_gt)*B (true F and B, i.e. the ground-truth image before degradations),
  averaged over unknown pixels and the three colour channels.
- L_GAN: the PatchGAN discriminator sees [composite, trimap] (4 channels). Fake = composite made
  with the predicted alpha, real = composite made with the true alpha, both over the same
  background -- by default a *new* background (the batch's backgrounds rolled by one), as in the
  paper, so that the discriminator judges how plausible the matte looks in a new scene.
  ``gan_mode="bce"`` is the paper's log-likelihood GAN objective (BCE on logits, the generator
  uses the non-saturating form); ``gan_mode="lsgan"`` is the least-squares variant (Mao et al.).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "LossWeights",
    "unknown_mask",
    "alpha_loss",
    "composition_loss",
    "compose",
    "gan_generator_loss",
    "gan_discriminator_loss",
    "discriminator_inputs",
]

_EPS = 1e-6


@dataclass(frozen=True)
class LossWeights:
    """Weights of the generator objective. ``adv`` = 0 disables the adversarial term."""

    alpha: float = 0.5
    comp: float = 0.5
    adv: float = 0.05


def unknown_mask(trimap: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) float trimap in {0,0.5,1} -> (B,1,H,W) float {0,1} mask of unknown pixels."""
    return ((trimap > 0.25) & (trimap < 0.75)).to(trimap.dtype)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over mask (broadcast over channels); 0 when the mask is empty."""
    m = mask.expand_as(x)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def alpha_loss(pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """Charbonnier alpha-prediction loss over ``mask``. pred, gt, mask: (B,1,H,W). Returns a scalar."""
    return _masked_mean(torch.sqrt((pred - gt) ** 2 + eps * eps), mask)


def compose(alpha: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor) -> torch.Tensor:
    """a*F + (1-a)*B. alpha (B,1,H,W), fg/bg (B,3,H,W) -> (B,3,H,W)."""
    return alpha * fg + (1.0 - alpha) * bg


def composition_loss(
    pred: torch.Tensor, gt: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, mask: torch.Tensor, eps: float = _EPS
) -> torch.Tensor:
    """Charbonnier compositional loss over ``mask``: composite with pred vs with gt alpha."""
    diff = compose(pred, fg, bg) - compose(gt, fg, bg)
    return _masked_mean(torch.sqrt(diff**2 + eps * eps), mask)


def discriminator_inputs(
    pred: torch.Tensor, gt: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, trimap: torch.Tensor,
    new_background: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fake composite, real composite, trimap) for the discriminator, all (B,C,H,W).

    With ``new_background`` and B > 1 the backgrounds are rolled by one within the batch, so
    both composites show a background the foreground was not shot on (paper, Sec. 3.2).
    """
    if new_background and bg.shape[0] > 1:
        bg = torch.roll(bg, shifts=1, dims=0)
    return compose(pred, fg, bg), compose(gt, fg, bg), trimap


def _target(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return torch.ones_like(logits) if real else torch.zeros_like(logits)


def gan_generator_loss(fake_logits: torch.Tensor, mode: str = "bce") -> torch.Tensor:
    """Generator's adversarial loss on D(fake) logits (non-saturating BCE or LSGAN)."""
    if mode == "bce":
        return F.binary_cross_entropy_with_logits(fake_logits, _target(fake_logits, True))
    if mode == "lsgan":
        return ((fake_logits - 1.0) ** 2).mean()
    raise ValueError(f"gan_mode {mode!r}: use 'bce' or 'lsgan'")


def gan_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str = "bce") -> torch.Tensor:
    """Discriminator loss: real -> 1, fake -> 0 (halved sum, pix2pix convention)."""
    if mode == "bce":
        return 0.5 * (
            F.binary_cross_entropy_with_logits(real_logits, _target(real_logits, True))
            + F.binary_cross_entropy_with_logits(fake_logits, _target(fake_logits, False))
        )
    if mode == "lsgan":
        return 0.5 * (((real_logits - 1.0) ** 2).mean() + (fake_logits**2).mean())
    raise ValueError(f"gan_mode {mode!r}: use 'bce' or 'lsgan'")
