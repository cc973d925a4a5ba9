"""Tests of the training package: synthetic data, compositing, DIM reader, losses, loop + resume."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from training.config import TrainConfig, coerce_override, load_config
from training.data import (
    DIMMattingDataset,
    IndexStream,
    MixedMattingDataset,
    SyntheticMattingDataset,
    crop_around_unknown,
    trimap_from_alpha,
)
from training.losses import (
    alpha_loss,
    compose,
    composition_loss,
    discriminator_inputs,
    gan_discriminator_loss,
    gan_generator_loss,
    unknown_mask,
)
from training.synthetic import PHOTO_SOURCES, SyntheticForegrounds, composite, load_photo_bank

TINY = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny_test.json"


@pytest.fixture(scope="module")
def bank():
    return load_photo_bank()


@pytest.fixture(scope="module")
def gen96(bank):
    return SyntheticForegrounds(96, supersample=2, photos=bank)


def test_photo_bank_uses_only_licensed_images(bank):
    photos, textures = bank
    assert len(photos) == len(PHOTO_SOURCES)
    assert all(p.dtype == np.float32 and p.ndim == 3 and p.shape[2] == 3 for p in photos)
    assert all(0.0 <= float(p.min()) and float(p.max()) <= 1.0 for p in photos)
    assert "stereo_motorcycle" not in PHOTO_SOURCES and "moon" not in PHOTO_SOURCES
    assert set(textures) == {"grass", "gravel", "brick"}


def test_synthetic_is_deterministic_for_a_seeded_rng(gen96):
    a = gen96.sample(np.random.default_rng(123))
    b = gen96.sample(np.random.default_rng(123))
    c = gen96.sample(np.random.default_rng(124))
    for x, y in ((a.fg, b.fg), (a.alpha, b.alpha), (a.bg, b.bg)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.alpha, c.alpha) or not np.array_equal(a.bg, c.bg)


def test_synthetic_ranges_and_soft_pixels(gen96):
    rng = np.random.default_rng(7)
    soft_fracs = []
    for _ in range(12):
        s = gen96.sample(rng)
        assert s.fg.shape == (96, 96, 3) and s.bg.shape == (96, 96, 3) and s.alpha.shape == (96, 96)
        for arr in (s.fg, s.alpha, s.bg):
            assert arr.dtype == np.float32
            assert float(arr.min()) >= 0.0 and float(arr.max()) <= 1.0
        # 8-bit quantised ground truth, like real mattes.
        np.testing.assert_allclose(s.alpha * 255.0, np.round(s.alpha * 255.0), atol=1e-3)
        soft_fracs.append(float(((s.alpha > 0.02) & (s.alpha < 0.98)).mean()))
    assert max(soft_fracs) > 0.01  # there are genuinely soft (fractional) alpha pixels
    assert np.mean(soft_fracs) > 0.003


def test_hair_strands_are_subpixel_soft(bank):
    # Only hair: strands drawn at 4x and area-downsampled give many fractional alpha values.
    g = SyntheticForegrounds(128, supersample=4, p_hair=1.0, p_fur=0.0, p_flyaway=1.0, p_foliage=0.0, p_mesh=0.0,
                             p_transparent=0.0, p_motion_blur=0.0, p_defocus=0.0, photos=bank)
    rng = np.random.default_rng(3)
    vals = np.concatenate([g.sample(rng).alpha.ravel() for _ in range(4)])
    soft = vals[(vals > 0) & (vals < 1)]
    assert soft.size > 200
    assert len(np.unique(np.round(soft * 255))) > 50


def test_synthetic_rejects_bad_size(bank):
    with pytest.raises(ValueError, match="size=8"):
        SyntheticForegrounds(8, photos=bank)


def test_composite_algebra():
    rng = np.random.default_rng(0)
    fg, bg = rng.random((5, 6, 3), dtype=np.float32), rng.random((5, 6, 3), dtype=np.float32)
    np.testing.assert_allclose(composite(fg, np.ones((5, 6), np.float32), bg), fg)
    np.testing.assert_allclose(composite(fg, np.zeros((5, 6), np.float32), bg), bg)
    a = rng.random((5, 6), dtype=np.float32)
    out = composite(fg, a, bg)
    np.testing.assert_allclose(out, a[..., None] * fg + (1 - a[..., None]) * bg, rtol=1e-6)
    # torch version agrees
    t = compose(torch.from_numpy(a)[None, None], torch.from_numpy(fg).permute(2, 0, 1)[None],
                torch.from_numpy(bg).permute(2, 0, 1)[None])
    np.testing.assert_allclose(t[0].permute(1, 2, 0).numpy(), out, rtol=1e-5, atol=1e-6)


def test_synthetic_dataset_item_format_and_determinism():
    ds = SyntheticMattingDataset(size=64, seed=5, supersample=2)
    a, b = ds[3], ds[3]
    assert set(a) == {"image", "trimap", "alpha", "fg", "bg"}
    assert a["image"].shape == (3, 64, 64) and a["trimap"].shape == (1, 64, 64) and a["alpha"].shape == (1, 64, 64)
    for k in a:
        assert a[k].dtype == torch.float32
        assert torch.equal(a[k], b[k])
        assert float(a[k].min()) >= 0.0 and float(a[k].max()) <= 1.0
    assert set(torch.unique(a["trimap"]).tolist()) <= {0.0, 0.5, 1.0}
    assert float((a["trimap"] == 0.5).float().mean()) > 0.0
    # Known regions of the trimap agree with the alpha.
    alpha, tri = a["alpha"].numpy(), a["trimap"].numpy()
    assert float(alpha[tri == 1.0].min(initial=1.0)) > 0.99
    assert float(alpha[tri == 0.0].max(initial=0.0)) < 0.01
    assert not torch.equal(ds[4]["alpha"], a["alpha"])


def test_trimap_from_alpha_band():
    alpha = np.zeros((160, 160), np.float32)
    cv2.circle(alpha, (80, 80), 50, 1.0, -1)
    tri = trimap_from_alpha(alpha, np.random.default_rng(0), wide_prob=0.0)
    assert set(np.unique(tri).tolist()) == {0.0, 0.5, 1.0}
    assert tri[80, 80] == 1.0 and tri[0, 0] == 0.0 and tri[80, 30] == 0.5


def test_crop_around_unknown_centres_on_unknown():
    unknown = np.zeros((100, 120), bool)
    unknown[90, 110] = True
    img = np.arange(100 * 120, dtype=np.float32).reshape(100, 120)
    (crop,) = crop_around_unknown([img], unknown, 32, np.random.default_rng(0))
    assert crop.shape == (32, 32)
    assert img[90, 110] in crop
    (small,) = crop_around_unknown([img[:10, :10]], unknown[:10, :10], 32, np.random.default_rng(0))
    assert small.shape == (32, 32)


def _fake_dim(root: Path, n: int = 2) -> tuple[Path, Path]:
    (root / "fg").mkdir(parents=True)
    (root / "alpha").mkdir()
    bgd = root / "coco"
    bgd.mkdir()
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        name = f"obj{i}.png"
        fg = (rng.random((70, 90, 3)) * 255).astype(np.uint8)
        alpha = np.zeros((70, 90), np.uint8)
        cv2.circle(alpha, (45, 35), 20, 255, -1, lineType=cv2.LINE_AA)
        alpha = cv2.GaussianBlur(alpha, (0, 0), 2)
        cv2.imwrite(str(root / "fg" / name), fg)
        cv2.imwrite(str(root / "alpha" / name), alpha)
        names.append(name)
    for i in range(3):
        cv2.imwrite(str(bgd / f"bg{i}.jpg"), (rng.random((50, 60, 3)) * 255).astype(np.uint8))
    lst = root / "train.txt"
    lst.write_text("\n".join(names) + "\n")
    return bgd, lst


def test_dim_reader_on_fake_folder(tmp_path):
    bgd, lst = _fake_dim(tmp_path / "dim")
    ds = DIMMattingDataset(tmp_path / "dim", bgd, lst, size=48, seed=1, crop_sizes=(32, 64))
    item = ds[1]
    assert item["image"].shape == (3, 48, 48) and item["alpha"].shape == (1, 48, 48)
    assert item["fg"].shape == (3, 48, 48) and item["bg"].shape == (3, 48, 48)
    assert float((item["trimap"] == 0.5).float().mean()) > 0
    for k in ("alpha", "fg", "bg"):
        assert torch.equal(item[k], ds[1][k])  # deterministic per index
    # Image is the composite (before degradation) up to JPEG/noise.
    comp = compose(item["alpha"], item["fg"], item["bg"])
    assert float((comp - item["image"]).abs().mean()) < 0.08
    mixed = MixedMattingDataset([SyntheticMattingDataset(size=48, seed=1, supersample=2), ds], [0.5, 0.5], seed=1)
    assert mixed[0]["image"].shape == (3, 48, 48)


def test_dim_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing folder fg/"):
        DIMMattingDataset(tmp_path, tmp_path)
    bgd, lst = _fake_dim(tmp_path / "dim")
    lst.write_text("nope.png\n")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        DIMMattingDataset(tmp_path / "dim", bgd, lst)


def test_losses_zero_for_perfect_prediction_and_positive_otherwise():
    g = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 1, 16, 16, generator=g)
    fg, bg = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    tri = torch.full((2, 1, 16, 16), 0.5)
    tri[:, :, :4] = 0.0
    unk = unknown_mask(tri)
    assert float(unk.sum()) == 2 * 12 * 16
    assert float(alpha_loss(gt, gt, unk)) < 1e-5
    assert float(composition_loss(gt, gt, fg, bg, unk)) < 1e-5
    pred = (gt + 0.2).clamp(0, 1)
    assert float(alpha_loss(pred, gt, unk)) > 0.05
    assert float(composition_loss(pred, gt, fg, bg, unk)) > 0.005
    # Errors only in the known region do not count.
    pred2 = gt.clone()
    pred2[:, :, :4] = 1 - pred2[:, :, :4]
    assert float(alpha_loss(pred2, gt, unk)) < 1e-5


def test_gan_losses():
    big, small = torch.full((2, 1, 3, 3), 9.0), torch.full((2, 1, 3, 3), -9.0)
    for mode in ("bce", "lsgan"):
        good_d = float(gan_discriminator_loss(big if mode == "bce" else torch.ones(2, 1, 3, 3),
                                              small if mode == "bce" else torch.zeros(2, 1, 3, 3), mode))
        bad_d = float(gan_discriminator_loss(small if mode == "bce" else torch.zeros(2, 1, 3, 3),
                                             big if mode == "bce" else torch.ones(2, 1, 3, 3), mode))
        assert good_d < 1e-3 < bad_d
        assert float(gan_generator_loss(big, mode)) < float(gan_generator_loss(small, mode))
    with pytest.raises(ValueError, match="gan_mode 'wgan'"):
        gan_generator_loss(big, "wgan")
    gt = torch.rand(3, 1, 8, 8)
    fg, bg, tri = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8), torch.full((3, 1, 8, 8), 0.5)
    fake, real, _ = discriminator_inputs(gt, gt, fg, bg, tri, new_background=True)
    assert torch.allclose(fake, real)
    assert torch.allclose(real, compose(gt, fg, torch.roll(bg, 1, 0)))


def test_config_load_and_overrides(tmp_path):
    cfg = load_config(TINY, {"steps": 9})
    assert cfg.variant == "tiny" and cfg.steps == 9
    with pytest.raises(KeyError, match="bogus"):
        load_config(TINY, {"bogus": 1})
    with pytest.raises(ValueError, match="variant='vgg'"):
        TrainConfig(variant="vgg")
    assert coerce_override("amp", "false") is False and coerce_override("lr", "1e-3") == 1e-3
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_config(tmp_path / "missing.json")


def test_index_stream_starts_where_told():
    it = iter(IndexStream(5))
    assert [next(it) for _ in range(3)] == [5, 6, 7]


def _read_log(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_train_smoke_resume_and_export(tmp_path, capsys):
    from alphagan_video.model import load_generator
    from training.train import main

    out = tmp_path / "run"
    exp = tmp_path / "g.safetensors"
    assert main(["--config", str(TINY), "--out", str(out), "--steps", "3", "--no-progress", "--threads", "1",
                 "--export-path", str(exp)]) == 0
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    assert exp.is_file()  # the first validation always improves on "no model yet"
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert ck["step"] == 3 and ck["samples"] == 6
    rows = _read_log(out / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    # Resume: the step counter advances from 3, the GAN is on (adv_start_step=1), losses finite.
    assert main(["--resume", str(out / "last.pt"), "--config", str(TINY), "--steps", "5", "--no-progress",
                 "--threads", "1", "--export-path", str(exp)]) == 0
    ck2 = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    assert ck2["step"] == 5 and ck2["samples"] == 10
    rows = _read_log(out / "log.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    for r in rows[3:]:
        for k in ("loss_g", "l_alpha", "l_comp", "l_adv", "loss_d"):
            assert np.isfinite(float(r[k]))
        assert float(r["l_adv"]) > 0 and float(r["loss_d"]) > 0
    assert not torch.equal(ck["generator"]["decoder.head.weight"], ck2["generator"]["decoder.head.weight"])
    # Export (best-so-far during training and the explicit export mode) loads as a generator.
    g, meta = load_generator(exp)
    assert meta.variant == "tiny"
    assert main(["--export-from", str(out / "last.pt"), "--export-to", str(tmp_path / "e.safetensors")]) == 0
    g2, _ = load_generator(tmp_path / "e.safetensors")
    y = g2(torch.rand(1, 3, 40, 40), torch.full((1, 1, 40, 40), 0.5))
    assert y.shape == (1, 1, 40, 40) and torch.isfinite(y).all()
    capsys.readouterr()


def test_resume_is_exact(tmp_path):
    """Training 4 steps straight equals 2 steps + resume + 2 steps (data and RNG restored)."""
    from training.train import main

    a, b = tmp_path / "a", tmp_path / "b"
    common = ["--config", str(TINY), "--no-progress", "--threads", "1", "--set", "val_every=0"]
    assert main(common + ["--out", str(a), "--steps", "4"]) == 0
    assert main(common + ["--out", str(b), "--steps", "2"]) == 0
    assert main(common + ["--resume", str(b / "last.pt"), "--steps", "4"]) == 0
    ga = torch.load(a / "last.pt", map_location="cpu", weights_only=False)["generator"]
    gb = torch.load(b / "last.pt", map_location="cpu", weights_only=False)["generator"]
    for k in ga:
        torch.testing.assert_close(ga[k], gb[k], rtol=1e-5, atol=1e-6)


def test_resume_rejects_other_architecture(tmp_path):
    from training.train import main

    out = tmp_path / "run"
    assert main(["--config", str(TINY), "--out", str(out), "--steps", "1", "--no-progress", "--threads", "1",
                 "--set", "val_every=0"]) == 0
    with pytest.raises(ValueError, match="disc_width=8"):
        main(["--config", str(TINY), "--resume", str(out / "last.pt"), "--set", "disc_width=16", "--no-progress"])
