"""The window stage: a chunk's output frames only."""
from __future__ import annotations

from typing import Optional

from alphagan_video.engine import Stage, Work
from alphagan_video.types import OutputBatch


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
