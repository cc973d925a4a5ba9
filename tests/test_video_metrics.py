"""dtSSD / MESSDdt (TCVOM conventions) and score_video: zero for a perfect prediction, small
hand-computed cases, conventions (unknown of frame t, last frame counts 0, flow validity)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from alphagan_video.errors import UserInputError
from alphagan_video.metrics import dtssd, messddt, messddt_frame, score_video


def _clip(t=3, h=4, w=5, seed=0):
    rng = np.random.default_rng(seed)
    gts = rng.random((t, h, w))
    trimaps = np.full((t, h, w), 128, np.uint8)
    return gts, trimaps


def test_perfect_prediction_scores_zero():
    gts, trimaps = _clip()
    flows = np.zeros((2, 4, 5, 2), np.float32)
    flows[..., 0] = 1.0  # any motion: identical error maps (all zero) still give 0
    scores = score_video(gts.copy(), gts, trimaps, flows)
    assert scores.dtssd == 0 and scores.messddt == 0 and scores.sad == 0 and scores.mse == 0
    assert scores.frames == 3


def test_dtssd_hand_computed():
    # 2 frames of 1x2 pixels. Frame 0 unknown = both pixels.
    gts = np.array([[[0.5, 0.2]], [[0.5, 0.4]]])
    preds = np.array([[[0.6, 0.2]], [[0.3, 0.2]]])
    trimaps = np.full((2, 1, 2), 128, np.uint8)
    # d = (a0 - a1) - (g0 - g1): pixel 0: 0.3 - 0 = 0.3; pixel 1: 0 - (-0.2) = 0.2
    expected_t0 = math.sqrt(0.3**2 + 0.2**2)
    assert dtssd(preds, gts, trimaps) == pytest.approx(expected_t0 / 2)  # last frame counts as 0
    # only frame t's unknown counts: make pixel 1 known (and forced to 0 in frame 0) ...
    trimaps[0, 0, 1] = 0
    gts2 = gts.copy()
    gts2[0, 0, 1] = 0.0
    preds2 = preds.copy()
    preds2[0, 0, 1] = 0.9  # forced to 0 by the trimap; not scored anyway
    assert dtssd(preds2, gts2, trimaps) == pytest.approx(0.3 / 2)


def test_dtssd_ignores_motion_that_matches_gt():
    # The prediction changes exactly as the ground truth does (a bias moving with it): dtSSD = 0.
    gts, trimaps = _clip(t=4)
    assert dtssd(np.clip(gts + 0.0, 0, 1), gts, trimaps) == 0
    preds = gts * 0.5  # a different change than GT -> > 0
    assert dtssd(preds, gts, trimaps) > 0


def test_messddt_hand_computed_with_known_motion():
    # 1x3 frames; the error blob moves one pixel right between frames.
    gts = np.zeros((2, 1, 3))
    preds = np.zeros((2, 1, 3))
    preds[0, 0, 0] = 0.5  # error^2 0.25 at x=0 in frame 0
    preds[1, 0, 1] = 0.5  # ... and at x=1 in frame 1
    trimaps = np.full((2, 1, 3), 128, np.uint8)
    still = np.zeros((1, 1, 3, 2))
    moving = np.zeros((1, 1, 3, 2))
    moving[..., 0] = 1.0
    # No motion assumed: |0.25-0| at x=0 + |0-0.25| at x=1 = 0.5 for frame 0, frame 1 counts 0.
    assert messddt(preds, gts, trimaps, still) == pytest.approx(0.5 / 2)
    # With the true motion the error moves with the object: x=0 -> x=1 (0), x=1 -> x=2 (0),
    # x=2 -> x=3 leaves the frame (not valid).
    value, valid = messddt_frame(preds[0], gts[0], preds[1], gts[1], trimaps[0] == 128, moving[0])
    assert value == 0 and valid == 2
    # Half-pixel motion samples bilinearly: x=0 -> 0.5 * 0 + 0.5 * 0.25.
    half = np.zeros((1, 3, 2))
    half[..., 0] = 0.5
    value, valid = messddt_frame(preds[0], gts[0], preds[1], gts[1], trimaps[0] == 128, half)
    # x=0: |0.25 - 0.125|; x=1: |0 - (0.5*0.25 + 0.5*0)| = 0.125; x=2 -> 2.5 out of frame.
    assert value == pytest.approx(0.25) and valid == 2
    # NaN flow = unknown motion: not scored.
    nan = np.full((1, 3, 2), np.nan)
    assert messddt_frame(preds[0], gts[0], preds[1], gts[1], trimaps[0] == 128, nan) == (0.0, 0)


def test_uint8_and_float_inputs_agree():
    gts, trimaps = _clip(t=3, seed=1)
    preds = np.clip(gts + 0.1 * np.random.default_rng(2).standard_normal(gts.shape), 0, 1)
    p8, g8 = np.rint(preds * 255).astype(np.uint8), np.rint(gts * 255).astype(np.uint8)
    assert dtssd(p8, g8, trimaps) == pytest.approx(dtssd(p8 / 255.0, g8 / 255.0, trimaps))


def test_bad_inputs_name_the_problem():
    gts, trimaps = _clip()
    with pytest.raises(UserInputError, match="trimaps must be"):
        dtssd(gts, gts, trimaps.astype(np.float32))
    with pytest.raises(UserInputError, match="shapes differ"):
        dtssd(gts[:2], gts, trimaps)
    with pytest.raises(UserInputError, match="flows must be"):
        messddt(gts, gts, trimaps, np.zeros((3, 4, 5, 2)))
    with pytest.raises(UserInputError, match=r"preds must be a \(T, H, W\)"):
        dtssd(gts[0], gts, trimaps)
