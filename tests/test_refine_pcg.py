"""Matrix-free matting Laplacian and PCG solve (alphagan_video.refine_pcg), against the
assembled sparse system of alphagan_video.refine. CPU only, float64 for the exactness checks."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from alphagan_video.errors import UserInputError
from alphagan_video.refine import DirectSolver, matting_system, trimap_regions
from alphagan_video.refine_pcg import MattingOperator, pcg, solve_pcg


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
