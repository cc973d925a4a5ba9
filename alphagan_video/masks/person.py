"""``person``: MediaPipe selfie segmentation, vendored, run with ai-edge-litert.

The two ``.tflite`` files in ``models/`` (beside this module) come unchanged from the ``mediapipe==0.10.21``
wheel (Apache-2.0, see ``models/NOTICE``). Running them with ``ai-edge-litert`` instead of
``mediapipe`` keeps numpy 2 and opencv-python working and needs no download at run time.

Pre-processing follows MediaPipe's own graph (``selfie_segmentation_cpu.binarypb``:
``ImageToTensorCalculator`` with ``keep_aspect_ratio: false`` and float range [0, 1]): the whole
frame is resized (stretched) to the model input. Stretching beat letterboxing on a portrait
test (letterboxing a 9:16 frame into the 144x256 landscape input made the person too small
to be found at all).
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from alphagan_video.errors import MaskSourceError
from alphagan_video.masks.faces import anchor_faces as _anchor_faces
from alphagan_video.types import VideoInfo

MODEL_DIR = Path(__file__).resolve().parent / "models"
GENERAL_MODEL = MODEL_DIR / "selfie_segmentation.tflite"  # input [1,256,256,3]
LANDSCAPE_MODEL = MODEL_DIR / "selfie_segmentation_landscape.tflite"  # input [1,144,256,3]

#: Frames wider than this (width / height, after display rotation) use the landscape model.
#: 4/3 is the geometric mean of the two models' aspect ratios (1 and 16/9), so each frame goes
#: to the model that stretches it least: 16:9 and wider -> landscape, 4:3 and narrower -> general.
LANDSCAPE_MIN_ASPECT = 4.0 / 3.0

#: The second pass's window: the person's box enlarged this many times (MediaPipe's pose graph
#: enlarges its region of interest 1.25x before landmarking), made square for the square model.
ROI_SCALE = 1.25
#: First-pass probability that the second pass may not lower (the automatic trimap's
#: ``trimap.auto.CONFIDENT``: beyond it a pixel is certain foreground).
CONFIDENT = 0.9
#: No second pass when the window covers at least this share of the frame (no finer view).
ROI_MAX_SHARE = 0.8

#: Most frames handed to one interpreter invocation (bounds the batched input tensor).
_MAX_CHUNK = 8


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence LiteRT's C++ log line ("INFO: Created TensorFlow Lite XNNPACK delegate") that it
    writes straight to file descriptor 2; no environment variable turns it off. Python-level
    exceptions are unaffected (they are raised after the descriptor is restored)."""
    try:
        stderr_fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (e.g. under a test runner)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(stderr_fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), stderr_fd)
            yield
    finally:
        os.dup2(saved, stderr_fd)
        os.close(saved)


def choose_person_model(width: int, height: int) -> Path:
    """The vendored model for an upright frame of ``width`` x ``height`` pixels."""
    return LANDSCAPE_MODEL if width / height > LANDSCAPE_MIN_ASPECT else GENERAL_MODEL


def _rotation_steps(rotation: int) -> int:
    """Quarter turns (counter-clockwise) that make a coded frame upright.

    ``VideoInfo.rotation`` is PyAV's ``VideoFrame.rotation``: the angle the display matrix
    rotates the coded frame counter-clockwise; ``torch.rot90(k>0)`` also turns counter-clockwise.
    """
    return int(round(rotation / 90.0)) % 4


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2.0 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return k / k.sum()


class PersonMaskSource:
    """Soft person mask from the bundled selfie-segmentation model.

    Args:
        info: the input video (its size and rotation pick the model).
        device: where frames arrive and masks are returned.
        model_path: override the model file (default: chosen by aspect ratio).
        num_threads: interpreter threads (default: ``torch.get_num_threads()``).
        smooth_sigma: Gaussian sigma, in model-input pixels, applied to the probability map
            before upsampling; softens the model's blocky low-resolution edges (0 = off).
        face_anchors: look for faces (``masks.faces``, BlazeFace) in the person's region and set
            the probability to 1 over each face's inner part where the segmenter agrees a person
            is there, so that the trimap keeps faces opaque. No face found: the mask is unchanged.
        roi_pass: run the general (square) model a second time on a square window around the
            person (the box of probability > 0.5, enlarged ``ROI_SCALE`` times) and use its
            finer map inside the window, never below a first-pass probability >= ``CONFIDENT``
            (see ``_roi_pass``).

    ``__call__(frames, index)``: frames (B,3,H,W) float32 [0,1] -> (B,1,H,W) float32 [0,1]
    probability that the pixel belongs to a person.
    """

    def __init__(
        self,
        info: VideoInfo,
        device: torch.device,
        model_path: Optional[Path] = None,
        num_threads: Optional[int] = None,
        smooth_sigma: float = 1.0,
        face_anchors: bool = True,
        roi_pass: bool = True,
    ) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:  # pragma: no cover - a declared dependency
            raise MaskSourceError.naming(
                f"mask.source person needs the ai-edge-litert package ({exc}); "
                "install it with: pip install ai-edge-litert", "mask.source"
            ) from None
        self.device = torch.device(device)
        self._k = _rotation_steps(info.rotation)
        upright_w, upright_h = (info.height, info.width) if self._k % 2 else (info.width, info.height)
        self.model_path = Path(model_path) if model_path is not None else choose_person_model(upright_w, upright_h)
        if not self.model_path.is_file():
            raise MaskSourceError(
                f"person model {self.model_path} is missing; reinstall alphagan-video "
                "(the .tflite files ship inside the package)"
            )
        threads = num_threads if num_threads is not None else max(1, torch.get_num_threads())
        with _quiet_native_stderr():
            self._interp = Interpreter(model_path=str(self.model_path), num_threads=threads)
            self._interp.allocate_tensors()
        inp = self._interp.get_input_details()[0]
        self._in_index = inp["index"]
        self._in_h, self._in_w = int(inp["shape"][1]), int(inp["shape"][2])
        self._out_index = self._interp.get_output_details()[0]["index"]
        self._batch = 1
        self._kernel = _gaussian_kernel(smooth_sigma) if smooth_sigma > 0 else None  # applied on the CPU
        self._roi = None
        if roi_pass:
            with _quiet_native_stderr():
                self._roi = Interpreter(model_path=str(GENERAL_MODEL), num_threads=threads)
                self._roi.allocate_tensors()
        self._faces = None
        if face_anchors:
            from alphagan_video.masks.faces import FaceDetector

            self._faces = FaceDetector(num_threads=threads)
        #: frames seen and faces anchored so far (a run can report how often the anchor acted)
        self.frames_seen = 0
        self.faces_anchored = 0

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input (height, width)."""
        return self._in_h, self._in_w

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        """x: (b,h,w,3) float32 [0,1] -> (b,h,w) float32 probability."""
        b = x.shape[0]
        if b != self._batch:
            # The models have a static batch of 1, but LiteRT resizes the batch dimension fine
            # (checked: batched output equals per-frame output).
            self._interp.resize_tensor_input(self._in_index, [b, self._in_h, self._in_w, 3])
            with _quiet_native_stderr():
                self._interp.allocate_tensors()
            self._batch = b
        self._interp.set_tensor(self._in_index, x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out_index)[..., 0].copy()

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor, index: list[int]) -> torch.Tensor:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise MaskSourceError(f"person mask: expected frames (B,3,H,W), got {tuple(frames.shape)}")
        x = frames.float()
        if self._k:
            x = torch.rot90(x, self._k, dims=(2, 3))
        h, w = x.shape[-2:]
        # "area" (adaptive average pooling) anti-aliases like a box filter and was ~3x faster than
        # bilinear+antialias at 1080p on CPU.
        small = F.interpolate(x, size=(self._in_h, self._in_w), mode="area")
        small_np = small.clamp_(0.0, 1.0).permute(0, 2, 3, 1).contiguous().cpu().numpy()
        probs = [self._invoke(small_np[i : i + _MAX_CHUNK]) for i in range(0, small_np.shape[0], _MAX_CHUNK)]
        p = torch.from_numpy(np.concatenate(probs, axis=0))[:, None]  # (B,1,h,w) on the CPU
        if self._kernel is not None:
            r = self._kernel.numel() // 2
            p = F.pad(p, (r, r, r, r), mode="replicate")
            p = F.conv2d(p, self._kernel.view(1, 1, 1, -1))
            p = F.conv2d(p, self._kernel.view(1, 1, -1, 1))
        p = p.clamp_(0.0, 1.0)
        if self.device.type == "cpu":
            # cv2's bilinear resize was ~8x faster than F.interpolate for this upsampling
            # (1 ms vs 8 ms per 1080p frame, one thread); same half-pixel-centre convention.
            p_np = p[:, 0].numpy()
            out = torch.from_numpy(
                np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) for m in p_np])[:, None]
            )
        else:
            out = F.interpolate(p.to(self.device), size=(h, w), mode="bilinear", align_corners=False)
        x_dev = x.to(out.device) if self._roi is not None or self._faces is not None else None
        if self._roi is not None:
            for i in range(out.shape[0]):
                self._roi_pass(x_dev[i], p[i, 0], out[i, 0])
        if self._faces is not None:
            # upright frames and masks, so the detector sees heads the right way up
            for i in range(out.shape[0]):
                # the region of interest from the segmenter's own map (same box, 1/20 the pixels)
                faces = self._faces.detect_person_faces(x_dev[i], p[i, 0])
                if faces:
                    self.faces_anchored += _anchor_faces(out[i, 0], faces)
        self.frames_seen += out.shape[0]
        if self._k:
            out = torch.rot90(out, -self._k, dims=(2, 3))
        return out.contiguous()

    def _roi_pass(self, frame: torch.Tensor, p_small: torch.Tensor, out: torch.Tensor) -> None:
        """Second, finer pass over the person: frame (3,H,W) [0,1], p_small the first pass's map
        at model resolution, out (H,W) the upsampled map, changed in place inside the window."""
        from alphagan_video.masks.faces import person_box, shrink

        h, w = out.shape
        box = person_box(p_small, (h, w))
        if box is None:
            return
        by0, bx0, by1, bx1 = box
        side = ROI_SCALE * max(by1 - by0, bx1 - bx0)
        cy, cx = (by0 + by1) / 2.0, (bx0 + bx1) / 2.0
        y0, y1 = max(0, int(round(cy - side / 2))), min(h, int(round(cy + side / 2)))
        x0, x1 = max(0, int(round(cx - side / 2))), min(w, int(round(cx + side / 2)))
        if (y1 - y0) * (x1 - x0) >= ROI_MAX_SHARE * h * w or y1 - y0 < 8 or x1 - x0 < 8:
            return  # the window is (nearly) the frame: nothing finer to gain
        inp = self._roi.get_input_details()[0]
        ih, iw = int(inp["shape"][1]), int(inp["shape"][2])
        small = np.clip(shrink(frame[:, y0:y1, x0:x1], ih, iw), 0.0, 1.0)
        self._roi.set_tensor(inp["index"], np.ascontiguousarray(small[None], dtype=np.float32))
        self._roi.invoke()
        q = torch.from_numpy(self._roi.get_tensor(self._roi.get_output_details()[0]["index"])[..., 0].copy())[:, None]
        if self._kernel is not None:
            r = self._kernel.numel() // 2
            q = F.pad(q, (r, r, r, r), mode="replicate")
            q = F.conv2d(q, self._kernel.view(1, 1, 1, -1))
            q = F.conv2d(q, self._kernel.view(1, 1, -1, 1))
        q_np = cv2.resize(q[0, 0].clamp_(0.0, 1.0).numpy(), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        # Inside the window the finer map decides, except where the first pass was already sure
        # of the person (>= CONFIDENT, the trimap's own "certain"): the closer view sees a held
        # object (the sample clip's helmet) or a badge as not-person and would cut it out, while
        # a sure first pass is about the opaque body (the maximum keeps both views' certainty).
        # Measured against replacing the window outright (bench/peer.py clips, 8 frames, SAD):
        # GT03 2.54 vs 2.58, GT09 58.95 vs 59.12, sample see-through vs RVM 1197 vs 2586 px/frame.
        q_t = torch.from_numpy(q_np).to(out.device)
        win = out[y0:y1, x0:x1]
        win.copy_(torch.where(win >= CONFIDENT, torch.maximum(win, q_t), q_t))

    def close(self) -> None:
        self._interp = None  # type: ignore[assignment]
        self._roi = None
        if self._faces is not None:
            self._faces.close()


__all__ = ["PersonMaskSource", "choose_person_model", "GENERAL_MODEL", "LANDSCAPE_MODEL", "LANDSCAPE_MIN_ASPECT"]
