"""The memory model of a CPU run: the peak resident bytes a run needs at a frame size and batch
size, and the bytes this process can still allocate (``/proc/meminfo``, the cgroup v2 limit,
``RLIMIT_AS``). No torch: the command line sizes batches with it before the model is loaded."""
from __future__ import annotations

import contextlib
from typing import Optional

#: Peak resident memory of a CPU run: BASE bytes (interpreter, torch, model, mask model), plus
#: FIXED bytes per pixel of the frame whatever the batch (refinement, temporal state, queues),
#: plus PER_FRAME bytes per pixel of each frame in a batch (decode, generator activations,
#: foreground, encode). Measured with /usr/bin/time on a 2-core CPU machine, default settings
#: with refinement, chroma mask: 640x360 batch 1: 1.15 GB, batch 4: 1.56 GB; 1280x720 batch 1:
#: 1.96 GB. The model (0.9 GiB + 600 + 600 x batch bytes per pixel) is at or above each.
MEMORY_BASE_BYTES = 900 * 2**20
MEMORY_FIXED_PER_PIXEL = 600
MEMORY_PER_FRAME_PIXEL = 600


def available_memory() -> Optional[int]:
    """Bytes this process can still allocate: MemAvailable, a cgroup limit, RLIMIT_AS (the
    smallest); None when none of them can be read."""
    found = []
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    with contextlib.suppress(OSError, ValueError):
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as fh:
                found.append(int(limit) - int(fh.read().strip()))
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            found.append(soft)
    return min(found) if found else None


def estimate_peak_memory(width: int, height: int, batch_size: int) -> int:
    """Estimated peak resident bytes of a CPU run at this frame size and batch size."""
    pixels = width * height
    return MEMORY_BASE_BYTES + MEMORY_FIXED_PER_PIXEL * pixels + MEMORY_PER_FRAME_PIXEL * pixels * batch_size


def frames_that_fit(width: int, height: int, available: int) -> int:
    """The largest batch size whose estimated peak fits in ``available`` bytes (0: not even one frame)."""
    pixels = width * height
    return max(0, (available - MEMORY_BASE_BYTES - MEMORY_FIXED_PER_PIXEL * pixels)
               // max(1, MEMORY_PER_FRAME_PIXEL * pixels))


__all__ = ["MEMORY_BASE_BYTES", "MEMORY_FIXED_PER_PIXEL", "MEMORY_PER_FRAME_PIXEL", "available_memory",
           "estimate_peak_memory", "frames_that_fit"]
