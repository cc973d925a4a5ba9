"""The one run loop: ``run(source, stages, sink)`` over frame batches.

Every front-end drives matting through this loop: files (``pipeline.matte_video``, and the
timeline through it), raw pipes (``pipe.run_pipe``), the farm's mask pre-pass
(``farm.prepass.run_prepass``) and the benches. What differs between them is only which
source, which stages and which sink they hand over, and which frames they write (the
:class:`Window`).

- The *source* is an iterable of :class:`~alphagan_video.types.FrameBatch` in frame order
  (a decoder, raw frames from a stream).
- The *stages* are :class:`Stage` objects, each taking a :class:`Work` (one batch on its way)
  and returning it with more filled in; stateful stages keep their state as attributes, so
  batches must arrive in frame order.
- The *sink* is a callable taking each finished ``Work`` (an encoder writing ``work.output``,
  a raw-frame writer, a collector of boxes).
- The *window* says which frames are read and which are written: a chunk of a render farm
  reads context frames before its first frame (warm-up work) and whole batches around it, and
  writes only its own frames.

With ``overlap`` the source, each *lane* of consecutive stages (``Stage.lane``) and the sink
run in their own threads joined by bounded queues (:class:`Threads`): decoding, the model and
encoding release the GIL in their heavy parts and overlap. Every stateful stage stays in one
thread, so the output is exactly the sequential output; memory is bounded by the queue depth,
not the clip length.

:class:`Threads` on its own (this example runs as a test)::

    >>> with Threads(maxsize=2) as threads:
    ...     numbers = threads.source(range(5), name="decode")
    ...     squares = threads.map(lambda n: n * n, numbers, name="square")
    ...     print([s for s in squares])   # the calling thread consumes (in a run: encodes)
    [0, 1, 4, 9, 16]

Guarantees of :class:`Threads`:
- Items come out in order (one thread per stage, FIFO queues).
- An exception raised in any stage (or by the source iterable) travels down the queues and is
  re-raised, unchanged, in the thread that consumes the last stage, after the items produced
  before it. Upstream stages are then stopped when the ``with`` block exits.
- Leaving the ``with`` block for any reason (normal end, an exception in the consumer,
  KeyboardInterrupt) stops every stage and joins its thread before returning, so nothing
  still runs when the caller closes readers / aborts writers afterwards. A stage busy inside
  one long call (a model forward) is waited for; it is not killed.
- A source generator is closed (``close()``) in the thread that ran it, so its ``finally``
  blocks (closing containers) run there.
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field
from itertools import groupby
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Sequence, TypeVar

from alphagan_video._malloc import return_free_memory
from alphagan_video.errors import ParameterError
from alphagan_video.types import FrameBatch, OutputBatch

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
U = TypeVar("U")


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
    alpha: (B,1,H,W) float32 [0,1]: the generator's, then refined, then smoothed.
    output: what the sink writes (OutputBatch), set by the output stage.
    """

    batch: FrameBatch
    warm_up: bool = False
    image: Optional[torch.Tensor] = None
    soft: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None
    trimap: Optional[torch.Tensor] = None
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


# ----------------------------------------------------------------------------- the window

@dataclass(frozen=True)
class Window:
    """The frames a run writes, ``[start, stop)``, and those it reads, ``[read_start, read_stop)``
    (``stop``/``read_stop`` None = to the end).

    Read frames before ``start`` are warm-up work (:attr:`Work.warm_up`): they advance every
    stateful stage and are not written. Read frames outside ``[start, stop)`` in a batch that is
    written are dropped from its output (:meth:`select`) before the sink sees it.
    """

    start: int = 0
    stop: Optional[int] = None
    read_start: int = 0
    read_stop: Optional[int] = None

    @classmethod
    def of(cls, frame_range: Optional[tuple[int, int]] = None, context: Optional[int] = None,
           batch_size: int = 1) -> "Window":
        """The window of a run of ``frame_range`` (first, last) inclusive (None = all frames).

        context: None = read only the frames written. An int K >= 0 (a chunk of a render farm):
            read the K frames before ``first`` too, and whole batches of the unchunked run's
            grid (multiples of ``batch_size`` from frame 0: the warm-up start rounded down, the
            end rounded up), so batched computations see the same batches as the whole run.
        Raises:
            ParameterError: about ``frames`` or ``context``.
        """
        start, stop = 0, None
        if frame_range is not None:
            if frame_range[0] < 0 or frame_range[1] < frame_range[0]:
                raise ParameterError.about("frames", f"{frame_range[0]}-{frame_range[1]}",
                                           "expected 0 <= first <= last")
            start, stop = frame_range[0], frame_range[1] + 1
        if context is not None and context < 0:
            raise ParameterError.about("context", context, "must be 0 or more frames")
        read_start, read_stop = start, stop
        if context is not None:
            size = batch_size if batch_size >= 1 else 1
            read_start = max(0, start - context)
            read_start -= read_start % size
            if stop is not None:
                read_stop = -(-stop // size) * size
        return cls(start, stop, read_start, read_stop)

    def holds(self, index: int) -> bool:
        """Is frame ``index`` written?"""
        return index >= self.start and (self.stop is None or index < self.stop)

    def warms_up(self, batch: FrameBatch) -> bool:
        """Is ``batch`` warm-up work (it ends before the first written frame)?"""
        return batch.index[-1] < self.start

    def select(self, out: OutputBatch) -> OutputBatch:
        """The frames of ``out`` that are written (``out`` itself when that is all of them)."""
        keep = [i for i, index in enumerate(out.index) if self.holds(index)]
        if len(keep) == len(out.index):
            return out
        return OutputBatch(
            out.color[keep] if out.color is not None else None,
            out.alpha[keep] if out.alpha is not None else None,
            [out.pts[i] for i in keep], [out.index[i] for i in keep], out.time_base,
            planes=out.planes[keep] if out.planes is not None else None,
        )


# ----------------------------------------------------------------------------- threads

_POLL_S = 0.05  # how often a blocked put/get re-checks the stop flag


class _End:
    """Marker: the producing stage finished normally."""


_END = _End()


class _Failure:
    """Marker carrying the exception a stage raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class _Stopped(Exception):
    """Raised inside a stage thread when the runner is stopping (never escapes a thread)."""


class _QueueIterator(Iterator[T]):
    """Iterates the items a stage thread puts into ``q``; re-raises the stage's exception."""

    def __init__(self, runner: "Threads", q: "queue.Queue[object]", name: str) -> None:
        self._runner = runner
        self._q = q
        self.name = name
        self._done = False

    def __iter__(self) -> "_QueueIterator[T]":
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        while True:
            try:
                item = self._q.get(timeout=_POLL_S)
                break
            except queue.Empty:
                # Only a stage thread can be told to stop while waiting; the consumer thread
                # itself sets the flag and never waits after that.
                if self._runner.stopping and threading.current_thread() is not self._runner.owner:
                    raise _Stopped() from None
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        return item  # type: ignore[return-value]


class Threads:
    """A set of stage threads joined by bounded queues; use as a context manager.

    Args:
        maxsize: most finished items waiting between two stages (>= 1).

    The thread that creates the runner (the *owner*) consumes the last stage's iterator.
    """

    def __init__(self, maxsize: int = 2) -> None:
        if maxsize < 1:
            raise ValueError(f"Threads maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self.owner = threading.current_thread()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ building stages
    def source(self, iterable: Iterable[T], name: str = "source") -> Iterator[T]:
        """Iterate ``iterable`` in a new thread; returns an iterator over its items."""
        return self._start(lambda: iter(iterable), name)

    def map(self, fn: Callable[[T], U], upstream: Iterable[T], name: str = "stage") -> Iterator[U]:
        """Apply ``fn`` to every item of ``upstream`` in a new thread, in order."""

        def produce() -> Iterator[U]:
            for item in upstream:
                yield fn(item)

        return self._start(produce, name)

    def _start(self, make: Callable[[], Iterator[T]], name: str) -> Iterator[T]:
        if self._stop.is_set():
            raise RuntimeError("Threads is already stopped")
        q: "queue.Queue[object]" = queue.Queue(maxsize=self.maxsize)
        thread = threading.Thread(target=self._run, args=(make, q), name=f"alphagan-{name}", daemon=True)
        try:
            thread.start()
        except BaseException:
            # Interrupted while starting (Ctrl-C lands in start()'s wait): the thread may still
            # come up a moment later; the stop flag makes it exit at its first step, and it is
            # not joined (joining a thread whose start was interrupted raises RuntimeError,
            # which would replace the KeyboardInterrupt and its exit code 130).
            self._stop.set()
            raise
        self._threads.append(thread)
        return _QueueIterator(self, q, name)

    # ------------------------------------------------------------------ stage thread body
    def _put(self, q: "queue.Queue[object]", item: object) -> bool:
        """Put ``item`` unless stopping; False when the runner stopped first."""
        while not self._stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, make: Callable[[], Iterator[object]], q: "queue.Queue[object]") -> None:
        items: Optional[Iterator[object]] = None
        try:
            items = make()
            for item in items:
                if not self._put(q, item):
                    return
            self._put(q, _END)
        except _Stopped:
            return
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._put(q, _Failure(error))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                try:
                    close()  # runs the source generator's finally blocks in this thread
                except BaseException as error:  # noqa: BLE001
                    self._put(q, _Failure(error))

    # ------------------------------------------------------------------ stopping
    def close(self) -> None:
        """Stop every stage and wait for its thread to finish. Idempotent."""
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> "Threads":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- the run loop

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


def _timed_source(source: Iterable[FrameBatch], window: Window, tally: RunTally) -> Iterator[Work]:
    """Wrap the source's batches in ``Work``, timing the source as ``decode``. Batches that end
    before the window's first frame are warm-up work (``Work.warm_up``): they advance stateful
    stages and are not handed to the sink."""
    tick = time.perf_counter()
    for batch in source:
        tally.seconds["decode"] += time.perf_counter() - tick
        yield Work(batch=batch, warm_up=window.warms_up(batch))
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
    window: Window = Window(),
    progress: Optional[ProgressCallback] = None,
    total: Optional[int] = None,
) -> RunTally:
    """Push every batch of ``source`` through ``stages`` into ``sink``.

    Args:
        source: FrameBatch iterable in frame order; it is iterated in its own thread with overlap.
        stages: applied in order to every batch; consecutive stages with the same ``lane`` share
            a thread with overlap.
        sink: called in this thread with every finished, non-warm-up Work, in frame order, its
            output (when it has one) holding the window's frames only.
        overlap: False = everything in this thread, one batch at a time (same output).
        window: the frames written (see :class:`Window`); the source reads the window's
            ``read_start``..``read_stop``. Default: every frame.
        progress: called after each batch handed to the sink with (frames so far, ``total``).
    Returns:
        RunTally: frames handed to the sink (``Work.frames``) and seconds per stage name, with
        ``decode`` (source) and ``encode`` (sink).
    Raises:
        Whatever the source, a stage or the sink raises, unchanged, after every thread has stopped.
    """
    tally = RunTally(seconds={"decode": 0.0, "encode": 0.0})
    lanes = [_lane(list(group), tally) for _, group in groupby(stages, key=lambda s: s.lane)]
    works: Iterable[Work] = _timed_source(source, window, tally)
    with (Threads(maxsize=QUEUE_SIZE) if overlap else contextlib.nullcontext()) as threads:
        if threads is not None:
            works = threads.source(works, "decode")
        for number, lane in enumerate(lanes):
            works = threads.map(lane, works, f"lane{number}") if threads is not None else map(lane, works)
        for work in works:
            if work.warm_up:
                continue
            if work.output is not None:
                work.output = window.select(work.output)
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


__all__ = ["ProgressCallback", "QUEUE_SIZE", "RunTally", "Stage", "Threads", "Window", "Work", "run"]
