"""The refine stage: starts the prior-independent half of every frame's solve beside the generator."""
from __future__ import annotations

from alphagan_video.engine import Stage, Work
from alphagan_video.refine.frames import RefineStep


class RefinePrepareStage(Stage):
    """Starts ``RefineStep.prepare`` for the batch (placed before the generator, so the worker
    builds the linear systems while the generator runs)."""

    name = "refine"

    def __init__(self, step: RefineStep):
        self.step = step

    def __call__(self, work: Work) -> Work:
        self.step.prepare(work)
        return work

    def close(self) -> None:
        self.step.close()
