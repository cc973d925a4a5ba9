"""Output stages: coverage (empty/full mattes), foreground + output arrays, chunk window."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from alphagan_video.config import OUTPUT_KINDS
from alphagan_video.errors import ParameterError
from alphagan_video.stages.base import Stage, Work
from alphagan_video.types import OutputBatch

_NAMED_COLOURS = {
    "black": (0, 0, 0), "white": (255, 255, 255), "green": (0, 255, 0), "blue": (0, 0, 255),
    "red": (255, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128),
}


def _parse_colour(text: str) -> Optional[tuple[int, ...]]:
    """``#RRGGBB``, ``R,G,B`` (0-255) or a colour name -> (R, G, B) 0-255; None otherwise."""
    if text.lower() in _NAMED_COLOURS:
        return _NAMED_COLOURS[text.lower()]
    try:
        if text.startswith("#") and len(text) == 7:
            return tuple(int(text[i : i + 2], 16) for i in (1, 3, 5))
        if text.count(",") == 2:
            rgb = tuple(int(v) for v in text.split(","))
            return rgb if all(0 <= v <= 255 for v in rgb) else None
    except ValueError:
        return None
    return None


def parse_background(spec: str, height: int, width: int) -> np.ndarray:
    """``#RRGGBB``, ``R,G,B`` (0-255), a colour name, or an image path -> (H,W,3) float32 [0,1].
    Raises ParameterError about ``output.background``."""
    text = spec.strip()
    rgb = _parse_colour(text)
    if rgb is not None:
        return np.broadcast_to(np.asarray(rgb, np.float32) / 255.0, (height, width, 3)).copy()
    path = Path(text)
    if path.is_file():
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ParameterError.about("output.background", spec, "not a readable image file")
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return image[..., ::-1].astype(np.float32) / 255.0
    raise ParameterError.about(
        "output.background", repr(spec),
        f"expected #RRGGBB, R,G,B, a colour name ({', '.join(_NAMED_COLOURS)}) or an image file")


def render_output(
    kind: str,
    image: torch.Tensor,
    alpha: torch.Tensor,
    foreground: Optional[torch.Tensor],
    background: Optional[torch.Tensor],
) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Build what the writer encodes for one batch.

    Args:
        kind: rgba | alpha | foreground | composite.
        image, foreground: (B,3,H,W) float [0,1]; alpha: (B,1,H,W) float [0,1];
        background: (1,3,H,W) float [0,1] for composite.
    Returns:
        (color (B,H,W,3) float32 straight or None, alpha (B,H,W) float32 or None).
        rgba -> (F, a) straight; alpha -> (None, a); foreground -> (F, None);
        composite -> (a*F + (1-a)*BG, None).
    """
    def to_numpy(t: torch.Tensor) -> np.ndarray:
        return t.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()

    if kind == "alpha":
        return None, to_numpy(alpha)[..., 0]
    if kind not in OUTPUT_KINDS:
        raise ParameterError.about("output.kind", repr(kind), f"expected one of {', '.join(OUTPUT_KINDS)}")
    if foreground is None:
        raise ValueError(f"output kind {kind!r} needs a foreground estimate")
    if kind == "rgba":
        return to_numpy(foreground), to_numpy(alpha)[..., 0]
    if kind == "foreground":
        return to_numpy(foreground), None
    if background is None:
        raise ValueError("composite output needs a background")
    return to_numpy(alpha * foreground + (1 - alpha) * background), None


#: An empty or full matte on more than this many frames (or on every frame) is worth a warning:
#: a frame or two may legitimately have nobody in it.
FEW_FRAMES = 3

#: Per mask source (the first word of its description): what to check when the matte is empty/full.
#: Settings are named by their parameter; the CLI shows them as its flags.
COVERAGE_HINTS = {
    "plate": "is the plate of this shot, and shot from (about) the same camera position?",
    "chroma": "is there a green/blue screen behind the subject? try mask.chroma_key R,G,B",
    "person": "is there a person in frame? for other subjects use mask.source sam or file:PATH",
    "sam": "add a prompt for those frames (mask.prompts_json JSON)",
    "file": "check that the masks are white (255) on the subject and match the frames",
    "user": "check the trimaps: white = foreground, black = background, grey = unknown",
}


def _frame_list(frames: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(f) for f in frames[:limit])
    return shown + (f", ... ({len(frames)} frames)" if len(frames) > limit else "")


def coverage_warnings(empty: list[int], full: list[int], total: int, mask_description: str = "") -> list[str]:
    """One-line warnings when the matte is empty or full on more than ``FEW_FRAMES`` frames (or on
    all of them), naming the frames and a hint. Empty list when all is well."""
    source = mask_description.split(" ", 1)[0] if mask_description else ""
    hint = COVERAGE_HINTS.get(source, "check the mask.source source")
    out = []
    for what, frames in (("empty (fully transparent)", empty), ("full (fully opaque)", full)):
        if frames and (len(frames) > FEW_FRAMES or len(frames) == total):
            out.append(f"the matte is {what} on {len(frames)} of {total} frame(s): {_frame_list(frames)}; {hint}")
    return out


class CoverageStage(Stage):
    """Records the frames whose matte is empty (no pixel above 0.5) or full (none below)."""

    name = "coverage"
    on_warm_up = False

    def __init__(self) -> None:
        self.empty_frames: list[int] = []
        self.full_frames: list[int] = []

    def __call__(self, work: Work) -> Work:
        above = (work.alpha > 0.5).flatten(1)
        for i, frame in enumerate(work.batch.index):
            if not bool(above[i].any()):
                self.empty_frames.append(int(frame))
            elif bool(above[i].all()):
                self.full_frames.append(int(frame))
        return work


class OutputStage(Stage):
    """``work.image`` + ``work.alpha`` -> ``work.output`` for output ``kind``: the foreground
    colour (blur fusion) where the kind needs it, then the arrays the sink writes. Stateless,
    so it runs in its own lane, one batch behind the matting.

    background: (1,3,H,W) float [0,1] on the device, for ``composite``.
    device_planes: convert to 10-bit YCbCr(A) codes on the device (set when the writer takes
        them and the device is CUDA): only int16 planes cross to the host.
    """

    name = "foreground"
    lane = "render"
    on_warm_up = False

    def __init__(self, kind: str, background: Optional[torch.Tensor] = None, device_planes: bool = False):
        self.kind = kind
        self.background = background
        self.device_planes = device_planes

    def __call__(self, work: Work) -> Work:
        from alphagan_video.stages.s6_foreground.foreground import estimate_foreground_band

        batch, image, alpha = work.batch, work.image, work.alpha
        foreground = estimate_foreground_band(image, alpha) if self.kind != "alpha" else None
        if self.device_planes and self.kind != "alpha":
            work.output = OutputBatch(None, None, batch.pts, batch.index, batch.time_base,
                                      planes=self._device_planes(alpha, foreground))
        else:
            color, out_alpha = render_output(self.kind, image, alpha, foreground, self.background)
            work.output = OutputBatch(color, out_alpha, batch.pts, batch.index, batch.time_base)
        # Only the output goes on to the writer. The work waits in the encoder's queue, and at
        # 1080p the float32 image, alpha and trimap it would keep are ~40 MB a frame.
        work.image = work.alpha = work.trimap = None
        return work

    def _device_planes(self, alpha: torch.Tensor, foreground: torch.Tensor) -> np.ndarray:
        """Output colour (+ alpha) as 10-bit YCbCr(A) codes converted on the device.
        -> (B, 3|4, H, W) uint16."""
        from alphagan_video.io.colour import rgb_to_ycc10_torch

        color = alpha * foreground + (1 - alpha) * self.background if self.kind == "composite" else foreground
        codes = rgb_to_ycc10_torch(color, alpha if self.kind == "rgba" else None)
        return codes.cpu().numpy().view(np.uint16)  # codes are 0..1023: same bits


def select_frames(out: OutputBatch, start: int, stop: Optional[int]) -> OutputBatch:
    """The frames of ``out`` whose index lies in [start, stop) (stop None = no upper bound)."""
    keep = [i for i, index in enumerate(out.index) if index >= start and (stop is None or index < stop)]
    if len(keep) == len(out.index):
        return out
    return OutputBatch(
        out.color[keep] if out.color is not None else None,
        out.alpha[keep] if out.alpha is not None else None,
        [out.pts[i] for i in keep], [out.index[i] for i in keep], out.time_base,
        planes=out.planes[keep] if out.planes is not None else None,
    )


class WindowStage(Stage):
    """Drops the output frames outside [start, stop): a chunk's warm-up frames that share a
    batch with its first frames, and the alignment frames after its last (chunk runs with context frames, ``matte_video(context=...)``)."""

    name = "window"
    lane = "render"
    on_warm_up = False

    def __init__(self, start: int, stop: Optional[int]):
        self.start, self.stop = start, stop

    def __call__(self, work: Work) -> Work:
        work.output = select_frames(work.output, self.start, self.stop)
        return work
