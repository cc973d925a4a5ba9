"""Frozen configuration dataclasses. Library defaults here are the single source of truth;
the CLI only passes fields the user set (via ``dataclasses.replace``)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Optional, get_args

OutputKind = Literal["rgba", "alpha", "foreground", "composite"]
#: Every output kind, in the order help texts list them (the one list; derived from OutputKind).
OUTPUT_KINDS: tuple[str, ...] = get_args(OutputKind)
#: ``ModelConfig.tiling``: tiles over the unknown band when they cover < 60% of the frame
#: ("auto"), always ("on"), never ("off"); see ``generator.tiling.infer_alpha``.
TilingMode = Literal["auto", "on", "off"]
TILING_MODES: tuple[str, ...] = get_args(TilingMode)


@dataclass(frozen=True)
class MaskConfig:
    """Coarse-mask source.

    source: ``person`` | ``sam`` | ``chroma`` | ``plate:PATH`` | ``file:PATH``.
    sam_checkpoint / sam_model: official segment-anything checkpoint and its model type.
    box: (x0, y0, x1, y1) pixel box on the first frame (SAM).
    points: ((x, y, label), ...) clicks on the first frame; label 1 = foreground, 0 = background.
    prompts_json: JSON file ``{"<frame index>": {"box": [...], "points": [[x, y, label], ...]}}``.
    threshold: probability above which the soft mask counts as foreground.
    chroma_key: fixed screen colour (R, G, B) in [0, 1] (display-referred, as decoded) for
        ``chroma``; None = detected on the first frame the source sees. Fix it when several
        runs must key identically (farm chunks: the farm job fills it from frame 0 of the clip).
    chroma_tolerance: CbCr distance from the key below which a pixel is pure screen (the
        keyer's low threshold; the soft ramp above it follows from the key). None = measured
        from the spread of the screen at the first frame's border. Farm jobs fill it too.
    """

    source: str = "person"
    sam_checkpoint: Optional[Path] = None
    sam_model: str = "vit_b"
    box: Optional[tuple[float, float, float, float]] = None
    points: tuple[tuple[float, float, int], ...] = ()
    prompts_json: Optional[Path] = None
    threshold: float = 0.5
    chroma_key: Optional[tuple[float, float, float]] = None
    chroma_tolerance: Optional[float] = None


@dataclass(frozen=True)
class TrimapConfig:
    """Trimap derivation. band_px: total width of the unknown band in pixels (None = scale
    with resolution, see ``trimap.default_band_px``, and derive the trimap automatically, see
    ``auto``). trimap_path: user trimaps (skip masks)."""

    band_px: Optional[int] = None
    trimap_path: Optional[Path] = None
    # Without band_px: derive the trimap from evidence (trimap.auto_trimap: the mask's soft
    # probability, fine structure, local colour models that let go of wrong certainty). False =
    # the AlphaGAN erosion/dilation routine alone at the default band, which trusts every pixel
    # of the mask outside the band. With band_px given the AlphaGAN routine always runs.
    auto: bool = True


@dataclass(frozen=True)
class ModelConfig:
    """Generator selection. checkpoint None = the shipped default weights."""

    checkpoint: Optional[Path] = None
    variant: Optional[str] = None  # None = read from the checkpoint
    # Frames per batch. 2 by default: the generator itself is no faster per frame in batches on
    # the CPU (resnet18 at 720p on 2 cores: 6.8 s per frame one at a time, 7.4-7.7 in batches of
    # 4), but the refine prepares the frames of a batch side by side, one worker per frame
    # (pipeline.build_chain), so two frames keep both cores busy while the generator, now at its
    # reduced working scale (prior_scale), no longer fills them. Default run (bench/peak_rss.py,
    # 6 frames, 2-core AMD EPYC): batch 1 -> 2: 720p 17.1 -> 14.9 s, 1.34 -> 1.63 GB peak;
    # 1080p 35.4 -> 29.0 s, 2.02 -> 2.56 GB. (With the generator at full resolution, larger
    # batches only held more activations: 720p batch 4 3.37 GB, 2 2.94 GB, 1 2.39 GB.) On CUDA
    # ``auto_batch`` sizes batches from free GPU memory instead.
    batch_size: int = 2
    device: str = "auto"
    mixed_precision: bool = True
    # "auto": tile the unknown band when tiles cover < 60% of the frame; "on": always; "off": full frame.
    tiling: str = "off"
    # Working scale of the generator when the refine is on (its alpha is then only the solve's
    # weak prior; generator/scale.py): 0.5 = half the side, a quarter of the pixels,
    # the short side never below 320 px; 1 = full resolution. None = by device
    # (``prior_scale_for``): CPU_PRIOR_SCALE on the CPU, where the full-resolution generator is
    # the largest cost of a frame, 1 on CUDA, where it is a small one. Refine off: always 1.
    # Measured (docs/benchmarks.md, "The generator as the solve's prior"; 2-core AMD EPYC, 1080p with trimaps):
    # default run 3.42 -> 2.38 s/frame (0.81x -> 1.16x closed-form, with batch 2); product SAD
    # alphamatting-dev 3.674 -> 3.679, synthetic validation +2 %.
    prior_scale: Optional[float] = None
    # torch.compile the generator; pays compilation on the first batches.
    compile: bool = False
    # On CUDA, size frame batches from free GPU memory (pipeline.cuda_batch_size) instead of
    # batch_size; the CLI turns this off when the user gives a batch size. No effect on the CPU.
    auto_batch: bool = True


@dataclass(frozen=True)
class RefineConfig:
    """Matting-Laplacian refinement of the generator's alpha (``alphagan_video.refine``).

    The one set of defaults: ``refine.refine_alpha`` / ``prepare_refine`` / ``solve_refine``
    take this config too, so a library call and a product run solve the same system unless a
    caller sets a field. ``enabled`` only tells the pipeline whether to refine at all.
    """

    enabled: bool = True  # matting-Laplacian solve with the generator's alpha as prior
    # Prior strength of that solve: (L_UU + mu I) a = -L_UK a_K + mu a_generator, in these
    # units everywhere (a per-pixel weight multiplies it; extra data terms such as the temporal
    # prior are given in the same units). 3e-5 measured best of {3e-6, 1e-5, 3e-5, 1e-4} on a
    # synthetic validation set (bench/combine_eval.py, 30 composites, seed 20261125), then
    # confirmed on alphamatting-dev (docs/model-card.md). 0 = plain closed-form matting.
    mu: float = 3e-5
    # Unknown pixels where the generator's alpha is within gate of 0 or 1 are fixed to
    # 0 / 1 before the solve (refine.gate_trimap), so the Laplacian is built and factorised only
    # on the uncertain part of the band; 0 = solve the whole band (bench/combine_eval.py).
    gate: float = 0.0
    # Per-pixel prior weight: "uniform" or "confidence" ((2a-1)^2, refine.confidence_weight).
    weighting: str = "uniform"
    # Weight of the known-to-unknown sampling term (refine.sampling_flow, information-flow
    # matting's K-to-U flow) in the same solve; 0 = off. 0.1 measured best of {0.1, 0.3} (with
    # mu 3e-5) on the synthetic validation set and confirmed on alphamatting-dev.
    flow: float = 0.1
    # Known-region expansion radius in px (refine.expand_known): unknown pixels within this
    # distance of a known pixel of nearly the same colour become known before the solve; 0 = off.
    # 9 px with colour 0.04 measured best on the synthetic validation set (SAD 7.41 -> 7.30),
    # then confirmed on alphamatting-dev (product Trimap1 SAD 3.90 -> 3.68, Trimap2 6.20 -> 5.54).
    expand: int = 9
    # The expansion radius when the trimap was derived from a mask (the evidence trimap or the
    # AlphaGAN band of trimap.band_px) rather than given by the user. Expansion trusts the known regions:
    # it copies their labels into the band. A hand-drawn trimap earns that trust; a trimap from
    # a segmenter's mask does not (its known regions end where the mask ended, hair cut off,
    # swallowed background kept), and expanding them spreads the mask's errors into the band.
    # 0 measured better on every set it was tried on, 9 on none (bench/autotrimap.py, coarse
    # masks -> evidence trimap, mean SAD 9 -> 0: synthetic 12 composites 12.60 -> 12.20,
    # alphamatting-dev seed 0 5.38 -> 5.07, seed 1 5.61 -> 5.25), while for the hand trimaps
    # 9 stays better (dev 3.92 -> 3.70). ``effective_for`` picks between the two.
    expand_mask_trimaps: int = 0
    # How the linear system is solved: "direct" (sparse factorisation, refine/sparse.py; Jacobi
    # CG beyond refine.DIRECT_MAX_UNKNOWNS unknowns), "cg" (Jacobi CG on the assembled system),
    # "pcg" (matrix-free PCG in torch on the run's device, refine/pcg.py) or "auto" = pcg on
    # CUDA, direct elsewhere. Same system, same answer within 1e-4 mean alpha; on the CPU pcg is
    # ~7x slower (bench/refine_solvers.py, one thread: 1080p 4.8 s vs 0.7 s), so it is not the
    # CPU default.
    solver: str = "auto"

    def effective_for(self, user_trimap: bool) -> "RefineConfig":
        """This config as run on a trimap the user gave (``user_trimap``, as is) or on one the
        product derived from a mask (``expand`` replaced by ``expand_mask_trimaps``)."""
        if user_trimap or self.expand == self.expand_mask_trimaps:
            return self
        return replace(self, expand=self.expand_mask_trimaps)


@dataclass(frozen=True)
class TemporalConfig:
    """Temporal smoothing. strength in [0, 1]: 0 = off, 1 = strongest blending."""

    enabled: bool = True
    strength: float = 0.5
    # With the matting-Laplacian refine on, the warped previous alpha also enters the solve as
    # one more data term, solve_weight * blend_weight * alpha_gate * (a - warped previous)^2;
    # the usual blend follows the solve either way. Measured with bench/temporal.py, refine on
    # (mean of 4 clips, dtSSD / MESSDdt / SAD vs smoothing off): 0.01 -12.1 / -48.7 / -8.9 %;
    # 0 -5.8 / -18.1 / -0.8 % (the blend's alpha gate refuses the refined hair's flicker unless
    # the prior has pulled the solve towards the previous frame); 0.1 ghosts the fast clip
    # (SAD +2.4 %). 0 = refine each frame alone, then blend.
    solve_weight: float = 0.01


@dataclass(frozen=True)
class OutputConfig:
    """What to write.

    kind: rgba (straight F + alpha), alpha (matte only), foreground (F, no alpha),
          composite (F over ``background``).
    codec: None = pick from the extension (.mov -> ProRes 4444 for rgba, ...); explicit: one
           of ``io.writer.CODEC_CHOICES``.
    background: colour ``#RRGGBB``/name or an image path, for ``composite``.
    """

    kind: OutputKind = "rgba"
    codec: Optional[str] = None
    background: str = "#00ff00"
    overwrite: bool = False
    copy_audio: bool = True
    # Copy only the audio that overlaps the written frames (set when a frame range is written).
    trim_audio: bool = False


@dataclass(frozen=True)
class PipelineConfig:
    mask: MaskConfig = field(default_factory=MaskConfig)
    trimap: TrimapConfig = field(default_factory=TrimapConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    # Run decode, matting, foreground and encode concurrently (threads + bounded queues);
    # False = one after the other (same output; for debugging and comparison).
    overlap: bool = True


#: ``ModelConfig.prior_scale`` on the CPU when the config leaves it to the device.
CPU_PRIOR_SCALE = 0.5


def prior_scale_for(cfg: "PipelineConfig", device_type: str) -> float:
    """The generator's working scale for a run of ``cfg`` on a device of ``device_type``
    ("cpu", "cuda", ...): 1 with the refine off (the generator's alpha is the product), else
    ``cfg.model.prior_scale``, or when that is None CPU_PRIOR_SCALE on the CPU and 1 elsewhere.
    For a config ``check_config`` has passed (it checks the value; a run asks this once, in its
    plan, ``plan.plan_run``)."""
    if not cfg.refine.enabled:
        return 1.0
    if cfg.model.prior_scale is not None:
        return float(cfg.model.prior_scale)
    return CPU_PRIOR_SCALE if device_type == "cpu" else 1.0


def check_prior_scale(scale: object) -> float:
    """``ModelConfig.prior_scale`` as a float in (0, 1], else ParameterError naming the value."""
    import math

    from alphagan_video.errors import ParameterError

    try:
        value = float(scale)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ParameterError.about("model.prior_scale", scale, "expected a number in (0, 1]") from None
    if math.isnan(value) or not 0.0 < value <= 1.0:
        raise ParameterError.about("model.prior_scale", scale, "expected a number in (0, 1]; 1 = full resolution")
    return value


#: Numeric fields with a range: dotted name -> (lowest, highest or None, what the message says).
#: Tuples (``mask.chroma_key``) are checked element by element.
_RANGES: dict[str, tuple[float, Optional[float], str]] = {
    "mask.threshold": (0.0, 1.0, "must be between 0 and 1"),
    "mask.chroma_key": (0.0, 1.0, "expected R,G,B with each value in 0..1 (e.g. 0.1,0.7,0.2) or #RRGGBB"),
    "mask.chroma_tolerance": (0.0, None, "must be a positive CbCr distance"),
    "trimap.band_px": (0, None, "must be 0 or more pixels (0 = a binary trimap, no unknown band)"),
    "model.batch_size": (1, None, "must be at least 1"),
    "refine.mu": (0.0, None, "must be >= 0 (0 = plain closed-form matting)"),
    "refine.gate": (0.0, 0.5, "must be in [0, 0.5) (0 = off)"),
    "refine.flow": (0.0, None, "must be >= 0 (0 = off)"),
    "refine.expand": (0, None, "must be >= 0 px (0 = off)"),
    "refine.expand_mask_trimaps": (0, None, "must be >= 0 px (0 = off)"),
    "temporal.strength": (0.0, 1.0, "must be between 0 and 1"),
    "temporal.solve_weight": (0.0, None, "must be >= 0 (0 = off)"),
}
#: String fields with a fixed set of values.
_CHOICES: dict[str, tuple[str, ...]] = {"model.tiling": TILING_MODES, "output.kind": OUTPUT_KINDS}


def _type_problem(value: object, hint: object) -> Optional[str]:
    """What is wrong with ``value`` as a value of the annotation ``hint`` (None: nothing).
    Numbers must be finite; ints are accepted for floats, bools for nothing but bools."""
    import math
    import numbers
    import os
    import typing

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _type_problem(value, inner[0]) if len(inner) == 1 else None
    if origin is Literal:
        return None if value in args else f"expected one of {', '.join(map(str, args))}"
    if hint is bool:
        return None if isinstance(value, bool) else "expected true or false"
    if hint is int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return None if ok else "expected an integer"
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return "expected a number"
        return None if math.isfinite(float(value)) else "expected a finite number"
    if hint is str:
        return None if isinstance(value, str) and "\x00" not in value else "expected a string"
    if hint is Path:
        ok = isinstance(value, (str, os.PathLike)) and str(value) != "" and "\x00" not in str(value)
        return None if ok else "expected a file path"
    if origin is tuple:
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__len__") or not hasattr(value, "__iter__"):
            return "expected a list"  # tuples, lists and arrays pass
        if len(args) == 2 and args[1] is Ellipsis:
            items = [(v, args[0]) for v in value]
        elif len(args) != len(value):
            return f"expected {len(args)} values, got {len(value)}"
        else:
            items = list(zip(value, args))
        for v, a in items:
            problem = _type_problem(v, a)
            if problem is not None:
                return f"{problem} (at {v!r})"
        return None
    return None


def check_config_fields(cfg: PipelineConfig) -> None:
    """Every field of ``cfg`` has its annotated type (finite numbers, no bools for numbers),
    its range (``_RANGES``) and one of its choices (``_CHOICES``); the box and points are
    well formed. ParameterError naming the first field that is not.

    The checks a config from a file (a farm job) needs: the CLI's parsers guarantee the types of
    what they build, a JSON file guarantees nothing."""
    import dataclasses
    import typing

    from alphagan_video.errors import ParameterError

    def walk(obj: object, prefix: str):
        hints = typing.get_type_hints(type(obj))
        for f in dataclasses.fields(obj):
            value, name = getattr(obj, f.name), f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                yield from walk(value, name + ".")
            else:
                yield name, value, hints[f.name]

    for name, value, hint in walk(cfg, ""):
        if name == "model.device" and hasattr(value, "type") and hasattr(value, "index"):
            continue  # a torch.device
        problem = _type_problem(value, hint)
        if problem is None and name in _CHOICES and value not in _CHOICES[name]:
            problem = f"expected one of {', '.join(_CHOICES[name])}"
        if problem is None and name in _RANGES and value is not None:
            low, high, text = _RANGES[name]
            values = [float(v) for v in value] if "tuple" in str(hint) else [float(value)]
            if any(v < low or (high is not None and v > high) for v in values) or (
                    name == "refine.gate" and values[0] >= 0.5):
                problem = text
        if problem is not None:
            shown = repr(value) if isinstance(value, str) else value
            if isinstance(value, (tuple, list)):  # a list for a scalar field: shown as a list
                plain = "tuple" in str(hint) and all(isinstance(v, (int, float)) for v in value)
                shown = ",".join(map(str, value)) if plain and value else repr(value)
            raise ParameterError.about(name, shown, problem)
    box = cfg.mask.box
    if box is not None and not (box[2] > box[0] and box[3] > box[1]):
        raise ParameterError.about("mask.box", ",".join(map(str, box)), "x1 must exceed x0 and y1 must exceed y0")
    for point in cfg.mask.points:
        if point[2] not in (0, 1):
            raise ParameterError.about("mask.points", ",".join(map(str, point)),
                                       "the label must be 1 (foreground) or 0 (background)")


def check_config(cfg: PipelineConfig) -> None:
    """Settings that are wrong whatever the input, raised as ParameterError naming the parameter.
    The pipeline checks them before loading anything; the CLI before it even imports torch.
    Types, finiteness, ranges and choices of every field first (``check_config_fields``)."""
    from alphagan_video.errors import ParameterError

    check_config_fields(cfg)
    if cfg.model.batch_size < 1:
        raise ParameterError.about("model.batch_size", cfg.model.batch_size, "must be at least 1")
    if cfg.model.prior_scale is not None:
        check_prior_scale(cfg.model.prior_scale)
    if not 0.0 <= cfg.temporal.strength <= 1.0:
        raise ParameterError.about("temporal.strength", cfg.temporal.strength, "must be between 0 and 1")
    if cfg.trimap.band_px is not None and cfg.trimap.band_px < 0:
        raise ParameterError.about("trimap.band_px", cfg.trimap.band_px,
                                   "must be 0 or more pixels (0 = a binary trimap, no unknown band)")
