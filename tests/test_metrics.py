"""DIM-MATLAB matting metrics (alphagan_video.metrics) and the evaluation command (training.evaluate)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from alphagan_video.errors import InputMediaError, UserInputError
from alphagan_video.metrics import (
    connectivity_error,
    force_known,
    gaussian_gradient_kernel,
    gradient_error,
    mse,
    sad,
    score_all,
    to_uint8,
)

U = 128


def _random_case(seed: int = 0, h: int = 23, w: int = 29):
    rng = np.random.default_rng(seed)
    gt = np.zeros((h, w), np.uint8)
    gt[:, w // 2 :] = 255
    band = slice(w // 2 - 4, w // 2 + 4)
    gt[:, band] = rng.integers(0, 256, size=(h, 8), dtype=np.uint8)
    trimap = np.zeros((h, w), np.uint8)
    trimap[:, w // 2 :] = 255
    trimap[:, band] = U
    return gt, trimap, rng


# ---------------------------------------------------------------- SAD / MSE / force_known


def test_perfect_prediction_scores_zero_on_all_four():
    gt, trimap, _ = _random_case()
    s = score_all(gt.copy(), gt, trimap)
    assert (s.sad, s.mse, s.grad, s.conn) == (0.0, 0.0, 0.0, 0.0)


def test_sad_and_mse_hand_computed_on_4x4():
    gt = np.array([[0, 0, 255, 255]] * 4, np.uint8)
    trimap = np.array([[0, U, U, 255]] * 4, np.uint8)
    pred = gt.copy()
    pred[0, 1] = 51  # |diff| 51 = 0.2
    pred[1, 2] = 153  # |diff| 102 = 0.4
    pred[2, 0] = 255  # known pixel: ignored
    pred[3, 3] = 0  # known pixel: ignored
    assert sad(pred, gt, trimap) == pytest.approx((0.2 + 0.4) / 1000, rel=1e-12)
    # 8 unknown pixels
    assert mse(pred, gt, trimap) == pytest.approx((0.2**2 + 0.4**2) / 8, rel=1e-12)


def test_known_regions_are_ignored_after_forcing():
    gt, trimap, rng = _random_case(1)
    pred = gt.copy()
    pred[trimap == U] = rng.integers(0, 256, size=int((trimap == U).sum()), dtype=np.uint8)
    garbage = pred.copy()
    known = trimap != U
    garbage[known] = rng.integers(0, 256, size=int(known.sum()), dtype=np.uint8)
    assert score_all(garbage, gt, trimap) == score_all(pred, gt, trimap)
    # SAD and MSE never look outside the unknown region, forced or not.
    assert sad(garbage, gt, trimap) == sad(pred, gt, trimap)
    assert mse(garbage, gt, trimap) == mse(pred, gt, trimap)


def test_force_known_sets_trimap_values_and_keeps_unknown():
    pred = np.array([[7, 7, 7]], np.uint8)
    trimap = np.array([[0, U, 255]], np.uint8)
    assert force_known(pred, trimap).tolist() == [[0, 7, 255]]
    assert pred.tolist() == [[7, 7, 7]]  # not modified in place


def test_to_uint8_rounds_and_clips():
    assert to_uint8(np.array([[-0.1, 0.5, 1.0 / 255 * 0.49, 1.2]])).tolist() == [[0, 128, 0, 255]]


def test_inputs_are_validated():
    gt, trimap, _ = _random_case()
    with pytest.raises(UserInputError, match="must be uint8"):
        sad(gt.astype(np.float32) / 255, gt, trimap)
    with pytest.raises(UserInputError, match="shapes differ"):
        mse(gt[:-1], gt, trimap)
    with pytest.raises(UserInputError, match="2-D"):
        gradient_error(np.stack([gt] * 3, -1), gt, trimap)
    with pytest.raises(UserInputError, match="step"):
        connectivity_error(gt, gt, trimap, step=0)


# ---------------------------------------------------------------- Grad


def _matlab_kernel(sigma: float) -> np.ndarray:
    """gaussgradient.m written out literally (1-based loops)."""
    eps = 1e-2
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * eps)))
    size = 2 * half + 1
    gauss = lambda x: math.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))  # noqa: E731
    dgauss = lambda x: -x * gauss(x) / sigma**2  # noqa: E731
    hx = np.zeros((size, size))
    for i in range(1, size + 1):
        for j in range(1, size + 1):
            hx[i - 1, j - 1] = gauss(i - half - 1) * dgauss(j - half - 1)
    return hx / math.sqrt((hx * hx).sum())


def _conv_replicate(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """imfilter(img, k, 'replicate', 'conv') by explicit loops."""
    r = k.shape[0] // 2
    padded = np.pad(img, r, mode="edge")
    kf = k[::-1, ::-1]
    out = np.zeros_like(img, dtype=np.float64)
    for y in range(img.shape[0]):
        for x in range(img.shape[1]):
            out[y, x] = (padded[y : y + 2 * r + 1, x : x + 2 * r + 1] * kf).sum()
    return out


def test_gradient_kernel_matches_matlab_definition():
    k = gaussian_gradient_kernel(1.4)
    assert k.shape == (9, 9)
    np.testing.assert_allclose(k, _matlab_kernel(1.4), rtol=0, atol=1e-15)
    assert np.sum(k * k) == pytest.approx(1.0)


def test_gradient_error_matches_direct_convolution():
    rng = np.random.default_rng(3)
    h, w = 13, 11
    gt = np.zeros((h, w), np.uint8)
    gt[:, 6:] = 255
    gt[:, 4:7] = rng.integers(0, 256, size=(h, 3), dtype=np.uint8)
    pred = np.clip(gt.astype(int) + rng.integers(-60, 61, size=(h, w)), 0, 255).astype(np.uint8)
    trimap = np.zeros((h, w), np.uint8)
    trimap[:, 3:8] = U
    trimap[:, 8:] = 255
    trimap[0, :] = U  # unknown pixels on the border: replicate padding matters there
    k = _matlab_kernel(1.4)

    def amp(a):
        g = (a - a.min()) / (a.max() - a.min())  # mat2gray
        return np.hypot(_conv_replicate(g, k), _conv_replicate(g, k.T))

    expected = ((amp(pred.astype(float)) - amp(gt.astype(float))) ** 2)[trimap == U].sum() / 1000
    assert expected > 0
    assert gradient_error(pred, gt, trimap) == pytest.approx(expected, rel=1e-10)


def test_gradient_error_min_max_normalises_each_map():
    gt = np.zeros((10, 10), np.uint8)
    gt[:, 5:] = 255
    pred = np.where(gt > 0, 204, 51).astype(np.uint8)  # same edge at 0.2..0.8 contrast
    trimap = np.full((10, 10), U, np.uint8)
    assert sad(pred, gt, trimap) > 0
    assert gradient_error(pred, gt, trimap) == 0.0  # mat2gray maps both to {0, 1}


# ---------------------------------------------------------------- Conn


def test_connectivity_uses_4_connectivity():
    # A 3x3 blob and one pixel touching it only diagonally (8-connected, not 4-connected).
    gt = np.zeros((6, 6), np.uint8)
    gt[0:3, 0:3] = 255
    gt[3, 3] = 255
    pred = gt.copy()
    pred[3, 3] = 89  # 0.349
    trimap = np.full((6, 6), U, np.uint8)
    # 4-connected: the pixel is never in the largest component -> l = 0,
    # phi_pred = 1 - 0.349, phi_gt = 1 - 1 -> |diff| = 0.651.  8-connected would give l = 0.3
    # -> d_pred = 0.049 < 0.15 -> phi_pred = 1, phi_gt = 1 - 0.7 -> 0.7.
    assert connectivity_error(pred, gt, trimap) == pytest.approx((1 - 89 / 255) / 1000, rel=1e-6)


def test_connectivity_never_picks_the_background_label():
    # Foreground block of 4 pixels, 32 background pixels: the largest *foreground* component is
    # the block (counting label 0 would pick the background).
    gt = np.zeros((6, 6), np.uint8)
    gt[0:2, 0:2] = 255
    pred = gt.copy()
    pred[1, 1] = 217  # 0.851: in the component up to t = 0.8, drops at 0.9 -> l = 0.8
    trimap = np.zeros((6, 6), np.uint8)
    trimap[0:3, 0:3] = U
    # d_pred = 0.051 < 0.15 -> phi_pred = 1; phi_gt = 1 - (1 - 0.8) = 0.8 -> 0.2.
    # Picking the background label would give l = 0: phi_pred = 0.149, phi_gt = 0 -> 0.149.
    assert connectivity_error(pred, gt, trimap) == pytest.approx(0.2 / 1000, rel=1e-5)


def test_connectivity_of_disconnected_prediction_is_positive():
    gt, trimap, rng = _random_case(5)
    pred = gt.copy()
    pred[::2, :] = 0  # cut the foreground into stripes
    assert connectivity_error(pred, gt, trimap) > connectivity_error(gt, gt, trimap) == 0.0


# ---------------------------------------------------------------- training.evaluate


def _write_dataset(root: Path, n: int = 2, h: int = 26, w: int = 34) -> None:
    """Tiny composites with a soft vertical edge: image/, alpha/ (3 channels), trimap/."""
    rng = np.random.default_rng(7)
    for sub in ("image", "alpha", "trimap"):
        (root / sub).mkdir(parents=True)
    for i in range(n):
        x = np.arange(w, dtype=float)
        alpha = np.clip((x - 12 - i) / 8.0, 0, 1)[None, :].repeat(h, 0)
        fg = np.array([0.9, 0.3, 0.2]) + rng.uniform(-0.05, 0.05, size=(h, w, 3))
        bg = np.array([0.1, 0.4, 0.8]) + rng.uniform(-0.05, 0.05, size=(h, w, 3))
        img = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
        band = ndimage.binary_dilation((alpha > 0) & (alpha < 1), structure=np.ones((1, 5), bool))
        trimap = np.where(band, U, np.where(alpha >= 1, 255, 0)).astype(np.uint8)
        name = f"S{i:02d}.png"
        cv2.imwrite(str(root / "image" / name), to_uint8(img)[..., ::-1])
        cv2.imwrite(str(root / "alpha" / name), np.repeat(to_uint8(alpha)[..., None], 3, 2))
        cv2.imwrite(str(root / "trimap" / name), trimap.astype(np.uint8))


def test_evaluate_folder_closed_form_matches_pymatting(tmp_path):
    from training.evaluate import evaluate_folder, list_samples, load_sample

    _write_dataset(tmp_path / "data")
    samples = list_samples(tmp_path / "data")
    assert [s.name for s in samples] == ["S00", "S01"]
    img, gt, tri = load_sample(samples[0])
    assert img.shape == (26, 34, 3) and gt.shape == tri.shape == (26, 34)
    assert set(np.unique(tri)) == {0, U, 255}
    res = evaluate_folder(tmp_path / "data", "closed_form,pymatting_cf")
    assert res.methods == ["closed_form", "pymatting_cf"] and len(res.rows) == 4
    for a, b in zip(res.rows[0::2], res.rows[1::2]):
        assert a.name == b.name
        assert a.sad == pytest.approx(b.sad, abs=2e-3)
        assert a.sad < 0.05  # the colour-line model holds: near-exact recovery
    mean = res.mean("closed_form")
    assert mean.name == "mean" and mean.seconds > 0


def test_evaluate_cli_writes_csv_and_limits(tmp_path, capsys):
    from training.evaluate import main

    _write_dataset(tmp_path / "data")
    out = tmp_path / "res.csv"
    rc = main(["--data", str(tmp_path / "data"), "--methods", "closed_form", "--limit", "1", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "S00" in printed and "S01" not in printed and "mean" in printed
    rows = list(csv.DictReader(open(out)))
    assert [r["name"] for r in rows] == ["S00", "mean"]
    assert set(rows[0]) == {"name", "method", "sad", "mse", "grad", "conn", "seconds"}


def test_evaluate_reports_missing_data_and_bad_methods(tmp_path, capsys):
    from training.evaluate import evaluate_folder, main

    assert main(["--data", str(tmp_path / "nope")]) == 2
    assert "evaluation data folder not found" in capsys.readouterr().err
    _write_dataset(tmp_path / "data", n=1)
    with pytest.raises(UserInputError, match="unknown method"):
        evaluate_folder(tmp_path / "data", "closed_form,magic")
    (tmp_path / "data" / "alpha" / "S00.png").unlink()
    with pytest.raises(InputMediaError, match="S00"):
        evaluate_folder(tmp_path / "data", "closed_form")


def test_evaluate_generator_and_refined_with_tiny_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    model_mod = pytest.importorskip("alphagan_video.model")
    from training.evaluate import evaluate_folder

    torch.manual_seed(0)
    ckpt = model_mod.save_generator(model_mod.build_generator("tiny").eval(), tmp_path / "tiny.safetensors")
    _write_dataset(tmp_path / "data", n=1)
    res = evaluate_folder(tmp_path / "data", "generator,refined", checkpoint=ckpt, threads=1, mu=1e-4)
    assert res.methods == ["generator", "refined"]
    gen, ref = res.rows
    assert all(math.isfinite(v) for v in (gen.sad, gen.mse, gen.grad, gen.conn))
    # an untrained generator is a poor prior; a weak-prior solve must still beat it
    assert ref.sad < gen.sad
    assert ref.seconds >= gen.seconds


def test_evaluate_pipeline_method_is_the_refined_generator(tmp_path):
    """The ``pipeline`` method runs the product end to end (image in, 16-bit PNG matte out);
    with the pipeline's own refine strength it must score like ``refined``."""
    torch = pytest.importorskip("torch")
    model_mod = pytest.importorskip("alphagan_video.model")
    from alphagan_video.config import RefineConfig
    from training.evaluate import evaluate_folder

    torch.manual_seed(0)
    ckpt = model_mod.save_generator(model_mod.build_generator("tiny").eval(), tmp_path / "tiny.safetensors")
    _write_dataset(tmp_path / "data", n=1)
    res = evaluate_folder(tmp_path / "data", "refined,pipeline", checkpoint=ckpt, threads=1,
                          mu=RefineConfig.mu)
    refined, pipeline = res.rows
    assert pipeline.method == "pipeline"
    # 16-bit PNG vs float: both are quantised to 8 bits before scoring, so allow rounding flips
    assert pipeline.sad == pytest.approx(refined.sad, rel=0.02, abs=0.002)
    assert pipeline.mse == pytest.approx(refined.mse, rel=0.05, abs=1e-5)


DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alphamatting-dev"


@pytest.mark.skipif(not (DEV / "image").is_dir(), reason="alphamatting-dev not present")
def test_real_photo_closed_form_reference_value():
    from training.evaluate import evaluate_folder

    res = evaluate_folder(DEV, "closed_form", limit=1)
    row = res.rows[0]
    assert row.name == "GT01"
    # pymatting.estimate_alpha_cf on GT01 / Trimap1 scores SAD 1.130, Grad 1.775, Conn 0.740
    assert row.sad == pytest.approx(1.130, abs=0.005)
    assert row.grad == pytest.approx(1.775, abs=0.01)
    assert row.conn == pytest.approx(0.740, abs=0.005)
