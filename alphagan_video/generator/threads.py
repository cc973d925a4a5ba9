"""The generator's CPU threads: how many OpenMP threads its forward uses, for the calling thread only.

On the CPU the refine prepares the frames of a batch beside the generator, one single-thread
worker per frame and at most one per core (``plan._workers``, ``refine.frames.RefineStep``). A
generator forward on an OpenMP team as wide as the machine then shares the cores with those
workers, and a team waits at every barrier (and spins meanwhile, taking CPU from the workers)
for whichever of its threads the scheduler has just descheduled. With the generator at half the
frame's side (``ModelConfig.prior_scale``) its forward is shorter than a frame's prepare, so a
one-thread forward beside the workers loses nothing it would have had and stops the contention.

``torch.set_num_threads`` cannot do this: it sets the process-wide default that every thread
starting torch work afterwards takes (and empties oneDNN's primitive cache on every call).
OpenMP's own ``omp_set_num_threads`` sets the *calling thread's* team size (the ``nthreads-var``
ICV of its task), which is what torch's CPU kernels and oneDNN read, so :func:`forward_threads`
changes the generator's thread only and only for the block.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from typing import Callable, Iterator, Optional

import torch


@functools.lru_cache(maxsize=1)
def _omp_set_num_threads() -> Optional[Callable[[int], None]]:
    """The OpenMP runtime's ``omp_set_num_threads`` that torch uses, or None where torch has no
    OpenMP (or it cannot be reached from Python): :func:`forward_threads` is then a no-op."""
    if not torch.backends.openmp.is_available():
        return None
    try:
        # torch loads its OpenMP runtime into the global namespace (libtorch_global_deps).
        setter = ctypes.CDLL(None).omp_set_num_threads
    except (OSError, AttributeError):
        return None
    setter.argtypes = [ctypes.c_int]
    setter.restype = None
    return setter


def generator_threads(device: torch.device, refine_workers: int) -> Optional[int]:
    """Most OpenMP threads of the generator's forward for a run: on the CPU, the cores the
    refine's prepare workers leave (``refine_workers``: 0 with the refine off), at least 1; None
    (leave torch's setting) on other devices. ``forward_threads`` never raises a thread's team
    above the process's own setting."""
    if device.type != "cpu":
        return None
    return max(1, (os.cpu_count() or 1) - max(0, int(refine_workers)))


@contextlib.contextmanager
def forward_threads(threads: Optional[int]) -> Iterator[None]:
    """Inside the block, torch's CPU work in the *calling* thread runs on at most ``threads``
    OpenMP threads (other threads keep theirs); restored on exit. It only ever lowers the
    thread's team: a process limited to fewer threads (``OMP_NUM_THREADS``,
    ``torch.set_num_threads``) keeps its limit. None, a number not below the thread's own, or a
    torch without a reachable OpenMP runtime: nothing changes.

    Raises:
        ValueError: ``threads`` < 1.
    """
    if threads is not None and int(threads) < 1:
        raise ValueError(f"forward_threads: threads must be >= 1 or None, got {threads!r}")
    setter = _omp_set_num_threads()
    before = torch.get_num_threads()  # this thread's team size (omp_get_max_threads)
    if setter is None or threads is None or int(threads) >= before:
        yield
        return
    setter(int(threads))
    try:
        yield
    finally:
        setter(before)


__all__ = ["forward_threads", "generator_threads"]
