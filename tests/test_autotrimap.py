"""Issue 15 on real photographs (scikit-image's public-domain NASA astronaut, CC0 coffee/chelsea):
automatic trimaps that let go of wrong certainty and reach hair-like strands, a plate mode
that registers a handheld plate, and no silent empty/full deliverable."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from alphagan_video.config import MaskConfig, RefineConfig
from alphagan_video.masks import build_mask_source
from alphagan_video.masks.plate import register_plate
from alphagan_video.pipeline import coverage_warnings
from alphagan_video.refine import refine_alpha
from alphagan_video.trimap import auto_trimap, auto_trimap_numpy, make_trimap, trimap_from_uint8
from alphagan_video.types import VideoInfo
from tests.e2e import cli, tiny_checkpoint  # noqa: F401 - fixture

skdata = pytest.importorskip("skimage.data")

H, W = 240, 320
CPU = torch.device("cpu")


def info_for(w: int, h: int) -> VideoInfo:
    from fractions import Fraction

    return VideoInfo(path="clip.mp4", kind="video", width=w, height=h, time_base=Fraction(1, 25),
                     frame_rate=Fraction(25), frame_count=None, pix_fmt="yuv420p", bit_depth=8)


def _subject() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's head and shoulders: rgb (200,200,3) float, alpha (200,200) float (soft edge)."""
    rgb = cv2.resize(skdata.astronaut(), (200, 200), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    big = np.zeros((800, 800), np.uint8)  # drawn at 4x, area-downsampled: anti-aliased edge
    cv2.ellipse(big, (281, 234), (148, 195), 0, 0, 360, 255, -1)
    cv2.rectangle(big, (31, 390), (688, 799), 255, -1)
    alpha = cv2.resize(big.astype(np.float32) / 255.0, (200, 200), interpolation=cv2.INTER_AREA)
    return rgb, alpha


def _background(seed: int = 0) -> np.ndarray:
    """A cluttered scene larger than the frame (coffee cup on a textured table), float (360,480,3)."""
    return cv2.resize(skdata.coffee(), (480, 360), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _crop(big: np.ndarray) -> np.ndarray:
    y, x = (big.shape[0] - H) // 2, (big.shape[1] - W) // 2
    return big[y : y + H, x : x + W]


def _composite(bg: np.ndarray, at=(60, 40)) -> tuple[np.ndarray, np.ndarray]:
    """Astronaut over ``bg`` (H,W,3) -> (frame float (H,W,3), true alpha (H,W))."""
    rgb, a = _subject()
    x, y = at
    alpha = np.zeros((H, W), np.float32)
    fg = np.zeros((H, W, 3), np.float32)
    alpha[y : y + 200, x : x + 200] = a[: H - y, : W - x]
    fg[y : y + 200, x : x + 200] = rgb[: H - y, : W - x]
    return alpha[..., None] * fg + (1 - alpha[..., None]) * bg, alpha


def _noisy(img: np.ndarray, rng: np.random.Generator, sigma: float = 2.0 / 255) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 1).astype(np.float32)


def _u8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _write_rgb(path, img: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(_u8(img), cv2.COLOR_RGB2BGR))


def _handheld_plate(rng: np.random.Generator) -> np.ndarray:
    """The background seen from a slightly moved camera: shifted, rotated 2 degrees, scaled 3 %."""
    big = _background()
    centre = (big.shape[1] / 2, big.shape[0] / 2)
    m = cv2.getRotationMatrix2D(centre, 2.0, 1.03)
    m[:, 2] += (9.0, -6.0)
    moved = cv2.warpAffine(big, m, (big.shape[1], big.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return _noisy(_crop(moved), rng)


# --------------------------------------------------------------------------- plate mode (2)

def test_handheld_plate_is_registered_and_finds_the_subject(tmp_path):
    rng = np.random.default_rng(0)
    frame, alpha = _composite(_crop(_background()))
    frame = _noisy(frame, rng)
    plate = _handheld_plate(rng)
    hom, residual, inliers = register_plate(frame, plate)
    assert inliers >= 20 and residual < 1.5
    assert not np.allclose(hom, np.eye(3))
    _write_rgb(tmp_path / "plate.png", plate)
    src = build_mask_source(MaskConfig(source=f"plate:{tmp_path / 'plate.png'}"), info_for(W, H), CPU)
    mask = src(torch.from_numpy(_u8(frame).astype(np.float32) / 255).permute(2, 0, 1)[None], [0])
    assert src.last_registration["registered"] and src.last_registration["residual_px"] < 1.5
    src.close()
    iou = _iou(mask[0, 0].numpy() > 0.5, alpha > 0.5)
    # 0.9456: the difference's noise is now measured on the colour map's residual (0.0101, the
    # frame's and plate's 2/255 noise give 0.011); the images' own estimate said 0.0074, a lower
    # threshold that let a few more suit pixels near the background's colours count as subject.
    assert iou >= 0.94, iou


def test_locked_off_plate_stays_identity():
    rng = np.random.default_rng(1)
    bg = _crop(_background())
    frame, _ = _composite(bg)
    hom, residual, _ = register_plate(_noisy(frame, rng), _noisy(bg, rng))
    assert np.allclose(hom, np.eye(3)) and residual < 1.0


def test_unrelated_plate_warns_instead_of_a_silent_deliverable(tmp_path, tiny_checkpoint):  # noqa: F811
    rng = np.random.default_rng(2)
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(5):
        frame, _ = _composite(_crop(_background()), at=(40 + 8 * k, 40))
        _write_rgb(frames / f"f_{k:04d}.png", _noisy(frame, rng))
    other = cv2.resize(skdata.chelsea(), (W, H), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    _write_rgb(tmp_path / "cat.png", other)
    out, report = tmp_path / "m_%04d.png", tmp_path / "report.json"
    args = (frames / "f_%04d.png", "-o", out, "--checkpoint", tiny_checkpoint, "--mask", f"plate:{tmp_path / 'cat.png'}",
            "--output-kind", "alpha", "--no-refine", "--no-temporal", "-q", "--json-report", report)
    result = cli(*args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("alphagan-video: warning:")]
    # The plate source itself says the plate does not explain the frames (issue 27); the matte
    # may also come out empty/full, which the coverage check reports beside it.
    (plate_line,) = [w for w in warnings if "plate does not explain" in w]
    assert "0, 1, 2, 3, 4" in plate_line, result.stderr
    assert all("plate" in w and "0, 1, 2, 3, 4" in w for w in warnings), result.stderr
    data = json.loads(report.read_text())
    assert data["warnings"] == [w.split("warning: ", 1)[1] for w in warnings]
    assert data["settings"]["plate_registration"]["frames"] == 5
    strict = cli(*args, "--strict", "--overwrite")
    assert strict.exit_code == 2 and "--strict" in strict.stderr


def test_coverage_warnings_only_beyond_a_few_frames():
    assert coverage_warnings([3], [], 100, "person (x)") == []
    assert coverage_warnings([0], [], 1, "file (x)")  # a single image: every frame
    (line,) = coverage_warnings(list(range(10, 40)), [], 100, "plate (x)")
    assert "empty" in line and "30 of 100" in line and "10, 11" in line and "plate" in line and "\n" not in line


# --------------------------------------------------------------------------- trimaps (1)

def _solve(frame: np.ndarray, trimap_u8: np.ndarray,
           config: RefineConfig = RefineConfig().effective_for(user_trimap=False)) -> np.ndarray:
    """Refine with a flat prior; by default with the settings a product run uses on a trimap it
    derived from a mask."""
    tri = trimap_from_uint8(trimap_u8)
    return refine_alpha(frame.astype(np.float64), tri, np.full(tri.shape, 0.5), config)


def test_known_region_expansion_only_trusts_user_trimaps():
    cfg = RefineConfig()
    assert cfg.effective_for(user_trimap=True) is cfg and cfg.expand == 9
    derived = cfg.effective_for(user_trimap=False)
    assert derived.expand == cfg.expand_mask_trimaps == 0
    assert derived.mu == cfg.mu and derived.flow == cfg.flow  # nothing else changes
    custom = RefineConfig(expand=5, expand_mask_trimaps=3)
    assert custom.effective_for(user_trimap=False).expand == 3
    from alphagan_video.errors import ParameterError
    from alphagan_video.refine import check_refine_config

    with pytest.raises(ParameterError, match="refine.expand_mask_trimaps"):
        check_refine_config(RefineConfig(expand_mask_trimaps=-1))


@pytest.mark.parametrize("user_trimap", [False, True])
def test_the_run_refines_mask_trimaps_without_expansion(tmp_path, tiny_checkpoint, user_trimap):  # noqa: F811
    from alphagan_video.config import ModelConfig, PipelineConfig, TrimapConfig
    from alphagan_video.pipeline import build_chain
    from alphagan_video.stages.temporal import TemporalStage

    trimap = tmp_path / "trimap.png"
    cv2.imwrite(str(trimap), np.full((H, W), 128, np.uint8))
    cfg = PipelineConfig(mask=MaskConfig(source="chroma"),
                         trimap=TrimapConfig(trimap_path=trimap if user_trimap else None),
                         model=ModelConfig(checkpoint=tiny_checkpoint, device="cpu"))
    with build_chain(info_for(W, H), cfg) as chain:
        (temporal,) = [s for s in chain.stages if isinstance(s, TemporalStage)]
        assert temporal.solve.refine.cfg.expand == (9 if user_trimap else 0)


def test_mask_trimap_refine_is_closer_to_the_truth_on_a_swallowed_patch():
    """Expansion copies known labels into the band; on a trimap derived from a wrong mask those
    labels are the mask's errors. With background swallowed by the mask, the derived-trimap
    settings give a lower whole-frame error than expansion does (measured 355 vs 365; on the
    strand scene of the test below, 571 vs 590)."""
    frame, alpha = _composite(_crop(_background()))
    coarse = alpha > 0.5
    yy, xx = np.mgrid[0:H, 0:W]
    swallowed = coarse | (((yy - 99) ** 2 + (xx - 93) ** 2 <= 12**2) & ~coarse)
    tri = auto_trimap_numpy(_u8(frame), swallowed.astype(np.float32))
    errors = {user: np.abs(_solve(frame, tri, RefineConfig().effective_for(user_trimap=user)) - alpha).sum()
              for user in (True, False)}
    assert errors[False] < errors[True]


def test_swallowed_background_patch_ends_up_background():
    frame, alpha = _composite(_crop(_background()))
    coarse = alpha > 0.5
    yy, xx = np.mgrid[0:H, 0:W]
    patch = ((yy - 99) ** 2 + (xx - 93) ** 2 <= 12**2) & ~coarse  # the cup beside the head
    assert patch.sum() > 150
    swallowed = coarse | patch
    tri = auto_trimap_numpy(_u8(frame), swallowed.astype(np.float32))
    assert (tri[patch] == 255).mean() < 0.25  # mostly no longer certain foreground
    band = make_trimap(torch.from_numpy(swallowed.astype(np.float32))[None, None], 6)[0, 0].numpy()
    assert (band[patch] == 1).mean() > 0.3  # the AlphaGAN routine alone keeps it opaque
    a = _solve(frame, tri)
    assert a[patch].mean() < 0.2


def test_strands_beyond_the_mask_are_unknown_and_soft():
    rng = np.random.default_rng(4)
    bg = _crop(_background())
    frame, alpha = _composite(bg)
    body = alpha > 0.5
    # hair-like strands: thin curves of her hair's colour leaving the top of the head upwards,
    # drawn at 4x (anti-aliased)
    big = np.zeros((H * 4, W * 4), np.uint8)
    for _ in range(14):
        x0 = rng.uniform(110, 150)
        y0 = 40 + 59 - 49 * np.sqrt(max(0.0, 1 - ((x0 - 130) / 37) ** 2)) + 3  # just inside the head
        pts = [(x0, y0)]
        for _ in range(7):
            x0 += rng.uniform(-4, 4)
            y0 -= rng.uniform(2, 3.5)
            pts.append((x0, y0))
        cv2.polylines(big, [np.int32(np.array(pts) * 4)], False, 255, thickness=3)
    strand_a = cv2.resize(big.astype(np.float32) / 255, (W, H), interpolation=cv2.INTER_AREA)
    strand_a[body] = 0
    rgb, _ = _subject()
    hair = np.median(rgb[12:30, 50:90].reshape(-1, 3), axis=0)
    frame = strand_a[..., None] * hair + (1 - strand_a[..., None]) * frame
    strands = (strand_a > 0.3) & ~body
    assert strands.sum() > 100
    tri = auto_trimap_numpy(_u8(frame), body.astype(np.float32))
    assert (tri[strands] == 128).mean() > 0.6  # mostly in the unknown band (0.72 measured)
    assert (tri[strands] == 0).mean() < 0.3
    a = _solve(frame, tri)
    soft = a[strands]
    # Not met yet (issue 15): the solve, here with a flat prior, keeps only a little of the strands
    # it is given (mean alpha 0.087 over strand pixels, true alpha > 0.3; 0.045 with expansion):
    # they are unknown, so soft where kept, but mostly lost. This asserts what holds, not the target.
    assert 0.0 < soft.mean() < 0.98 and (soft > 0.1).any()


def test_soft_mask_uncertainty_is_unknown_and_band_override_unchanged():
    frame, alpha = _composite(_crop(_background()))
    soft = alpha.copy()
    soft[100:110, :] = np.where(alpha[100:110, :] > 0.5, 0.6, 0.3)  # the source is unsure here
    tri = auto_trimap_numpy(_u8(frame), soft)
    assert (tri[100:110][(alpha[100:110] > 0.99)] == 128).mean() > 0.9
    # the tensor entry point: same trimap, {0, 0.5, 1}
    t = auto_trimap(torch.from_numpy(frame).permute(2, 0, 1)[None], torch.from_numpy(soft)[None, None])
    assert set(torch.unique(t).tolist()) <= {0.0, 0.5, 1.0}
    expected = auto_trimap_numpy(frame.astype(np.float32), soft)
    assert np.array_equal(t[0, 0].numpy(), np.where(expected == 255, 1.0, np.where(expected == 0, 0.0, 0.5)))
    # a full or empty mask leaves nothing to derive
    assert (auto_trimap_numpy(_u8(frame), np.zeros((H, W), np.float32)) == 0).all()


# --------------------------------------------------------------------------- confidence-aware doubt (issue 27)

def _ramp_prob(mask: np.ndarray, half: float = 4.0) -> np.ndarray:
    """A segmenter-like soft probability of ``mask``: a linear ramp of the signed distance to its
    contour, 0.5 on it, exactly 1 (0) from ``half`` px inside (outside) -- like the person model's
    map on a 320x240 frame (bilinearly upsampled from 256 px, saturated away from the contour)."""
    m = mask.astype(np.uint8)
    d = cv2.distanceTransform(m, cv2.DIST_L2, 3) - cv2.distanceTransform(1 - m, cv2.DIST_L2, 3)
    return np.clip(0.5 + d / (2.0 * half), 0.0, 1.0).astype(np.float32)


def _face_over_face_coloured_foliage() -> tuple[np.ndarray, np.ndarray]:
    """A small face (skin, dark hair on top, a neck) in front of foliage of the same skin tone
    (90 % of the leaves; the rest orange and brown) -> (frame float (H,W,3), true mask (H,W) bool).
    The face is small against the colour window, so near it the skin colour is about as common
    on the background side as on the face: colour alone calls much of the face doubtful."""
    rng = np.random.default_rng(27)
    skin, orange, brown = np.array([0.86, 0.64, 0.50]), np.array([0.90, 0.50, 0.20]), np.array([0.55, 0.32, 0.18])
    hair = np.array([0.20, 0.12, 0.08])
    leaves = cv2.resize(rng.random((H // 8, W // 8)).astype(np.float32), (W, H), interpolation=cv2.INTER_NEAREST)
    bg = np.where((leaves < 0.9)[..., None], skin, np.where((leaves < 0.95)[..., None], orange, brown))
    yy, xx = np.mgrid[0:H, 0:W]
    face = ((yy - 130) / 40.0) ** 2 + ((xx - 160) / 30.0) ** 2 <= 1.0
    neck = (yy > 158) & (np.abs(xx - 160) < 15)
    mask = face | neck
    fg = np.where((face & (yy < 110))[..., None], hair, skin)
    frame = np.where(mask[..., None], fg, bg).astype(np.float32)
    return _noisy(frame, rng, 1.0 / 255), mask


def test_doubt_never_releases_confident_interior_on_a_face_coloured_background():
    from alphagan_video.trimap.band import default_band_px

    frame, mask = _face_over_face_coloured_foliage()
    prob = _ramp_prob(mask)
    tri = auto_trimap_numpy(_u8(frame), prob)
    margin = max(1, default_band_px(H, W) // 4)  # the doubt's mixed-pixel margin
    certain = cv2.erode((prob >= 1.0).astype(np.uint8), np.ones((2 * margin + 3,) * 2, np.uint8)) > 0
    assert certain.sum() > 2000
    assert (tri[certain] == 255).all()  # confident interior stays known, whatever the colours
    # (the background side keeps colour-only doubt: skin-coloured leaves beside the face may be
    # released, as thin structure beyond a coarse source's grid would be; see trimap.doubted)
    # the same scene with a binary mask (no confidence stated: colour alone, issue 15's rule)
    # does release skin of the face -- what this test guards against for soft sources
    binary = auto_trimap_numpy(_u8(frame), mask.astype(np.float32))
    assert (binary[certain] == 128).mean() > 0.2  # 0.32 measured


def test_doubt_still_lets_go_of_a_swallowed_patch_the_source_is_only_fairly_sure_of():
    frame, alpha = _composite(_crop(_background()))
    coarse = alpha > 0.5
    yy, xx = np.mgrid[0:H, 0:W]
    patch = ((yy - 99) ** 2 + (xx - 93) ** 2 <= 12**2) & ~coarse  # the cup beside the head
    prob = _ramp_prob(coarse | patch)
    prob[patch] = np.minimum(prob[patch], 0.95)  # the segmenter is fairly, not fully, sure there
    tri = auto_trimap_numpy(_u8(frame), prob)
    assert (tri[patch] == 255).mean() < 0.45  # 0.31 measured (a binary mask: below 0.25, see above)
    # a source that is certain there keeps it: its confidence outweighs any colour evidence
    sure = auto_trimap_numpy(_u8(frame), _ramp_prob(coarse | patch))
    assert (sure[patch] == 255).mean() > (tri[patch] == 255).mean() + 0.08  # 0.43 vs 0.31 measured


def test_a_contour_mask_that_disagrees_with_a_sure_source_leaves_both_unknown():
    """The stabilised contour mask (``binary``) can lag the source: a face that has just appeared
    is sure foreground in the source's probability but background in the held-back mask. Where
    they disagree with the source sure, the pixel is unknown on either side, never certain of the
    side the source is sure is wrong; where they agree nothing changes."""
    from alphagan_video.trimap.auto import auto_trimap_numpy

    h, w = 120, 160
    rgb = np.full((h, w, 3), (40, 90, 160), np.uint8)  # flat colours: no colour doubt anywhere
    rgb[30:90, 20:70] = rgb[40:80, 100:140] = (220, 170, 130)
    prob = np.zeros((h, w), np.float32)
    prob[30:90, 20:70] = 1.0   # a subject both agree on
    prob[40:80, 100:140] = 1.0  # sure foreground the held-back mask still calls background
    binary = prob > 0.5
    binary[40:80, 100:140] = False
    binary[5:15, 5:15] = True  # and the other way: held-back foreground the source is sure is gone
    tri = auto_trimap_numpy(rgb, prob, band_px=6, binary=binary)
    plain = auto_trimap_numpy(rgb, prob, band_px=6, binary=prob > 0.5)
    assert (tri[45:75, 105:135] == 128).all() and (tri[7:13, 7:13] == 128).all()
    assert (plain[45:75, 105:135] == 255).all() and (plain[7:13, 7:13] == 0).all()
    assert (tri[40:80, 20:70] == plain[40:80, 20:70]).all()
