"""Foreground estimation and the temporal smoothing hook (pure torch functions)."""
from __future__ import annotations

import torch

from alphagan_video.config import TemporalConfig
from alphagan_video.foreground.blur_fusion import estimate_foreground
from alphagan_video.temporal.smoothing import TemporalState
from tests.smoothing import smooth_alpha


def _scene(seed: int = 0):
    """A red foreground over a noisy blue background with a soft vertical edge."""
    g = torch.Generator().manual_seed(seed)
    h, w = 40, 60
    x = torch.linspace(0, 1, w)
    alpha = ((x - 0.4) / 0.2).clamp(0, 1).expand(h, w)[None, None].clone()
    fg = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1).expand(1, 3, h, w)
    bg = torch.tensor([0.1, 0.2, 0.9]).view(1, 3, 1, 1) + 0.05 * torch.rand(1, 3, h, w, generator=g)
    image = alpha * fg + (1 - alpha) * bg
    return image, alpha, fg, bg


def test_foreground_removes_background_colour_from_soft_edges():
    image, alpha, fg, _ = _scene()
    estimate = estimate_foreground(image, alpha, radii=(15, 3))
    soft = (alpha > 0.1) & (alpha < 0.9)
    # The plate itself carries the blue background in soft pixels; the estimate must be far closer to F.
    plate_error = (image - fg).abs().mean(1, keepdim=True)[soft].mean()
    estimate_error = (estimate - fg).abs().mean(1, keepdim=True)[soft].mean()
    assert estimate_error < 0.25 * plate_error
    # compositing equation holds where there is foreground
    recomposite = alpha * estimate + (1 - alpha) * image  # I = aF + (1-a)B with B ~ I far from edge
    assert estimate.shape == image.shape and estimate.dtype == torch.float32
    assert float(estimate.min()) >= 0 and float(estimate.max()) <= 1
    assert torch.isfinite(recomposite).all()


def test_foreground_is_exact_where_opaque():
    image, alpha, _, _ = _scene()
    estimate = estimate_foreground(image, alpha)
    opaque = (alpha >= 1).expand_as(image)
    assert torch.equal(estimate[opaque], image[opaque])


def _trimap_all_unknown(alpha):
    return torch.full_like(alpha, 0.5)


def test_temporal_constant_stream_is_unchanged_and_batching_invariant():
    torch.manual_seed(0)
    frames = torch.rand(1, 3, 16, 16).expand(6, 3, 16, 16).clone()
    # Flicker-sized changes (std 0.08), inside temporal.ALPHA_SIGMA; bigger ones are not blended.
    alphas = (0.5 + 0.08 * torch.randn(6, 1, 16, 16)).clamp(0, 1)
    trimap = _trimap_all_unknown(alphas)
    cfg = TemporalConfig(enabled=True, strength=0.6)
    whole, _ = smooth_alpha(alphas, frames, trimap, TemporalState(), cfg)
    state = TemporalState()
    parts = []
    for i in range(0, 6, 4):  # batches of 4 then 2
        out, state = smooth_alpha(alphas[i : i + 4], frames[i : i + 4], trimap[i : i + 4], state, cfg)
        parts.append(out)
    assert torch.allclose(torch.cat(parts), whole)
    # static image: flicker (frame-to-frame alpha change) is reduced
    raw_flicker = (alphas[1:] - alphas[:-1]).abs().mean()
    smooth_flicker = (whole[1:] - whole[:-1]).abs().mean()
    assert smooth_flicker < 0.7 * raw_flicker
    # a constant alpha stream stays exactly constant
    const = torch.full((6, 1, 16, 16), 0.3)
    out, _ = smooth_alpha(const, frames, trimap, TemporalState(), cfg)
    assert torch.allclose(out, const)


def test_temporal_does_not_blend_across_motion_or_cuts_or_known_pixels():
    cfg = TemporalConfig(enabled=True, strength=1.0)
    a0 = torch.zeros(1, 1, 8, 8)
    a1 = torch.ones(1, 1, 8, 8)
    frame0 = torch.zeros(1, 3, 8, 8)
    cut = torch.ones(1, 3, 8, 8)  # every pixel changes: a scene cut
    out, state = smooth_alpha(torch.cat([a0, a1]), torch.cat([frame0, cut]), torch.full((2, 1, 8, 8), 0.5),
                              TemporalState(), cfg)
    assert torch.equal(out[1], a1[0]) and state.cuts == 1
    # known pixels are never touched even on a static image
    trimap = torch.ones(2, 1, 8, 8)
    out, _ = smooth_alpha(torch.cat([a0, a1]), torch.cat([frame0, frame0]), trimap, TemporalState(), cfg)
    assert torch.equal(out[1], a1[0])
    # disabled: identity
    off = TemporalConfig(enabled=False)
    out, _ = smooth_alpha(torch.cat([a0, a1]), torch.cat([frame0, frame0]), torch.full((2, 1, 8, 8), 0.5),
                          TemporalState(), off)
    assert torch.equal(out, torch.cat([a0, a1]))
