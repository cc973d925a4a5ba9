from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from alphagan_video.errors import UserInputError
from alphagan_video.trimap import (
    clamp_known,
    default_band_px,
    ellipse_kernel,
    make_trimap,
    random_trimap,
    sample_random_trimap_params,
    trimap_from_uint8,
    trimap_to_uint8,
)


def _dilated_eroded(mask: torch.Tensor, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """The dilation and the erosion by ``radius`` inside ``make_trimap`` (a band of 2 * radius
    dilates and erodes by radius): not background = dilated, foreground = eroded. (1,1,H,W) bool
    -> two (H,W) bool arrays."""
    trimap = make_trimap(mask, 2 * radius)[0, 0]
    return (trimap > 0).numpy(), (trimap == 1).numpy()


def _square(size: int, lo: int, hi: int) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[..., lo:hi, lo:hi] = 1.0
    return m


# ---------------------------------------------------------------- known answers


def test_make_trimap_9x9_square_band2_known_answer():
    # 5x5 square in a 9x9 frame; band 2 = dilate 1 + erode 1 with the 3x3 ellipse (a cross).
    trimap = make_trimap(_square(9, 2, 7), band_px=2)
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 1, 1, 0, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 1, 1, 2, 2, 2, 1, 1, 0],
            [0, 1, 1, 2, 2, 2, 1, 1, 0],
            [0, 1, 1, 2, 2, 2, 1, 1, 0],
            [0, 1, 1, 1, 1, 1, 1, 1, 0],
            [0, 0, 1, 1, 1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
    )
    assert trimap.shape == (1, 1, 9, 9)
    np.testing.assert_array_equal((trimap[0, 0] * 2).round().int().numpy(), expected)


def test_make_trimap_band0_is_binary_and_odd_band_goes_outside():
    m = _square(9, 2, 7)
    np.testing.assert_array_equal(make_trimap(m, 0).numpy(), m.numpy())
    # band 1: dilate 1 (cross) outside, no erosion: the whole square stays foreground.
    t1 = make_trimap(m, 1)[0, 0]
    assert (t1[2:7, 2:7] == 1).all()
    assert t1[1, 4] == 0.5 and t1[1, 1] == 0 and t1[0, 4] == 0


def test_make_trimap_straight_edge_band_width():
    # A vertical edge: the unknown band is exactly band_px wide, half on each side.
    for band in (2, 3, 8, 11):
        m = torch.zeros(1, 1, 40, 40)
        m[..., :, 20:] = 1.0
        row = make_trimap(m, band)[0, 0, 20]
        unknown = torch.nonzero(row == 0.5).flatten().tolist()
        assert len(unknown) == band
        assert unknown[0] == 20 - (band + 1) // 2 and unknown[-1] == 20 + band // 2 - 1


def test_make_trimap_threshold_and_dtype_and_batch():
    m = torch.tensor([0.2, 0.49, 0.51, 0.9]).view(1, 1, 1, 4).repeat(3, 1, 1, 1)
    t = make_trimap(m, 0, threshold=0.5)
    assert t.dtype == torch.float32 and t.shape == (3, 1, 1, 4)
    assert t[0, 0, 0].tolist() == [0, 0, 1, 1]
    assert make_trimap(m, 0, threshold=0.1)[0, 0, 0].tolist() == [1, 1, 1, 1]
    assert make_trimap(m.double(), 0).dtype == torch.float64
    assert set(make_trimap(m > 0.5, 2).unique().tolist()) <= {0.0, 0.5, 1.0}


def test_mask_touching_the_border_keeps_foreground_there():
    # OpenCV's default erode border: outside counts as foreground, no unknown band at the frame edge.
    m = torch.zeros(1, 1, 12, 12)
    m[..., :, :6] = 1.0
    t = make_trimap(m, 4)[0, 0]
    assert (t[:, 0] == 1).all() and (t[0, :4] == 1).all()


# ---------------------------------------------------------------- oracle: OpenCV


@pytest.mark.parametrize("size", list(range(1, 40)) + [45, 61, 87])
def test_ellipse_kernel_equals_opencv(size):
    np.testing.assert_array_equal(ellipse_kernel(size), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))


def test_dilate_erode_equal_opencv_on_hand_made_masks():
    masks = []
    m = np.zeros((15, 17), np.uint8)
    m[7, 8] = 1  # single pixel -> the kernel itself
    masks.append(m)
    m = np.zeros((15, 17), np.uint8)
    m[3:12, 4:13] = 1
    m[6:9, 7:10] = 0  # square with a hole
    masks.append(m)
    m = np.zeros((15, 17), np.uint8)
    m[:, :3] = 1
    m[0, :] = 1  # touches the borders
    masks.append(m)
    for m in masks:
        t = torch.from_numpy(m.astype(bool))[None, None]
        for r in (0, 1, 2, 3, 5):
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            np.testing.assert_array_equal(_dilated_eroded(t, r)[0], cv2.dilate(m, k).astype(bool))
            np.testing.assert_array_equal(_dilated_eroded(t, r)[1], cv2.erode(m, k).astype(bool))
    # The single pixel dilated by r is exactly the ellipse kernel.
    single = torch.from_numpy(masks[0].astype(bool))[None, None]
    np.testing.assert_array_equal(_dilated_eroded(single, 3)[0][4:11, 5:12], ellipse_kernel(7).astype(bool))


def test_dilate_erode_equal_opencv_on_random_masks():
    rng = np.random.default_rng(1234)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 48, size=2))
        m = (rng.random((h, w)) < rng.uniform(0.05, 0.95)).astype(np.uint8)
        r = int(rng.integers(0, 13))
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        t = torch.from_numpy(m.astype(bool))[None, None]
        np.testing.assert_array_equal(_dilated_eroded(t, r)[0], cv2.dilate(m, k).astype(bool))
        np.testing.assert_array_equal(_dilated_eroded(t, r)[1], cv2.erode(m, k).astype(bool))


def test_make_trimap_equals_opencv_routine_on_random_soft_masks():
    rng = np.random.default_rng(7)
    for band in (0, 1, 4, 9, 20):
        soft = cv2.GaussianBlur((rng.random((37, 53)) < 0.4).astype(np.float32), (7, 7), 2.0)
        fg = (soft > 0.5).astype(np.uint8)
        kd = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ((band + 1) // 2) + 1,) * 2)
        ke = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * (band // 2) + 1,) * 2)
        expected = np.where(cv2.erode(fg, ke) > 0, 1.0, np.where(cv2.dilate(fg, kd) > 0, 0.5, 0.0))
        got = make_trimap(torch.from_numpy(soft)[None, None], band)[0, 0].numpy()
        np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------- band scaling


def test_default_band_px_scales_with_resolution():
    assert default_band_px(480, 854) == 10
    assert default_band_px(1080, 1920) == 22
    assert default_band_px(2160, 3840) == 43
    assert default_band_px(48, 64) == 4  # floor of 4 px
    assert default_band_px(1920, 1080) == default_band_px(1080, 1920)  # short side, portrait too
    bands = [default_band_px(h, h) for h in range(100, 3000, 50)]
    assert bands == sorted(bands)


def test_default_band_px_rejects_empty_frame():
    with pytest.raises(UserInputError, match="frame size must be >= 1x1, got 0x10"):
        default_band_px(10, 0)


# ---------------------------------------------------------------- random training trimaps


def _disc_alpha(size: int = 160) -> np.ndarray:
    # Radius 50 with a 1-px soft edge: larger than the widest erosion (k=4, 14 iterations ~ 28 px).
    yy, xx = np.mgrid[:size, :size]
    dist = np.hypot(yy - size / 2, xx - size / 2)
    return np.clip(50.0 - dist, 0.0, 1.0).astype(np.float32)


def test_random_trimap_is_deterministic_for_a_seeded_rng():
    alpha = _disc_alpha()
    a = random_trimap(alpha, np.random.default_rng(42))
    b = random_trimap(alpha, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == alpha.shape
    assert set(np.unique(a).tolist()) == {0, 128, 255}
    # Different seeds draw different parameters somewhere in a handful of tries.
    outs = {random_trimap(alpha, np.random.default_rng(s)).tobytes() for s in range(8)}
    assert len(outs) > 1


def test_random_trimap_matches_opencv_with_the_drawn_parameters():
    alpha = _disc_alpha()
    for seed in range(5):
        k, n = sample_random_trimap_params(np.random.default_rng(seed))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        a8 = np.rint(alpha * 255)
        expected = np.full(alpha.shape, 128, np.uint8)
        expected[cv2.erode((a8 >= 254).astype(np.uint8), kernel, iterations=n) > 0] = 255
        expected[cv2.dilate((a8 >= 1).astype(np.uint8), kernel, iterations=n) == 0] = 0
        np.testing.assert_array_equal(random_trimap(alpha, np.random.default_rng(seed)), expected)


def test_random_trimap_parameter_ranges_cover_2_to_4_and_5_to_14():
    rng = np.random.default_rng(0)
    draws = [sample_random_trimap_params(rng) for _ in range(600)]
    assert {k for k, _ in draws} == {2, 3, 4}
    assert {n for _, n in draws} == set(range(5, 15))


def test_random_trimap_keeps_soft_pixels_unknown():
    alpha = _disc_alpha()
    soft = (alpha > 0) & (alpha < 1)
    for seed in range(6):
        t = random_trimap(alpha, np.random.default_rng(seed))
        assert (t[soft] == 128).all()
        assert t[80, 80] == 255 and t[0, 0] == 0


def test_random_trimap_input_errors():
    with pytest.raises(UserInputError, match=r"alpha expected a float \(H,W\) array"):
        random_trimap(np.zeros((4, 4, 1), np.float32), np.random.default_rng(0))
    with pytest.raises(UserInputError, match="rng must be a numpy.random.Generator, got int"):
        random_trimap(np.zeros((4, 4), np.float32), 3)  # type: ignore[arg-type]


# ---------------------------------------------------------------- clamp and conversions


def test_clamp_known_is_exact_for_tensors_and_arrays():
    alpha = torch.tensor([0.3, 0.3, 0.3, 0.7]).view(1, 1, 2, 2)
    trimap = torch.tensor([0.0, 0.5, 1.0, 0.5]).view(1, 1, 2, 2)
    out = clamp_known(alpha, trimap)
    assert out.flatten().tolist() == pytest.approx([0.0, 0.3, 1.0, 0.7])
    assert alpha.flatten().tolist() == pytest.approx([0.3, 0.3, 0.3, 0.7])  # input untouched
    out_np = clamp_known(alpha.numpy(), trimap.numpy())
    np.testing.assert_array_equal(out_np, out.numpy())


def test_clamp_known_errors():
    expected = r"alpha \(1, 1, 2, 2\) and trimap \(1, 1, 2, 3\) must have the same shape"
    with pytest.raises(UserInputError, match=expected):
        clamp_known(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3))
    with pytest.raises(UserInputError, match="must both be torch tensors or both numpy arrays, got Tensor and ndarray"):
        clamp_known(torch.zeros(1, 1, 2, 2), np.zeros((1, 1, 2, 2)))


def test_trimap_uint8_conversions():
    t8 = np.array([[0, 20, 26, 127, 128, 129, 229, 230, 255]], np.uint8)
    np.testing.assert_array_equal(trimap_from_uint8(t8), [[0, 0, 0.5, 0.5, 0.5, 0.5, 0.5, 1, 1]])
    t16 = np.array([[0, 6553, 6554, 32768, 58981, 58982, 65535]], np.uint16)
    np.testing.assert_array_equal(trimap_from_uint8(t16), [[0, 0, 0.5, 0.5, 0.5, 1, 1]])
    rgb = np.stack([t8[0]] * 3, axis=-1)[None]
    np.testing.assert_array_equal(trimap_from_uint8(rgb), trimap_from_uint8(t8))
    f = np.array([[0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(trimap_to_uint8(f), [[0, 128, 255]])
    np.testing.assert_array_equal(trimap_to_uint8(torch.from_numpy(f)[None, None]), [[[[0, 128, 255]]]])
    np.testing.assert_array_equal(trimap_from_uint8(trimap_to_uint8(f)), f)


def test_trimap_uint8_errors():
    with pytest.raises(UserInputError, match="expected a uint8 or uint16 array, got float32"):
        trimap_from_uint8(np.zeros((2, 2), np.float32))
    with pytest.raises(UserInputError, match=r"expected \(H,W\) or \(H,W,1\|3\|4\), got \(2, 2, 2\)"):
        trimap_from_uint8(np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(UserInputError, match="expected a numpy array or torch tensor, got list"):
        trimap_to_uint8([0.5])  # type: ignore[arg-type]


# ---------------------------------------------------------------- shape / argument errors


def test_make_trimap_shape_errors():
    with pytest.raises(UserInputError, match=r"make_trimap: mask expected \(B,1,H,W\), got \(9, 9\)"):
        make_trimap(torch.zeros(9, 9), 2)
    with pytest.raises(UserInputError, match=r"expected \(B,1,H,W\), got \(1, 3, 9, 9\)"):
        make_trimap(torch.zeros(1, 3, 9, 9), 2)
    with pytest.raises(UserInputError, match=r"mask expected a torch.Tensor \(B,1,H,W\), got ndarray"):
        make_trimap(np.zeros((1, 1, 9, 9)), 2)  # type: ignore[arg-type]


def test_make_trimap_argument_errors():
    m = torch.zeros(1, 1, 4, 4)
    with pytest.raises(UserInputError, match="band_px must be an integer >= 0, got -1"):
        make_trimap(m, -1)
    with pytest.raises(UserInputError, match="band_px must be an integer >= 0, got 2.5"):
        make_trimap(m, 2.5)  # type: ignore[arg-type]
    with pytest.raises(UserInputError, match=r"threshold must be in \[0, 1\), got 1.0"):
        make_trimap(m, 2, threshold=1.0)
