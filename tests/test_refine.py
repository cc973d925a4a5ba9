"""Matting-Laplacian refinement (alphagan_video.refine)."""
from __future__ import annotations

import numpy as np
import pytest

from alphagan_video.config import RefineConfig
from alphagan_video.errors import ParameterError, UserInputError
from alphagan_video.refine import (
    closed_form_alpha,
    matting_system,
    refine_alpha,
    trimap_ramp_prior,
    trimap_regions,
)

pymatting = pytest.importorskip("pymatting")


def cfg(**fields) -> RefineConfig:
    """A RefineConfig with the sampling flow and the expansion off unless given: the plain
    prior-anchored closed-form solve these tests are about."""
    return RefineConfig(**{"flow": 0.0, "expand": 0, **fields})


def _soft_edge(h: int = 27, w: int = 35, seed: int = 0):
    """Composite I = a F + (1 - a) B with a known soft vertical edge, textured F and B.

    Returns image (H, W, 3) float64 [0, 1], trimap {0, 0.5, 1}, true alpha.
    """
    rng = np.random.default_rng(seed)
    x = np.arange(w, dtype=float)
    alpha = np.clip((x - 13) / 9.0, 0, 1)[None, :].repeat(h, 0)
    alpha[:, 18] = np.linspace(0.2, 0.9, h)  # some variation along the edge
    fg = np.array([0.85, 0.35, 0.2]) + rng.uniform(-0.1, 0.1, size=(h, w, 3))
    bg = np.array([0.15, 0.45, 0.75]) + rng.uniform(-0.1, 0.1, size=(h, w, 3))
    image = np.clip(alpha[..., None] * fg + (1 - alpha[..., None]) * bg, 0, 1)
    trimap = np.where(x < 11, 0.0, np.where(x > 24, 1.0, 0.5))[None, :].repeat(h, 0)
    trimap[0, 5] = 0.5  # an isolated unknown pixel on the image border
    return image, trimap, alpha


def test_laplacian_matches_pymatting_cf_laplacian():
    image, trimap, _ = _soft_edge()
    fg, _bg, known, unknown = pymatting.trimap_split(trimap)
    L = pymatting.cf_laplacian(image, is_known=known)
    system = matting_system(image, trimap)
    np.testing.assert_allclose(system.L_uu.toarray(), L[unknown][:, unknown].toarray(), atol=1e-12)
    np.testing.assert_allclose(system.rhs_known, -L[unknown][:, known] @ fg[known], atol=1e-12)
    assert abs(system.L_uu - system.L_uu.T).max() < 1e-12


def test_closed_form_agrees_with_pymatting_and_recovers_the_edge():
    image, trimap, alpha = _soft_edge()
    ours = closed_form_alpha(image, trimap)
    ref = pymatting.estimate_alpha_cf(image, trimap)
    assert ours.dtype == np.float32 and ours.shape == trimap.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    err = np.abs(ours - alpha)[trimap == 0.5].mean()
    assert err < 0.05 and err < 0.2 * np.abs(0.5 - alpha)[trimap == 0.5].mean()


def test_mu_to_zero_is_closed_form():
    image, trimap, _ = _soft_edge()
    prior = np.full(trimap.shape, 0.5)
    np.testing.assert_allclose(
        refine_alpha(image, trimap, prior, cfg(mu=1e-12)), pymatting.estimate_alpha_cf(image, trimap), atol=1e-4
    )


def test_known_regions_exact_and_output_range():
    image, trimap, _ = _soft_edge()
    rng = np.random.default_rng(1)
    prior = rng.uniform(-0.5, 1.5, size=trimap.shape)  # out-of-range prior is clipped
    for mu in (0.0, 1e-4, 1.0):
        out = refine_alpha(image, trimap, prior, cfg(mu=mu))
        assert out.dtype == np.float32
        assert np.all(out[trimap == 1.0] == 1.0) and np.all(out[trimap == 0.0] == 0.0)
        assert out.min() >= 0.0 and out.max() <= 1.0


def test_large_mu_returns_the_prior():
    image, trimap, _ = _soft_edge()
    rng = np.random.default_rng(2)
    prior = rng.uniform(0.1, 0.9, size=trimap.shape)
    out = refine_alpha(image, trimap, prior, cfg(mu=1e4))
    unknown = trimap == 0.5
    assert np.abs(out - prior)[unknown].max() < 1e-3
    # moderate mu lands between the prior and the closed form
    cf = closed_form_alpha(image, trimap)
    mid = refine_alpha(image, trimap, prior, cfg(mu=1e-2))
    d_prior = np.abs(mid - prior)[unknown].mean()
    assert 1e-3 < d_prior < np.abs(cf - prior)[unknown].mean()


def test_zero_weight_ignores_the_prior_and_weights_are_local():
    image, trimap, _ = _soft_edge()
    prior = np.full(trimap.shape, 0.9)
    cf = closed_form_alpha(image, trimap)
    np.testing.assert_allclose(
        refine_alpha(image, trimap, prior, cfg(mu=10.0), weight=np.zeros(trimap.shape)), cf, atol=1e-5
    )
    weight = np.zeros(trimap.shape)
    weight[:, 14] = 1.0
    out = refine_alpha(image, trimap, prior, cfg(mu=1e4), weight=weight)
    assert np.abs(out[:, 14] - 0.9).max() < 1e-3  # pinned where trusted
    assert np.abs(out[:, 20] - 0.9).min() > 0.01  # free elsewhere


def test_cg_solver_matches_direct_solver():
    image, trimap, _ = _soft_edge()
    prior = trimap_ramp_prior(trimap)
    direct = refine_alpha(image, trimap, prior, cfg(mu=1e-3, solver="direct"))
    cg = refine_alpha(image, trimap, prior, cfg(mu=1e-3, solver="cg"), tol=1e-10, max_iter=20000)
    np.testing.assert_allclose(cg, direct, atol=1e-4)


def test_trimap_ramp_prior_ramps_across_the_band():
    _, trimap, _ = _soft_edge()
    prior = trimap_ramp_prior(trimap)
    row = prior[10]
    assert row[0] == 0.0 and row[-1] == 1.0
    band = row[11:25]
    assert np.all(np.diff(band) > 0) and 0 < band[0] < 0.2 and 0.8 < band[-1] < 1
    assert np.all(trimap_ramp_prior(np.full((4, 4), 0.5)) == 0.5)


def test_trimap_regions_split():
    fg, bg, unknown = trimap_regions(np.array([[0.0, 128 / 255, 1.0, 0.05]]))
    assert fg.tolist() == [[False, False, True, False]]
    assert bg.tolist() == [[True, False, False, True]]
    assert unknown.tolist() == [[False, True, False, False]]


def test_no_unknown_pixels_returns_the_trimap():
    image, _, _ = _soft_edge()
    trimap = np.zeros(image.shape[:2])
    trimap[:, 20:] = 1.0
    np.testing.assert_array_equal(refine_alpha(image, trimap, np.full(trimap.shape, 0.5)), trimap)
    np.testing.assert_array_equal(closed_form_alpha(image, trimap), trimap)


def test_input_validation():
    image, trimap, _ = _soft_edge()
    prior = np.full(trimap.shape, 0.5)
    with pytest.raises(UserInputError, match="does not match image"):
        refine_alpha(image, trimap[:-1], prior)
    with pytest.raises(UserInputError, match=r"values must be in \[0, 1\]"):
        refine_alpha(image * 255, trimap, prior)
    with pytest.raises(UserInputError, match="prior shape"):
        refine_alpha(image, trimap, prior[:, :-1])
    with pytest.raises(ParameterError, match=r"refine\.mu -1: must be >= 0") as err:
        refine_alpha(image, trimap, prior, cfg(mu=-1))
    assert err.value.param == "refine.mu"
    with pytest.raises(ParameterError, match="weight min -1: must be >= 0"):
        refine_alpha(image, trimap, prior, weight=-np.ones(trimap.shape))
    with pytest.raises(ParameterError, match="refine.solver 'magic': must be one of auto, direct, cg, pcg"):
        refine_alpha(image, trimap, prior, cfg(solver="magic"))
    with pytest.raises(UserInputError, match="smaller than one 3x3 window"):
        closed_form_alpha(image[:2, :2], trimap[:2, :2])


# --------------------------------------------------------------- generator-confidence combination
from alphagan_video.refine import confidence_weight, gate_trimap  # noqa: E402


def test_gate_trimap_fixes_confident_pixels_only():
    trimap = np.array([[0.0, 0.5, 0.5, 0.5, 0.5, 1.0]])
    prior = np.array([[0.5, 0.01, 0.2, 0.8, 0.97, 0.5]])
    out = gate_trimap(trimap, prior, 0.05)
    np.testing.assert_array_equal(out, [[0.0, 0.0, 0.5, 0.5, 1.0, 1.0]])
    np.testing.assert_array_equal(trimap, [[0.0, 0.5, 0.5, 0.5, 0.5, 1.0]])  # input untouched
    np.testing.assert_array_equal(gate_trimap(trimap, prior, 0.0), trimap)


def test_gate_trimap_erode_keeps_constraints_away_from_uncertain_pixels():
    trimap = np.full((1, 7), 0.5)
    trimap[0, 0] = 0.0
    prior = np.array([[0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.0]])
    out = gate_trimap(trimap, prior, 0.05, erode=1)
    # Pixel 3 is confident but touches the uncertain pixel 4: it stays unknown; pixel 6 sits on
    # the image border next to a confident pixel and is gated.
    np.testing.assert_array_equal(out, [[0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 1.0]])


def test_confidence_weight_values():
    prior = np.array([[0.0, 0.25, 0.5, 1.0]])
    assert confidence_weight(prior, "uniform") is None
    np.testing.assert_allclose(confidence_weight(prior, "confidence"), [[1.0, 0.25, 0.0, 1.0]])
    with pytest.raises(ParameterError, match="weighting 'bogus': must be one of uniform, confidence"):
        confidence_weight(prior, "bogus")


def test_gated_refine_equals_refine_on_the_gated_trimap_and_helps_a_good_prior():
    image, trimap, alpha = _soft_edge()
    prior = np.clip(alpha + 0.02 * np.sin(np.arange(alpha.size)).reshape(alpha.shape), 0, 1)
    gated = refine_alpha(image, trimap, prior, cfg(mu=1e-3, gate=0.05))
    manual = refine_alpha(image, gate_trimap(trimap, prior, 0.05), prior, cfg(mu=1e-3))
    np.testing.assert_array_equal(gated, manual)
    fixed = (trimap == 0.5) & ((prior <= 0.05) | (prior >= 0.95))
    assert fixed.any() and np.all((gated[fixed] == 0) | (gated[fixed] == 1))
    band = trimap == 0.5
    assert np.abs(gated - alpha)[band].mean() < np.abs(closed_form_alpha(image, trimap) - alpha)[band].mean() + 0.01


def test_gate_and_weighting_validation():
    image, trimap, alpha = _soft_edge()
    with pytest.raises(ParameterError, match=r"refine\.gate 0\.5: must be in \[0, 0\.5\)"):
        refine_alpha(image, trimap, alpha, cfg(gate=0.5))
    with pytest.raises(ParameterError, match=r"threshold 0\.5: must be in \[0, 0\.5\)"):
        gate_trimap(trimap, alpha, 0.5)
    with pytest.raises(ParameterError, match="erode -1: must be an integer"):
        gate_trimap(trimap, alpha, 0.05, erode=-1)
    with pytest.raises(UserInputError, match="prior shape"):
        refine_alpha(image, trimap, alpha[:-1], cfg(gate=0.05))
    with pytest.raises(ParameterError, match="refine.weighting 'x': must be one of uniform, confidence"):
        refine_alpha(image, trimap, alpha, cfg(weighting="x"))


def test_pipeline_refine_batch_passes_gate_and_weighting():
    torch = pytest.importorskip("torch")
    from alphagan_video.refine import refine_frames as _refine_batch

    image, trimap, alpha = _soft_edge()
    prior = np.clip(alpha + 0.02 * np.cos(np.arange(alpha.size)).reshape(alpha.shape), 0, 1)
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    out = _refine_batch(as_t(image).permute(2, 0, 1)[None], as_t(trimap)[None, None], as_t(prior)[None, None],
                        cfg(mu=1e-3, gate=0.05, weighting="confidence"))[0, 0].numpy()
    ref = refine_alpha(image.astype(np.float32).astype(np.float64), trimap, prior.astype(np.float32),
                       cfg(mu=1e-3, gate=0.05, weighting="confidence"))
    np.testing.assert_allclose(out, ref, atol=1e-6)
    plain = refine_alpha(image.astype(np.float32).astype(np.float64), trimap, prior.astype(np.float32), cfg(mu=1e-3))
    assert np.abs(out - plain).max() > 1e-3  # the options reached the solve


def test_mixed_precision_direct_solve_matches_float64():
    import scipy.sparse as sp

    from alphagan_video.refine import DirectSolver

    image, trimap, alpha = _soft_edge()
    system = matting_system(image, trimap)
    n = system.unknown_index.size
    A = (system.L_uu + sp.diags(np.full(n, 1e-5))).tocsr()
    b = system.rhs_known + 1e-5 * alpha.ravel()[system.unknown_index]
    solver = DirectSolver(A, mixed=True)
    assert solver._lu32 is not None and solver._lu64 is None  # the float32 path was taken
    exact = np.linalg.solve(A.toarray(), b)
    for rhs, ref in ((b, exact), (2 * b, 2 * exact)):  # one factorisation, any right-hand side
        x = solver.solve(rhs)
        assert x is not None and x.dtype == np.float64
        np.testing.assert_allclose(x, ref, atol=1e-7)
    # refine_alpha's direct path (mixed precision with a prior) agrees with CG run to tight tolerance
    direct = refine_alpha(image, trimap, alpha, cfg(mu=1e-5, solver="direct"))
    cg = refine_alpha(image, trimap, alpha, cfg(mu=1e-5, solver="cg"), tol=1e-12, max_iter=20000)
    np.testing.assert_allclose(direct, cg, atol=1e-4)


def test_lle_foreground_share_matches_the_direct_kxk_solve():
    from alphagan_video.refine.flow import lle_foreground_share

    rng = np.random.default_rng(3)
    center = rng.uniform(size=(50, 3))
    fg = rng.uniform(size=(50, 7, 3))
    bg = rng.uniform(size=(50, 7, 3))
    reg = 1e-3
    cf = lambda a: np.ascontiguousarray(np.moveaxis(a, -1, 0))  # noqa: E731  channel-first
    share = lle_foreground_share(cf(center), cf(fg), cf(bg), reg)
    share32 = lle_foreground_share(cf(center), cf(fg).astype(np.float32), cf(bg).astype(np.float32), reg)
    for i in range(50):
        z = np.concatenate([fg[i], bg[i]]) - center[i]
        ref = np.linalg.solve(z @ z.T + reg * np.eye(14), np.ones(14))
        ref /= ref.sum()
        assert share[i] == pytest.approx(ref[:7].sum(), abs=1e-9)
        assert share32[i] == pytest.approx(ref[:7].sum(), abs=1e-4)


def _two_colour_composite(h: int = 24, w: int = 40):
    """Flat F and B colours mixed by a horizontal alpha ramp: every unknown colour lies on the
    F-B line, so the sampled estimate must recover alpha."""
    x = np.arange(w, dtype=float)
    alpha = np.clip((x - 10) / 20.0, 0, 1)[None, :].repeat(h, 0)
    F = np.array([0.9, 0.8, 0.1])
    B = np.array([0.1, 0.2, 0.7])
    image = alpha[..., None] * F + (1 - alpha[..., None]) * B
    trimap = np.where(x <= 10, 0.0, np.where(x >= 30, 1.0, 0.5))[None, :].repeat(h, 0)
    return image, trimap, alpha, F, B


def test_sampling_flow_recovers_alpha_on_the_colour_line():
    from alphagan_video.refine import sampling_flow

    image, trimap, alpha, F, B = _two_colour_composite()
    a_s, eta = sampling_flow(image, trimap)
    unknown = trimap == 0.5
    assert a_s.shape == eta.shape == trimap.shape
    assert np.abs(a_s - alpha)[unknown].max() < 0.01
    np.testing.assert_allclose(eta[unknown], ((F - B) ** 2).sum() / 3.0, rtol=1e-6)  # colours are gathered in float32
    assert (eta[~unknown] == 0).all() and (a_s[trimap == 1.0] == 1).all() and (a_s[trimap == 0.0] == 0).all()


def test_sampling_flow_in_chunks_equals_one_piece(monkeypatch):
    """The unknown pixels are sampled in chunks (memory); every pixel's estimate is its own, so
    the result is the same to the bit."""
    from alphagan_video.refine import flow, sampling_flow

    rng = np.random.default_rng(4)
    image = rng.random((40, 50, 3))
    trimap = np.full((40, 50), 0.5)
    trimap[:, :12], trimap[:, 38:] = 0.0, 1.0
    whole = sampling_flow(image, trimap)
    monkeypatch.setattr(flow, "FLOW_CHUNK", 97)  # many chunks, the last one short
    chunked = sampling_flow(image, trimap)
    assert np.array_equal(whole[0], chunked[0]) and np.array_equal(whole[1], chunked[1])


def test_flow_pulls_the_solve_to_the_samples_and_zero_flow_changes_nothing():
    from alphagan_video.refine import sampling_flow

    image, trimap, alpha, _F, _B = _two_colour_composite()
    bad_prior = np.full(trimap.shape, 0.5)  # a wrong prior, pulled on strongly
    base = refine_alpha(image, trimap, bad_prior, cfg(mu=0.1))
    np.testing.assert_array_equal(refine_alpha(image, trimap, bad_prior, cfg(mu=0.1, flow=0.0)), base)
    with_flow = refine_alpha(image, trimap, bad_prior, cfg(mu=0.1, flow=10.0))
    unknown = trimap == 0.5
    err = lambda a: np.abs(a - alpha)[unknown].mean()  # noqa: E731
    assert err(with_flow) < 0.5 * err(base)
    # Very strong flow returns the sampled estimate wherever its confidence is positive.
    a_s, eta = sampling_flow(image, trimap)
    strong = refine_alpha(image, trimap, bad_prior, cfg(mu=0.0, flow=1e9))
    sel = unknown & (eta > 1e-3)
    np.testing.assert_allclose(strong[sel], a_s[sel].astype(np.float32), atol=1e-4)


def test_sampling_flow_without_one_side_has_no_confidence():
    from alphagan_video.refine import sampling_flow

    image, trimap, alpha = _soft_edge()
    no_bg = np.where(trimap == 0.0, 0.5, trimap)
    a_s, eta = sampling_flow(image, no_bg)
    assert (eta == 0).all()
    prior = np.clip(alpha + 0.05, 0, 1)
    np.testing.assert_array_equal(refine_alpha(image, no_bg, prior, cfg(mu=1e-3, flow=0.1)),
                                  refine_alpha(image, no_bg, prior, cfg(mu=1e-3)))
    with pytest.raises(ParameterError, match="refine.flow -1.0: must be >= 0"):
        refine_alpha(image, trimap, prior, cfg(flow=-1.0))


def test_combine_priors_is_one_equivalent_data_term():
    from alphagan_video.refine import combine_priors

    a = np.linspace(-1, 2, 7)
    w_a, p_a = np.array([0.0, 1.0, 2.0]), np.array([0.2, 0.4, 0.6])
    w_b, p_b = np.array([0.0, 3.0, 0.5]), np.array([0.9, 0.8, 0.1])
    w, p = combine_priors(w_a, p_a, w_b, p_b)
    np.testing.assert_allclose(w, w_a + w_b)
    assert p[0] == 0.2  # both weights 0: the first prior
    # Same energy up to a constant (per pixel): compare differences across a.
    e_two = w_a[:, None] * (a - p_a[:, None]) ** 2 + w_b[:, None] * (a - p_b[:, None]) ** 2
    e_one = w[:, None] * (a - p[:, None]) ** 2
    np.testing.assert_allclose(e_two - e_two[:, :1], e_one - e_one[:, :1], atol=1e-12)


def _expansion_scene():
    """Left half foreground red, right half background blue, a 12-px unknown band between them
    (x in [14, 26)) whose pixels are: pure red next to the fg, a red-blue mix in the middle and
    pure blue next to the bg; plus one pure-red pixel deep inside the background side."""
    h, w = 20, 40
    red, blue = np.array([0.9, 0.1, 0.1]), np.array([0.1, 0.1, 0.9])
    x = np.arange(w)
    alpha = np.clip((23 - x) / 6.0, 0, 1)[None, :].repeat(h, 0)  # 1 up to x=17, 0 from x=23
    image = alpha[..., None] * red + (1 - alpha[..., None]) * blue
    trimap = np.where(x < 14, 1.0, np.where(x >= 26, 0.0, 0.5))[None, :].repeat(h, 0)
    return image, trimap, alpha


def test_expand_known_takes_pure_pixels_and_leaves_the_mix():
    from alphagan_video.refine import expand_known

    image, trimap, alpha = _expansion_scene()
    out = expand_known(image, trimap, radius=9, colour=0.04)
    unknown = trimap == 0.5
    # Pure red next to the foreground -> foreground; pure blue next to the background -> background.
    assert (out[unknown & (alpha == 1.0)] == 1.0).all()
    assert (out[unknown & (alpha == 0.0)] == 0.0).all()
    # Every mixed pixel stays unknown; known pixels are untouched.
    mixed = unknown & (alpha > 0) & (alpha < 1)
    assert mixed.any() and (out[mixed] == 0.5).all()
    np.testing.assert_array_equal(out[~unknown], trimap[~unknown])
    # Off: radius 0 or colour 0 returns the trimap unchanged.
    np.testing.assert_array_equal(expand_known(image, trimap, radius=0), trimap)
    np.testing.assert_array_equal(expand_known(image, trimap, colour=0.0), trimap)


def test_expand_known_respects_distance_and_ambiguity():
    from alphagan_video.refine import expand_known

    image, trimap, _ = _expansion_scene()
    # Red unknown pixels 4..5 px from the fg edge: taken with radius 9, not with radius 3.
    near = (slice(None), slice(17, 18))
    assert (expand_known(image, trimap, radius=9)[near] == 1.0).all()
    assert (expand_known(image, trimap, radius=3)[near] == 0.5).all()
    # A pixel whose colour matches both a nearby fg and a nearby bg pixel stays unknown.
    both = image.copy()
    both[:, 26:] = image[0, 0]  # background painted red as well
    out = expand_known(both, trimap, radius=9)
    assert (out[:, 17:18] == 0.5).all() and (out[:, 14:16] == 1.0).all()  # bg within 9 px only from x=17


def test_refine_with_expansion_fixes_pure_pixels_exactly():
    from alphagan_video.refine import expand_known

    image, trimap, alpha = _expansion_scene()
    prior = np.full(trimap.shape, 0.5)
    out = refine_alpha(image, trimap, prior, cfg(mu=1e-3, expand=9))
    expanded = expand_known(image, trimap, radius=9)
    assert (out[expanded == 1.0] == 1.0).all() and (out[expanded == 0.0] == 0.0).all()
    assert np.abs(out - alpha).sum() < np.abs(refine_alpha(image, trimap, prior, cfg(mu=1e-3)) - alpha).sum()
    with pytest.raises(ParameterError, match="refine.expand -1: must be >= 0 px"):
        refine_alpha(image, trimap, prior, cfg(expand=-1))


@pytest.mark.parametrize("option, value, scene", [("flow", 0.5, "_soft_edge"), ("expand", 9, "_expansion_scene")])
def test_pipeline_refine_batch_passes_option_and_config_default_is_on(option, value, scene):
    torch = pytest.importorskip("torch")
    from alphagan_video.refine import refine_frames as _refine_batch

    assert getattr(RefineConfig(), option) > 0
    image, trimap, _ = globals()[scene]()
    prior = np.full(trimap.shape, 0.5, dtype=np.float32)
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    out = _refine_batch(as_t(image).permute(2, 0, 1)[None], as_t(trimap)[None, None], as_t(prior)[None, None],
                        cfg(mu=1e-3, **{option: value}))[0, 0].numpy()
    img64 = image.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(out, refine_alpha(img64, trimap, prior, cfg(mu=1e-3, **{option: value})), atol=1e-6)
    assert np.abs(out - refine_alpha(img64, trimap, prior, cfg(mu=1e-3))).max() > 1e-3  # the option reached the solve


@pytest.mark.parametrize("factor_mu", [None, 1e-3])
def test_prepared_solve_equals_refine_alpha(factor_mu):
    """prepare_refine + solve_refine (what the pipeline runs, the preparation overlapped with the
    generator, optionally with the matrix factorised in advance) == refine_alpha."""
    from concurrent.futures import ThreadPoolExecutor

    torch = pytest.importorskip("torch")
    from alphagan_video.refine import refine_frames as _refine_batch
    from alphagan_video.refine import prepare_refine, solve_refine

    image, trimap, alpha = _soft_edge()
    prior = np.clip(alpha + 0.2 * np.sin(np.arange(alpha.size).reshape(alpha.shape)), 0, 1)
    expected = refine_alpha(image, trimap, prior, cfg(mu=1e-3, flow=0.1, expand=9))
    problem = prepare_refine(image, trimap, cfg(flow=0.1, expand=9, mu=1e-3), factorise=factor_mu is not None)
    assert (problem.factor is not None) == (factor_mu is not None)
    np.testing.assert_allclose(solve_refine(problem, prior, cfg(mu=1e-3)), expected, atol=1e-6)
    # A factor made for another mu, or per-pixel weights, must not be used as the exact inverse:
    # it only preconditions CG (to sparse._PCG_RTOL, accuracy target 1e-3 max), so the answer
    # is the inline one to well within that target, not to the last bit.
    weight = np.linspace(0.5, 2.0, prior.size).reshape(prior.shape)
    np.testing.assert_allclose(solve_refine(problem, prior, cfg(mu=2e-3)),
                               refine_alpha(image, trimap, prior, cfg(mu=2e-3, flow=0.1, expand=9)), atol=1e-4)
    np.testing.assert_allclose(solve_refine(problem, prior, cfg(mu=1e-3), weight=weight),
                               refine_alpha(image, trimap, prior, cfg(mu=1e-3, flow=0.1, expand=9), weight=weight),
                               atol=1e-4)
    # Through the pipeline's batch function with futures, as FrameMatter passes them.
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    img32 = image.astype(np.float32).astype(np.float64)
    with ThreadPoolExecutor(1) as pool:
        futures = [pool.submit(prepare_refine, img32, trimap, cfg(mu=1e-3, flow=0.1, expand=9),
                               factorise=factor_mu is not None)]
        out = _refine_batch(as_t(image).permute(2, 0, 1)[None], as_t(trimap)[None, None],
                            as_t(prior)[None, None], cfg(mu=1e-3, flow=0.1, expand=9),
                            problems=futures)[0, 0].numpy()
    inline = _refine_batch(as_t(image).permute(2, 0, 1)[None], as_t(trimap)[None, None],
                           as_t(prior)[None, None], cfg(mu=1e-3, flow=0.1, expand=9))[0, 0].numpy()
    np.testing.assert_allclose(out, inline, atol=1e-6)


def test_factor_preconditions_a_solve_with_other_weights(monkeypatch):
    """A factorisation made for the uniform prior serves per-pixel weights (the temporal prior's)
    through preconditioned CG, without factorising again: same answer as factorising the
    actual matrix."""
    import alphagan_video.refine.sparse as refine_module
    from alphagan_video.refine import prepare_refine, solve_refine

    image, trimap, alpha = _soft_edge()
    prior = np.clip(alpha + 0.1, 0, 1)
    weight = 1.0 + 50.0 * np.random.default_rng(5).uniform(size=alpha.shape)  # mu + temporal, / mu
    expected = refine_alpha(image, trimap, prior, cfg(mu=1e-3, flow=0.1, expand=9, solver="direct"), weight=weight)
    problem = prepare_refine(image, trimap, cfg(flow=0.1, expand=9, mu=1e-3), factorise=True)
    assert problem.factor is not None

    def no_new_factorisation(*args, **kwargs):
        raise AssertionError("factorised again instead of preconditioning with the prepared factor")

    monkeypatch.setattr(refine_module, "DirectSolver", no_new_factorisation)
    got = solve_refine(problem, prior, cfg(mu=1e-3), weight=weight)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_one_set_of_defaults():
    """refine_alpha with no config solves the product's system: RefineConfig's defaults, the
    same ones PipelineConfig carries (no second set of keyword defaults)."""
    from alphagan_video.config import PipelineConfig

    assert PipelineConfig().refine == RefineConfig()
    assert (RefineConfig().mu, RefineConfig().flow, RefineConfig().expand) == (3e-5, 0.1, 9)
    image, trimap, _ = _soft_edge()
    prior = np.full(trimap.shape, 0.5)
    product = RefineConfig(mu=3e-5, gate=0.0, weighting="uniform", flow=0.1, expand=9, solver="auto")
    np.testing.assert_array_equal(refine_alpha(image, trimap, prior), refine_alpha(image, trimap, prior, product))
    assert np.abs(refine_alpha(image, trimap, prior) - refine_alpha(image, trimap, prior, cfg())).max() > 1e-3


def test_prior_term_is_folded_with_the_generator_prior():
    """An extra data term (PriorTerm, absolute weight in mu's units) solves the same system as
    the folded prior with weight (mu + w) / mu relative to mu; mu 0 ignores it."""
    from alphagan_video.refine import PriorTerm, combine_priors

    image, trimap, alpha = _soft_edge()
    prior = np.clip(alpha + 0.2, 0, 1)
    target = np.clip(alpha - 0.1, 0, 1)
    w = np.linspace(0.0, 5e-3, alpha.size).reshape(alpha.shape)
    mu = 1e-3
    total, folded = combine_priors(mu, prior, w, target)
    expected = refine_alpha(image, trimap, folded, cfg(mu=mu), weight=total / mu)
    got = refine_alpha(image, trimap, prior, cfg(mu=mu), term=PriorTerm(target, w))
    np.testing.assert_array_equal(got, expected)
    assert np.abs(got - refine_alpha(image, trimap, prior, cfg(mu=mu))).max() > 1e-3
    np.testing.assert_array_equal(refine_alpha(image, trimap, prior, cfg(mu=0.0), term=PriorTerm(target, w)),
                                  refine_alpha(image, trimap, prior, cfg(mu=0.0)))
    with pytest.raises(UserInputError, match="prior term shapes"):
        refine_alpha(image, trimap, prior, cfg(mu=mu), term=PriorTerm(target[:-1], w))


def test_solver_method_per_device():
    from alphagan_video.refine import solver_method

    assert solver_method("auto", "cpu") == "direct"
    assert solver_method("auto", "cuda:0") == "pcg"
    assert solver_method("direct", "cuda") == "direct"
    assert solver_method("cg", "cuda") == "cg"
    assert solver_method("pcg", "cpu") == "pcg"
    with pytest.raises(ParameterError, match="refine.solver 'lu': must be one of") as err:
        solver_method("lu", "cpu")
    assert err.value.param == "refine.solver"


def _moving_edge(shift: int, h: int = 36, w: int = 48, seed: int = 3):
    """``_soft_edge``'s kind of scene (textured F and B, a soft edge with variation along it), the
    edge ``shift`` px to the right: two frames of a subject that moves. Same F / B texture."""
    rng = np.random.default_rng(seed)
    x = np.arange(w, dtype=float)
    alpha = np.clip((x - 16 - shift) / 10.0, 0, 1)[None, :].repeat(h, 0)
    alpha[:, 21 + shift] = np.linspace(0.15, 0.95, h)
    fg = np.array([0.85, 0.35, 0.2]) + rng.uniform(-0.1, 0.1, size=(h, w, 3))
    bg = np.array([0.15, 0.45, 0.75]) + rng.uniform(-0.1, 0.1, size=(h, w, 3))
    image = np.round(np.clip(alpha[..., None] * fg + (1 - alpha[..., None]) * bg, 0, 1) * 255) / 255
    trimap = np.where(x < 13 + shift, 0.0, np.where(x > 29 + shift, 1.0, 0.5))[None, :].repeat(h, 0)
    return image, trimap, alpha


def _temporal_system(problem, prior, term, config):
    """(A, b, target) of ``solve_refine``'s system for a prepared problem with a temporal term,
    built the way it builds them (fold the term, combine with the sampling flow)."""
    import scipy.sparse as sp

    from alphagan_video.refine import combine_priors, fold_prior_term

    u = problem.system.unknown_index
    pr, wt = fold_prior_term(prior, None, config.mu, term)
    w_u = np.ones(u.size) if wt is None else wt.ravel()[u]  # no term: the uniform weight 1
    d, target = combine_priors(config.mu * w_u, np.clip(pr.ravel()[u], 0, 1),
                               problem.flow_weight, problem.flow_alpha)
    A = (problem.system.L_uu + sp.diags(d)).tocsr()
    return A, problem.system.rhs_known + d * target, d, target


def test_warm_and_cold_started_temporal_solves_agree():
    """The video path: the float32 factorisation made in advance (uniform prior) preconditions CG
    for a frame with the temporal term, warm-started from the folded target (the moved previous
    solution where the term is trusted). Started cold instead (0.5 everywhere) it must land on
    the same alpha: 1e-3 max on the unknown pixels (the refine's accuracy target, 1/4 of an
    8-bit step), and both on the float64 direct solve of the same system."""
    import scipy.sparse.linalg as spla

    from alphagan_video.refine import PriorTerm, prepare_refine, solve_refine
    from alphagan_video.refine.sparse import solve_assembled

    config = RefineConfig(expand=0)  # the product's mu 3e-5 and sampling flow, a mask trimap's expand
    image_a, trimap_a, alpha_a = _moving_edge(0)
    image_b, trimap_b, alpha_b = _moving_edge(2)
    prior_a = np.clip(alpha_a + 0.15 * np.cos(np.arange(alpha_a.size).reshape(alpha_a.shape)), 0, 1)
    prior_b = np.clip(alpha_b + 0.15 * np.cos(np.arange(alpha_b.size).reshape(alpha_b.shape)), 0, 1)
    previous = solve_refine(prepare_refine(image_a, trimap_a, config), prior_a, config)
    warped = np.roll(previous.astype(np.float64), 2, axis=1)  # motion-compensated: the edge moved 2 px
    term = PriorTerm(warped, np.full(warped.shape, 0.01))
    problem = prepare_refine(image_b, trimap_b, config, factorise=True)
    assert problem.factor is not None and problem.factor._lu32 is not None  # float32 factorisation

    A, b, d, target = _temporal_system(problem, prior_b, term, config)
    assert not np.array_equal(d, problem.factor_mu + problem.flow_weight)  # the preconditioned path
    u = problem.system.unknown_index
    exact = np.clip(spla.spsolve(A.tocsc(), b), 0, 1)
    warm = solve_refine(problem, prior_b, config, term=term).ravel()[u]
    cold_start = np.full(u.size, 0.5)
    assert np.abs(cold_start - target).max() > 0.3  # the two starts really differ
    cold = np.clip(solve_assembled(problem.system, d, target, cold_start, 1e-5, 2000, "direct", problem.factor,
                                   problem.factor_mu + problem.flow_weight), 0, 1)
    assert np.abs(warm - cold).max() <= 1e-3
    assert np.abs(warm - exact).max() <= 1e-3
    assert np.abs(cold - exact).max() <= 1e-3


def test_float32_factorisation_agrees_with_the_float64_direct_solve():
    """The float32 factorisation the prepare makes serves the frame's own solve (mixed precision,
    iterative refinement) and, as a preconditioner, a solve with another diagonal: both within
    1e-3 max alpha of the float64 direct solve at the product's (weak) mu, where float32 pivots
    are at their smallest."""
    import scipy.sparse.linalg as spla

    from alphagan_video.refine import PriorTerm, prepare_refine, solve_refine

    config = RefineConfig(expand=0)
    image, trimap, alpha = _moving_edge(1)
    prior = np.clip(alpha + 0.2 * np.sin(np.arange(alpha.size).reshape(alpha.shape)), 0, 1)
    problem = prepare_refine(image, trimap, config, factorise=True)
    assert problem.factor._lu32 is not None and problem.factor._lu64 is None
    u = problem.system.unknown_index
    rng = np.random.default_rng(0)
    for term in (None, PriorTerm(np.clip(alpha + rng.normal(0, 0.05, alpha.shape), 0, 1),
                                 rng.uniform(0, 0.01, alpha.shape))):
        A, b, _d, _t = _temporal_system(problem, prior, term, config)
        exact = np.clip(spla.spsolve(A.tocsc(), b), 0, 1)
        got = solve_refine(problem, prior, config, term=term).ravel()[u]
        assert np.abs(got - exact).max() <= 1e-3
    assert problem.factor._lu64 is None  # float32 was enough: no float64 fallback was made
