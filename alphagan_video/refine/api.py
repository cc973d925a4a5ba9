"""The refine entry points: ``refine_alpha`` = ``prepare_refine`` then ``solve_refine``.

Solves, over the unknown pixels U of a trimap,

    (L_UU + mu * diag(w_U)) a_U = -L_UK a_K + mu * diag(w_U) prior_U

where L is the closed-form matting Laplacian (``laplacian``), K the known pixels (a_K = 0 / 1
from the trimap), ``prior`` an alpha estimate (the generator's output) and ``w`` an optional
per-pixel confidence relative to mu. mu -> 0 is plain closed-form matting; large mu returns
the prior. Every setting comes from one ``RefineConfig`` (``alphagan_video.config``): the
product and a library caller solve the same system unless a field is set.

mu has one form everywhere: the absolute strength of the generator's prior. Further data terms
(the sampling flow, ``RefineConfig.flow`` * eta; an extra ``PriorTerm`` such as the temporal
prior) are absolute weights in the same units and are folded into one prior and one per-pixel
diagonal d right before the solve (``combine_priors``).

Before the solve, ``expand`` (``expand_known``) settles unknown pixels that are near-copies of a
nearby known colour, which both lowers SAD on hand-drawn trimaps and shrinks the system.
``prepare_refine`` does everything that does not depend on the prior (expansion, sampling flow,
Laplacian and, for a uniform prior weight, the factorisation), so a caller can run it while the
generator runs; ``solve_refine`` then finishes with the prior.

Combination options measured with bench/combine_eval.py (synthetic validation set, then
alphamatting-dev): ``gate`` (generator-confident band pixels become known, shrinking the system)
and ``weighting="confidence"`` both exist but are off by default, because the current generator
is confidently wrong on 6-15% of its confident band pixels, in blobs, and gating them costs
far more SAD than the faster solve is worth.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np
import scipy.sparse as sp

from alphagan_video.config import RefineConfig
from alphagan_video.errors import ParameterError, UserInputError

from .flow import sampling_flow
from .laplacian import MattingSystem, matting_system
from .priors import (
    WEIGHTINGS, PriorTerm, _check_inputs, combine_priors, confidence_weight, expand_known, fold_prior_term,
    gate_trimap, trimap_regions,
)
from .sparse import DIRECT_MAX_UNKNOWNS, DirectSolver, solve_assembled

if TYPE_CHECKING:
    from .pcg import MatrixFreeSystem

#: ``RefineConfig.solver`` choices; ``solver_method`` says what each runs.
SOLVERS = ("auto", "direct", "cg", "pcg")


def check_refine_config(config: RefineConfig) -> None:
    """Raise ParameterError (naming ``refine.<field>``) for a setting the solve cannot use."""
    if not config.mu >= 0:
        raise ParameterError.about("refine.mu", config.mu, "must be >= 0 (0 = plain closed-form matting)")
    if not 0.0 <= config.gate < 0.5:
        raise ParameterError.about("refine.gate", config.gate, "must be in [0, 0.5) (0 = off)")
    if config.weighting not in WEIGHTINGS:
        raise ParameterError.about("refine.weighting", repr(config.weighting),
                                   f"must be one of {', '.join(WEIGHTINGS)}")
    if not config.flow >= 0:
        raise ParameterError.about("refine.flow", config.flow, "must be >= 0 (0 = off)")
    for name in ("expand", "expand_mask_trimaps"):
        if getattr(config, name) < 0:
            raise ParameterError.about(f"refine.{name}", getattr(config, name), "must be >= 0 px (0 = off)")
    solver_method(config.solver, "cpu")


def _on_cuda(device: object) -> bool:
    """Whether ``device`` (a torch.device, as a run passes it, or a name such as ``"cuda:1"``
    from a library caller) is a CUDA device."""
    import torch

    return (device if isinstance(device, torch.device) else torch.device(str(device))).type == "cuda"


def solver_method(solver: str, device: object = "cpu") -> str:
    """``RefineConfig.solver`` on ``device`` -> the method that runs: ``"pcg"`` (matrix-free,
    on the device) for "pcg" and for "auto" on CUDA; ``"cg"`` for "cg"; otherwise ``"direct"``
    (sparse factorisation up to ``DIRECT_MAX_UNKNOWNS`` unknowns, Jacobi CG beyond).
    device: a torch.device or its name."""
    if solver not in SOLVERS:
        raise ParameterError.about("refine.solver", repr(solver), f"must be one of {', '.join(SOLVERS)}")
    # "auto" on the CPU is "direct" at every frame size: per frame of the product's video
    # config (``bench/refine_solvers.py --profile``, CPU seconds, one thread, a person-like band
    # of 36k / 75k / 159k unknowns at 480p / 720p / 1080p, temporal term on) Laplacian +
    # factorisation + solve took 0.31 / 0.83 / 2.0 s; the matrix-free PCG 0.82-0.92 / 2.3-2.6 /
    # 5.7-9.7 s in float64 (158-301 iterations; a warm start from the moved previous alpha
    # saved 10-35 % of them), 0.53 / 1.6-1.7 / > 10 s in float32 (at 1080p not converged in 600
    # iterations), and both miss the 1e-3 max accuracy target at pcg.DEFAULT_RTOL (1.1e-3 -
    # 1.4e-2 off the direct solve). The direct solve wins at every size: 2.6-4.8x against
    # float64 PCG, 1.7x against float32 PCG at 480p (which misses the target anyway).
    if solver == "pcg" or (solver == "auto" and _on_cuda(device)):
        return "pcg"
    return "cg" if solver == "cg" else "direct"


def refine_alpha(
    image: np.ndarray,
    trimap: np.ndarray,
    prior: np.ndarray,
    config: RefineConfig = RefineConfig(),
    *,
    weight: Optional[np.ndarray] = None,
    term: Optional[PriorTerm] = None,
    radius: int = 1,
    eps: float = 1e-7,
    tol: float = 1e-5,
    max_iter: int = 2000,
    gate_erode: int = 0,
    device: object = "cpu",
    method: Optional[str] = None,
) -> np.ndarray:
    """Refine an alpha estimate with a matting-Laplacian solve anchored to it.

    image: (H, W, 3) float in [0, 1]; trimap: (H, W) float in [0, 1] ({0, 0.5, 1});
    prior: (H, W) float in [0, 1], e.g. the generator's alpha.
    config: mu (prior strength), gate, weighting, flow, expand, solver (``RefineConfig``;
    ``enabled`` is not read: a caller of this function wants the solve).
    weight: optional (H, W) float >= 0 per-pixel confidence in the prior, relative to mu
    (default 1 everywhere); multiplied with ``config.weighting``'s weight when both are given.
    term: optional extra data term (``PriorTerm``, absolute weight in mu's units), folded into
    the prior before gating and solving; ignored when mu is 0.
    radius / eps: the Laplacian's window radius and regulariser.
    tol: CG relative residual; max_iter: CG iteration cap (both unused by the direct solve).
    gate_erode: see ``gate_trimap``; the gate itself is ``config.gate``.
    device: where the "pcg" method runs (and what "auto" picks, see ``solver_method``): a
    torch.device or its name.
    method: the solve method a run decided once for a config it checked (``plan.RunPlan.solver``),
    so nothing is checked or decided again per frame; None = check ``config`` and pick here.
    Returns (H, W) float32 in [0, 1]; known trimap pixels are exactly 0 / 1.
    """
    if method is None:
        check_refine_config(config)
    _check_inputs(image, trimap, radius, eps)  # image/trimap errors first, before the prior's
    if np.shape(prior) != np.shape(trimap):
        raise UserInputError(f"refine: prior shape {np.shape(prior)} does not match trimap {np.shape(trimap)}")
    prior, weight = fold_prior_term(np.asarray(prior, dtype=np.float64), weight, config.mu, term)
    if config.gate > 0.0 or gate_erode != 0:
        trimap = gate_trimap(trimap, prior, config.gate, gate_erode)
    problem = prepare_refine(image, trimap, config, radius=radius, eps=eps, device=device, method=method)
    return solve_refine(problem, prior, config, weight=weight, tol=tol, max_iter=max_iter, method=method)


@dataclass(frozen=True)
class RefineProblem:
    """Everything of one refine solve that does not depend on the prior, so it can be built
    while the generator runs (``prepare_refine``, then ``solve_refine`` with the prior).

    system: the matting Laplacian over the unknown pixels left after expansion: assembled
    (``MattingSystem``) or, when prepared for the "pcg" method, matrix-free
    (``pcg.MatrixFreeSystem``, solved by PCG whatever ``solve_refine``'s config says).
    flow_weight: (n_u,) float64, flow * eta per unknown pixel (zeros when flow is off).
    flow_alpha: (n_u,) float64 in [0, 1], the sampled alpha estimate per unknown pixel.
    factor: optional DirectSolver of L_uu + diag(factor_mu + flow_weight), the system matrix of
    a uniform prior of strength factor_mu, factorised in advance (``with_factor``).
    """

    system: "MattingSystem | MatrixFreeSystem"
    flow_weight: np.ndarray
    flow_alpha: np.ndarray
    factor: Optional[DirectSolver] = None
    factor_mu: float = 0.0


def prepare_refine(
    image: np.ndarray, trimap: np.ndarray, config: RefineConfig = RefineConfig(), *, factorise: bool = False,
    radius: int = 1, eps: float = 1e-7, device: object = "cpu", method: Optional[str] = None,
) -> RefineProblem:
    """The prior-independent part of ``refine_alpha``: known-region expansion (``config.expand``),
    the sampling flow (``config.flow``) and the matting Laplacian. image: (H, W, 3) float in
    [0, 1]; trimap: (H, W) float in [0, 1] (already gated, if gating is wanted); radius / eps /
    device as in ``refine_alpha``.
    factorise: also factorise the system matrix for a uniform prior of strength ``config.mu``
    when the method is "direct" and ``config.weighting`` is "uniform": then the matrix does not
    depend on the prior, only the right-hand side does, so the factorisation (most of the solve)
    can run while the generator runs too. The "pcg" method prepares the matrix-free system on
    ``device`` instead (no assembly, no factorisation). method: as in ``refine_alpha``."""
    if method is None:
        check_refine_config(config)
        method = solver_method(config.solver, device)
    if method == "pcg":
        build = _matrix_free_builder(radius, eps, device)
    else:
        def build(img: np.ndarray, tri: np.ndarray):
            return matting_system(img, tri, radius=radius, eps=eps)

    _check_inputs(image, trimap, radius, eps)
    flow, expand = config.flow, config.expand
    mu = config.mu if factorise and method == "direct" and config.weighting == "uniform" else None
    # The sampling flow keeps the unexpanded trimap: expanded pixels as samples pull unknown
    # pixels of similar colour to 0 / 1 (synthetic validation SAD 7.30 -> 7.83 when they are).
    sample_trimap = trimap
    if expand:
        trimap = expand_known(image, trimap, radius=int(expand))
    unknown = trimap_regions(trimap)[2]
    if not (flow > 0 and unknown.any()):
        system = build(image, trimap)
        n_u = system.unknown_index.size
        return with_factor(RefineProblem(system, np.zeros(n_u), np.zeros(n_u)), mu)
    if method == "pcg" and _on_cuda(device):
        # The matrix-free system is built on the GPU: the sampling flow (CPU) runs beside it.
        with ThreadPoolExecutor(1, thread_name_prefix="sampling-flow") as pool:
            sampled = pool.submit(sampling_flow, image, sample_trimap, only=unknown)
            system = build(image, trimap)
            alpha_s, eta = sampled.result()
    else:
        # On the CPU one after the other: this already runs beside the generator (the pipeline's
        # prepare worker), and side by side the two held their peaks at once (1080p frame, 173k
        # unknowns: 239 + 314 MB) for no gain (2.9-3.1 s side by side, 2.6-2.8 s in turn, measured
        # alternating on 2 loaded cores).
        alpha_s, eta = sampling_flow(image, sample_trimap, only=unknown)
        system = build(image, trimap)
    u = system.unknown_index
    return with_factor(RefineProblem(system, flow * eta.ravel()[u], alpha_s.ravel()[u]), mu)


def _matrix_free_builder(radius: int, eps: float, device: object):
    from .pcg import matrix_free_system

    def build(image: np.ndarray, trimap: np.ndarray):
        img, tri = _check_inputs(image, trimap, radius, eps)
        fg, _bg, unknown = trimap_regions(tri)
        return matrix_free_system(img, fg, unknown, radius=radius, eps=eps, device=device)

    return build


def with_factor(problem: RefineProblem, mu: Optional[float]) -> RefineProblem:
    """``problem`` with its system matrix for a uniform prior of strength ``mu`` factorised
    (L_uu + diag(mu + flow_weight)), or as is when mu is None / 0, the system is empty, too
    large to factor or matrix-free, or factorisation fails."""
    n_u = problem.system.unknown_index.size
    if not mu or mu <= 0 or n_u == 0 or n_u > DIRECT_MAX_UNKNOWNS or not isinstance(problem.system, MattingSystem):
        return problem
    A = (problem.system.L_uu + sp.diags(mu + problem.flow_weight, format="csr")).tocsr()
    try:
        factor = DirectSolver(A, mixed=True)
    except RuntimeError:
        return problem
    return dataclasses.replace(problem, factor=factor, factor_mu=float(mu))


def solve_refine(
    problem: RefineProblem,
    prior: np.ndarray,
    config: RefineConfig = RefineConfig(),
    *,
    weight: Optional[np.ndarray] = None,
    term: Optional[PriorTerm] = None,
    tol: float = 1e-5,
    max_iter: int = 2000,
    method: Optional[str] = None,
) -> np.ndarray:
    """The prior-dependent part of ``refine_alpha``: solve a prepared problem with ``prior``
    ((H, W) float in [0, 1]) as the data term of strength ``config.mu``; weight, term, tol,
    max_iter as in ``refine_alpha``. The problem fixes flow, expand and gating; a problem
    prepared matrix-free is solved by PCG, an assembled one by ``config.solver`` ("auto" and
    "direct": factorisation, "cg": CG; "pcg" needs a matrix-free problem). method: given (a run's
    ``plan.RunPlan.solver``), ``config`` was checked once for the run and is not checked again.
    Returns (H, W) float32 in [0, 1]."""
    if method is None:
        check_refine_config(config)
    system = problem.system
    h, w = system.alpha_known.shape
    pr = np.asarray(prior, dtype=np.float64)
    if pr.shape != (h, w):
        raise UserInputError(f"refine: prior shape {pr.shape} does not match trimap {(h, w)}")
    pr, weight = fold_prior_term(pr, weight, config.mu, term)
    wt = _unknown_weights(system, pr, weight, config.weighting)
    if system.unknown_index.size == 0:
        return _assemble(system, np.zeros(0), (h, w))
    prior_u = np.clip(pr.ravel()[system.unknown_index], 0.0, 1.0)
    # The data-term diagonal in absolute units: mu * w, then the sampling flow's flow * eta
    # folded in as one term (mu*w*(a - p)^2 + flow*eta*(a - s)^2), so the solver is unchanged.
    d = config.mu * wt
    if problem.flow_weight.any():
        d, prior_u = combine_priors(d, prior_u, problem.flow_weight, problem.flow_alpha)
    if not isinstance(system, MattingSystem):
        return _assemble(system, _solve_matrix_free(system, d, prior_u, tol, max_iter), (h, w))
    if config.solver == "pcg":
        raise ParameterError.about("refine.solver", "'pcg'", "needs a problem prepared with prepare_refine "
                                   "for the pcg solver (a matrix-free system)")
    method = "cg" if config.solver == "cg" else "direct"
    has_data = config.mu > 0 or problem.flow_weight.any()
    # A factorisation made in advance serves the direct solver: exactly when the data-term
    # diagonal is the one it was made for, as a CG preconditioner when it is close (per-pixel
    # weights such as the temporal prior's).
    factor = problem.factor if method == "direct" else None
    factor_diag = problem.factor_mu + problem.flow_weight if factor is not None else None
    x = solve_assembled(system, d if has_data else None, prior_u, prior_u.copy(), tol, max_iter, method,
                        factor, factor_diag)
    return _assemble(system, x, (h, w))


def _unknown_weights(system, prior: np.ndarray, weight: Optional[np.ndarray], weighting: str) -> np.ndarray:
    """The prior's per-pixel weight relative to mu on the unknown pixels, (n_u,) float64: the
    caller's ``weight`` ((H, W) float >= 0, or None = 1) times the weighting's own."""
    h, w = system.alpha_known.shape
    conf = confidence_weight(prior, weighting)
    if conf is not None:
        weight = conf if weight is None else np.asarray(weight, dtype=np.float64) * conf
    if weight is None:
        return np.ones(system.unknown_index.size)
    wfull = np.asarray(weight, dtype=np.float64)
    if wfull.shape != (h, w):
        raise UserInputError(f"refine: weight shape {wfull.shape} does not match trimap {(h, w)}")
    if wfull.size and wfull.min() < 0:
        raise ParameterError.about("weight", f"min {wfull.min():.3g}", "must be >= 0 everywhere")
    return wfull.ravel()[system.unknown_index]


def _assemble(system, x_u: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = system.alpha_known.ravel().copy()
    out[system.unknown_index] = x_u
    return np.clip(out, 0.0, 1.0).reshape(shape).astype(np.float32)


def _solve_matrix_free(system, d: np.ndarray, prior_u: np.ndarray, tol: float, max_iter: int,
                       x0: Optional[np.ndarray] = None) -> np.ndarray:
    """PCG on a ``pcg.MatrixFreeSystem``: (L_UU + diag(d)) a = -L_UK a_K + d prior_u,
    warm-started from x0 (default prior_u: the generator's alpha blended with the other data
    terms' targets, i.e. with temporal fusion on, the warped previous frame's solution wherever
    that term is trusted). Returns (n_u,) float64 numpy."""
    from .pcg import solve_pcg

    res = solve_pcg(system.operator, d, prior_u, x0=prior_u if x0 is None else x0, rtol=tol, max_iter=max_iter)
    return res.x.double().cpu().numpy()


def closed_form_alpha(
    image: np.ndarray,
    trimap: np.ndarray,
    *,
    solver: str = RefineConfig.solver,
    radius: int = 1,
    eps: float = 1e-7,
    tol: float = 1e-7,
    max_iter: int = 10000,
    device: str = "cpu",
) -> np.ndarray:
    """Closed-form matting (Levin et al.): the refinement solve with no prior (mu = 0).

    image: (H, W, 3) float in [0, 1]; trimap: (H, W) float in [0, 1]. solver: a
    ``RefineConfig.solver`` choice (see ``solver_method``); CG starts from 0.5 in the unknown
    region. Returns (H, W) float32 in [0, 1]; known pixels exactly 0 / 1. Matches
    ``pymatting.estimate_alpha_cf`` (same Laplacian, same tolerance) up to solver round-off.
    """
    method = solver_method(solver, device)
    if method == "pcg":
        system = _matrix_free_builder(radius, eps, device)(image, trimap)
    else:
        system = matting_system(image, trimap, radius=radius, eps=eps)
    h, w = system.alpha_known.shape
    n_u = system.unknown_index.size
    if n_u == 0:
        return _assemble(system, np.zeros(0), (h, w))
    x0 = np.full(n_u, 0.5)
    if method == "pcg":
        return _assemble(system, _solve_matrix_free(system, np.zeros(n_u), x0, tol, max_iter, x0), (h, w))
    x = solve_assembled(system, None, x0, x0, tol, max_iter, method)
    return _assemble(system, x, (h, w))
