"""Matting-Laplacian refinement, closed-form matting (Levin et al. 2008) with soft
priors: the generator's alpha, and the temporal stage's prior when there is one, as data terms
of one linear solve per frame.

In a run (``frames``, driven by ``temporal.solve.TemporalSolve``): ``RefineStep.prepare`` builds
the prior-independent half of every frame's system in a worker while the generator runs;
``RefineStep.solve`` finishes each frame in the temporal solve, which hands it the frame's prior.

The solve's modules read as its data flow:

* ``priors``: trimap regions, the confidence gate, per-pixel prior weights, folding data terms
  (``combine_priors``, ``PriorTerm``) and the known-region expansion (``expand_known``);
* ``flow``: the known-to-unknown sampling flow of information-flow matting (``sampling_flow``);
* ``laplacian``: the matting Laplacian over the unknown pixels (``matting_system``);
* ``sparse``: the assembled system's solvers (mixed-precision sparse factorisation, Jacobi CG);
* ``pcg``: the same system matrix-free in torch (CPU or CUDA), Jacobi PCG;
* ``api``: ``refine_alpha`` = ``prepare_refine`` + ``solve_refine``, ``closed_form_alpha``,
  driven by one ``RefineConfig`` (``alphagan_video.config``);
* ``inverse``: the one 3x3 symmetric inverse both system forms use;
* ``frames``: per-frame solves on tensors (``refine_frames``) and the prepare workers (``RefineStep``).

``pcg`` imports torch; it is loaded only when the "pcg" method runs (import it directly for
its names).
"""
from __future__ import annotations

from alphagan_video.config import RefineConfig

from .api import (
    SOLVERS,
    RefineProblem,
    check_refine_config,
    closed_form_alpha,
    prepare_refine,
    refine_alpha,
    solve_refine,
    solver_method,
    with_factor,
)
from .flow import FLOW_APPROX, FLOW_BAND, FLOW_NEIGHBOURS, FLOW_REG, FLOW_SPATIAL, FLOW_STRIDE, sampling_flow
from .laplacian import MattingSystem, matting_system
from .priors import (
    EXPAND_COLOUR,
    EXPAND_RADIUS,
    WEIGHTINGS,
    PriorTerm,
    combine_priors,
    confidence_weight,
    expand_known,
    fold_prior_term,
    gate_trimap,
    trimap_ramp_prior,
    trimap_regions,
)
from .sparse import DIRECT_MAX_UNKNOWNS, DirectSolver, solve_assembled
from .frames import RefineStep, refine_frames

__all__ = [
    "RefineStep",
    "refine_frames",
    "RefineConfig",
    "refine_alpha",
    "prepare_refine",
    "solve_refine",
    "closed_form_alpha",
    "RefineProblem",
    "with_factor",
    "check_refine_config",
    "solver_method",
    "SOLVERS",
    "matting_system",
    "MattingSystem",
    "DirectSolver",
    "solve_assembled",
    "DIRECT_MAX_UNKNOWNS",
    "trimap_regions",
    "trimap_ramp_prior",
    "gate_trimap",
    "confidence_weight",
    "WEIGHTINGS",
    "combine_priors",
    "PriorTerm",
    "fold_prior_term",
    "expand_known",
    "EXPAND_RADIUS",
    "EXPAND_COLOUR",
    "sampling_flow",
    "FLOW_NEIGHBOURS",
    "FLOW_SPATIAL",
    "FLOW_BAND",
    "FLOW_STRIDE",
    "FLOW_REG",
    "FLOW_APPROX",
]
