"""Run pipeline stages concurrently: each stage in its own thread, joined by bounded queues.

Decoding (PyAV), the model (torch) and encoding (PyAV) all release the GIL in their heavy
parts, so plain threads overlap them; the bounded queues keep memory flat with clip length
(at most ``maxsize`` items wait between two stages, plus one being worked on in each stage).

``engine.run`` builds one such chain per run (a source thread, one thread per lane of stages,
the sink in the calling thread). On its own (this example runs as a test)::

    >>> with Stages(maxsize=2) as stages:
    ...     numbers = stages.source(range(5), name="decode")
    ...     squares = stages.map(lambda n: n * n, numbers, name="square")
    ...     print([s for s in squares])   # the calling thread consumes (in a run: encodes)
    [0, 1, 4, 9, 16]

Guarantees:
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

import queue
import threading
from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")
U = TypeVar("U")

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

    def __init__(self, runner: "Stages", q: "queue.Queue[object]", name: str) -> None:
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


class Stages:
    """A set of stage threads joined by bounded queues; use as a context manager.

    Args:
        maxsize: most finished items waiting between two stages (>= 1).

    The thread that creates the runner (the *owner*) consumes the last stage's iterator.
    """

    def __init__(self, maxsize: int = 2) -> None:
        if maxsize < 1:
            raise ValueError(f"Stages maxsize must be >= 1, got {maxsize}")
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
            raise RuntimeError("Stages is already stopped")
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

    def __enter__(self) -> "Stages":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["Stages"]
