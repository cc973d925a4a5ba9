"""The refine of a run's frames: per-frame solves on tensors (``refine_frames``), and
``RefineStep``, which prepares each frame's system in a worker while the generator runs and
solves it later with the temporal prior (``temporal.solve.TemporalSolve`` drives both)."""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Optional

import torch

from alphagan_video.config import RefineConfig


def refine_frames(
    image: torch.Tensor, trimap: torch.Tensor, prior: torch.Tensor, config: RefineConfig,
    temporal: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
    problems: Optional[list[Future]] = None, device: object = "cpu", method: Optional[str] = None,
) -> torch.Tensor:
    """Matting-Laplacian solve per frame with the generator's alpha as prior (float64; on the CPU,
    or with the "pcg" method matrix-free on ``device``), settings from ``config`` (see
    ``refine.refine_alpha``).
    image (B,3,H,W), trimap (B,1,H,W) {0,0.5,1}, prior (B,1,H,W) [0,1] -> (B,1,H,W) float32;
    frames without unknown pixels return their prior.
    temporal: optional (target, weight), both (B,1,H,W): one more data term
    weight * (a - target)^2 per pixel (the warped previous alpha; weight in the units of
    config.mu, see ``refine.PriorTerm``; ignored when mu is 0).
    problems: optional futures of ``refine.prepare_refine`` per frame (built with the same
    trimap and config while the generator ran); then only the solve runs here.
    device: a torch.device or its name; method: as in ``refine.refine_alpha`` (a run's solve
    method, decided once: then ``config`` is not checked again frame by frame)."""
    from alphagan_video.refine import PriorTerm, refine_alpha, solve_refine

    out = []
    for i in range(image.shape[0]):
        tri = trimap[i, 0].float().cpu().numpy()
        if not (tri == 0.5).any():
            out.append(prior[i : i + 1])
            continue
        p = prior[i, 0].double().cpu().numpy()
        term = None
        if temporal is not None:
            term = PriorTerm(temporal[0][i, 0].double().cpu().numpy(), temporal[1][i, 0].double().cpu().numpy())
        if problems is not None:
            refined = solve_refine(problems[i].result(), p, config, term=term, method=method)
        else:
            refined = refine_alpha(image[i].permute(1, 2, 0).double().cpu().numpy(), tri, p, config, term=term,
                                   device=device, method=method)
        out.append(torch.as_tensor(refined, dtype=torch.float32)[None, None].to(prior.device))
    return torch.cat(out, 0)


class RefineStep:
    """The refine of one frame at a time, with an optional temporal data term.

    ``prepare(index, image, trimap)`` starts the prior-independent half of every frame's solve
    (expansion, sampling flow, Laplacian, factorisation) in a worker thread, so it overlaps the
    generator; ``solve(frame, image, trimap, alpha, temporal, problem=...)`` finishes one frame.
    Not possible with a confidence gate, which needs the generator's alpha to decide the unknown
    pixels (then the whole solve runs in ``solve``).

    method: the solve method, decided once for the run with ``cfg`` checked (``plan.RunPlan``:
    ``solver``); None = check ``cfg`` and decide it here. Either way once, not per frame.
    """

    def __init__(self, cfg: RefineConfig, device: torch.device, workers: int = 1, method: Optional[str] = None):
        if method is None:
            from alphagan_video.refine import check_refine_config, solver_method

            check_refine_config(cfg)
            method = solver_method(cfg.solver, device)
        self.cfg = cfg
        self.device = device
        self.method = method
        self._pools: list[ThreadPoolExecutor] = []
        self._closing = False  # set by close(): prepares still queued then return at once
        if cfg.gate == 0:
            # The generator's forward runs on the cores these workers leave (at least one;
            # generator.threads). With the generator at full resolution that cost it (1080p with
            # trimaps, 2-core AMD EPYC: 4.3 s/frame on 1 thread beside a 1.8 s prepare, 5.06
            # s/frame end to end, against 3.4 and 4.20 on both threads); at the CPU's half-scale
            # prior the forward is shorter than a prepare, and a 2-thread team beside two busy
            # workers spent 2.8x the CPU on the same forwards (spinning at its barriers).
            # One single-thread worker per frame of a batch (``workers``): frame f is prepared,
            # solved and released in worker f % workers (see ``solve`` for why one thread per
            # frame), so the frames of a batch are prepared side by side.
            self._pools = [ThreadPoolExecutor(1, thread_name_prefix=f"refine-prepare-{n}")
                           for n in range(max(1, int(workers)))]

    def _worker_of(self, frame: int) -> int:
        """Index of the worker that prepares, solves and releases frame number ``frame``."""
        return int(frame) % len(self._pools)

    def prepare(self, index: list[int], image: torch.Tensor, trimap: torch.Tensor) -> Optional[list[Future]]:
        """Start ``refine.prepare_refine`` for frames ``index`` (image (B,3,H,W), trimap
        (B,1,H,W)) -> one future per frame (None when gated: ``solve`` then prepares inline)."""
        if not self._pools:
            return None
        from alphagan_video.refine import prepare_refine

        # Factorised in advance for the uniform prior weight (factorise=True): exact for frames
        # solved alone, and the CG preconditioner for frames that get the warped previous alpha
        # as a per-pixel prior (temporal in-solve fusion), cheaper than factorising them afterwards.
        return [
            self._pools[self._worker_of(index[i])].submit(
                lambda i=i: None if self._closing else prepare_refine(  # float64 copies made here too
                    image[i].permute(1, 2, 0).double().cpu().numpy(), trimap[i, 0].float().cpu().numpy(),
                    self.cfg, factorise=True, device=self.device, method=self.method,
                )
            )
            for i in range(image.shape[0])
        ]

    def solve(self, frame: int, image: torch.Tensor, trimap: torch.Tensor, alpha: torch.Tensor,
              temporal: Optional[tuple[torch.Tensor, torch.Tensor]] = None, *,
              problem: Optional[Future] = None) -> torch.Tensor:
        """Refine frame number ``frame`` (image (1,3,H,W), trimap (1,1,H,W)) from its alpha
        (1,1,H,W) [0,1]; ``temporal``: optional (warped previous alpha, per-pixel weight), both
        (1,1,H,W), as one more data term; ``problem``: its ``prepare`` future, if any.
        -> (1,1,H,W) float32 with the known regions clamped to the trimap.

        With a prepare worker the solve runs in that worker too (and the caller waits): scipy's
        SuperLU books the memory of a factorisation in a table of the thread that made it and
        frees it only when asked from that thread; a factorisation dropped from another thread
        is never freed (a 720p run grew ~35 MB per frame, without bound). So every
        factorisation is made, used and (``release``) dropped in its frame's worker thread."""
        if not self._pools:
            return self._solve(image, trimap, alpha, temporal, problem)
        return self._pools[self._worker_of(frame)].submit(self._solve, image, trimap, alpha, temporal, problem).result()

    def release(self, index: list[int], problems: Optional[list[Optional[Future]]]) -> None:
        """Let go of the ``prepare`` futures of frames ``index`` (their factorisations) in the
        threads that made them; see ``solve``. Empties ``problems``."""
        if problems is None or not self._pools:
            return
        by_worker: dict[int, list[Future]] = {}
        for frame, future in zip(index, problems):
            if future is not None:
                by_worker.setdefault(self._worker_of(frame), []).append(future)
        future = None
        problems.clear()  # from here only the per-worker lists hold the futures...
        for n, futures in by_worker.items():
            self._pools[n].submit(futures.clear)  # ...and their last references go in their workers

    def _solve(self, image: torch.Tensor, trimap: torch.Tensor, alpha: torch.Tensor,
               temporal: Optional[tuple[torch.Tensor, torch.Tensor]], problem: Optional[Future]) -> torch.Tensor:
        from alphagan_video.trimap import clamp_known

        return clamp_known(refine_frames(
            image, trimap, alpha, self.cfg, temporal=temporal,
            problems=None if problem is None else [problem], device=self.device, method=self.method,
        ), trimap)

    def close(self) -> None:
        """Stop the worker: prepares not yet started return at once (nobody will solve them) and
        the releases already asked for still run, so their factorisations are freed in the
        worker (cancelling would leave those to be dropped from this thread). Idempotent."""
        self._closing = True
        for pool in self._pools:
            pool.shutdown(wait=True)
        self._pools = []


__all__ = ["RefineStep", "refine_frames"]
