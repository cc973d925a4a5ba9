"""Plate mode against a plate of another exposure and white balance (issue 27, item 4): the
colour map, no holes in the subject, and the warning when the plate does not explain the frame."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import torch

from alphagan_video.config import MaskConfig
from alphagan_video.masks import build_mask_source
from alphagan_video.masks.colour_map import explained_plate, fit_colour_map
from alphagan_video.types import VideoInfo

H, W = 96, 128
CPU = torch.device("cpu")


def _info() -> VideoInfo:
    return VideoInfo(path="clip.mp4", kind="video", width=W, height=H, time_base=Fraction(1, 25),
                     frame_rate=Fraction(25), frame_count=None, pix_fmt="yuv420p", bit_depth=8)


def _texture(rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    """A colourful background, channels not tied to each other, in [0.15, 0.75]."""
    tex = cv2.GaussianBlur(rng.random((H, W, 3)).astype(np.float32), (0, 0), sigma)
    tex = (tex - tex.min(axis=(0, 1))) / (tex.max(axis=(0, 1)) - tex.min(axis=(0, 1)))
    return (0.15 + 0.6 * tex).astype(np.float32)


def _subject(k: int = 0) -> np.ndarray:
    """A face-sized ellipse (a quarter of the frame), moving right with k."""
    m = np.zeros((H, W), np.uint8)
    cv2.ellipse(m, (48 + 6 * k, 50), (26, 34), 0, 0, 360, 1, -1)
    return m.astype(bool)


def _u8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def _write(path: Path, rgb: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(_u8(rgb), cv2.COLOR_RGB2BGR))


def _tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack([_u8(f) for f in frames]).astype(np.float32) / 255).permute(0, 3, 1, 2)


def test_colour_map_recovers_a_known_affine_map():
    rng = np.random.default_rng(0)
    plate = _texture(rng)
    matrix = np.array([[0.80, 0.05, 0.00], [0.02, 0.90, 0.03], [0.00, -0.04, 1.10]])
    offset = np.array([0.03, -0.01, 0.02])
    frame = plate @ matrix.T + offset
    subject = _subject()
    frame[subject] = [0.9, 0.2, 0.1]  # a quarter of the frame is not background: the fit must ignore it
    frame = frame + rng.normal(0, 0.004, frame.shape)
    plate_noisy = plate + rng.normal(0, 0.004, plate.shape)
    cmap = fit_colour_map(frame.astype(np.float32), plate_noisy.astype(np.float32))
    assert np.abs(cmap.matrix - matrix).max() < 0.03, cmap.matrix
    assert np.abs(cmap.offset - offset).max() < 0.015, cmap.offset
    # the residual's noise: the two images' 0.004 each -> 0.0057 per channel
    assert 0.004 < float(np.sqrt((cmap.sigma ** 2).mean())) < 0.008, cmap.sigma
    assert 0.65 < cmap.inlier_share < 0.85  # the background's share of the frame (~ 0.77)


def test_clipped_plate_channels_agree_when_the_frame_is_brighter():
    frame = np.array([[[0.9, 0.5, 0.5], [0.7, 0.5, 0.5]]], np.float32)
    plate = np.array([[[1.0, 0.5, 0.5], [1.0, 0.5, 0.5]]], np.float32)
    mapped = plate * 0.8
    out = explained_plate(frame, mapped, plate)
    assert out[0, 0, 0] == frame[0, 0, 0]  # 0.9 >= 0.8: the plate may have been brighter than 1.0
    assert out[0, 1, 0] == mapped[0, 1, 0]  # 0.7 < 0.8: a real difference


def test_a_brighter_plate_leaves_no_holes_in_the_subject(tmp_path):
    """The subject's colour is what the brighter, bluer plate shows behind it: against the
    unadjusted plate it would be "background" (a see-through face); the background itself differs
    from the plate everywhere (kept background)."""
    rng = np.random.default_rng(1)
    background = _texture(rng)
    gain = np.array([1.15 * 0.96, 1.15, 1.15 * 1.05])
    plate = background * gain + 0.02
    _write(tmp_path / "plate.png", plate + rng.normal(0, 0.006, plate.shape))
    frames, truths = [], []
    for k in range(3):
        subject = _subject(k)
        f = background.copy()
        f[subject] = plate[subject]  # the subject looks like the plate, not like the background
        frames.append(f + rng.normal(0, 0.006, f.shape))
        truths.append(subject)
    src = build_mask_source(MaskConfig(source=f"plate:{tmp_path / 'plate.png'}"), _info(), CPU)
    masks = src(_tensor(frames), [0, 1, 2])[:, 0].numpy()
    kernel = np.ones((5, 5), np.uint8)
    for mask, truth in zip(masks, truths):
        inner = cv2.erode(truth.astype(np.uint8), kernel) > 0
        outer = cv2.erode((~truth).astype(np.uint8), kernel) > 0
        assert (mask[inner] > 0.5).all(), int((mask[inner] <= 0.5).sum())  # no holes
        assert (mask[outer] < 0.5).mean() > 0.99  # the background is background
    reg = src.last_registration
    assert abs(reg["colour_gain"][1] - 1 / 1.15) < 0.03 and reg["unexplained_share"] < 0.5
    assert src.warnings == []
    src.close()


def test_warning_when_the_plate_is_another_scene_and_quiet_on_a_matching_plate(tmp_path):
    rng = np.random.default_rng(2)
    background = _texture(rng)
    frames = []
    for k in range(5):
        f = background * 0.9 - 0.01
        f[_subject(k)] = [0.85, 0.55, 0.45]
        frames.append(f + rng.normal(0, 0.006, f.shape))
    _write(tmp_path / "same.png", background + rng.normal(0, 0.006, background.shape))
    _write(tmp_path / "other.png", _texture(np.random.default_rng(9)))
    for name, warns in (("same", False), ("other", True)):
        src = build_mask_source(MaskConfig(source=f"plate:{tmp_path / name}.png"), _info(), CPU)
        src(_tensor(frames), list(range(5)))
        warnings = src.warnings
        src.close()
        assert bool(warnings) == warns, (name, warnings)
    (line,) = warnings
    assert "plate does not explain 5 of 5 frame(s): 0, 1, 2, 3, 4" in line and "\n" not in line


def test_a_flat_subject_filling_most_of_the_frame_is_not_taken_for_the_background():
    """A flat subject is explained exactly by a zero matrix with its colour as the offset; with
    more than half the frame it would win a median-trimmed fit: a TRIM of 0.3 and only plausible
    exposure changes let the background (40 %) decide."""
    rng = np.random.default_rng(3)
    plate = _texture(rng)
    frame = plate * 0.85 + 0.01
    subject = np.zeros((H, W), bool)
    subject[:, : int(0.6 * W)] = True
    frame[subject] = [0.8, 0.6, 0.5]
    frame = frame + rng.normal(0, 0.004, frame.shape)
    cmap = fit_colour_map(frame.astype(np.float32), (plate + rng.normal(0, 0.004, plate.shape)).astype(np.float32))
    assert np.abs(np.diag(cmap.matrix) - 0.85).max() < 0.05, cmap.matrix
