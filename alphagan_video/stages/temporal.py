"""The temporal stage: per frame, the temporal prior -> the refine's solve -> the blend."""
from __future__ import annotations

from alphagan_video.engine import Stage, Work
from alphagan_video.temporal.solve import TemporalSolve


class TemporalStage(Stage):
    """``work.alpha`` (the generator's) -> refined (refine on) and smoothed ``work.alpha``, by the
    run's ``TemporalSolve.solve_batch``. Reports ``refine`` and ``temporal`` seconds separately
    (``laps``, the solve's)."""

    name = "temporal"

    def __init__(self, solve: TemporalSolve):
        self.solve = solve
        self.laps = solve.laps

    def __call__(self, work: Work) -> Work:
        work.alpha = self.solve.solve_batch(work.batch.index, work.image, work.trimap, work.alpha)
        # No later stage reads these; the work waits in the render lane's queue. The float32
        # image neither: the output stage rebuilds it from the decoded frames (``work.batch``),
        # 4x smaller while queued (a 1080p pair: 50 MB -> 12 MB, ~3 pairs in flight).
        work.soft = work.mask = work.trimap = work.image = None
        return work

    def close(self) -> None:
        self.solve.close()
