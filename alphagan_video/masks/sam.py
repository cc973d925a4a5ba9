"""``sam``: segment-anything (SAM v1) with a user-supplied official checkpoint.

Prompting:

* the first frame processed is prompted with ``MaskConfig.box`` and/or ``MaskConfig.points``
  (pixel coordinates of the coded frame), or by the prompts JSON entry for that frame;
* ``MaskConfig.prompts_json`` maps frame indices to prompts,
  ``{"<frame index>": {"box": [x0, y0, x1, y1], "points": [[x, y, label], ...]}}``
  (label 1 = subject, 0 = background); a frame with an entry is prompted afresh (re-prompt);
* every other frame is prompted with the previous mask's bounding box grown by ``margin``
  (10% of its width/height on each side) and the previous low-resolution logits as
  ``mask_input`` -- the usual way SAM v1 is carried through a shot.

A propagated mask that becomes empty, covers more than ``max_fraction`` of the frame or grows
more than ``max_growth`` times in one frame means the subject was lost: ``SubjectLostError``
names the frame and the prompts-JSON entry that fixes it.

The soft mask returned is ``sigmoid`` of SAM's upsampled mask logits (SAM's own binary mask is
``logit > 0``, i.e. probability > 0.5).

Checkpoints are read with ``torch.load(map_location="cpu", weights_only=True)``; the
architecture comes from ``SAM_BUILDERS`` (the official vit_b / vit_l / vit_h builders without
their own loading; the tests register a tiny one).
"""
from __future__ import annotations

import json
import math
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional

import torch

from alphagan_video._state_dict import state_dict_mismatch, strip_prefixes
from alphagan_video.config import MaskConfig
from alphagan_video.errors import CheckpointError, MaskSourceError, SubjectLostError
from alphagan_video.masks import SAM_MODELS
from alphagan_video.types import VideoInfo

if TYPE_CHECKING:  # segment_anything imports torchvision: keep it off the default import path
    from segment_anything.modeling import Sam

#: Official model types, for messages (the list lives in the torch-free package module).
OFFICIAL_SAM_MODELS = SAM_MODELS

#: Encoder width -> official model type (read from ``image_encoder.pos_embed``).
_WIDTH_TO_MODEL = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}

_CHECKPOINT_HINT = (
    "download the official checkpoint (sam_vit_b_01ec64.pth, sam_vit_l_0b3195.pth or "
    "sam_vit_h_4b8939.pth) from github.com/facebookresearch/segment-anything and pass its path"
)


# --------------------------------------------------------------------------- models
def _official_builder(model_type: str) -> Callable[[], "Sam"]:
    def build() -> "Sam":
        from segment_anything import sam_model_registry

        # checkpoint=None: the registry only builds the architecture; weights are loaded by
        # load_sam_checkpoint (weights_only=True, key checks, clear errors).
        return sam_model_registry[model_type](checkpoint=None)

    return build


#: model type -> architecture builder (random weights; load_sam_checkpoint fills them).
SAM_BUILDERS: dict[str, Callable[[], "Sam"]] = {
    "vit_b": _official_builder("vit_b"),
    "vit_l": _official_builder("vit_l"),
    "vit_h": _official_builder("vit_h"),
}


def read_sam_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a SAM checkpoint into a CPU state dict (``weights_only=True``).

    Accepts a bare state dict (the official files) or one wrapped under ``"model"`` /
    ``"state_dict"``; strips ``module.`` and ``_orig_mod.`` prefixes.

    Raises:
        CheckpointError: missing, unreadable, corrupt or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"SAM checkpoint not found: {path}; {_CHECKPOINT_HINT}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types for garbage (KeyError: a text file)
        text = str(exc).strip()
        known = isinstance(exc, (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile,
                                 OSError))
        reason = text.splitlines()[0] if known and text else f"unrecognised data: {type(exc).__name__} {text[:40]}"
        raise CheckpointError(
            f"SAM checkpoint {path} is not a readable PyTorch checkpoint ({reason[:160]}); "
            "re-download it (the file may be truncated or of another format)"
        ) from None
    if isinstance(obj, Mapping):
        for wrapper in ("model", "state_dict"):
            inner = obj.get(wrapper)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"SAM checkpoint {path} does not hold a model state dict; {_CHECKPOINT_HINT}")
    return strip_prefixes(obj)


def guess_sam_model(state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The official model type a state dict belongs to (by encoder width), or None."""
    pos = state_dict.get("image_encoder.pos_embed")
    if pos is None or pos.ndim < 1:
        return None
    return _WIDTH_TO_MODEL.get(int(pos.shape[-1]))


def load_sam_checkpoint(model: "Sam", state_dict: Mapping[str, torch.Tensor], path: Path, model_type: str) -> "Sam":
    """Load ``state_dict`` (from :func:`read_sam_state_dict`) into ``model`` strictly.

    Raises:
        CheckpointError: missing/unexpected keys or shape mismatches, naming some of them and,
            when the checkpoint is recognisably another official size, the right ``sam_model``.
    """
    expected = model.state_dict()
    # Named directly, not counted ("missing keys a, b"): SAM keys are long, messages stay short.
    parts = state_dict_mismatch(expected, state_dict, counts=False, limit=3, shape_limit=2)
    if parts:
        guess = guess_sam_model(state_dict)
        fix = (
            f"it looks like a {guess} checkpoint: use sam_model {guess}"
            if guess and guess != model_type
            else f"pass an official segment-anything checkpoint for {model_type}"
        )
        raise CheckpointError(f"SAM checkpoint {path} does not match {model_type}: {'; '.join(parts)}; {fix}")
    model.load_state_dict(state_dict, strict=True)
    return model


def build_sam_model(model_type: str, checkpoint: Path) -> "Sam":
    """Build ``model_type`` and load ``checkpoint`` into it (CPU, eval mode).

    The checkpoint is read (and its size recognised) before the possibly large model is built.
    """
    if model_type not in SAM_BUILDERS:
        raise MaskSourceError(f"sam_model {model_type!r} is unknown; use one of {', '.join(OFFICIAL_SAM_MODELS)}")
    state = read_sam_state_dict(checkpoint)
    guess = guess_sam_model(state)
    if guess is not None and model_type in OFFICIAL_SAM_MODELS and guess != model_type:
        raise CheckpointError(
            f"SAM checkpoint {checkpoint} is a {guess} checkpoint but sam_model is {model_type}; "
            f"use sam_model {guess}"
        )
    model = SAM_BUILDERS[model_type]()
    return load_sam_checkpoint(model, state, Path(checkpoint), model_type).eval()


# --------------------------------------------------------------------------- prompts
@dataclass(frozen=True)
class SamPrompt:
    """A prompt for one frame: ``box`` (x0,y0,x1,y1) and/or ``points`` ((x, y, label), ...)."""

    box: Optional[tuple[float, float, float, float]] = None
    points: tuple[tuple[float, float, int], ...] = ()

    def __bool__(self) -> bool:
        return self.box is not None or bool(self.points)


def _check_prompt(prompt: SamPrompt, where: str, width: int, height: int) -> SamPrompt:
    if prompt.box is not None:
        if len(prompt.box) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in prompt.box):
            raise MaskSourceError(f"{where}: box {list(prompt.box)} must be 4 numbers x0, y0, x1, y1")
        x0, y0, x1, y1 = (float(v) for v in prompt.box)
        if x1 <= x0 or y1 <= y0:
            raise MaskSourceError(f"{where}: box {list(prompt.box)} is empty; give x0 < x1 and y0 < y1 in pixels")
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise MaskSourceError(
                f"{where}: box {list(prompt.box)} lies outside the {width}x{height} frame; give pixel coordinates"
            )
        prompt = SamPrompt((max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))), prompt.points)
    for p in prompt.points:
        if len(p) != 3 or not all(isinstance(v, (int, float)) for v in p) or p[2] not in (0, 1):
            raise MaskSourceError(f"{where}: point {list(p)} must be [x, y, label] with label 1 (subject) or 0")
        if not (0 <= p[0] < width and 0 <= p[1] < height):
            raise MaskSourceError(f"{where}: point {list(p)} lies outside the {width}x{height} frame")
    return prompt


def read_prompts_json(path: Path, width: int, height: int) -> dict[int, SamPrompt]:
    """Parse ``{"<frame>": {"box": [...], "points": [[x, y, label], ...]}}`` into prompts.

    Raises:
        MaskSourceError: missing file, bad JSON, or a malformed entry (naming the frame key).
    """
    path = Path(path)
    if not path.is_file():
        raise MaskSourceError(f"SAM prompts JSON not found: {path}; pass an existing file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MaskSourceError(f"SAM prompts JSON {path} is not valid JSON ({exc}); fix the file") from None
    if not isinstance(data, dict) or not data:
        raise MaskSourceError(
            f'SAM prompts JSON {path} must be a non-empty object like {{"0": {{"box": [x0, y0, x1, y1]}}}}'
        )
    prompts: dict[int, SamPrompt] = {}
    for key, entry in data.items():
        where = f"SAM prompts JSON {path} entry {key!r}"
        try:
            frame = int(key)
        except ValueError:
            raise MaskSourceError(f"{where}: keys must be frame indices (0-based integers)") from None
        if frame < 0:
            raise MaskSourceError(f"{where}: frame index must be >= 0")
        if not isinstance(entry, dict) or not set(entry) <= {"box", "points"} or not entry:
            raise MaskSourceError(f'{where}: expected {{"box": [x0, y0, x1, y1]}} and/or {{"points": [[x, y, label], ...]}}')
        box = entry.get("box")
        points = entry.get("points", [])
        if box is not None and not isinstance(box, list):
            raise MaskSourceError(f"{where}: box must be a list [x0, y0, x1, y1]")
        if not isinstance(points, list) or not all(isinstance(p, list) for p in points):
            raise MaskSourceError(f"{where}: points must be a list of [x, y, label]")
        prompt = SamPrompt(tuple(box) if box is not None else None, tuple(tuple(p) for p in points))  # type: ignore[arg-type]
        if not prompt:
            raise MaskSourceError(f"{where}: the entry has neither a box nor points")
        prompts[frame] = _check_prompt(prompt, where, width, height)
    return prompts


# --------------------------------------------------------------------------- lost subject
def subject_lost_reason(
    area: int, prev_area: Optional[int], frame_area: int, max_growth: float = 3.0, max_fraction: float = 0.9
) -> Optional[str]:
    """Why a propagated mask of ``area`` pixels means the subject was lost, or None if fine.

    Lost when the mask is empty, covers more than ``max_fraction`` of the frame, or grew more
    than ``max_growth`` times since the previous frame's ``prev_area``.
    """
    if area <= 0:
        return "is empty"
    if area > max_fraction * frame_area:
        return f"covers {area / frame_area:.0%} of the frame"
    if prev_area and area > max_growth * prev_area:
        return f"grew {area / prev_area:.1f}x in one frame"
    return None


def padded_box(mask: torch.Tensor, margin: float) -> Optional[tuple[float, float, float, float]]:
    """Bounding box (x0, y0, x1, y1) of a boolean (H,W) mask, grown by ``margin`` times its
    width/height on each side and clipped to the frame; None if the mask is empty."""
    rows = torch.nonzero(mask.any(dim=1)).flatten()
    cols = torch.nonzero(mask.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None
    h, w = mask.shape
    y0, y1 = float(rows[0]), float(rows[-1]) + 1.0
    x0, x1 = float(cols[0]), float(cols[-1]) + 1.0
    mx, my = margin * (x1 - x0), margin * (y1 - y0)
    return (max(0.0, x0 - mx), max(0.0, y0 - my), min(float(w), x1 + mx), min(float(h), y1 + my))


# --------------------------------------------------------------------------- source
class SamMaskSource:
    """SAM mask propagated through a shot.

    ``__call__(frames (B,3,H,W) float [0,1], index)`` -> (B,1,H,W) float32 [0,1], frame by frame.

    Args:
        sam: a built ``segment_anything`` ``Sam`` (weights loaded); moved to ``device``.
        info: the input video (frame size for prompt checks).
        device: where frames arrive and masks are returned.
        first: prompt for the first frame processed (from ``MaskConfig.box/points``).
        prompts: per-frame prompts (from the prompts JSON); an entry re-prompts that frame and
            takes precedence over ``first``.
        threshold: probability above which a pixel counts for areas and boxes.
        margin, max_growth, max_fraction: propagation box margin and the lost-subject rule.

    The public route is :meth:`from_config`; constructing directly with a model is for callers
    that already hold one (the tests pass a tiny one).

    ``history`` records, per frame processed, ``(index, how, area)`` with ``how`` one of
    ``"prompt"`` or ``"propagate"`` (for logs and tests).
    """

    def __init__(
        self,
        sam: "Sam",
        info: VideoInfo,
        device: torch.device,
        first: SamPrompt = SamPrompt(),
        prompts: Optional[Mapping[int, SamPrompt]] = None,
        threshold: float = 0.5,
        margin: float = 0.1,
        max_growth: float = 3.0,
        max_fraction: float = 0.9,
    ) -> None:
        from segment_anything import SamPredictor

        self.device = torch.device(device)
        self._first = _check_prompt(first, "SAM prompt (box/points)", info.width, info.height) if first else first
        self._prompts = dict(prompts or {})
        if not self._first and not self._prompts:
            raise MaskSourceError.naming(
                "mask.source sam needs a prompt: give a box (x0,y0,x1,y1), points (x,y,label) "
                "or a prompts JSON for the first frame", "mask.source"
            )
        if not 0.0 < threshold < 1.0:
            raise MaskSourceError(f"mask threshold {threshold} must be between 0 and 1")
        self._logit_threshold = math.log(threshold / (1.0 - threshold))
        self.margin = margin
        self.max_growth = max_growth
        self.max_fraction = max_fraction
        self._predictor = SamPredictor(sam.to(self.device).eval())
        self._started = False
        self._prev_box: Optional[tuple[float, float, float, float]] = None
        self._prev_logits: Optional[torch.Tensor] = None  # (1,1,h,w) low-res logits
        self._prev_area: Optional[int] = None
        self.history: list[tuple[int, str, int]] = []

    @classmethod
    def from_config(cls, cfg: MaskConfig, info: VideoInfo, device: torch.device) -> "SamMaskSource":
        """Check the SAM options, load the checkpoint and build the source.

        Raises:
            MaskSourceError: no checkpoint given, no prompt, unknown model type, bad prompts.
            CheckpointError: checkpoint missing, corrupt or for another model size.
        """
        if cfg.sam_checkpoint is None:
            raise MaskSourceError.naming(f"mask.source sam needs a checkpoint: {_CHECKPOINT_HINT} as the SAM "
                                         "checkpoint", "mask.source")
        if cfg.sam_model not in SAM_BUILDERS:
            raise MaskSourceError(
                f"sam_model {cfg.sam_model!r} is unknown; use one of {', '.join(OFFICIAL_SAM_MODELS)}"
            )
        first = SamPrompt(tuple(cfg.box) if cfg.box is not None else None, tuple(tuple(p) for p in cfg.points))  # type: ignore[arg-type]
        if not first and cfg.prompts_json is None:
            raise MaskSourceError.naming(
                "mask.source sam needs a prompt: give a box (x0,y0,x1,y1), points (x,y,label) "
                "or a prompts JSON for the first frame", "mask.source"
            )
        if first:
            first = _check_prompt(first, "SAM prompt (box/points)", info.width, info.height)
        prompts = read_prompts_json(cfg.prompts_json, info.width, info.height) if cfg.prompts_json else {}
        sam = build_sam_model(cfg.sam_model, Path(cfg.sam_checkpoint))
        return cls(sam, info, device, first=first, prompts=prompts, threshold=cfg.threshold)

    def _prompt_for(self, i: int) -> SamPrompt:
        if i in self._prompts:
            return self._prompts[i]
        if not self._started and self._first:
            return self._first
        return SamPrompt()

    @torch.no_grad()
    def _one(self, frame: torch.Tensor, i: int) -> torch.Tensor:
        """frame (3,H,W) float [0,1] -> (1,H,W) float [0,1]."""
        pred = self._predictor
        h, w = frame.shape[-2:]
        image = pred.transform.apply_image_torch(frame[None].float().to(pred.device) * 255.0)
        pred.set_torch_image(image, (h, w))

        prompt = self._prompt_for(i)
        coords = labels = box = mask_input = None
        if prompt:
            how = "prompt"
            if prompt.points:
                pts = torch.tensor([[p[0], p[1]] for p in prompt.points], dtype=torch.float32, device=pred.device)
                coords = pred.transform.apply_coords_torch(pts, (h, w))[None]
                labels = torch.tensor([[int(p[2]) for p in prompt.points]], device=pred.device)
            if prompt.box is not None:
                box = pred.transform.apply_boxes_torch(
                    torch.tensor([prompt.box], dtype=torch.float32, device=pred.device), (h, w)
                )
            # One click is ambiguous (part / whole / group): take SAM's best of three then.
            multimask = box is None and len(prompt.points) == 1
        elif self._prev_box is not None:
            how = "propagate"
            box = pred.transform.apply_boxes_torch(
                torch.tensor([self._prev_box], dtype=torch.float32, device=pred.device), (h, w)
            )
            mask_input = self._prev_logits
            multimask = False
        else:
            raise MaskSourceError(
                f"SAM has no prompt for frame {i}, the first frame processed; give a box/points "
                f'or a prompts JSON entry {{"{i}": {{"box": [x0, y0, x1, y1]}}}}'
            )

        logits, scores, low_res = pred.predict_torch(
            coords, labels, boxes=box, mask_input=mask_input, multimask_output=multimask, return_logits=True
        )
        best = int(torch.argmax(scores[0])) if multimask else 0
        logit = logits[0, best]  # (H,W)
        binary = logit > self._logit_threshold
        area = int(binary.sum())
        frame_area = h * w
        if how == "prompt":
            reason = "is empty" if area == 0 else None
        else:
            reason = subject_lost_reason(area, self._prev_area, frame_area, self.max_growth, self.max_fraction)
        if reason is not None:
            raise SubjectLostError(
                f"SAM lost the subject on frame {i}: the mask {reason}; add a prompt for that frame "
                f'to the prompts JSON, e.g. {{"{i}": {{"box": [x0, y0, x1, y1]}}}}, and run again'
            )
        self._started = True
        self._prev_box = padded_box(binary, self.margin)
        self._prev_logits = low_res[:, best : best + 1]
        self._prev_area = area
        self.history.append((i, how, area))
        return torch.sigmoid(logit)[None]

    def __call__(self, frames: torch.Tensor, index: list[int]) -> torch.Tensor:
        if frames.shape[0] != len(index):
            raise MaskSourceError(f"SAM mask: {frames.shape[0]} frames but {len(index)} indices")
        out = [self._one(frames[b], int(i)) for b, i in enumerate(index)]
        return torch.stack(out).to(frames.device)

    def close(self) -> None:
        self._predictor = None  # type: ignore[assignment]
