"""The one wiring function: INPUT -> masks -> trimaps -> generator -> clamp -> refine ->
temporal -> foreground -> OUTPUT, as a one-way stream of frame batches.

Memory is bounded by the batch size: nothing here holds more than one batch of frames.
Library code never prints; progress goes to an optional callback.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from alphagan_video.config import PipelineConfig, RefineConfig
from alphagan_video.device import autocast_for, resolve_device
from alphagan_video.errors import InputMediaError, UserInputError
from alphagan_video.stream import Stages
from alphagan_video.foreground import estimate_foreground_band
from alphagan_video.temporal import TemporalState, smooth_alpha, stabilize_mask
from alphagan_video.tiling import infer_alpha
from alphagan_video.types import FrameBatch, OutputBatch, VideoInfo

#: Batches waiting between two overlapped stages (memory: about 3 stages x (QUEUE_SIZE + 1)
#: batches of frames in flight, independent of clip length).
QUEUE_SIZE = 2

ProgressCallback = Callable[[int, Optional[int]], None]
"""Called after each batch with (frames done, total frames or None when unknown)."""


@dataclass
class RunReport:
    """What a run did; the CLI serialises it for ``--json-report``."""

    input: str
    output: str
    frames: int = 0
    width: int = 0
    height: int = 0
    device: str = ""
    model: dict = field(default_factory=dict)
    mask_source: str = ""
    output_description: str = ""
    settings: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    #: Written frames whose matte is empty (no pixel above 0.5) or full (no pixel below).
    empty_frames: list = field(default_factory=list)
    full_frames: list = field(default_factory=list)
    #: One-line warnings for the user (the CLI prints them; ``--strict`` makes them exit 2).
    warnings: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------- pure helpers

def frames_to_tensor(batch: FrameBatch, device: torch.device) -> torch.Tensor:
    """FrameBatch (B,H,W,3) uint8/uint16 -> (B,3,H,W) float32 in [0,1] on ``device``."""
    array = torch.from_numpy(np.ascontiguousarray(batch.rgb))
    scale = 255.0 if batch.rgb.dtype == np.uint8 else 65535.0
    if array.dtype == torch.uint16:  # torch has limited uint16 ops: widen first
        array = array.to(torch.int32)
    if device.type == "cuda":
        # Pinned (page-locked) staging memory lets the copy run asynchronously; the integer
        # frames travel (1-4 bytes/sample, not 4) and become float on the GPU. The caching host
        # allocator keeps the pinned block alive until the copy has finished.
        array = array.pin_memory().to(device, non_blocking=True)
        return (array.permute(0, 3, 1, 2).float() / scale).contiguous(memory_format=torch.channels_last)
    return (array.to(device).permute(0, 3, 1, 2).float() / scale).contiguous()


#: Peak GPU bytes per frame pixel assumed when sizing CUDA batches: a float32 CPU forward of
#: the resnet18 generator peaks at ~630 bytes/pixel (measured on 768x768, RSS), fp16 autocast
#: about halves the activations; the rest covers the other stages' full-resolution tensors
#: (image, trimap, alpha, foreground, temporal state). Not measured on a GPU.
CUDA_BYTES_PER_PIXEL = 700
#: Most frames per automatically sized CUDA batch (latency and host memory stay bounded).
MAX_AUTO_BATCH = 16


def cuda_batch_size(device: torch.device, height: int, width: int, fraction: float = 0.5) -> int:
    """Frames per batch that fit in ``fraction`` of the GPU's free memory, in [1, MAX_AUTO_BATCH]."""
    free, _total = torch.cuda.mem_get_info(device)
    per_frame = CUDA_BYTES_PER_PIXEL * height * width
    return int(max(1, min(MAX_AUTO_BATCH, (free * fraction) // per_frame)))


def compile_model(model: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile`` the generator (``--compile``). Shapes vary (tiles, last short batch,
    full frames), so dynamic shapes are allowed; the first batches of each shape pay the
    compilation. Attributes such as ``stride`` stay readable through the wrapper."""
    try:
        return torch.compile(model, dynamic=True)
    except Exception as e:  # noqa: BLE001 - compilation is optional; report why it is unavailable
        raise UserInputError(f"--compile: torch.compile is unavailable here ({e}); run without --compile") from None


def parse_background(spec: str, height: int, width: int) -> np.ndarray:
    """``#RRGGBB``, ``R,G,B`` (0-255), a colour name, or an image path -> (H,W,3) float32 [0,1]."""
    named = {
        "black": (0, 0, 0), "white": (255, 255, 255), "green": (0, 255, 0), "blue": (0, 0, 255),
        "red": (255, 0, 0), "gray": (128, 128, 128), "grey": (128, 128, 128),
    }
    text = spec.strip()
    rgb = None
    if text.lower() in named:
        rgb = named[text.lower()]
    elif text.startswith("#") and len(text) == 7:
        try:
            rgb = tuple(int(text[i : i + 2], 16) for i in (1, 3, 5))
        except ValueError:
            rgb = None
    elif text.count(",") == 2:
        try:
            rgb = tuple(int(v) for v in text.split(","))
        except ValueError:
            rgb = None
        if rgb is not None and not all(0 <= v <= 255 for v in rgb):
            rgb = None
    if rgb is not None:
        return np.broadcast_to(np.asarray(rgb, np.float32) / 255.0, (height, width, 3)).copy()
    path = Path(text)
    if path.is_file():
        import cv2

        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise UserInputError(f"--background {spec}: not a readable image file")
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return image[..., ::-1].astype(np.float32) / 255.0
    raise UserInputError(
        f"--background {spec!r}: expected #RRGGBB, R,G,B, a colour name ({', '.join(named)}) or an image file"
    )


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
    if foreground is None:
        raise ValueError(f"output kind {kind!r} needs a foreground estimate")
    if kind == "rgba":
        return to_numpy(foreground), to_numpy(alpha)[..., 0]
    if kind == "foreground":
        return to_numpy(foreground), None
    if kind == "composite":
        if background is None:
            raise ValueError("composite output needs a background")
        return to_numpy(alpha * foreground + (1 - alpha) * background), None
    raise UserInputError(f"--output-kind {kind!r}: expected rgba, alpha, foreground or composite")


#: An empty or full matte on more than this many frames (or on every frame) is worth a warning:
#: a frame or two may legitimately have nobody in it.
FEW_FRAMES = 3


def _frame_list(frames: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(f) for f in frames[:limit])
    return shown + (f", ... ({len(frames)} frames)" if len(frames) > limit else "")


def coverage_warnings(empty: list[int], full: list[int], total: int, mask_description: str = "") -> list[str]:
    """One-line warnings when the matte is empty or full on more than ``FEW_FRAMES`` frames (or on
    all of them), naming the frames and a hint. Empty list when all is well."""
    source = mask_description.split(" ", 1)[0] if mask_description else ""
    hints = {
        "plate": "is the plate of this shot, and shot from (about) the same camera position?",
        "chroma": "is there a green/blue screen behind the subject? try --chroma-key R,G,B",
        "person": "is there a person in frame? for other subjects use --mask sam or file:PATH",
        "sam": "add a prompt for those frames (--prompts JSON)",
        "file": "check that the masks are white (255) on the subject and match the frames",
        "user": "check the trimaps: white = foreground, black = background, grey = unknown",
    }
    hint = hints.get(source, "check the --mask source")
    out = []
    for what, frames in (("empty (fully transparent)", empty), ("full (fully opaque)", full)):
        if frames and (len(frames) > FEW_FRAMES or len(frames) == total):
            out.append(f"the matte is {what} on {len(frames)} of {total} frame(s): {_frame_list(frames)}; {hint}")
    return out


# --------------------------------------------------------------------------- stages

class _UserTrimaps:
    """User trimaps (``--trimap PATH``: video, sequence or single image) read in step with the frames."""

    def __init__(self, path: Path, info: VideoInfo):
        from alphagan_video.masks._stream import MediaInStep

        self._media = MediaInStep(str(path), f"--trimap {path}", info)

    def __call__(self, index: list[int], device: torch.device) -> torch.Tensor:
        """-> (B,1,H,W) float {0,0.5,1} on device."""
        from alphagan_video.trimap import trimap_from_uint8

        gray = self._media.frames(index).mean(-1)  # (B,H,W) float [0,1]
        levels = np.round(gray * 255.0).astype(np.uint8)
        trimaps = np.stack([trimap_from_uint8(t) for t in levels]).astype(np.float32)
        return torch.from_numpy(trimaps)[:, None].to(device)

    def close(self) -> None:
        self._media.close()


def _refine_batch(
    image: torch.Tensor, trimap: torch.Tensor, prior: torch.Tensor, config: RefineConfig,
    temporal: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
    problems: Optional[list[Future]] = None, device: str = "cpu",
) -> torch.Tensor:
    """Matting-Laplacian solve per frame with the generator's alpha as prior (float64; on the CPU,
    or with the "pcg" method matrix-free on ``device``), settings from ``config`` (see
    ``refine.refine_alpha``).
    temporal: optional (target, weight), both (B,1,H,W): one more data term
    weight * (a - target)^2 per pixel (the warped previous alpha; weight in the units of
    config.mu, see ``refine.PriorTerm``; ignored when mu is 0).
    problems: optional futures of ``refine.prepare_refine`` per frame (built with the same
    trimap and config while the generator ran); then only the solve runs here."""
    from alphagan_video.refine import PriorTerm, refine_alpha, solve_refine

    out = []
    for i in range(image.shape[0]):
        tri = trimap[i, 0].float().cpu().numpy()
        if not (tri == 0.5).any():
            out.append(prior[i : i + 1])
            continue
        p = prior[i, 0].double().cpu().numpy()
        term = None
        if temporal is not None:
            term = PriorTerm(temporal[0][i, 0].double().cpu().numpy(), temporal[1][i, 0].double().cpu().numpy())
        if problems is not None:
            refined = solve_refine(problems[i].result(), p, config, term=term)
        else:
            refined = refine_alpha(image[i].permute(1, 2, 0).double().cpu().numpy(), tri, p, config, term=term,
                                   device=device)
        out.append(torch.as_tensor(refined, dtype=torch.float32)[None, None].to(prior.device))
    return torch.cat(out, 0)


# --------------------------------------------------------------------------- the wiring

class FrameMatter:
    """Everything between decoded frames and encodable output, one batch at a time.

    Owns the model, the coarse-mask source (or the user's trimaps) and the temporal state, so
    callers with their own frame source (``matte_video`` for files, ``pipe`` for raw stdin
    frames) share one implementation. Use as a context manager (it closes mask readers).

    ``process(batch)`` takes a FrameBatch ((B,H,W,3) uint8/uint16) and returns the OutputBatch
    for the configured output kind; batches must arrive in frame order.
    """

    def __init__(self, info: VideoInfo, cfg: PipelineConfig = PipelineConfig()):
        from alphagan_video.masks import build_mask_source, describe_mask_source
        from alphagan_video.model import load_generator
        from alphagan_video.trimap import default_band_px

        if cfg.model.batch_size < 1:
            raise UserInputError(f"--batch-size {cfg.model.batch_size}: must be at least 1")
        if not 0.0 <= cfg.temporal.strength <= 1.0:
            raise UserInputError(f"--temporal-strength {cfg.temporal.strength}: must be between 0 and 1")
        self.cfg = cfg
        self.info = info
        self.kind = cfg.output.kind
        self.device = resolve_device(cfg.model.device)
        from alphagan_video.refine import check_refine_config, solver_method

        solver_method(cfg.refine.solver, self.device)  # a bad choice fails here, refine on or off
        if cfg.refine.enabled:
            check_refine_config(cfg.refine)
        self.background = None
        if self.kind == "composite":
            self.background = torch.from_numpy(
                parse_background(cfg.output.background, info.height, info.width)
            ).permute(2, 0, 1)[None].to(self.device)
        self.model, self.meta = load_generator(cfg.model.checkpoint, variant=cfg.model.variant)
        self.model = self.model.to(self.device).eval()
        # NHWC suits tensor cores and oneDNN alike (CPU resnet18 on 800x600: 0.39 s vs 0.48 s in
        # fp32, measured); frames_to_tensor hands over channels-last images too.
        self.model = self.model.to(memory_format=torch.channels_last)
        if cfg.model.compile:
            self.model = compile_model(self.model)
        #: Frames per batch: ``cfg.model.batch_size``, or on CUDA with ``auto_batch`` what free
        #: GPU memory holds (see ``cuda_batch_size``).
        self.batch_size = cfg.model.batch_size
        if self.device.type == "cuda" and cfg.model.auto_batch:
            self.batch_size = cuda_batch_size(self.device, info.height, info.width)
        self.band_px = cfg.trimap.band_px or default_band_px(info.height, info.width)
        #: Evidence trimaps (trimap.auto_trimap) unless --trimap-band fixes the AlphaGAN band.
        self.auto_trimap = cfg.trimap.band_px is None and cfg.trimap.auto
        if self.band_px < 1:
            raise UserInputError(f"--trimap-band {self.band_px}: must be at least 1 pixel")
        self._user_trimaps: Optional[_UserTrimaps] = None
        self._mask_source = None
        if cfg.trimap.trimap_path is not None:
            self._user_trimaps = _UserTrimaps(Path(cfg.trimap.trimap_path), info)
            self.mask_description = f"user trimaps from {cfg.trimap.trimap_path}"
        else:
            self._mask_source = build_mask_source(cfg.mask, info, self.device)
            self.mask_description = describe_mask_source(cfg.mask)
        self.state = TemporalState()
        # The prior-independent half of the refine solve (expansion, sampling flow, Laplacian,
        # factorisation) runs in this worker while the generator runs; not possible with a confidence gate,
        # which needs the generator's alpha to decide the unknown pixels.
        self._prepare_pool: Optional[ThreadPoolExecutor] = None
        self._torch_threads: Optional[int] = None
        if cfg.refine.enabled and cfg.refine.gate == 0:
            self._prepare_pool = ThreadPoolExecutor(1, thread_name_prefix="refine-prepare")
            if self.device.type == "cpu" and torch.get_num_threads() > 1:
                # Leave that worker a core: with both on all cores the generator's OpenMP threads
                # spin against it (dev photos on 2 cores: 1.04 s/image with 2 generator threads,
                # 0.87 s with 1). Restored by close().
                self._torch_threads = torch.get_num_threads()
                torch.set_num_threads(self._torch_threads - 1)
        #: Set (by ``matte_video``) when the writer takes 10-bit 4:4:4 planes: ``render`` then
        #: converts RGB(A) -> YCbCr(A) on the device (CUDA only) instead of in the writer.
        self.device_planes = False
        self.seconds = {"mask": 0.0, "model": 0.0, "refine": 0.0, "temporal": 0.0, "foreground": 0.0}
        #: Frame indices whose matte came out empty / full (every pixel background / foreground).
        self.empty_frames: list[int] = []
        self.full_frames: list[int] = []

    @property
    def has_color(self) -> bool:
        return self.kind != "alpha"

    @property
    def has_alpha(self) -> bool:
        return self.kind in ("rgba", "alpha")

    def _lap(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[stage] += now - since
        return now

    def warm_up(self, batch: FrameBatch) -> None:
        """Run context frames (the ones just before a chunk) through masks, model and the
        temporal stages to warm the temporal state; nothing is returned or written. A chunk
        ``[k, N)`` warmed on ``temporal.context_frames_needed(cfg.temporal)`` frames before k
        matches the whole run from frame k on (to half an 8-bit step)."""
        self._matte(batch)

    def process(self, batch: FrameBatch) -> OutputBatch:
        image, alpha = self._matte(batch)
        self._note_coverage(batch.index, alpha)
        return self.render(batch, image, alpha)

    def _note_coverage(self, index: list[int], alpha: torch.Tensor) -> None:
        """Record frames whose matte is empty (no pixel above 0.5) or full (none below)."""
        above = (alpha > 0.5).flatten(1)
        for i, frame in enumerate(index):
            if not bool(above[i].any()):
                self.empty_frames.append(int(frame))
            elif bool(above[i].all()):
                self.full_frames.append(int(frame))

    def matte(self, batch: FrameBatch) -> tuple[FrameBatch, torch.Tensor, torch.Tensor]:
        """First half of ``process``: masks, trimap, model, refine and temporal smoothing
        (everything that carries state from batch to batch). Returns (batch, image (B,3,H,W),
        alpha (B,1,H,W)) for ``render``; ``render(*matte(b)) == process(b)``."""
        image, alpha = self._matte(batch)
        self._note_coverage(batch.index, alpha)
        return batch, image, alpha

    def render(self, batch: FrameBatch, image: torch.Tensor, alpha: torch.Tensor) -> OutputBatch:
        """Second half of ``process``: foreground colour and the output arrays. Stateless, so it
        can run in another thread, one batch behind ``matte``.

        image: (B,3,H,W) float [0,1]; alpha: (B,1,H,W) float [0,1] (from ``matte``)."""
        tick = time.perf_counter()
        needs_foreground = self.kind in ("rgba", "foreground", "composite")
        foreground = estimate_foreground_band(image, alpha) if needs_foreground else None
        if self.device_planes and self.kind != "alpha":
            planes = self._device_planes(alpha, foreground)
            self._lap("foreground", tick)
            return OutputBatch(None, None, batch.pts, batch.index, batch.time_base, planes=planes)
        color, out_alpha = render_output(self.kind, image, alpha, foreground, self.background)
        self._lap("foreground", tick)
        return OutputBatch(color, out_alpha, batch.pts, batch.index, batch.time_base)

    def _device_planes(self, alpha: torch.Tensor, foreground: torch.Tensor) -> np.ndarray:
        """Output colour (+ alpha) as 10-bit YCbCr(A) codes converted on the device; only int16
        planes cross to the host. -> (B, 3|4, H, W) uint16."""
        from alphagan_video.io.colour import rgb_to_ycc10_torch

        if self.kind == "composite":
            color = alpha * foreground + (1 - alpha) * self.background
        else:
            color = foreground
        codes = rgb_to_ycc10_torch(color, alpha if self.kind == "rgba" else None)
        return codes.cpu().numpy().view(np.uint16)  # codes are 0..1023: same bits

    def _matte(self, batch: FrameBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames -> (image (B,3,H,W), final alpha (B,1,H,W)), advancing the temporal state."""
        from alphagan_video.trimap import auto_trimap, clamp_known, make_trimap

        tick = time.perf_counter()
        image = frames_to_tensor(batch, self.device)
        if self._user_trimaps is not None:
            trimap = self._user_trimaps(batch.index, self.device)
        else:
            with torch.inference_mode():
                soft = self._mask_source(image, batch.index)
            # Stable coarse mask -> the unknown band does not jump when the subject is still.
            mask, self.state = stabilize_mask(soft, image, self.state, self.cfg.temporal)
            if self.auto_trimap:
                # The contour from the stabilised mask, the uncertainty from the source's soft one.
                trimap = auto_trimap(image, soft.float(), self.band_px, binary=mask)
            else:
                trimap = make_trimap(mask, self.band_px)
        tick = self._lap("mask", tick)
        problems = self._prepare_refine(image, trimap)
        alpha = infer_alpha(
            self.model, image, trimap, tiling=self.cfg.model.tiling,
            autocast=autocast_for(self.device, self.cfg.model.mixed_precision),
        )
        tick = self._lap("model", tick)
        rc, tc = self.cfg.refine, self.cfg.temporal
        if rc.enabled and tc.enabled and tc.strength > 0 and tc.solve_weight > 0:
            # Refine inside the temporal stage: the warped previous alpha is one more prior of
            # the solve (TemporalConfig.solve_weight), so refine and temporal time are one lap.
            def fuse(i: int, a: torch.Tensor, warped: Optional[torch.Tensor],
                     weight: Optional[torch.Tensor]) -> torch.Tensor:
                one_tri = trimap[i : i + 1]
                previous = None if warped is None else (warped, weight * tc.solve_weight)
                return clamp_known(_refine_batch(image[i : i + 1], one_tri, a, rc, temporal=previous,
                                                 problems=None if problems is None else problems[i : i + 1],
                                                 device=str(self.device)),
                                   one_tri)

            alpha, self.state = smooth_alpha(alpha, image, trimap, self.state, tc, fuse=fuse)
            self._lap("refine", tick)
            return image, alpha
        if rc.enabled:
            alpha = clamp_known(_refine_batch(image, trimap, alpha, rc, problems=problems, device=str(self.device)),
                                trimap)
            tick = self._lap("refine", tick)
        alpha, self.state = smooth_alpha(alpha, image, trimap, self.state, tc)
        self._lap("temporal", tick)
        return image, alpha

    def _prepare_refine(self, image: torch.Tensor, trimap: torch.Tensor) -> Optional[list[Future]]:
        """Start ``refine.prepare_refine`` for every frame of the batch in the worker thread;
        None when refining is off or gated (then ``_refine_batch`` prepares inline)."""
        if self._prepare_pool is None:
            return None
        from alphagan_video.refine import prepare_refine

        # Factorised in advance for the uniform prior weight (factorise=True): exact for frames
        # solved alone, and the CG preconditioner for frames that get the warped previous alpha
        # as a per-pixel prior (temporal in-solve fusion), cheaper than factorising them afterwards.
        return [
            self._prepare_pool.submit(
                lambda i=i: prepare_refine(  # the float64 copies are made in the worker too
                    image[i].permute(1, 2, 0).double().cpu().numpy(), trimap[i, 0].float().cpu().numpy(),
                    self.cfg.refine, factorise=True, device=str(self.device),
                )
            )
            for i in range(image.shape[0])
        ]

    def close(self) -> None:
        if self._prepare_pool is not None:
            self._prepare_pool.shutdown(wait=True, cancel_futures=True)
            self._prepare_pool = None
        if self._torch_threads is not None:
            torch.set_num_threads(self._torch_threads)
            self._torch_threads = None
        if self._user_trimaps is not None:
            self._user_trimaps.close()
        if self._mask_source is not None:
            self._mask_source.close()

    def __enter__(self) -> "FrameMatter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _select(out: OutputBatch, start: int, stop: Optional[int]) -> OutputBatch:
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


def matte_video(
    input_path: str | Path,
    output_path: str | Path,
    cfg: PipelineConfig = PipelineConfig(),
    progress: Optional[ProgressCallback] = None,
    frame_range: Optional[tuple[int, int]] = None,
    context: Optional[int] = None,
) -> RunReport:
    """Matte INPUT into OUTPUT. See ``PipelineConfig`` for every setting.

    Args:
        frame_range: (first, last) inclusive 0-based frame indices to process; None = all.
        context: chunk mode for render farms (``--context K``). None = plain run. An int K >= 0:
            the K frames before ``first`` are processed and discarded, which warms up every
            stateful stage (temporal smoothing, mask propagation) exactly as an unchunked run
            would have it; and batches are aligned to the unchunked run's grid (multiples of
            the batch size from frame 0: the warm-up start is rounded down, the end rounded up
            and the extra frames discarded), so batched computations see the same batches.
            Only frames first..last are written, with their original timestamps.
    Raises:
        UserInputError (and subclasses) for bad input/options; other AlphaGANVideoError for
        internal failures. On any failure no file is left at ``output_path``.
    """
    from alphagan_video.io import open_input, open_output
    from alphagan_video.io.writer import describe_output

    started = time.perf_counter()
    seconds = {"decode": 0.0, "encode": 0.0}
    start, stop = 0, None
    if frame_range is not None:
        if frame_range[0] < 0 or frame_range[1] < frame_range[0]:
            raise UserInputError(f"frame range {frame_range[0]}-{frame_range[1]}: expected 0 <= first <= last")
        start, stop = frame_range[0], frame_range[1] + 1
        cfg = dataclasses.replace(cfg, output=dataclasses.replace(cfg.output, trim_audio=True))
    if context is not None and context < 0:
        raise UserInputError(f"--context {context}: must be 0 or more frames")
    read_start, read_stop = start, stop
    if context is not None:
        size = cfg.model.batch_size if cfg.model.batch_size >= 1 else 1
        read_start = max(0, start - context)
        read_start -= read_start % size
        if stop is not None:
            read_stop = -(-stop // size) * size

    with contextlib.ExitStack() as stack:
        reader = stack.enter_context(open_input(input_path))
        info = reader.info
        matter = stack.enter_context(FrameMatter(info, cfg))
        # Open the writer last: every check that can fail on the input has been made, and the
        # writer refuses an existing OUTPUT before any frame is processed.
        writer = stack.enter_context(
            open_output(output_path, info, cfg.output, has_color=matter.has_color, has_alpha=matter.has_alpha,
                        frame_range=frame_range)
        )
        report = RunReport(
            input=str(input_path), output=str(output_path), width=info.width, height=info.height,
            device=str(matter.device),
            model={"path": str(matter.meta.path), "variant": matter.meta.variant, "norm": matter.meta.norm,
                   "sha256": matter.meta.sha256},
            mask_source=matter.mask_description,
            output_description=describe_output(output_path, cfg.output, has_color=matter.has_color,
                                               has_alpha=matter.has_alpha),
            settings={"batch_size": cfg.model.batch_size, "trimap_band_px": matter.band_px,
                      "trimap": ("user" if cfg.trimap.trimap_path is not None
                                 else "auto" if matter.auto_trimap else "band"),
                      "temporal": cfg.temporal.enabled, "temporal_strength": cfg.temporal.strength,
                      "refine": cfg.refine.enabled, "tiling": cfg.model.tiling, "output_kind": cfg.output.kind,
                      "frame_range": list(frame_range) if frame_range else None,
                      "context": context},
        )
        total = info.frame_count
        if total is not None and frame_range is not None:
            total = max(0, min(total, stop) - start)
        # On CUDA the RGB -> 10-bit YCbCr conversion runs on the GPU when the writer can take it.
        matter.device_planes = matter.device.type == "cuda" and writer.accepts_planes(4 if matter.has_alpha else 3)
        # Chunked runs keep the configured batch grid (context alignment above relies on it).
        batch_size = cfg.model.batch_size if context is not None else matter.batch_size
        report.settings["batch_size"] = batch_size
        report.settings["overlap"] = cfg.overlap

        def decoded():
            tick = time.perf_counter()
            for batch in reader.iter_batches(batch_size, start=read_start, stop=read_stop):
                seconds["decode"] += time.perf_counter() - tick
                yield batch
                tick = time.perf_counter()

        def matte_stage(batch: FrameBatch):
            if batch.index[-1] < start:  # pure warm-up batch: advance the state, write nothing
                matter.warm_up(batch)
                return None
            return matter.matte(batch)

        def render_stage(matted) -> Optional[OutputBatch]:
            if matted is None:
                return None
            out = matter.render(*matted)
            if read_start != start or read_stop != stop:  # drop warm-up / alignment frames
                out = _select(out, start, stop)
            return out

        # Overlap (cfg.overlap): decode | masks+model+temporal | foreground+render each run in a
        # thread, joined by bounded queues, while this thread encodes; every stateful stage
        # stays in one thread, so the output is the sequential output. Leaving the ``with``
        # (normally, on an error or Ctrl-C) stops and joins the threads before the writer
        # aborts or closes.
        with (Stages(maxsize=QUEUE_SIZE) if cfg.overlap else contextlib.nullcontext()) as stages:
            if stages is not None:
                outputs = stages.map(render_stage, stages.map(matte_stage, stages.source(decoded(), "decode"),
                                                              "matte"), "render")
            else:
                outputs = (render_stage(matte_stage(batch)) for batch in decoded())
            for out in outputs:
                if out is None:
                    continue
                tick = time.perf_counter()
                if len(out):
                    writer.write(out)
                seconds["encode"] += time.perf_counter() - tick
                report.frames += len(out)
                if progress is not None:
                    progress(report.frames, total)
        if report.frames == 0:
            raise InputMediaError(f"{input_path}: no video frames could be decoded"
                                  + (f" in the range {start}-{stop - 1}" if frame_range else ""))
        seconds.update(matter.seconds)
        written = lambda frames: sorted(f for f in set(frames) if f >= start and (stop is None or f < stop))  # noqa: E731
        report.empty_frames = written(matter.empty_frames)
        report.full_frames = written(matter.full_frames)
        report.warnings = coverage_warnings(report.empty_frames, report.full_frames, report.frames,
                                            matter.mask_description)
        registrations = getattr(matter._mask_source, "registrations", None)
        if registrations:  # plate mode: how the plate was aligned to the frames
            residuals = [r["residual_px"] for r in registrations if r["registered"]]
            report.settings["plate_registration"] = {
                "frames": len(registrations), "registered": len(residuals),
                "median_residual_px": float(np.median(residuals)) if residuals else None,
                "max_residual_px": max(residuals) if residuals else None,
            }
    seconds["total"] = time.perf_counter() - started
    report.seconds = {k: round(v, 4) for k, v in seconds.items()}
    return report
