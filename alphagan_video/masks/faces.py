"""``faces``: BlazeFace short-range face detection (vendored MediaPipe model) and the face anchor.

A 256-px person segmenter run on a whole frame is too coarse to be sure of a face in front of a
background of skin-like colour (autumn trees): its probability on forehead and cheeks can fall
to ~0.75, the trimap then releases them and the matting makes them see-through. A face detector
is a second, independent statement that a face is there. Where it fires, *and* the segmenter
agrees that the place belongs to a person, the inner part of the face (:func:`face_anchor`) is
set to probability 1 in the person mask, so the trimap keeps it known foreground.

The model (``models/face_detection_short_range.tflite``, unchanged from the ``mediapipe==0.10.21``
wheel, Apache-2.0, see ``models/NOTICE``) takes a 1x128x128x3 float32 RGB tensor in [-1, 1] and
returns ``regressors`` (1,896,16) and ``classificators`` (1,896,1). The decoding below follows the
parameters of MediaPipe's own graphs (``face_detection_short_range.pbtxt`` and
``face_detection.pbtxt``): the frame letterboxed into 128x128 (aspect ratio kept); SSD anchors of
4 layers with strides 8, 16, 16, 16, offset 0.5, one aspect ratio 1 plus one interpolated scale,
fixed anchor size (so 2 anchors per cell on the 16x16 grid and 6 per cell on the 8x8 grid:
512 + 384 = 896); box and keypoint offsets in input pixels (scale 128) relative to the anchor
centre, in x, y, w, h order; score = sigmoid(logit clipped to +-100) >= 0.5; weighted
non-maximum suppression with IoU threshold 0.3.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from alphagan_video.errors import MaskSourceError

if TYPE_CHECKING:
    import torch

MODEL_DIR = Path(__file__).resolve().parent / "models"
FACE_MODEL = MODEL_DIR / "face_detection_short_range.tflite"  # input [1,128,128,3] in [-1,1]

#: Model input side (pixels) and its anchor grid, from MediaPipe's short-range graph.
INPUT_SIZE = 128
STRIDES = (8, 16, 16, 16)
NUM_KEYPOINTS = 6
#: MediaPipe's default ``min_detection_confidence``.
MIN_SCORE = 0.5
#: Weighted NMS merges detections overlapping more than this (IoU), as MediaPipe's graph does.
NMS_IOU = 0.3
#: The anchor is applied only where the segmenter agrees that the face belongs to a person: its
#: mean probability over the anchor region must be at least this (even odds). A face on a poster
#: or a screen in the background, or a face-like pattern on a non-person subject, is then ignored,
#: and the anchor can only confirm the segmenter, never create a subject of its own.
MIN_PERSON_PROBABILITY = 0.5

# Keypoint order of BlazeFace (the subject's right eye is on the image's left for a frontal face).
RIGHT_EYE, LEFT_EYE, NOSE, MOUTH, RIGHT_EAR, LEFT_EAR = range(6)

# Face anchor geometry, in units of the face's own landmark distances (anthropometric averages,
# adult faces, Farkas 1994): interpupillary distance IPD ~63 mm; eyes to mouth (stomion) EM ~70 mm
# (~1.1 IPD); eyes to hairline ~1 EM; mouth to chin ~0.65 EM; face half-width ~1.05 IPD at the
# cheekbones and ~0.9 IPD at the mouth. The ellipse below reaches 0.5 EM above the eyes (lower
# forehead, half-way to the hairline), 0.3 EM below the mouth (chin at 0.65 EM), and 0.8 IPD to
# each side (cheekbones at ~1.05 IPD): it stays ~15 mm or more inside the face outline, away from
# hair and the jaw line, for any face the detector reports, and it turns and scales with it.
ANCHOR_CENTRE_EM = 0.4   # centre, from the eyes' midpoint towards the mouth
ANCHOR_HALF_HEIGHT_EM = 0.9
ANCHOR_HALF_WIDTH_IPD = 0.8


@dataclass(frozen=True)
class Face:
    """One detected face, in the pixel coordinates of the image it was found in.

    score: detector confidence in [0, 1]. box: (x0, y0, x1, y1) float pixels.
    keypoints: (6, 2) float32 (x, y) pixels: right eye, left eye, nose tip, mouth centre,
    right ear tragion, left ear tragion (the subject's sides).
    """

    score: float
    box: tuple[float, float, float, float]
    keypoints: np.ndarray


def ssd_anchors(input_size: int = INPUT_SIZE, strides: tuple[int, ...] = STRIDES) -> np.ndarray:
    """Anchor centres (N, 2) float32 (x, y) in [0, 1] of MediaPipe's ``SsdAnchorsCalculator`` for
    one aspect ratio (1.0) plus one interpolated scale and fixed anchor size: consecutive layers
    of equal stride share one grid, each adds 2 anchors per cell; cells row-major, anchors
    innermost."""
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = 2 * (j - i)
        n = int(np.ceil(input_size / strides[i]))
        c = (np.arange(n, dtype=np.float32) + 0.5) / n
        yy, xx = np.meshgrid(c, c, indexing="ij")
        cells = np.stack([xx.ravel(), yy.ravel()], axis=1)
        out.append(np.repeat(cells, per_cell, axis=0))
        i = j
    return np.concatenate(out, axis=0)


def decode(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray,
           min_score: float = MIN_SCORE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw model outputs -> candidates above ``min_score``.

    regressors (N,16), logits (N,) or (N,1), anchors (N,2) -> scores (K,), boxes (K,4) as
    (x0,y0,x1,y1) and keypoints (K,6,2), both normalised to the model input ([0,1] inside it).
    """
    reg = regressors.reshape(-1, 4 + 2 * NUM_KEYPOINTS).astype(np.float64) / INPUT_SIZE
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -100.0, 100.0)))
    keep = scores >= min_score
    reg, a, scores = reg[keep], anchors[keep].astype(np.float64), scores[keep]
    cx, cy = reg[:, 0] + a[:, 0], reg[:, 1] + a[:, 1]
    w, h = reg[:, 2], reg[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kps = reg[:, 4:].reshape(-1, NUM_KEYPOINTS, 2) + a[:, None, :]
    return scores, boxes, kps


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, kps: np.ndarray,
                 iou_threshold: float = NMS_IOU) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """MediaPipe's WEIGHTED non-maximum suppression: the best remaining candidate and every one
    overlapping it by more than ``iou_threshold`` form a cluster whose box and keypoints are the
    score-weighted mean and whose score is the best one. Returns [(score, box(4,), kps(6,2))],
    best first."""
    order = np.argsort(-scores, kind="stable")
    scores, boxes, kps = scores[order], boxes[order], kps[order]
    alive = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        cluster = alive & (_iou(boxes[i], boxes) > iou_threshold)
        cluster[i] = True
        wgt = scores[cluster] / scores[cluster].sum()
        out.append((float(scores[i]), (wgt[:, None] * boxes[cluster]).sum(0),
                    (wgt[:, None, None] * kps[cluster]).sum(0)))
        alive &= ~cluster
    return out


def shrink(crop: "torch.Tensor", height: int, width: int) -> np.ndarray:
    """(3,h,w) float image (a view into a frame; any device) -> (height, width, 3) float32 numpy,
    area-averaged. On the CPU, cv2 shrinks each channel plane of the view in place (no
    channels-last copy of the window: ~2x faster than F.interpolate at 720p); elsewhere the
    frame's device shrinks it before the copy to the host."""
    import cv2
    import torch.nn.functional as F

    crop = crop.float()
    if crop.device.type == "cpu":
        return np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_AREA) for c in crop.numpy()],
                        axis=-1)
    small = F.interpolate(crop[None], size=(height, width), mode="area")
    return small[0].permute(1, 2, 0).cpu().numpy()


def letterbox(rgb: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, float, float, float]:
    """(H,W,3) float32 RGB in [0,1] -> ((size,size,3) float32 in [-1,1], scale, pad_x, pad_y).

    The image is shrunk with area averaging so that its long side is ``size``, centred, and the
    border is black (-1), as MediaPipe's ``ImageToTensorCalculator`` (keep_aspect_ratio, zero
    border) does. A pixel (x, y) of the image lands at (x * scale + pad_x, y * scale + pad_y).
    """
    import cv2

    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    small = cv2.resize(np.ascontiguousarray(rgb, np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.full((size, size, 3), -1.0, np.float32)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py : py + nh, px : px + nw] = np.clip(small, 0.0, 1.0) * 2.0 - 1.0
    # the exact scale of each axis after rounding the resized size
    return out, nw / w, float(px), float(py)


class FaceDetector:
    """BlazeFace short-range on whole frames.

    Args:
        model_path: the ``.tflite`` file (default: the vendored one).
        num_threads: interpreter threads.
        min_score: detections below this confidence are dropped (MediaPipe's default 0.5).

    ``detect(rgb)``: (H,W,3) float32 RGB in [0,1] -> list of :class:`Face` in that image's
    pixels, best first (empty when there is no face).
    """

    def __init__(self, model_path: Optional[Path] = None, num_threads: int = 1,
                 min_score: float = MIN_SCORE) -> None:
        from alphagan_video.masks.person import _quiet_native_stderr

        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise MaskSourceError(f"face detection needs the ai-edge-litert package ({exc}); "
                                  "install it with: pip install ai-edge-litert") from None
        path = Path(model_path) if model_path is not None else FACE_MODEL
        if not path.is_file():
            raise MaskSourceError(f"face model {path} is missing; reinstall alphagan-video "
                                  "(the .tflite files ship inside the package)")
        if not 0.0 < min_score < 1.0:
            raise MaskSourceError(f"face detection min_score {min_score} must lie in (0, 1)")
        with _quiet_native_stderr():
            self._interp = Interpreter(model_path=str(path), num_threads=max(1, num_threads))
            self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]["index"]
        outs = {d["name"]: d["index"] for d in self._interp.get_output_details()}
        self._reg, self._cls = outs["regressors"], outs["classificators"]
        self._anchors = ssd_anchors()
        self.min_score = min_score

    def detect(self, rgb: np.ndarray) -> list[Face]:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise MaskSourceError(f"face detection: expected an (H,W,3) image, got {rgb.shape}")
        x, scale, px, py = letterbox(rgb)
        self._interp.set_tensor(self._in, x[None])
        self._interp.invoke()
        reg = self._interp.get_tensor(self._reg)[0]
        cls = self._interp.get_tensor(self._cls)[0]
        scores, boxes, kps = decode(reg, cls, self._anchors, self.min_score)
        faces = []
        for s, b, k in weighted_nms(scores, boxes, kps):
            # model-input [0,1] -> input pixels -> image pixels (continuous coordinates, pixel
            # edges at integers, for the box; a keypoint is a position, so pixel centres: -0.5)
            bx = (b * INPUT_SIZE - np.array([px, py, px, py])) / scale
            kp = ((k * INPUT_SIZE - np.array([px, py])) / scale - 0.5).astype(np.float32)
            faces.append(Face(s, tuple(float(v) for v in bx), kp))
        return faces

    def detect_person_faces(self, frame: "torch.Tensor", prob: "torch.Tensor") -> list[Face]:
        """Faces in the person's region of interest (:func:`person_roi`) of one frame.

        frame: (3,H,W) float32 RGB in [0,1]; prob: (h,w) person probability at the frame's
        size or the segmenter's (see :func:`person_roi`). Returns faces in frame pixels (empty
        when the segmenter finds nobody).
        """
        roi = person_roi(prob, tuple(frame.shape[-2:]))
        if roi is None:
            return []
        y0, x0, side = roi
        # the window is square, so letterboxing it is a plain resize to the model input
        small_np = shrink(frame[:, y0 : y0 + side, x0 : x0 + side], INPUT_SIZE, INPUT_SIZE)
        k = side / INPUT_SIZE
        out = []
        for f in self.detect(small_np):
            # small-image pixels -> frame pixels: box edges scale, keypoints are pixel centres
            box = (f.box[0] * k + x0, f.box[1] * k + y0, f.box[2] * k + x0, f.box[3] * k + y0)
            kp = ((f.keypoints + 0.5) * k - 0.5 + np.array([x0, y0])).astype(np.float32)
            out.append(Face(f.score, box, kp))
        return out

    def close(self) -> None:
        self._interp = None  # type: ignore[assignment]


def person_box(prob: "torch.Tensor", size: Optional[tuple[int, int]] = None
               ) -> Optional[tuple[float, float, float, float]]:
    """Bounding box (y0, x0, y1, x1), float frame pixels, of prob > 0.5; None when empty.

    prob: (h,w) probability at the frame's size or the segmenter's; size: the frame's (H, W)
    (default: prob's)."""
    import torch

    ph, pw = prob.shape
    h, w = size if size is not None else (ph, pw)
    fg = prob > 0.5
    rows = torch.nonzero(fg.any(dim=1)).flatten()
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(fg.any(dim=0)).flatten()
    sy, sx = h / ph, w / pw
    return int(rows[0]) * sy, int(cols[0]) * sx, (int(rows[-1]) + 1) * sy, (int(cols[-1]) + 1) * sx


def person_roi(prob: "torch.Tensor", size: Optional[tuple[int, int]] = None) -> Optional[tuple[int, int, int]]:
    """Where to look for the person's face: (y0, x0, side) of a square window of the frame, or
    None when the segmenter finds nobody (no pixel above 0.5).

    prob: (h,w) person probability, at the frame's size or (cheaper, the same box) at the
    segmenter's own resolution; size: the frame's (H, W) (default: prob's). The window is the
    bounding box of prob > 0.5 made square by its larger side (at most the frame's short side),
    aligned to the box's top (an upright person's head is at the top) and centred across it,
    then moved inside the frame. Cropping before detecting is how MediaPipe reaches small
    subjects (its pose and face-mesh graphs crop a region of interest); here it enlarges a
    waist-up person's face ~1.8x in a 16:9 frame.
    """
    box = person_box(prob, size)
    if box is None:
        return None
    h, w = size if size is not None else tuple(prob.shape)
    by0, bx0, by1, bx1 = box
    side = int(round(min(max(by1 - by0, bx1 - bx0), h, w)))
    x0 = min(max(0, int(round((bx0 + bx1 - side) / 2))), w - side)
    y0 = min(max(0, int(round(by0))), h - side)
    return y0, x0, side


def face_anchor(face: Face, height: int, width: int) -> Optional[tuple[tuple[int, int], np.ndarray]]:
    """The face's inner region as an ellipse raster: ((y0, x0), (h, w) bool), the window's top-left
    corner in the image and the region inside it; None when it misses the image or is degenerate.

    The ellipse (geometry in ``ANCHOR_*`` above) is centred between the eyes and the mouth, its
    long axis along the eyes-to-mouth direction (it follows head roll), sized by the face's own
    interpupillary and eyes-to-mouth distances.
    """
    k = face.keypoints.astype(np.float64)
    eyes = (k[RIGHT_EYE] + k[LEFT_EYE]) / 2.0
    down = k[MOUTH] - eyes
    em = float(np.hypot(*down))
    ipd = float(np.hypot(*(k[LEFT_EYE] - k[RIGHT_EYE])))
    if em < 1.0 or ipd < 1.0:
        return None
    down /= em
    across = np.array([-down[1], down[0]])
    centre = eyes + ANCHOR_CENTRE_EM * em * down
    a, b = ANCHOR_HALF_WIDTH_IPD * ipd, ANCHOR_HALF_HEIGHT_EM * em
    r = max(a, b)
    x0, x1 = max(0, int(np.floor(centre[0] - r))), min(width, int(np.ceil(centre[0] + r)) + 1)
    y0, y1 = max(0, int(np.floor(centre[1] - r))), min(height, int(np.ceil(centre[1] + r)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    dx, dy = xx - centre[0], yy - centre[1]
    u = dx * across[0] + dy * across[1]
    v = dx * down[0] + dy * down[1]
    inside = (u / a) ** 2 + (v / b) ** 2 <= 1.0
    if not inside.any():
        return None
    return (y0, x0), inside


def anchor_faces(prob: "torch.Tensor", faces: list[Face],
                 min_person: float = MIN_PERSON_PROBABILITY) -> int:
    """Set the person probability to 1, in place, inside each face's anchor that the segmenter
    agrees with.

    prob: (H,W) float32 tensor in [0,1] (any device), the segmenter's person probability; it is
    changed only inside the anchors. A face whose anchor has a mean probability below
    ``min_person`` is skipped. Returns the number of faces applied.
    """
    import torch

    used = 0
    h, w = prob.shape
    for face in faces:
        region = face_anchor(face, h, w)
        if region is None:
            continue
        (y0, x0), inside_np = region
        inside = torch.from_numpy(inside_np).to(prob.device)
        win = prob[y0 : y0 + inside.shape[0], x0 : x0 + inside.shape[1]]
        if float(win[inside].mean()) < min_person:
            continue
        win.masked_fill_(inside, 1.0)
        used += 1
    return used


__all__ = ["Face", "FaceDetector", "FACE_MODEL", "anchor_faces", "person_roi", "decode", "face_anchor",
           "letterbox", "ssd_anchors", "weighted_nms"]
