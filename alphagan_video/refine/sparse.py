"""Solvers of the assembled system (L_UU + diag(d)) a_U = -L_UK a_K + d * target.

The system is symmetric positive (semi-)definite. Up to ``DIRECT_MAX_UNKNOWNS`` unknowns it is
solved exactly by a sparse LU with symmetric minimum-degree ordering and no pivoting (i.e. a
Cholesky; faster than pymatting's incomplete-Cholesky PCG on 800-px photos); with a data term
(d given) the factorisation is done in float32 and float64 accuracy restored by iterative
refinement (1.3x faster). Larger systems, and the ``"cg"`` method, use Jacobi-preconditioned
conjugate gradients warm-started from the prior. The matrix-free alternative is ``pcg``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from .laplacian import MattingSystem

# Systems up to this many unknowns are solved directly (sparse LU, ~170 fill entries per
# unknown measured on alphamatting photos, i.e. ~0.6 GB at 300k); larger ones use PCG.
DIRECT_MAX_UNKNOWNS = 300_000


def _jacobi(A: sp.csr_matrix) -> spla.LinearOperator:
    d = A.diagonal()
    d = np.where(d > 0, d, 1.0)
    return spla.LinearOperator(A.shape, matvec=lambda x: x / d, dtype=np.float64)


# Mixed-precision direct solve: float64 residual of the float32 solution must fall below this
# fraction of |b| within _REFINE_STEPS corrections, else the float64 factorisation is used.
_MIXED_RTOL = 1e-7
_REFINE_STEPS = 4


def _splu(A: sp.spmatrix) -> "spla.SuperLU":
    # Sparse LU of an SPD matrix with a symmetric minimum-degree ordering and no pivoting is a
    # Cholesky in disguise: on the 800-px alphamatting photos it factors 40k-140k unknowns in
    # 0.2-1.2 s, faster than incomplete-Cholesky PCG, and is exact. ILU preconditioners (spilu)
    # were tried and are not robust here (CG diverged on GT13). Raises RuntimeError if singular.
    return spla.splu(A.tocsc(), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})


class DirectSolver:
    """A sparse SPD system A (n, n) float64 factorised once and solved for any right-hand side.

    mixed=True (only with a prior, whose diagonal keeps float32 pivots away from zero) factors
    A in float32 (1.3-1.4x faster than float64 on 40k-140k unknowns, measured) and recovers
    float64 accuracy by iterative refinement, x += LU32^-1 (b - A x); when that does not
    converge the float64 factorisation is made (once) and used. Construction raises
    RuntimeError when A cannot be factorised at all.
    """

    def __init__(self, A: sp.csr_matrix, mixed: bool):
        self.A = A
        self._lu32 = None
        self._lu64 = None
        if mixed:
            try:
                self._lu32 = _splu(A.astype(np.float32))
            except RuntimeError:
                self._lu32 = None
        if self._lu32 is None:
            self._lu64 = _splu(A)

    def _mixed(self, b: np.ndarray) -> Optional[np.ndarray]:
        bnorm = float(np.linalg.norm(b)) or 1.0
        x = self._lu32.solve(b.astype(np.float32)).astype(np.float64)
        for step in range(_REFINE_STEPS + 1):
            if not np.all(np.isfinite(x)):
                return None
            r = b - self.A @ x
            if float(np.linalg.norm(r)) <= _MIXED_RTOL * bnorm:
                return x
            if step < _REFINE_STEPS:
                x += self._lu32.solve(r.astype(np.float32)).astype(np.float64)
        return None

    def preconditioner(self) -> spla.LinearOperator:
        """r -> A^-1 r from the cheapest factorisation held (float32 when there is one): an
        approximate inverse of any nearby SPD matrix, for preconditioned CG."""
        lu = self._lu32 if self._lu32 is not None else self._lu64
        dtype = np.float32 if lu is self._lu32 else np.float64

        def apply(r: np.ndarray) -> np.ndarray:
            return lu.solve(np.asarray(r, dtype=dtype)).astype(np.float64)

        return spla.LinearOperator(self.A.shape, matvec=apply, dtype=np.float64)

    def solve(self, b: np.ndarray) -> Optional[np.ndarray]:
        """x (n,) float64 with A x = b, or None when no finite solution was found."""
        if self._lu32 is not None:
            x = self._mixed(b)
            if x is not None:
                return x
            if self._lu64 is None:
                try:
                    self._lu64 = _splu(self.A)
                except RuntimeError:
                    return None
        x = self._lu64.solve(b)
        return x if np.all(np.isfinite(x)) else None


# A factorisation made for a nearby matrix (same Laplacian, another data-term diagonal, e.g. the
# temporal prior's per-pixel weights) preconditions CG instead of a new factorisation: 5-14
# iterations to the direct solve's residual on the alphamatting photos, 2-4x faster than
# factorising again (measured). Not converged within this many: factorise after all.
_PCG_MAX_ITER = 40
# Relative residual of that preconditioned CG. The accuracy target is 1e-3 max |alpha - exact|
# on the unknown pixels (1/4 of one 8-bit step, so the written matte moves by at most one code
# value). Measured on the 720p timing frame of ``bench/refine_solvers.py --profile`` (75k
# unknowns, the temporal term of a 3 px move) against a fresh float64 factorisation:
# rtol 1e-7 / 1e-6 / 1e-5: max error 3.7e-6 / 3.8e-5 / 4.8e-4 in 10 / 8 / 6 iterations from the
# warm start below. 1e-6 keeps a 25x margin under the target for two fewer triangular solves.
_PCG_RTOL = 1e-6


def solve_assembled(
    system: MattingSystem,
    d: Optional[np.ndarray],
    target: np.ndarray,
    x0: np.ndarray,
    tol: float,
    max_iter: int,
    method: str,
    factor: Optional[DirectSolver] = None,
    factor_diag: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Solve (L_UU + diag(d)) a = -L_UK a_K + d * target; d None = no data term (closed form).

    d, target, x0: (n_u,) float64 (x0: the warm start of both CG paths). method: ``"direct"`` (factorise up to
    ``DIRECT_MAX_UNKNOWNS`` unknowns, CG beyond) or ``"cg"``. tol / max_iter: CG's relative
    residual and iteration cap. factor: a DirectSolver of L_uu + diag(factor_diag), made in
    advance (``prepare_refine``). When d equals factor_diag only the triangular solves run here;
    otherwise it preconditions CG on the actual matrix (falling back to a new factorisation).
    Returns (n_u,) float64, not clipped."""
    A = system.L_uu
    b = system.rhs_known
    if d is not None:
        b = b + d * target
    diag = d if d is not None else np.zeros(A.shape[0])
    if factor is not None and factor_diag is not None and np.array_equal(diag, factor_diag):
        x = factor.solve(b)
        if x is not None:
            return x
    if d is not None:
        A = (A + sp.diags(d, format="csr")).tocsr()
    use_direct = method == "direct" and A.shape[0] <= DIRECT_MAX_UNKNOWNS
    if use_direct and factor is not None and np.all(np.isfinite(x0)):
        # Warm start: x0 is the caller's folded data-term target -- in a run with temporal
        # fusion the motion-compensated previous alpha wherever that term is trusted, the
        # generator's (and sampling flow's) alpha elsewhere. It starts closer than the
        # factorisation's own solve for the uniform diagonal (10 vs 13 iterations to rtol 1e-7,
        # 0.50 vs 0.80 s wall on the 720p frame above, loaded CPU) and costs no triangular solve.
        x, info = spla.cg(A, b, x0=x0, rtol=_PCG_RTOL, atol=0.0, maxiter=_PCG_MAX_ITER,
                          M=factor.preconditioner())
        if info == 0 and np.all(np.isfinite(x)):
            return x
    if use_direct:
        try:
            x = DirectSolver(A, mixed=d is not None).solve(b)
            if x is not None:
                return x
        except RuntimeError:
            # Exactly singular (an unknown region no window links to a known pixel, no data
            # term): CG below still returns a least-change solution from the warm start.
            pass
    # Jacobi-preconditioned CG warm-started from the prior: memory O(nnz), for bands too large
    # to factor. info > 0 (not converged within max_iter) still returns the last iterate; a
    # matte after max_iter steps is usable, raising would lose a frame.
    x, _info = spla.cg(A, b, x0=x0, rtol=tol, atol=0.0, maxiter=max_iter, M=_jacobi(A))
    return x
