"""Face anchors of the person mask: BlazeFace decoding, detection on a real photo, the anchor."""
from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from alphagan_video.masks.faces import (
    FACE_MODEL, Face, FaceDetector, anchor_faces, decode, face_anchor, person_roi, ssd_anchors, weighted_nms,
)
from alphagan_video.masks.person import PersonMaskSource
from alphagan_video.types import VideoInfo

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")

# The astronaut's face in scikit-image's 512x512 photo, read off the picture by eye (not from the
# detector): eyes at about (205, 102) and (248, 106), mouth at (219, 146), face outline x 175..275,
# hairline y ~80, chin y ~178.
EYES = np.array([[205, 102], [248, 106]], np.float32)
MOUTH = np.array([219, 146], np.float32)


def info_for(width: int, height: int, rotation: int = 0) -> VideoInfo:
    return VideoInfo(
        path="clip.mp4", kind="video", width=width, height=height, time_base=Fraction(1, 25),
        frame_rate=Fraction(25), frame_count=None, pix_fmt="yuv420p", bit_depth=8, rotation=rotation,
    )


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None].contiguous()


def test_anchor_grid_is_mediapipes_short_range_layout():
    a = ssd_anchors()
    assert a.shape == (896, 2) and a.dtype == np.float32
    # 16x16 grid, 2 anchors per cell, row-major: cell (0,0) twice, then cell (x=1, y=0)
    np.testing.assert_allclose(a[:3], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32]])
    np.testing.assert_allclose(a[511], [31 / 32, 31 / 32])
    # then the 8x8 grid of the three stride-16 layers, 6 anchors per cell
    np.testing.assert_allclose(a[512:518], [[1 / 16, 1 / 16]] * 6)
    np.testing.assert_allclose(a[518], [3 / 16, 1 / 16])
    np.testing.assert_allclose(a[-1], [15 / 16, 15 / 16])


def test_decode_and_weighted_nms():
    anchors = np.array([[0.5, 0.5], [0.5, 0.5], [0.1, 0.1]], np.float32)
    reg = np.zeros((3, 16), np.float32)
    reg[0, :4] = [0.0, 0.0, 32.0, 32.0]     # a 0.25-wide box on its anchor
    reg[1, :4] = [6.4, 0.0, 32.0, 32.0]     # the same face, 0.05 to the right
    reg[2, :4] = [0.0, 0.0, 12.8, 12.8]     # elsewhere, below the score threshold
    reg[0, 4:6] = [-12.8, 0.0]              # first keypoint 0.1 left of the anchor
    reg[1, 4:6] = [-6.4, 0.0]
    logits = np.array([np.log(3.0), np.log(1.0), np.log(0.5)], np.float32)  # sigmoid: 0.75, 0.5, 0.333
    scores, boxes, kps = decode(reg, logits, anchors, min_score=0.5)
    np.testing.assert_allclose(scores, [0.75, 0.5], rtol=1e-6)
    np.testing.assert_allclose(boxes[0], [0.375, 0.375, 0.625, 0.625], rtol=1e-6)
    np.testing.assert_allclose(kps[0, 0], [0.4, 0.5], rtol=1e-6)
    merged = weighted_nms(scores, boxes, kps)
    assert len(merged) == 1  # IoU of the two boxes is 0.67 > 0.3
    score, box, kp = merged[0]
    assert score == pytest.approx(0.75)
    # score-weighted mean: x shift 0.05 * 0.5 / 1.25 = 0.02
    np.testing.assert_allclose(box, [0.395, 0.375, 0.645, 0.625], rtol=1e-6)
    np.testing.assert_allclose(kp[0], [0.4 + 0.05 * 0.4, 0.5], rtol=1e-6)
    # far apart boxes both survive, best first
    far = boxes.copy()
    far[1] += 0.5
    assert [round(s, 2) for s, _, _ in weighted_nms(scores, far, kps)] == [0.75, 0.5]


def test_detector_finds_the_astronauts_face():
    assert FACE_MODEL.is_file()
    det = FaceDetector()
    photo = data.astronaut().astype(np.float32) / 255.0
    faces = det.detect(photo)
    assert len(faces) == 1
    f = faces[0]
    assert f.score > 0.8
    np.testing.assert_allclose(f.keypoints[:2], EYES, atol=6)
    np.testing.assert_allclose(f.keypoints[3], MOUTH, atol=6)
    x0, y0, x1, y1 = f.box
    assert 165 < x0 < 190 and 260 < x1 < 285 and 70 < y0 < 100 and 160 < y1 < 190
    # deterministic
    again = det.detect(photo)[0]
    assert again.score == f.score and np.array_equal(again.keypoints, f.keypoints)
    # letterboxing: the same photo inside a wider black frame maps back to the same place, up to
    # the model's own keypoint noise (~2 input pixels: the photo mirrored moves them ~9 px)
    wide = np.zeros((512, 576, 3), np.float32)
    wide[:, 32:544] = photo
    g = det.detect(wide)
    assert len(g) == 1
    np.testing.assert_allclose(g[0].keypoints[:4] - [32, 0], f.keypoints[:4], atol=2 * 576 / 128)
    # in a much wider frame the face is looked for in the person's square region only, and the
    # result is mapped back to frame pixels: the same numbers as on the photo itself, shifted
    wider = np.zeros((512, 1024, 3), np.float32)
    wider[:, 300:812] = photo
    prob = torch.zeros(512, 1024)
    prob[:, 300:812] = 0.9  # the square region is then the photo itself
    h = det.detect_person_faces(torch.from_numpy(wider).permute(2, 0, 1), prob)
    assert person_roi(prob) == (0, 300, 512)
    assert len(h) == 1 and h[0].score == pytest.approx(f.score, abs=1e-6)
    np.testing.assert_allclose(h[0].keypoints - [300, 0], f.keypoints, atol=1e-3)
    det.close()


def test_no_face_no_detection():
    det = FaceDetector()
    for img in (data.coffee(), data.chelsea(), np.full((240, 320, 3), 128, np.uint8)):
        assert det.detect(img.astype(np.float32) / 255.0) == []


def test_person_roi_is_a_square_on_top_of_the_person():
    prob = torch.zeros(100, 200)
    assert person_roi(prob) is None
    prob[30:100, 120:160] = 0.9  # 70 high, 40 wide
    y0, x0, side = person_roi(prob)
    assert side == 70 and y0 == 30 and x0 == 105  # centred across the 40 px, on the box's top
    prob[:] = 1.0
    assert person_roi(prob) == (0, 50, 100)  # never larger than the short side, kept in frame


def synthetic_face() -> Face:
    kp = np.array([[40, 40], [60, 40], [50, 50], [50, 62], [30, 44], [70, 44]], np.float32)
    return Face(0.9, (28.0, 25.0, 72.0, 75.0), kp)


def test_anchor_is_inside_the_face_and_only_there():
    face = synthetic_face()
    (y0, x0), inside = face_anchor(face, 100, 100)
    region = np.zeros((100, 100), bool)
    region[y0 : y0 + inside.shape[0], x0 : x0 + inside.shape[1]] = inside
    # covers eyes, nose and mouth; leaves out the ear tragions (the face's outline) and the box edges
    for x, y in face.keypoints[:4]:
        assert region[int(y), int(x)]
    for x, y in face.keypoints[4:]:
        assert not region[int(y), int(x)]
    ys, xs = np.nonzero(region)
    assert xs.min() > 28 and xs.max() < 72 and ys.min() > 25 and ys.max() < 75
    prob = torch.full((100, 100), 0.7)
    assert anchor_faces(prob, [face]) == 1
    p = prob.numpy()
    assert np.all(p[region] == 1.0) and np.all(p[~region] == np.float32(0.7))
    # the segmenter does not see a person there (mean < 0.5): nothing changes
    low = torch.full((100, 100), 0.3)
    assert anchor_faces(low, [face]) == 0
    assert torch.all(low == 0.3)
    # a face rolled 90 degrees: the anchor turns with it (long axis along eyes -> mouth)
    rolled = Face(0.9, face.box, np.stack([face.keypoints[:, 1], 100 - face.keypoints[:, 0]], 1))
    (ry0, rx0), rin = face_anchor(rolled, 100, 100)
    ys, xs = np.nonzero(rin)
    assert np.ptp(xs) > np.ptp(ys)  # eyes -> mouth now runs along x


def astronaut_scene(h: int, w: int) -> np.ndarray:
    photo = cv2.resize(data.astronaut(), (h, h), interpolation=cv2.INTER_AREA)
    frame = np.full((h, w, 3), (90, 110, 140), np.uint8)
    frame[:, (w - h) // 2 : (w + h) // 2] = photo
    return frame


def test_person_source_anchors_the_face_and_nothing_else():
    h, w = 360, 640
    frame = to_tensor(astronaut_scene(h, w))
    plain = PersonMaskSource(info_for(w, h), CPU, face_anchors=False)(frame, [0])[0, 0]
    src = PersonMaskSource(info_for(w, h), CPU)
    anchored = src(frame, [0])[0, 0]
    assert src.faces_anchored == 1 and src.frames_seen == 1
    changed = anchored != plain
    assert changed.any()
    assert torch.all(anchored[changed] == 1.0)
    # the change lies on the face: around the eyes and mouth of the photo scaled to 360 px
    s = h / 512
    ys, xs = torch.nonzero(changed, as_tuple=True)
    left = (w - h) // 2
    assert xs.min() > left + 175 * s and xs.max() < left + 275 * s
    assert ys.min() > 80 * s and ys.max() < 178 * s
    # a sideways phone clip gets the same anchor, handed back in coded orientation
    coded = torch.rot90(frame, -1, dims=(2, 3)).contiguous()
    rot_src = PersonMaskSource(info_for(h, w, rotation=90), CPU)
    upright = torch.rot90(rot_src(coded, [0])[0, 0], 1, dims=(0, 1))
    assert rot_src.faces_anchored == 1
    assert ((upright == 1.0) & changed).sum() >= 0.95 * changed.sum()


def test_person_source_without_a_face_is_unchanged():
    photo = data.coffee()  # a cup, no face
    h, w = photo.shape[:2]
    frame = to_tensor(photo)
    plain = PersonMaskSource(info_for(w, h), CPU, face_anchors=False)(frame, [0])
    src = PersonMaskSource(info_for(w, h), CPU)
    assert torch.equal(src(frame, [0]), plain)
    assert src.faces_anchored == 0


def test_roi_pass_is_finer_inside_its_window_and_changes_nothing_outside():
    h, w = 360, 640
    size = 300  # a person in a wide frame: the first pass sees it at 144/360 of its pixels
    photo = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    frame = np.full((h, w, 3), (90, 110, 140), np.uint8)
    y0, x0 = h - size, 40
    frame[y0:, x0 : x0 + size] = photo
    t = to_tensor(frame)
    plain = PersonMaskSource(info_for(w, h), CPU, face_anchors=False, roi_pass=False)(t, [0])[0, 0]
    fine = PersonMaskSource(info_for(w, h), CPU, face_anchors=False)(t, [0])[0, 0]
    changed = (fine != plain).numpy()
    assert changed.any()
    # the window (person box x 1.25, square) lies around the photo; far from it nothing changes
    ys, xs = np.nonzero(changed)
    assert xs.max() <= x0 + 1.5 * size < w - 100
    # sharper: fewer unsure pixels (0.1 < p < 0.9) at the same or higher confidence on the body
    def unsure(m):
        return int(((m > 0.1) & (m < 0.9)).sum())

    assert unsure(fine) < unsure(plain)
    # where the first pass was sure of the person, the second pass never lowers it
    sure = plain >= 0.9
    assert sure.any() and torch.all(fine[sure] >= plain[sure])
    # ... elsewhere in the window it does decide (lower as well as higher)
    assert bool((fine < plain).any()) and bool((fine > plain).any())
    body = np.zeros((h, w), bool)
    s = size / 512
    body[y0 + int(120 * s) : y0 + int(450 * s), x0 + int(200 * s) : x0 + int(330 * s)] = True
    assert float(fine.numpy()[body].mean()) >= float(plain.numpy()[body].mean()) - 0.02
    # a person filling the frame: no second pass (nothing finer to see); nobody: none either
    full = to_tensor(cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA))
    a = PersonMaskSource(info_for(256, 256), CPU, face_anchors=False)(full, [0])
    b = PersonMaskSource(info_for(256, 256), CPU, face_anchors=False, roi_pass=False)(full, [0])
    assert torch.equal(a, b)
    empty = torch.full((1, 3, h, w), 0.5)
    assert torch.equal(PersonMaskSource(info_for(w, h), CPU, face_anchors=False)(empty, [0]),
                       PersonMaskSource(info_for(w, h), CPU, face_anchors=False, roi_pass=False)(empty, [0]))
