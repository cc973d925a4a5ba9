"""Matrix-free matting Laplacian and PCG solve (alphagan_video.refine.pcg), against the
assembled sparse system of alphagan_video.refine. CPU only, float64 for the exactness checks."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from alphagan_video.errors import UserInputError
from alphagan_video.refine import DirectSolver, matting_system, trimap_regions
from alphagan_video.refine.pcg import MattingOperator, pcg, solve_pcg


def _random_problem(h: int, w: int, seed: int, flat: bool = True):
    """Random image in [0, 1] with a flat patch (covariance 0: the eps-regularised extreme) and
    an 8-bit-quantised patch, and a random trimap whose unknown pixels also touch the border."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(size=(h, w, 3))
    if flat:
        image[2:9, 3:11] = (0.3, 0.6, 0.2)
        image[h // 2 :, : w // 2] = np.round(image[h // 2 :, : w // 2] * 4) / 4
    trimap = rng.choice([0.0, 0.5, 1.0], size=(h, w), p=[0.3, 0.4, 0.3])
    return image, trimap


def _operator(image, trimap, **kw) -> MattingOperator:
    fg, _bg, unknown = trimap_regions(trimap)
    return MattingOperator(image, unknown, fg.astype(np.float64), **kw)


@pytest.mark.parametrize(
    "h, w, radius, tile, seed",
    [(23, 31, 1, 8, 0), (47, 63, 1, 32, 1), (40, 37, 2, 16, 2), (50, 45, 4, 16, 3), (19, 19, 1, 64, 4)],
)
def test_matvec_equals_assembled_laplacian(h, w, radius, tile, seed):
    image, trimap = _random_problem(h, w, seed)
    system = matting_system(image, trimap, radius=radius, eps=1e-7)
    op = _operator(image, trimap, radius=radius, eps=1e-7, tile=tile)
    np.testing.assert_array_equal(op.unknown_index, system.unknown_index)
    rng = np.random.default_rng(seed + 10)
    for x in (rng.normal(size=op.n), rng.uniform(size=op.n)):
        got = op.matvec(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, system.L_uu @ x, rtol=0, atol=1e-5)
    np.testing.assert_allclose(op.rhs_known.numpy(), system.rhs_known, rtol=0, atol=1e-5)
    np.testing.assert_allclose(op.diagonal.numpy(), system.L_uu.diagonal(), rtol=1e-8, atol=1e-5)


def test_matvec_thin_band_and_large_eps():
    # A one-pixel-wide diagonal band (tiles follow it) and a large eps (smooth Laplacian).
    rng = np.random.default_rng(5)
    image = rng.uniform(size=(70, 90, 3))
    trimap = np.zeros((70, 90))
    trimap[:, 45:] = 1.0
    for y in range(70):
        trimap[y, 10 + y] = 0.5
    system = matting_system(image, trimap, radius=1, eps=1e-2)
    op = _operator(image, trimap, radius=1, eps=1e-2, tile=8)
    assert op.tile_pixels < image.shape[0] * image.shape[1] / 2
    x = rng.normal(size=op.n)
    np.testing.assert_allclose(op.matvec(torch.from_numpy(x)).numpy(), system.L_uu @ x, rtol=0, atol=1e-5)
    np.testing.assert_allclose(op.rhs_known.numpy(), system.rhs_known, rtol=0, atol=1e-5)


def test_no_unknown_pixels():
    image = np.random.default_rng(0).uniform(size=(12, 14, 3))
    op = _operator(image, np.ones((12, 14)))
    assert op.n == 0
    res = solve_pcg(op, 1e-4, np.zeros(0))
    assert res.x.shape == (0,) and res.converged


def test_operator_rejects_bad_arguments():
    image, trimap = _random_problem(10, 10, 0, flat=False)
    with pytest.raises(UserInputError, match="radius"):
        _operator(image, trimap, radius=0)
    with pytest.raises(UserInputError, match="eps"):
        _operator(image, trimap, eps=0.0)
    with pytest.raises(UserInputError, match="tile"):
        _operator(image, trimap, tile=0)
    with pytest.raises(UserInputError, match=r"\(H, W, 3\)"):
        MattingOperator(image[..., :2], trimap == 0.5, trimap == 1.0)


def _composite(h: int = 45, w: int = 58, seed: int = 0):
    """I = a F + (1 - a) B with a wavy soft edge, textured F and B, 8-bit quantised.
    Returns image (H, W, 3) float64 in [0, 1], trimap {0, 0.5, 1}, true alpha (H, W)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    edge = w / 2 + 4 * np.sin(yy / 5)
    alpha = np.clip((xx - edge) / 6 + 0.5, 0, 1)
    fg = np.array([0.85, 0.35, 0.2]) + rng.uniform(-0.1, 0.1, size=(h, w, 3))
    bg = np.array([0.15, 0.45, 0.75]) + rng.uniform(-0.1, 0.1, size=(h, w, 3))
    image = np.round(np.clip(alpha[..., None] * fg + (1 - alpha[..., None]) * bg, 0, 1) * 255) / 255
    trimap = np.where(xx < edge - 9, 0.0, np.where(xx > edge + 9, 1.0, 0.5))
    return image, trimap, alpha


def _direct(image, trimap, d, prior_u):
    system = matting_system(image, trimap)
    A = (system.L_uu + sp.diags(d, format="csr")).tocsr()
    return DirectSolver(A, mixed=False).solve(system.rhs_known + d * prior_u), system


@pytest.mark.parametrize("mu", [1e-4, 3e-5])
def test_pcg_equals_direct_solve(mu):
    image, trimap, alpha = _composite()
    fg, _bg, unknown = trimap_regions(trimap)
    u = np.flatnonzero(unknown.ravel())
    rng = np.random.default_rng(1)
    # A per-pixel data term like the product's: mu plus a sampling-flow-like weight.
    d = mu + 0.1 * rng.uniform(0, 0.3, size=u.size) * (rng.uniform(size=u.size) < 0.5)
    prior_u = np.clip(alpha.ravel()[u] + rng.normal(0, 0.1, size=u.size), 0, 1)
    x_direct, _ = _direct(image, trimap, d, prior_u)
    op = MattingOperator(image, unknown, fg.astype(np.float64), tile=16)
    res = solve_pcg(op, d, prior_u, rtol=1e-10, max_iter=5000)
    assert res.converged
    np.testing.assert_allclose(res.x.numpy(), x_direct, rtol=0, atol=1e-5)


def test_pcg_default_tolerance_is_well_inside_the_target():
    # The default relative residual (DEFAULT_RTOL) on a problem like the product's gives a mean
    # absolute alpha difference far below the 1e-3 target (issue 17).
    image, trimap, alpha = _composite(64, 80, seed=3)
    fg, _bg, unknown = trimap_regions(trimap)
    u = np.flatnonzero(unknown.ravel())
    d = np.full(u.size, 3e-5)
    prior_u = np.clip(alpha.ravel()[u] + np.random.default_rng(2).normal(0, 0.2, size=u.size), 0, 1)
    x_direct, _ = _direct(image, trimap, d, prior_u)
    op = MattingOperator(image, unknown, fg.astype(np.float64))
    res = solve_pcg(op, d, prior_u)
    assert res.converged
    assert np.abs(np.clip(res.x.numpy(), 0, 1) - np.clip(x_direct, 0, 1)).mean() < 1e-4


def test_warm_start_reduces_iterations():
    image, trimap, alpha = _composite(seed=4)
    fg, _bg, unknown = trimap_regions(trimap)
    u = np.flatnonzero(unknown.ravel())
    d = np.full(u.size, 1e-4)
    rng = np.random.default_rng(3)
    prior_u = np.clip(alpha.ravel()[u] + rng.normal(0, 0.05, size=u.size), 0, 1)
    op = MattingOperator(image, unknown, fg.astype(np.float64))
    zero = solve_pcg(op, d, prior_u, x0=np.zeros(u.size))
    half = solve_pcg(op, d, prior_u, x0=np.full(u.size, 0.5))
    warm = solve_pcg(op, d, prior_u)  # default start: the prior
    assert zero.converged and half.converged and warm.converged
    # Measured 70 / 63 / 52 iterations at the default tolerance.
    assert warm.iterations < 0.9 * min(zero.iterations, half.iterations), (warm, zero, half)
    # Previous frame's solution as the start (temporal): next to nothing left to do.
    again = solve_pcg(op, d, prior_u, x0=warm.x)
    assert again.iterations <= 1


def test_pcg_on_a_plain_spd_system():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(30, 30))
    a = torch.from_numpy(m @ m.T + 30 * np.eye(30))
    b = torch.from_numpy(rng.normal(size=30))
    res = pcg(lambda x: a @ x, b, torch.zeros(30, dtype=torch.float64), 1 / torch.diagonal(a), rtol=1e-12)
    assert res.converged and res.relative_residual <= 1e-12
    np.testing.assert_allclose(res.x.numpy(), np.linalg.solve(a.numpy(), b.numpy()), atol=1e-9)
    zero = pcg(lambda x: a @ x, torch.zeros(30, dtype=torch.float64), b.clone(), 1 / torch.diagonal(a))
    assert zero.iterations == 0 and not zero.x.any()
    capped = pcg(lambda x: a @ x, b, torch.zeros(30, dtype=torch.float64), 1 / torch.diagonal(a), rtol=1e-14,
                 max_iter=3)
    assert capped.iterations == 3 and not capped.converged


def test_float32_operator_runs():
    # float32 products (the GPU option) agree with float64 to float32 round-off on a random image.
    image, trimap = _random_problem(33, 41, 6, flat=False)
    op64 = _operator(image, trimap)
    op32 = _operator(image, trimap, dtype=torch.float32)
    x = torch.from_numpy(np.random.default_rng(7).uniform(size=op64.n))
    y64 = op64.matvec(x)
    y32 = op32.matvec(x.float()).double()
    assert float((y32 - y64).abs().max()) < 1e-3 * float(y64.abs().max())


@pytest.mark.parametrize("flow, expand", [(0.0, 0), (0.1, 9)])
def test_refine_alpha_pcg_matches_direct(flow, expand):
    # The product's path (refine_alpha / prepare_refine + solve_refine) with solver="pcg".
    from alphagan_video.config import RefineConfig
    from alphagan_video.refine import closed_form_alpha, prepare_refine, refine_alpha, solve_refine

    image, trimap, alpha = _composite(50, 64, seed=6)
    prior = np.clip(alpha + np.random.default_rng(8).normal(0, 0.1, size=alpha.shape), 0, 1)
    direct_cfg = RefineConfig(mu=3e-5, flow=flow, expand=expand, solver="direct")
    pcg_cfg = dataclasses.replace(direct_cfg, solver="pcg")
    kw = dict(tol=1e-10, max_iter=5000)
    direct = refine_alpha(image, trimap, prior, direct_cfg, **kw)
    matrix_free = refine_alpha(image, trimap, prior, pcg_cfg, **kw)
    np.testing.assert_allclose(matrix_free, direct, rtol=0, atol=1e-5)
    problem = prepare_refine(image, trimap, pcg_cfg, factorise=True)
    assert problem.factor is None
    again = solve_refine(problem, prior, direct_cfg, **kw)  # the problem decides
    np.testing.assert_allclose(again, direct, rtol=0, atol=1e-5)
    assembled = prepare_refine(image, trimap, direct_cfg)
    with pytest.raises(UserInputError, match="prepared with"):
        solve_refine(assembled, prior, pcg_cfg)
    np.testing.assert_allclose(closed_form_alpha(image, trimap, solver="pcg", tol=1e-10),
                               closed_form_alpha(image, trimap, solver="direct"), rtol=0, atol=1e-5)


def test_pipeline_solver_choice():
    from alphagan_video.config import RefineConfig
    from alphagan_video.refine import solver_method

    assert RefineConfig().solver == "auto"
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert solver_method("auto", cpu) == "direct"  # the direct solve stays the CPU default
    assert solver_method("auto", cuda) == "pcg"
    assert solver_method("direct", cuda) == "direct"
    assert solver_method("pcg", cpu) == "pcg"
    with pytest.raises(UserInputError, match="refine.solver 'lu'"):
        solver_method("lu", cpu)


def test_refine_batch_pcg_matches_direct():
    # The pipeline's per-frame refine with the two solver choices (torch tensors in and out).
    from alphagan_video.config import RefineConfig
    from alphagan_video.refine import refine_frames as _refine_batch

    image, trimap, alpha = _composite(40, 52, seed=9)
    img = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    tri = torch.from_numpy(trimap)[None, None].float()
    prior = torch.from_numpy(alpha)[None, None].float()
    direct = _refine_batch(img, tri, prior, RefineConfig(mu=3e-5, flow=0.1, expand=9, solver="direct"))
    pcg_out = _refine_batch(img, tri, prior, RefineConfig(mu=3e-5, flow=0.1, expand=9, solver="pcg"), device="cpu")
    assert float((pcg_out - direct).abs().mean()) < 1e-4


def test_matte_video_with_pcg_matches_direct(tmp_path):
    # End to end through the library (temporal in-solve fusion on, user trimaps): the two
    # solver choices write the same matte up to the solve tolerance and 10-bit ProRes rounding.
    from alphagan_video.config import ModelConfig, PipelineConfig, RefineConfig, TrimapConfig
    from alphagan_video.model import build_generator
    from alphagan_video.model.checkpoint import save_generator
    from alphagan_video.pipeline import matte_video
    from tests.e2e import prores_alpha, trimap_images, write_gray_sequence
    from tests.media import make_video

    ckpt = tmp_path / "tiny.safetensors"
    save_generator(build_generator("tiny"), ckpt)
    clip = make_video(str(tmp_path / "in.mp4"), frames=3)
    tri = trimap_images(clip.mask, radius=3)
    tri_path = write_gray_sequence(tmp_path / "tri", tri, "t_%04d.png")
    alphas = {}
    for solver in ("direct", "pcg"):
        cfg = PipelineConfig(model=ModelConfig(checkpoint=ckpt), refine=RefineConfig(solver=solver),
                             trimap=TrimapConfig(trimap_path=tri_path))
        matte_video(clip.path, tmp_path / f"{solver}.mov", cfg)
        alphas[solver] = prores_alpha(str(tmp_path / f"{solver}.mov"))
    band = tri == 128
    assert band.any()
    assert float(np.abs(alphas["pcg"] - alphas["direct"])[band].mean()) < 2e-3


@pytest.mark.parametrize("refine, param", [(dict(solver="lu", enabled=False), "refine.solver"),
                                           (dict(mu=-1.0), "refine.mu"), (dict(gate=0.5), "refine.gate"),
                                           (dict(weighting="x"), "refine.weighting")])
def test_chain_rejects_bad_refine_settings_before_loading_anything(refine, param):
    """A bad RefineConfig fails when the stage chain is built (the solver choice even with the
    refine off, as before), named by its config path; the CLI shows that path (no flag maps it)."""
    from fractions import Fraction

    from alphagan_video.cli import user_message
    from alphagan_video.config import PipelineConfig, RefineConfig
    from alphagan_video.errors import ParameterError
    from alphagan_video.pipeline import build_chain
    from alphagan_video.types import VideoInfo

    info = VideoInfo(path="clip.mp4", kind="video", width=32, height=24, time_base=Fraction(1, 25),
                     frame_rate=Fraction(25), frame_count=1, pix_fmt="yuv420p", bit_depth=8)
    cfg = PipelineConfig(refine=RefineConfig(**refine))
    with pytest.raises(ParameterError) as err:
        build_chain(info, cfg)
    assert err.value.param == param
    assert user_message(err.value).startswith(f"{param} ")
