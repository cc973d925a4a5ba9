"""Motion-compensated temporal smoothing and mask stabilisation (alphagan_video.temporal.smoothing).

Scenes are made here: a textured background (smooth random field) and a textured square
foreground with an exact alpha; the per-frame "model" alpha is the GT plus noise, which is
what flicker looks like.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alphagan_video.temporal import smoothing as temporal
from alphagan_video.config import TemporalConfig
from alphagan_video.errors import UserInputError
from alphagan_video.metrics import dtssd
from alphagan_video.temporal.smoothing import (
    TemporalState,
    context_frames_needed,
    estimate_motion,
    stabilize_mask,
)
from alphagan_video.trimap import make_trimap
from tests.smoothing import smooth_alpha

H, W = 64, 80


def _texture(seed: int, h: int = H, w: int = W, cells: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, cells, cells * w // h, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


def _scene(frames: int, speed: float = 0.0, noise_seed: int = 0, bg_seed: int = 1, size: int = 24,
           image_noise: float = 0.005, alpha_noise: float = 0.15, bg_speed: int = 0):
    """(image (T,3,H,W), gt alpha (T,1,H,W), noisy alpha (T,1,H,W), trimap (T,1,H,W) all unknown
    inside a band around the square). The square moves ``speed`` px/frame to the right, the
    background ``bg_speed`` (integer) px/frame to the left."""
    bg = _texture(bg_seed, H, W + 64 + abs(bg_speed) * frames)
    fg_tex = _texture(bg_seed + 10, size, size, cells=4) * 0.6 + 0.4
    g = torch.Generator().manual_seed(noise_seed)
    images, gts = [], []
    for t in range(frames):
        x0 = int(round(8 + speed * t))
        alpha = torch.zeros(1, 1, H, W)
        alpha[..., 20 : 20 + size, x0 : x0 + size] = 1.0
        img = bg[..., bg_speed * t : bg_speed * t + W].clone()
        img[..., 20 : 20 + size, x0 : x0 + size] = fg_tex
        img = (img + image_noise * torch.randn(img.shape, generator=g)).clamp(0, 1)
        images.append(img)
        gts.append(alpha)
    image, gt = torch.cat(images), torch.cat(gts)
    noisy = (gt + alpha_noise * torch.randn(gt.shape, generator=g)).clamp(0, 1)
    band = F.max_pool2d(gt, 9, 1, 4) - (-F.max_pool2d(-gt, 9, 1, 4))
    trimap = torch.where(band > 0, torch.full_like(gt, 0.5), gt)
    noisy = torch.where(trimap == 0.5, noisy, trimap)
    return image, gt, noisy, trimap


def _run(alpha, image, trimap, cfg, state=None, batch=4):
    state = state or TemporalState()
    outs = []
    for i in range(0, alpha.shape[0], batch):
        out, state = smooth_alpha(alpha[i : i + batch], image[i : i + batch], trimap[i : i + batch], state, cfg)
        outs.append(out)
    return torch.cat(outs), state


CFG = TemporalConfig(enabled=True, strength=0.7)


def test_state_object_is_carried_and_batching_does_not_matter():
    image, _, noisy, trimap = _scene(10, speed=1.0)
    whole, state = _run(noisy, image, trimap, CFG, batch=10)
    parts, state2 = _run(noisy, image, trimap, CFG, batch=3)
    assert torch.equal(whole, parts)
    assert state.frames == state2.frames == 10 and state.cuts == 0
    assert torch.equal(state.prev_alpha, whole[-1:]) and torch.equal(state.prev_image, image[-1:])
    # The input state is not modified: running from it again gives the same result.
    first, s1 = smooth_alpha(noisy[:2], image[:2], trimap[:2], TemporalState(), CFG)
    again, _ = smooth_alpha(noisy[2:4], image[2:4], trimap[2:4], s1, CFG)
    again2, _ = smooth_alpha(noisy[2:4], image[2:4], trimap[2:4], s1, CFG)
    assert torch.equal(again, again2)


def test_static_flicker_is_reduced_and_known_pixels_untouched():
    # Flicker-sized noise (std 0.06): well inside the alpha gate (temporal.ALPHA_SIGMA).
    image, gt, noisy, trimap = _scene(12, speed=0.0, alpha_noise=0.06)
    out, _ = _run(noisy, image, trimap, CFG)
    tri8 = (trimap[:, 0].numpy() * 255).round().astype(np.uint8)
    tri8[tri8 == 127] = 128
    raw = dtssd(noisy[:, 0].numpy(), gt[:, 0].numpy(), tri8)
    smoothed = dtssd(out[:, 0].numpy(), gt[:, 0].numpy(), tri8)
    assert smoothed < 0.5 * raw
    known = trimap != 0.5
    assert torch.equal(out[known], noisy[known])
    # and closer to the noise-free signal, not just steadier (mid-grey signal: noise not clipped)
    signal = 0.3 + 0.4 * gt
    g = torch.Generator().manual_seed(5)
    noisy_mid = torch.where(trimap == 0.5, signal + 0.06 * torch.randn(gt.shape, generator=g), trimap)
    out_mid, _ = _run(noisy_mid, image, trimap, CFG)
    unknown = ~known
    unknown[:3] = False  # the recursive filter needs a few frames to settle
    assert (out_mid - signal).abs()[unknown].mean() < 0.6 * (noisy_mid - signal).abs()[unknown].mean()


def test_moving_edge_is_not_ghosted(monkeypatch):
    # 5 px/frame: an unwarped blend would leave a trail of the square behind it.
    image, gt, _, trimap = _scene(9, speed=5.0)
    clean = gt.clone()  # a perfect per-frame model: smoothing must not damage it
    strong = TemporalConfig(enabled=True, strength=1.0)
    out, state = _run(clean, image, trimap, strong)
    assert state.cuts == 0
    err = (out - gt).abs()
    # The trailing region: where the square was one frame earlier but is not now.
    trail = (gt[:-1] > 0.5) & (gt[1:] < 0.5)
    assert float(err[1:][trail].mean()) < 0.05
    assert float(err[trimap == 0.5].mean()) < 0.01
    # a few pixels at the square's corners may be off (flow at a corner is ambiguous), no more
    assert float((err[trimap == 0.5] > 0.25).float().mean()) < 0.03
    # The flow found the motion (backward flow: the square came from 5 px to the left) ...
    motion = estimate_motion(image[3:4], image[4:5])
    inside = motion.flow[24:40, 32:48, 0]  # square interior in frame 4 (flow scale = full: 64 px < 180)
    assert abs(float(np.median(inside)) + 5.0) < 1.0
    # Noisy alpha on the moving edge (the whole band is a motion boundary here): with the flow
    # the blend stays about as close to the noise-free signal as the raw alpha; without motion
    # compensation (only the photometric gate) the same blend drags the old edge along.
    # A low-contrast edge (alpha step 0.15, inside the alpha gate) and a high-contrast one
    # (step 0.4: the alpha gate alone would stop a drag).
    band = trimap == 0.5
    band[:2] = False
    default = TemporalConfig(enabled=True, strength=0.5)
    errors = {}
    for step in (0.15, 0.4):
        signal = 0.3 + step * gt
        g = torch.Generator().manual_seed(11)
        noisy = torch.where(trimap == 0.5, signal + 0.05 * torch.randn(gt.shape, generator=g), trimap)
        raw_err = float((noisy - signal).abs()[band].mean())
        flow_err = float((_run(noisy, image, trimap, default)[0] - signal).abs()[band].mean())
        errors[step] = (raw_err, flow_err, noisy, signal)
    monkeypatch.setattr(temporal, "_dis_flow", lambda cur, prev: np.zeros(cur.shape + (2,), np.float32))
    for step, (raw_err, flow_err, noisy, signal) in errors.items():
        still_err = float((_run(noisy, image, trimap, default)[0] - signal).abs()[band].mean())
        assert flow_err < 1.1 * raw_err, (step, flow_err, raw_err)
        # Without flow the photometric and alpha gates refuse the moving band: no drag. (With
        # the flow it is not smoothed much either: the band of a square moving over a still
        # background is a motion boundary, which the blend leaves alone.)
        assert still_err < 1.2 * raw_err, (step, still_err, raw_err)


def test_cuts_reset_and_pans_do_not():
    image_a, _, noisy_a, trimap_a = _scene(4, speed=0.0, bg_seed=1)
    image_b, _, noisy_b, trimap_b = _scene(4, speed=0.0, bg_seed=5, noise_seed=3)
    # shot B is a different photo and its square sits elsewhere
    image_b = torch.flip(image_b, dims=[-1, -2])
    image = torch.cat([image_a, image_b])
    alpha = torch.cat([noisy_a, noisy_b])
    trimap = torch.full_like(alpha, 0.5)
    out, state = _run(alpha, image, trimap, CFG)
    assert state.cuts == 1
    assert torch.equal(out[4], alpha[4])  # first frame of the new shot is used as is
    assert not torch.equal(out[5], alpha[5])  # ... and smoothing resumes after it
    # A fast pan of the whole frame is not a cut.
    wide = _texture(7, H, W + 200)
    pan = torch.cat([wide[..., 10 * t : 10 * t + W] for t in range(6)])
    _, pan_state = _run(torch.rand(6, 1, H, W), pan, torch.full((6, 1, H, W), 0.5), CFG)
    assert pan_state.cuts == 0
    # A frame-size change restarts without error.
    small = F.interpolate(image[:2], size=(32, 40), mode="area")
    out_small, st = smooth_alpha(alpha[:2, :, :32, :40], small, trimap[:2, :, :32, :40], state, CFG)
    assert torch.equal(out_small[0], alpha[0, :, :32, :40])


def test_chunked_run_matches_whole_run_after_warm_up():
    frames, k = 28, 16
    image, _, noisy, trimap = _scene(frames, speed=0.7, noise_seed=4)
    masks = (F.avg_pool2d(noisy, 5, 1, 2) > 0.5).float()
    cfg = TemporalConfig(enabled=True, strength=0.3)
    c = context_frames_needed(cfg)
    assert c == 15 and k - c >= 0

    def run(start, stop, keep_from):
        """Frames [start, stop) in batches of 4; returns the outputs of frames >= keep_from."""
        state = TemporalState()
        out_alpha, out_mask = [], []
        for i in range(start, stop, 4):
            j = min(i + 4, stop)
            m, state = stabilize_mask(masks[i:j], image[i:j], state, cfg)
            a, state = smooth_alpha(noisy[i:j], image[i:j], trimap[i:j], state, cfg)
            out_alpha.append(a)
            out_mask.append(m)
        skip = keep_from - start
        return torch.cat(out_alpha)[skip:], torch.cat(out_mask)[skip:]

    whole_a, whole_m = run(0, frames, k)
    chunk_a, chunk_m = run(k - c, frames, k)
    assert chunk_a.shape[0] == frames - k
    assert float((chunk_a - whole_a).abs().max()) <= 1.0 / 255.0
    assert torch.equal(chunk_m, whole_m)
    # Without warm-up the first chunk frames differ (the test can fail).
    cold_a, _ = run(k, frames, k)
    assert float((cold_a - whole_a).abs().max()) > 1.0 / 255.0


def test_trimap_is_stable_on_a_static_subject():
    frames = 12
    image, gt, _, _ = _scene(frames, speed=0.0)
    g = torch.Generator().manual_seed(9)
    # A segmenter's jitter: the soft mask edge wobbles by about a pixel from frame to frame.
    soft = F.avg_pool2d(gt, 5, 1, 2)
    masks = (soft + 0.25 * (torch.rand(soft.shape, generator=g) - 0.5)).clamp(0, 1)
    cfg = TemporalConfig(enabled=True, strength=0.7)
    stable, state = stabilize_mask(masks, image, TemporalState(), cfg)
    raw_tri = make_trimap(masks, 6)
    stable_tri = make_trimap(stable, 6)
    raw_flips = float((raw_tri[1:] != raw_tri[:-1]).float().mean())
    stable_flips = float((stable_tri[1:] != stable_tri[:-1]).float().mean())
    assert raw_flips > 0.005
    assert stable_flips < 0.2 * raw_flips
    assert state.prev_mask_binary is not None and set(stable.unique().tolist()) <= {0.0, 1.0}
    # still follows the subject: the stable mask agrees with the GT almost everywhere
    assert float(((stable > 0.5) != (gt > 0.5)).float().mean()) < 0.02
    # off: unchanged
    same, _ = stabilize_mask(masks, image, TemporalState(), TemporalConfig(enabled=False))
    assert torch.equal(same, masks)


def test_context_frames_needed_and_bad_shapes():
    assert context_frames_needed(TemporalConfig(enabled=False)) == 0
    assert context_frames_needed(TemporalConfig(strength=0.0)) == 0
    assert context_frames_needed(TemporalConfig(strength=1.0)) > context_frames_needed(TemporalConfig(strength=0.3))
    with pytest.raises(UserInputError, match=r"image expected \(B,3,H,W\)"):
        stabilize_mask(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), TemporalState(), CFG)


def _noisy_green_screen(path: str, frames: int, width: int = 64, height: int = 48) -> None:
    """FFV1 clip: a magenta square drifting 1 px/frame over a noisy green screen."""
    import av

    rng = np.random.default_rng(0)
    with av.open(path, "w") as c:
        s = c.add_stream("ffv1", rate=24)
        s.width, s.height, s.pix_fmt = width, height, "bgr0"
        for i in range(frames):
            rgb = np.empty((height, width, 3), np.float64)
            rgb[:] = (20, 180, 60)
            rgb[14:34, 10 + i : 30 + i] = (200, 40, 160)
            rgb = np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.mark.parametrize("refine", [False, True])
def test_chain_chunk_warm_up_matches_whole_run(tmp_path, refine):
    """Through the pipeline (chroma mask -> stabilize_mask -> trimap -> tiny generator ->
    smooth_alpha, or with refine the solve with the warped previous alpha as a prior): a chunk
    warmed up on context frames (engine.run's warm-up work) equals the whole run."""
    from alphagan_video.config import MaskConfig, ModelConfig, OutputConfig, PipelineConfig, RefineConfig, TrimapConfig
    from alphagan_video.io import open_input
    from alphagan_video.model import build_generator, save_generator
    from alphagan_video.engine import Window, run as run_engine
    from alphagan_video.pipeline import build_chain
    from alphagan_video.stages.temporal import TemporalStage

    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.safetensors"
    save_generator(build_generator("tiny"), ckpt)
    video = str(tmp_path / "green.mkv")
    frames, k = 22, 18
    _noisy_green_screen(video, frames)
    # A strong in-solve temporal weight with refine, so the warm-up visibly matters; no
    # known-region expansion, which would settle nearly every band pixel of this flat-coloured
    # clip before the solve and leave the temporal prior nothing to do.
    temporal_cfg = TemporalConfig(enabled=True, strength=0.3, solve_weight=1.0)
    c = context_frames_needed(temporal_cfg)
    cfg = PipelineConfig(mask=MaskConfig(source="chroma"), trimap=TrimapConfig(band_px=4),
                         model=ModelConfig(checkpoint=ckpt, batch_size=4, device="cpu"),
                         refine=RefineConfig(enabled=refine, expand=0),
                         temporal=temporal_cfg, output=OutputConfig(kind="alpha"))

    def run(start: int, warm_from: int) -> np.ndarray:
        out = []
        with open_input(video) as reader, build_chain(reader.info, cfg) as chain:
            run_engine(reader.iter_batches(1, start=warm_from, stop=frames), chain.stages,
                       lambda work: out.append(work.output.alpha), overlap=False, window=Window(start=start))
            solve = next(stage.solve for stage in chain.stages if isinstance(stage, TemporalStage))
            assert solve.state.prev_mask_binary is not None  # the mask stage ran in the pipeline
        return np.concatenate(out)

    whole = run(0, 0)[k:]
    chunk = run(k, k - c)
    assert chunk.shape == whole.shape == (frames - k, 48, 64)
    assert float(np.abs(chunk - whole).max()) <= 1.0 / 255.0
    cold = run(k, k)  # no warm-up: the first chunk frames differ (the test can fail)
    assert float(np.abs(cold - whole).max()) > (1.0 if refine else 2.0) / 255.0


def test_large_alpha_changes_are_not_blended_on_a_static_picture():
    """The alpha gate: on an unchanged picture the flow is perfect, but a jump of alpha far
    above flicker size (content the picture does not show, e.g. a missed motion) is kept."""
    image, gt, _noisy, trimap = _scene(2, speed=0.0)
    image = image[:1].repeat(2, 1, 1, 1)
    alpha = torch.where(trimap == 0.5, torch.full_like(gt, 0.2), trimap)
    alpha[1] = torch.where(trimap[1] == 0.5, torch.full_like(gt[1], 0.9), trimap[1])  # +0.7
    out, _ = _run(alpha, image, trimap, CFG, batch=2)
    unknown = trimap[1] == 0.5
    assert (out[1][unknown] - 0.9).abs().max() < 0.01
    small = alpha.clone()
    small[1] = torch.where(unknown, torch.full_like(gt[1], 0.25), trimap[1])  # +0.05: flicker
    out_small, _ = _run(small, image, trimap, CFG, batch=2)
    assert (out_small[1][unknown] - 0.2).abs().mean() < 0.03  # mostly the previous frame's value


def _smooth_by_frame(cfg, image, alpha, trimap, change=None, state=None, on_unknown=False):
    """AlphaSmoother frame by frame; ``change(i, a, prior)`` may replace a frame's alpha between
    the prior and the blend (what the pipeline's refine does); ``on_unknown``: the prior is
    given the trimap (computed on its unknown pixels only). -> (alphas, priors, smoother)."""
    smoother = temporal.AlphaSmoother(cfg, state or TemporalState())
    out, priors = [], []
    for i in range(alpha.shape[0]):
        img = image[i : i + 1]
        prior = smoother.prior(img, trimap[i : i + 1] if on_unknown else None)
        priors.append(prior)
        a = alpha[i : i + 1] if change is None else change(i, alpha[i : i + 1], prior)
        out.append(smoother.blend(img, a, prior, trimap[i : i + 1]))
    return torch.cat(out), priors, smoother


@pytest.mark.parametrize("speed,bg_speed", [(0.0, 0), (1.5, 2)])
def test_prior_on_the_unknown_pixels_is_the_whole_frame_prior_there(speed, bg_speed):
    """Given the trimap, the prior is computed on the unknown pixels only: bit-identical there
    (warped alpha and weight) to the whole-frame prior, weight 0 elsewhere, same blended output."""
    image, gt, noisy, trimap = _scene(6, speed=speed, bg_speed=bg_speed)
    whole, whole_priors, _ = _smooth_by_frame(CFG, image, noisy, trimap)
    band, band_priors, _ = _smooth_by_frame(CFG, image, noisy, trimap, on_unknown=True)
    assert torch.equal(whole, band)
    for i, (a, b) in enumerate(zip(whole_priors[1:], band_priors[1:]), start=1):
        unknown = trimap[i : i + 1] == 0.5
        assert unknown.any() and (~unknown).any()
        assert torch.equal(a.warped[unknown], b.warped[unknown])
        assert torch.equal(a.weight[unknown], b.weight[unknown])
        assert torch.equal(a.solve_weight(noisy[i : i + 1])[unknown], b.solve_weight(noisy[i : i + 1])[unknown])
        assert float(a.weight[unknown].max()) > 0  # the prior is really used on this scene
        assert not b.weight[~unknown].any()


def test_prior_comes_before_the_blend_and_carries_the_previous_alpha():
    image, gt, noisy, trimap = _scene(5, speed=1.0)

    def average(i, a, prior):
        return a if prior is None else 0.5 * (a + prior.warped)

    out, priors, smoother = _smooth_by_frame(CFG, image[:3], noisy[:3], trimap[:3], average)
    out2, priors2, smoother = _smooth_by_frame(CFG, image[3:], noisy[3:], trimap[3:], average, smoother.state)
    priors += priors2
    assert priors[0] is None and all(p is not None for p in priors[1:])  # across the batch boundary too
    weights = [float(p.solve_weight(noisy[i : i + 1]).max()) for i, p in enumerate(priors) if p is not None]
    assert all(0 < w <= temporal.max_blend(CFG.strength) + 1e-6 for w in weights)
    assert torch.equal(out[0], noisy[0])
    assert not torch.equal(out[1], noisy[1])  # the average, then blended
    assert torch.equal(smoother.state.prev_alpha, out2[-1:])


def test_flow_spread_is_zero_for_uniform_motion_and_the_relative_speed_at_a_boundary():
    flow = np.zeros((20, 30, 2), np.float32)
    flow[..., 0] = 2.5  # a pan: uniform, however fast
    assert float(temporal._flow_spread(flow).max()) == 0.0
    flow[:, 15:, 0] = -1.5  # the right half moves the other way: a motion boundary at x = 15
    flow[:, 15:, 1] = 3.0
    spread = temporal._flow_spread(flow, window=7)
    np.testing.assert_allclose(spread[:, 12:18], 5.0, rtol=1e-6)  # |(4, 3)| within 3 px of it
    assert float(spread[:, :12].max()) == 0.0 and float(spread[:, 18:].max()) == 0.0


def test_motion_boundary_gate_leaves_an_edge_moving_against_its_background_alone(monkeypatch):
    """The square moves right 4 px/frame while the background pans left 3 px/frame: the whole band
    is a motion boundary, where the flow is a mixture of the two motions. The gate keeps the
    blend out of it (on the bench's fast clip, blending there ghosted: SAD +13 %), and never
    makes the result worse than the raw alpha; with the gate off the band is blended."""
    image, gt, noisy, trimap = _scene(10, speed=4.0, bg_speed=3, alpha_noise=0.05)
    band = trimap == 0.5
    band[:2] = False
    strong = TemporalConfig(enabled=True, strength=0.8)
    moved = lambda a: float((a - noisy).abs()[band].mean())  # noqa: E731
    gated = _run(noisy, image, trimap, strong)[0]
    # Away from the boundary (a pan of the whole picture) nothing is gated.
    motion = estimate_motion(image[3:4], image[4:5])
    gate = temporal._boundary_gate(motion, H, W, torch.device("cpu"))
    assert float(gate[0, 0, 50:, 5:15].min()) > 0.9  # background below the square
    assert float(gate[trimap[4:5] == 0.5].mean()) < 0.5  # the square's band
    monkeypatch.setattr(temporal, "MOTION_BOUNDARY_PX", 1e9)
    ungated = _run(noisy, image, trimap, strong)[0]
    assert moved(gated) < 0.3 * moved(ungated), (moved(gated), moved(ungated))
    err = lambda a: float((a - gt).abs()[band].mean())  # noqa: E731
    assert err(gated) < 1.05 * err(noisy)


def test_flicker_is_blended_but_a_coherent_alpha_shift_is_not():
    """The blend's alpha gate looks at the box-averaged difference: per-pixel flicker as large
    as ALPHA_SIGMA is still smoothed on a static picture (a jump of the whole band is kept:
    test_large_alpha_changes_are_not_blended_on_a_static_picture)."""
    image, gt, _noisy, trimap = _scene(6, speed=0.0)
    image = image[:1].repeat(6, 1, 1, 1)
    unknown = (trimap[1:] == 0.5)
    g = torch.Generator().manual_seed(3)
    flicker = torch.where(trimap == 0.5, (0.5 + 0.2 * torch.randn(gt.shape, generator=g)).clamp(0, 1), trimap)
    out, _ = _run(flicker, image, trimap, CFG)
    change = lambda a: float((a[1:] - a[:-1]).abs()[unknown].mean())  # noqa: E731
    assert change(out) < 0.5 * change(flicker)
    # The same flicker per pixel, in gated form: the blend weight falls only where it is coherent.
    w = temporal._coherent_alpha_gate(flicker[1:2], flicker[0:1], trimap[:1])
    assert float(w[trimap[:1] == 0.5].mean()) > 0.8
    assert float(temporal._alpha_gate(flicker[1:2], flicker[0:1])[trimap[:1] == 0.5].mean()) < 0.7


def test_solve_weight_is_alpha_gated_and_a_changed_alpha_is_then_blended():
    """With the refine, the solve sees the blend weight times the alpha gate, and what it returns
    is blended like a plain alpha: leaving the alpha alone between prior and blend is smooth_alpha."""
    image, _gt, noisy, trimap = _scene(6, speed=0.0, alpha_noise=0.08)
    cfg = TemporalConfig(enabled=True, strength=0.7)
    by_frame, priors, _ = _smooth_by_frame(cfg, image, noisy, trimap)
    plain, _ = smooth_alpha(noisy, image, trimap, TemporalState(), cfg)
    assert torch.equal(by_frame, plain)
    assert [p is None for p in priors] == [True] + [False] * 5
    for i, prior in enumerate(priors[1:], 1):
        gated = prior.solve_weight(noisy[i : i + 1])
        assert float(gated.max()) <= temporal.max_blend(0.7) + 1e-6
        assert torch.all(gated <= prior.weight + 1e-7)
    # An alpha pulled towards one value is still blended with the previous alpha after.
    pulled, _, _ = _smooth_by_frame(cfg, image, noisy, trimap,
                                    lambda i, a, p: torch.where(trimap[:1] == 0.5, torch.full_like(a, 0.6), a))
    band = trimap[1:] == 0.5
    assert float((pulled[1:][band] - 0.6).abs().mean()) < float((noisy[1:][band] - 0.6).abs().mean())
    assert float((pulled[1:][band] - 0.6).abs().max()) > 1e-3  # not simply the pulled value


@pytest.mark.parametrize("k", [3, 5])
def test_box_mean_and_local_max_match_torch_pooling(k):
    """The CPU path (OpenCV) computes what the torch pooling used on other devices computes."""
    t = torch.rand(1, 3, 37, 50, generator=torch.Generator().manual_seed(k))
    p = k // 2
    torch.testing.assert_close(temporal._box_mean(t, k),
                               F.avg_pool2d(F.pad(t, (p, p, p, p), mode="replicate"), k, stride=1),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(temporal._local_max(t, k), F.max_pool2d(t, k, stride=1, padding=p), atol=0, rtol=0)
