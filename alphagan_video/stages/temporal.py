"""The temporal stage: per frame, the temporal prior -> the refine's solve -> the blend."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Optional

import torch

from alphagan_video.config import TemporalConfig
from alphagan_video.engine import Stage, Work
from alphagan_video.temporal.smoothing import AlphaSmoother, TemporalTrack

if TYPE_CHECKING:
    from alphagan_video.refine.frames import RefineStep


class TemporalStage(Stage):
    """``work.alpha`` (the generator's) -> refined (``refine`` given) and smoothed ``work.alpha``.

    Frame by frame, in order: the smoother's prior for the frame (the previous output alpha
    warped to it, or None), the refine's solve with that prior as one more data term (when the
    refine is on and ``cfg.solve_weight`` > 0), then the blend with the same prior. Reports
    ``refine`` and ``temporal`` seconds separately (``laps``).
    """

    name = "temporal"

    def __init__(self, cfg: TemporalConfig, track: TemporalTrack, refine: Optional["RefineStep"] = None):
        self.cfg = cfg
        self.track = track
        self.refine = refine
        smoothing = cfg.enabled and cfg.strength > 0
        #: The warped previous alpha enters the solve (TemporalConfig.solve_weight).
        self.prior_into_solve = refine is not None and smoothing and cfg.solve_weight > 0
        self.laps = {"refine": 0.0, "temporal": 0.0}

    def __call__(self, work: Work) -> Work:
        smoother = AlphaSmoother(self.cfg, self.track.state)
        out = []
        for i in range(work.alpha.shape[0]):
            tick = time.perf_counter()
            image, trimap = work.image[i : i + 1], work.trimap[i : i + 1]
            prior = smoother.prior(image)
            tick = self._lap("temporal", tick)
            alpha = self._refine(work, i, prior)
            tick = self._lap("refine", tick)
            out.append(smoother.blend(image, alpha, prior, trimap))
            self._lap("temporal", tick)
        self.track.state = smoother.state
        if smoother.enabled or self.refine is not None:
            work.alpha = torch.cat(out, 0)
        # No later stage reads these; the work waits in the render lane's queue, and a prepared
        # refine problem (its factorisation: ~100 MB per 720p frame) must not wait with it.
        if self.refine is not None:
            self.refine.release(work)
        work.problems = work.soft = work.mask = None
        return work

    def _refine(self, work: Work, i: int, prior) -> torch.Tensor:
        """Frame ``i``'s alpha after the refine (unchanged without one)."""
        alpha = work.alpha[i : i + 1]
        if self.refine is None:
            return alpha
        if not self.prior_into_solve:
            return self.refine.solve(work, i, alpha)
        alpha = alpha.float()
        temporal = None if prior is None else (prior.warped, prior.solve_weight(alpha) * self.cfg.solve_weight)
        return self.refine.solve(work, i, alpha, temporal).float().clamp(0.0, 1.0)

    def _lap(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.laps[name] += now - since
        return now

