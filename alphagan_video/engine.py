"""The one run loop: ``run(source, stages, sink)`` over frame batches.

Every front-end drives matting through this loop: files (``pipeline.matte_video``, and the
timeline through it), raw pipes (``pipe.run_pipe``), the farm's mask pre-pass
(``farm.prepass.run_prepass``) and the benches. What differs between them is only which
source, which stages and which sink they hand over.

- The *source* is an iterable of :class:`~alphagan_video.types.FrameBatch` in frame order
  (a decoder, raw frames from a stream).
- The *stages* are :class:`~alphagan_video.stages.Stage` objects, each taking a
  :class:`~alphagan_video.stages.Work` (one batch on its way) and returning it with more filled
  in; stateful stages keep their state as attributes, so batches must arrive in frame order.
- The *sink* is a callable taking each finished ``Work`` (an encoder writing ``work.output``,
  a raw-frame writer, a collector of boxes).

With ``overlap`` the source, each *lane* of consecutive stages (``Stage.lane``) and the sink
run in their own threads joined by bounded queues (``stream.Stages``): decoding, the model and
encoding release the GIL in their heavy parts and overlap. Every stateful stage stays in one
thread, so the output is exactly the sequential output; memory is bounded by the queue depth,
not the clip length.
"""
from __future__ import annotations

import contextlib
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Sequence

from alphagan_video._malloc import return_free_memory
from alphagan_video.stream import Stages
from alphagan_video.types import FrameBatch, OutputBatch

if TYPE_CHECKING:
    import torch


@dataclass
class Work:
    """One batch of B frames on its way through the stages; each stage fills its fields.

    batch: the decoded frames ((B,H,W,3) uint8/uint16, indices, timestamps).
    warm_up: True for context frames before a chunk: stateful stages see them, output stages
        (``Stage.on_warm_up`` False) and the sink do not.
    image: (B,3,H,W) float32 [0,1] on the device (``UploadStage``).
    soft: (B,1,H,W) float [0,1], the mask source's foreground probability.
    mask: (B,1,H,W) float {0,1}, the temporally stabilised coarse mask.
    trimap: (B,1,H,W) float32 {0, 0.5, 1} (0 background, 0.5 unknown, 1 foreground).
    problems: per frame, a future of the refine's prepared linear system (or None).
    alpha: (B,1,H,W) float32 [0,1]: the generator's, then refined, then smoothed.
    output: what the sink writes (OutputBatch), set by the output stage.
    """

    batch: FrameBatch
    warm_up: bool = False
    image: Optional[torch.Tensor] = None
    soft: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None
    trimap: Optional[torch.Tensor] = None
    problems: Optional[list[Future]] = None
    alpha: Optional[torch.Tensor] = None
    output: Optional[OutputBatch] = None

    @property
    def frames(self) -> int:
        """Frames this work hands to the sink: the output's when there is one, else the batch's."""
        return len(self.output) if self.output is not None else len(self.batch.index)


class Stage:
    """One step of the chain. Subclasses set ``name`` and implement ``__call__``.

    name: the key its seconds are reported under (``RunReport.seconds``).
    lane: consecutive stages of one lane run in one thread when the engine overlaps; stateful
        stages must share a lane with every stage whose state they read.
    on_warm_up: False for stages that only produce output (skipped on warm-up work).
    laps: None = the engine times the stage; a dict = the stage times itself, by name (a stage
        interleaving two steps frame by frame reports each).
    """

    name: str = "stage"
    lane: str = "matte"
    on_warm_up: bool = True
    laps: Optional[dict[str, float]] = None

    def __call__(self, work: Work) -> Work:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the stage holds (readers, threads); called once, after the run."""


#: Batches waiting between two overlapped lanes (memory: about lanes x (QUEUE_SIZE + 1)
#: batches of frames in flight, independent of clip length).
QUEUE_SIZE = 2

ProgressCallback = Callable[[int, Optional[int]], None]
"""Called after each batch with (frames done, total frames or None when unknown)."""


@dataclass
class RunTally:
    """What ``run`` counted: frames handed to the sink and seconds per stage name (plus
    ``decode`` for the source and ``encode`` for the sink)."""

    frames: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _timed_source(source: Iterable[FrameBatch], write_from: int, tally: RunTally) -> Iterator[Work]:
    """Wrap the source's batches in ``Work``, timing the source as ``decode``. Batches that end
    before frame ``write_from`` are warm-up work (``Work.warm_up``): they advance stateful
    stages and are not handed to the sink."""
    tick = time.perf_counter()
    for batch in source:
        tally.seconds["decode"] += time.perf_counter() - tick
        yield Work(batch=batch, warm_up=batch.index[-1] < write_from)
        tick = time.perf_counter()


def _lane(stages: Sequence[Stage], tally: RunTally) -> Callable[[Work], Work]:
    """One function running ``stages`` in order on a Work, timing each under its name (a stage
    that times itself, ``Stage.laps``, is not timed here). Warm-up work skips the stages that
    only produce output (``Stage.on_warm_up`` False)."""
    def apply(work: Work) -> Work:
        for stage in stages:
            if work.warm_up and not stage.on_warm_up:
                continue
            tick = time.perf_counter()
            work = stage(work)
            if stage.laps is None:
                tally.seconds[stage.name] = tally.seconds.get(stage.name, 0.0) + time.perf_counter() - tick
        return work

    return apply


def run(
    source: Iterable[FrameBatch],
    stages: Sequence[Stage],
    sink: Callable[[Work], None],
    *,
    overlap: bool = True,
    write_from: int = 0,
    progress: Optional[ProgressCallback] = None,
    total: Optional[int] = None,
) -> RunTally:
    """Push every batch of ``source`` through ``stages`` into ``sink``.

    Args:
        source: FrameBatch iterable in frame order; it is iterated in its own thread with overlap.
        stages: applied in order to every batch; consecutive stages with the same ``lane`` share
            a thread with overlap.
        sink: called in this thread with every finished, non-warm-up Work, in frame order.
        overlap: False = everything in this thread, one batch at a time (same output).
        write_from: batches ending before this frame index are warm-up work (see ``Work.warm_up``).
        progress: called after each batch handed to the sink with (frames so far, ``total``).
    Returns:
        RunTally: frames handed to the sink (``Work.frames``) and seconds per stage name, with
        ``decode`` (source) and ``encode`` (sink).
    Raises:
        Whatever the source, a stage or the sink raises, unchanged, after every thread has stopped.
    """
    tally = RunTally(seconds={"decode": 0.0, "encode": 0.0})
    lanes = [_lane(list(group), tally) for _, group in groupby(stages, key=lambda s: s.lane)]
    works: Iterable[Work] = _timed_source(source, write_from, tally)
    with (Stages(maxsize=QUEUE_SIZE) if overlap else contextlib.nullcontext()) as threads:
        if threads is not None:
            works = threads.source(works, "decode")
        for number, lane in enumerate(lanes):
            works = threads.map(lane, works, f"lane{number}") if threads is not None else map(lane, works)
        for work in works:
            if work.warm_up:
                continue
            tick = time.perf_counter()
            sink(work)
            tally.seconds["encode"] += time.perf_counter() - tick
            return_free_memory()  # memory flat over long clips, whatever the caller (see _malloc)
            tally.frames += work.frames
            if progress is not None:
                progress(tally.frames, total)
    for stage in stages:
        for name, seconds in (stage.laps or {}).items():
            tally.seconds[name] = tally.seconds.get(name, 0.0) + seconds
    return tally


__all__ = ["ProgressCallback", "QUEUE_SIZE", "RunTally", "Stage", "Work", "run"]
