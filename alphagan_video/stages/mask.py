"""The mask stage: a mask source's soft mask, stabilised over time."""
from __future__ import annotations

from typing import Optional

import torch

from alphagan_video.engine import Stage, Work
from alphagan_video.temporal.solve import TemporalSolve


class MaskStage(Stage):
    """``work.image`` -> ``work.soft`` (the source's foreground probability) and ``work.mask``
    (stabilised so the unknown band does not jump when the subject is still; see
    ``TemporalSolve.stabilize``). ``solve`` None: no stabilisation, ``mask`` = ``soft``.

    source: a mask source (``masks.build_mask_source``): called with ((B,3,H,W) image, frame
    indices) -> (B,1,H,W) float [0,1]; closed by ``close``.
    """

    name = "mask"

    def __init__(self, source, solve: Optional[TemporalSolve] = None):
        self.source = source
        self.solve = solve

    def __call__(self, work: Work) -> Work:
        with torch.inference_mode():
            work.soft = self.source(work.image, work.batch.index)
        work.mask = work.soft if self.solve is None else self.solve.stabilize(work.soft, work.image)
        return work

    def report(self) -> dict:
        """What the source adds to the run report's settings (``masks.ReportingSource``, e.g. a
        plate's registration); {} for a source with nothing to report."""
        from alphagan_video.masks import ReportingSource

        return self.source.report() if isinstance(self.source, ReportingSource) else {}

    def warnings(self) -> list[str]:
        """The source's one-line run warnings (``masks.ReportingSource``); [] for other sources."""
        from alphagan_video.masks import ReportingSource

        return list(self.source.warnings) if isinstance(self.source, ReportingSource) else []

    def close(self) -> None:
        self.source.close()
