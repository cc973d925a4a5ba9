"""The shared option tables (``_PIPELINE_OPTIONS``: every pipeline setting; ``_FRONTEND_OPTIONS``:
reporting and the pixel budget), the decorators that give a command some of them, their
parsers, and ``_build_config``: the run's ``PipelineConfig`` from the options as click passes
them. Choice lists come from their registries; nothing here imports torch."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import click

from alphagan_video.config import (OUTPUT_KINDS, TILING_MODES, MaskConfig, ModelConfig, OutputConfig, PipelineConfig,
                                   RefineConfig, TemporalConfig, TrimapConfig)
# Choice lists come from their registries. These modules import no torch (numpy, PyAV and OpenCV
# at most), so the CLI still answers before torch is loaded.
from alphagan_video.io.writer import CODEC_CHOICES
from alphagan_video.masks import MASK_SPEC_FORMS, SAM_MODELS
from alphagan_video.model.registry import GENERATOR_VARIANTS


def _parse_box(value: Optional[str]) -> Optional[tuple[float, float, float, float]]:
    if value is None:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"--box {value!r}: expected x0,y0,x1,y1 in pixels, e.g. 10,20,200,300") from None
    if x1 <= x0 or y1 <= y0:
        raise click.BadParameter(f"--box {value!r}: x1 must exceed x0 and y1 must exceed y0")
    return (x0, y0, x1, y1)


def _parse_point(value: str) -> tuple[float, float, int]:
    parts = value.split(",")
    try:
        if len(parts) == 2:
            return (float(parts[0]), float(parts[1]), 1)
        if len(parts) == 3 and parts[2].strip() in ("0", "1"):
            return (float(parts[0]), float(parts[1]), int(parts[2]))
    except ValueError:
        pass
    raise click.BadParameter(f"--point {value!r}: expected x,y or x,y,label with label 1 (foreground) or 0 (background)")


def _parse_chroma_key(value: Optional[str]) -> Optional[tuple[float, float, float]]:
    """``R,G,B`` in 0..1 or ``#RRGGBB`` -> (r, g, b) floats in [0, 1] (range checked by the keyer)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if text.startswith("#") and len(text) == 7:
            return tuple(int(text[i:i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]
        r, g, b = (float(v) for v in text.split(","))
        return (r, g, b)
    except ValueError:
        raise click.BadParameter(
            f"--chroma-key {value!r}: expected R,G,B with each value in 0..1 (e.g. 0.1,0.7,0.2) or #RRGGBB"
        ) from None


def _mask_choices_help() -> str:
    """``person (default) | sam | chroma | plate:PATH | file:PATH`` (``masks.MASK_SPEC_FORMS``)."""
    default = MaskConfig().source
    return " | ".join(f"{form} (default)" if form == default else form for form in MASK_SPEC_FORMS)


#: One option of a table below: (declarations, attributes), as ``click.option`` takes them.
OptionSpec = tuple[tuple[str, ...], dict]

# Every option that _build_config reads, once: name (as click passes it and _build_config takes it)
# -> (declarations, attributes). ``run`` takes them all (the farm commands reuse ``run``'s); ``pipe``
# and ``timeline`` take subsets. Insertion order is the order --help lists them in.
_PIPELINE_OPTIONS: dict[str, OptionSpec] = {
    "overwrite": (("--overwrite",), dict(is_flag=True, help="Replace an existing OUTPUT.")),
    "output_kind": (("--output-kind",), dict(type=click.Choice(OUTPUT_KINDS), default=None,
                                             help="What to write (default rgba). See the table below.")),
    "codec": (("--codec",), dict(type=click.Choice(CODEC_CHOICES), default=None,
                                 help="Override the encoder chosen from the extension. prores_aw: faster ProRes 4444 "
                                      "encoder, larger deviation from Apple's reference.")),
    "background": (("--background",), dict(default=None, help="Composite background: #RRGGBB, R,G,B, a colour name "
                                                             "or an image path.")),
    "mask_source": (("--mask", "mask_source"), dict(default=None, metavar="SOURCE",
                                                    help=f"Coarse mask: {_mask_choices_help()}.")),
    "sam_checkpoint": (("--sam-checkpoint",), dict(type=click.Path(path_type=Path), default=None,
                                                   help="Official segment-anything checkpoint (.pth).")),
    "sam_model": (("--sam-model",), dict(type=click.Choice(SAM_MODELS), default=None,
                                         help="SAM model type of the checkpoint.")),
    "box": (("--box",), dict(default=None, metavar="X0,Y0,X1,Y1", help="SAM box prompt on the first frame.")),
    "points": (("--point", "points"), dict(multiple=True, metavar="X,Y[,LABEL]",
                                           help="SAM point prompt on the first frame (repeatable).")),
    "prompts_json": (("--prompts", "prompts_json"), dict(
        type=click.Path(path_type=Path), default=None,
        help='SAM prompts JSON keyed by frame index: {"0": {"box": [x0,y0,x1,y1], "points": [[x,y,1]]}}.')),
    "chroma_key": (("--chroma-key", "chroma_key"), dict(
        default=None, metavar="R,G,B",
        help="--mask chroma: fixed screen colour (R,G,B in 0..1 or #RRGGBB) instead of detecting it on the "
             "first frame; farm jobs fix it from frame 0 themselves.")),
    "trimap_path": (("--trimap", "trimap_path"), dict(
        type=click.Path(path_type=Path), default=None,
        help="Your own trimaps (video, sequence or image); skips mask and trimap derivation.")),
    "trimap_band": (("--trimap-band",), dict(type=int, default=None, metavar="PX",
                                             help="Unknown band width in pixels, AlphaGAN erosion/dilation (default: evidence trimap, band "
                                                  "scaling with resolution; 0 = binary trimap).")),
    "checkpoint": (("--checkpoint",), dict(type=click.Path(path_type=Path), default=None,
                                           help="Generator weights (.safetensors or .pt); default: shipped weights.")),
    "variant": (("--variant",), dict(type=click.Choice(tuple(GENERATOR_VARIANTS)), default=None,
                                     help="Generator variant of a --checkpoint that does not record it (bare state "
                                          "dicts).")),
    "batch_size": (("--batch-size",), dict(type=int, default=None, help="Frames per batch (memory grows with it).")),
    "device": (("--device",), dict(default=None, help="auto | cpu | cuda | cuda:N (default auto).")),
    "no_amp": (("--no-amp",), dict(is_flag=True, help="Disable mixed precision on GPU.")),
    "tiling": (("--tiling",), dict(type=click.Choice(TILING_MODES), default=None,
                                   help="Run the generator only on tiles covering the unknown band (on), the full "
                                        "frame (off, default), or tiles when they cover < 60% of the frame (auto).")),
    "prior_scale": (("--prior-scale",), dict(
        type=float, default=None, metavar="S",
        help="Working scale of the generator when the refine is on (its alpha is then the solve's prior): "
             "0.5 = half the side, short side kept >= 320 px; 1 = full resolution. Default: 0.5 on the CPU, 1 on "
             "CUDA. Refine off: always 1.")),
    "refine": (("--refine/--no-refine",), dict(default=None,
                                               help="Matting-Laplacian refinement of the generator's alpha.")),
    "temporal": (("--temporal/--no-temporal",), dict(
        default=None, help="Motion-compensated temporal smoothing of alpha and stable trimaps (default on); off: "
                           "every frame is matted on its own (flickers, slightly faster).")),
    "temporal_strength": (("--temporal-strength",), dict(
        type=float, default=None,
        help="0..1 (default 0.5): memory of the temporal filter (0.5 ~ 6 frames, 1 ~ 33). Higher: steadier mattes, "
             "more lag on low-contrast moving edges, longer warm-up for chunked runs.")),
    "compile_model": (("--compile", "compile_model"), dict(
        is_flag=True, default=None,
        help="torch.compile the generator (faster on GPU after a slow first batch per shape).")),
    "overlap": (("--overlap/--no-overlap",), dict(
        default=None, help="Decode, matte and encode concurrently (default on; same output either way).")),
    "no_audio": (("--no-audio",), dict(is_flag=True, help="Do not copy audio streams.")),
}


def _parse_max_pixels(ctx, param, value: Optional[str]) -> Optional[int]:
    """``--max-pixels N`` or ``WxH`` -> pixels per frame (None: the default budget)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    try:
        if "x" in text:
            w, h = (int(v) for v in text.split("x"))
            n = w * h
            if w < 1 or h < 1:
                raise ValueError
        else:
            n = int(text)
    except ValueError:
        raise click.BadParameter(f"--max-pixels {value!r}: expected a pixel count or WxH, e.g. 8192x8192") from None
    if n < 1:
        raise click.BadParameter(f"--max-pixels {value!r}: must be at least 1 pixel")
    return n


# The options every front-end (run, pipe, timeline, the farm commands) may take that are not
# pipeline settings: how the command reports, and the pixel budget. Same flags, same meaning
# everywhere; a command names the ones it takes (``_frontend_options``) and may reword the help.
_FRONTEND_OPTIONS: dict[str, OptionSpec] = {
    "max_pixels": (("--max-pixels", "max_pixels"), dict(
        default=None, callback=_parse_max_pixels, metavar="N|WxH",
        help="Pixel budget per frame (default 8192x8192): larger inputs are refused from their declared size, "
             "before anything is decoded.")),
    "quiet": (("-q", "--quiet"), dict(is_flag=True, help="No progress output.")),
    "json_report": (("--json-report",), dict(type=click.Path(path_type=Path), default=None,
                                             help="Write what was done as JSON.")),
    "debug": (("--debug",), dict(is_flag=True, help="Show tracebacks on errors.")),
}


def _options_from(table: dict[str, OptionSpec], names: tuple[str, ...], without: tuple[str, ...],
                  help: Optional[dict[str, str]]):
    """Decorator: add the options ``names`` of ``table`` (all when none are named) minus ``without``.

    They are listed in table order whatever the order of ``names``; ``help`` replaces the help
    text of options that mean something else for this command (e.g. "per-clip file")."""
    chosen = list(names or table)
    overrides = help or {}
    unknown = (set(chosen) | set(without) | set(overrides)) - set(table)
    if unknown:
        raise ValueError(f"unknown option names {sorted(unknown)}")

    def decorate(func):
        # click.option decorators run bottom-up: apply in reverse to list the options in order.
        for name in reversed(table):
            if name in chosen and name not in without:
                decls, attrs = table[name]
                if name in overrides:
                    attrs = {**attrs, "help": overrides[name]}
                func = click.option(*decls, **attrs)(func)
        return func

    return decorate


def _pipeline_options(*names: str, without: tuple[str, ...] = (), help: Optional[dict[str, str]] = None):
    """Decorator: the shared pipeline options ``names`` of ``_PIPELINE_OPTIONS`` (see ``_options_from``)."""
    return _options_from(_PIPELINE_OPTIONS, names, without, help)


def _frontend_options(*names: str, help: Optional[dict[str, str]] = None):
    """Decorator: the shared front-end options ``names`` of ``_FRONTEND_OPTIONS`` (see ``_options_from``)."""
    return _options_from(_FRONTEND_OPTIONS, names, (), help)


def _build_config(
    *, overwrite: Optional[bool] = None, output_kind: Optional[str] = None, codec: Optional[str] = None,
    background: Optional[str] = None, mask_source: Optional[str] = None, sam_checkpoint: Optional[Path] = None,
    sam_model: Optional[str] = None, box: Optional[str] = None, points: tuple[str, ...] = (),
    prompts_json: Optional[Path] = None, chroma_key: Optional[str] = None, trimap_path: Optional[Path] = None,
    trimap_band: Optional[int] = None, checkpoint: Optional[Path] = None, variant: Optional[str] = None,
    batch_size: Optional[int] = None, device: Optional[str] = None, no_amp: Optional[bool] = None,
    tiling: Optional[str] = None, prior_scale: Optional[float] = None, refine: Optional[bool] = None,
    temporal: Optional[bool] = None,
    temporal_strength: Optional[float] = None, compile_model: Optional[bool] = None, overlap: Optional[bool] = None,
    no_audio: Optional[bool] = None,
) -> PipelineConfig:
    """The run's config from the pipeline options (``_PIPELINE_OPTIONS``) as click passes them.

    Only the options the user set override the library defaults; an option a command does not
    take is simply not passed. ``box``, ``points`` and ``chroma_key`` are the raw command-line
    strings. Raises click.BadParameter for a malformed --box, --point or --chroma-key.
    """
    def set_fields(default, **fields):
        return dataclasses.replace(default, **{k: v for k, v in fields.items() if v is not None})

    mask = set_fields(MaskConfig(), source=mask_source, sam_checkpoint=sam_checkpoint, sam_model=sam_model,
                      box=_parse_box(box), points=tuple(_parse_point(p) for p in points) or None,
                      prompts_json=prompts_json, chroma_key=_parse_chroma_key(chroma_key))
    trimap = set_fields(TrimapConfig(), band_px=trimap_band, trimap_path=trimap_path)
    model = set_fields(ModelConfig(), checkpoint=checkpoint, variant=variant, batch_size=batch_size, device=device,
                       tiling=tiling, prior_scale=prior_scale, mixed_precision=False if no_amp else None,
                       compile=True if compile_model else None,
                       # An explicit --batch-size wins over sizing batches from free GPU memory.
                       auto_batch=False if batch_size is not None else None)
    refine_cfg = set_fields(RefineConfig(), enabled=refine)
    temporal_cfg = set_fields(TemporalConfig(), enabled=temporal, strength=temporal_strength)
    output = set_fields(OutputConfig(), kind=output_kind, codec=codec, background=background,
                        overwrite=True if overwrite else None, copy_audio=False if no_audio else None)
    cfg = PipelineConfig(mask=mask, trimap=trimap, model=model, refine=refine_cfg, temporal=temporal_cfg,
                         output=output)
    if overlap is not None:
        cfg = dataclasses.replace(cfg, overlap=overlap)
    return cfg
