"""The refine stage: starts the prior-independent half of every frame's solve beside the generator."""
from __future__ import annotations

from alphagan_video.engine import Stage, Work
from alphagan_video.temporal.solve import TemporalSolve


class RefinePrepareStage(Stage):
    """Starts the run's ``TemporalSolve.prepare`` for the batch (placed before the generator, so
    the workers build the linear systems while the generator runs; the temporal stage solves
    them)."""

    name = "refine"

    def __init__(self, solve: TemporalSolve):
        self.solve = solve

    def __call__(self, work: Work) -> Work:
        self.solve.prepare(work.batch.index, work.image, work.trimap)
        return work

    def close(self) -> None:
        self.solve.close()
