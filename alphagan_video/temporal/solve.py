"""The per-frame solve of a run, built as one object: the refine's prepare (started before the
generator) and the temporal solve (the temporal prior, the refine's solve with it, the blend),
with the state they share."""
from __future__ import annotations

import time
from typing import Optional

import torch

from alphagan_video.config import RefineConfig, TemporalConfig
from alphagan_video.refine.frames import RefineStep
from alphagan_video.temporal.smoothing import AlphaSmoother, TemporalState, stabilize_mask


class TemporalSolve:
    """One stream's per-frame solve, for three stages of one lane (never two threads at once):

    * ``stabilize(soft, image)`` (mask stage): the coarse mask, stabilised over time;
    * ``prepare(index, image, trimap)`` (refine stage, before the generator): the
      prior-independent half of every frame's refine (expansion, sampling flow, Laplacian,
      factorisation) starts in a worker while the generator runs;
    * ``solve_batch(index, image, trimap, alpha)`` (temporal stage): frame by frame, in order,
      the smoother's prior (the previous output alpha warped to the frame, or None), the
      refine's solve with that prior as one more data term (refine on and
      ``TemporalConfig.solve_weight`` > 0), then the blend with the same prior.

    The state they share lives here: the temporal state (the mask stabilisation and the alpha
    smoothing share one flow computation per frame pair), the refine's workers, and the problems
    prepared for frames not solved yet.

    temporal: the temporal settings. refine: the effective refine settings, None = refine off.
    device, workers, method: the refine's device, its prepare workers and its solve method
    (``RefineStep``; a run passes its plan's, ``plan.RunPlan``).
    laps: seconds of ``refine`` and ``temporal`` in ``solve_batch`` (the temporal stage reports
    them as its ``Stage.laps``).
    """

    def __init__(self, temporal: TemporalConfig, refine: Optional[RefineConfig] = None,
                 device: torch.device = torch.device("cpu"), workers: int = 1, method: Optional[str] = None):
        self.cfg = temporal
        self.state = TemporalState()
        self.refine = RefineStep(refine, device, workers, method) if refine is not None else None
        smoothing = temporal.enabled and temporal.strength > 0
        #: The warped previous alpha enters the solve (TemporalConfig.solve_weight).
        self.prior_into_solve = self.refine is not None and smoothing and temporal.solve_weight > 0
        self.laps = {"refine": 0.0, "temporal": 0.0}
        self._prepared: dict[int, object] = {}  # frame index -> future of its prepared problem

    @property
    def pending(self) -> int:
        """Prepared problems not yet solved (and released)."""
        return len(self._prepared)

    def stabilize(self, soft: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """soft (B,1,H,W) float [0,1] of frames image (B,3,H,W) -> the stabilised mask (B,1,H,W)
        (``temporal.smoothing.stabilize_mask``; unchanged with smoothing off)."""
        mask, self.state = stabilize_mask(soft, image, self.state, self.cfg)
        return mask

    def prepare(self, index: list[int], image: torch.Tensor, trimap: torch.Tensor) -> None:
        """Start the refine's prepare of frames ``index`` (image (B,3,H,W), trimap (B,1,H,W));
        nothing without the refine or with a confidence gate (then ``solve_batch`` prepares inline)."""
        if self.refine is None:
            return
        problems = self.refine.prepare(index, image, trimap)
        if problems is not None:
            self._prepared.update(zip((int(f) for f in index), problems))

    def solve_batch(self, index: list[int], image: torch.Tensor, trimap: torch.Tensor,
                    alpha: torch.Tensor) -> torch.Tensor:
        """The generator's alpha (B,1,H,W) [0,1] of frames ``index`` -> refined (refine on) and
        smoothed alpha (B,1,H,W) float32 (``alpha`` itself when neither runs). Lets go of the
        frames' prepared problems (their factorisations: ~100 MB per 720p frame)."""
        problems = [self._prepared.pop(int(f), None) for f in index]
        smoother = AlphaSmoother(self.cfg, self.state)
        out = []
        for i in range(alpha.shape[0]):
            tick = time.perf_counter()
            frame, tri = image[i : i + 1], trimap[i : i + 1]
            prior = smoother.prior(frame, tri)
            tick = self._lap("temporal", tick)
            refined = self._refine(index[i], frame, tri, alpha[i : i + 1], prior, problems[i])
            tick = self._lap("refine", tick)
            out.append(smoother.blend(frame, refined, prior, tri))
            self._lap("temporal", tick)
        self.state = smoother.state
        if self.refine is not None:
            self.refine.release(index, problems)
        if smoother.enabled or self.refine is not None:
            return torch.cat(out, 0)
        return alpha

    def _refine(self, frame: int, image: torch.Tensor, trimap: torch.Tensor, alpha: torch.Tensor, prior,
                problem) -> torch.Tensor:
        """One frame's alpha after the refine (unchanged without one)."""
        if self.refine is None:
            return alpha
        if not self.prior_into_solve:
            return self.refine.solve(frame, image, trimap, alpha, problem=problem)
        alpha = alpha.float()
        temporal = None if prior is None else (prior.warped, prior.solve_weight(alpha) * self.cfg.solve_weight)
        return self.refine.solve(frame, image, trimap, alpha, temporal, problem=problem).float().clamp(0.0, 1.0)

    def _lap(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.laps[name] += now - since
        return now

    def close(self) -> None:
        """Stop the refine's workers (see ``RefineStep.close``). Idempotent."""
        if self.refine is not None:
            self.refine.close()


__all__ = ["TemporalSolve"]
