"""The inverse of symmetric 3x3 matrices (the windows' colour covariances), by the adjugate: one
formula for the assembled system (numpy, ``laplacian``) and the matrix-free one (torch, ``pcg``)."""
from __future__ import annotations

from typing import TypeVar

import numpy as np

T = TypeVar("T")


def sym_inverse_3x3(a00: T, a01: T, a02: T, a11: T, a12: T, a22: T) -> tuple[T, T, T, T, T, T]:
    """The six distinct entries (00, 01, 02, 11, 12, 22) of the inverse of the symmetric matrices
    whose entries are given, element by element: numpy arrays or torch tensors of one shape.
    The matrices must be invertible (positive definite, as a covariance plus eps I is)."""
    c00 = a11 * a22 - a12 * a12
    c01 = a02 * a12 - a01 * a22
    c02 = a01 * a12 - a02 * a11
    c11 = a00 * a22 - a02 * a02
    c12 = a01 * a02 - a00 * a12
    c22 = a00 * a11 - a01 * a01
    det = a00 * c00 + a01 * c01 + a02 * c02
    return c00 / det, c01 / det, c02 / det, c11 / det, c12 / det, c22 / det


def inverse_3x3(a: np.ndarray) -> np.ndarray:
    """Batched inverse of symmetric positive-definite (N, 3, 3) matrices -> (N, 3, 3)
    (:func:`sym_inverse_3x3` on their entries)."""
    c00, c01, c02, c11, c12, c22 = sym_inverse_3x3(a[:, 0, 0], a[:, 0, 1], a[:, 0, 2], a[:, 1, 1], a[:, 1, 2],
                                                   a[:, 2, 2])
    inv = np.empty_like(a)
    inv[:, 0, 0] = c00
    inv[:, 0, 1] = inv[:, 1, 0] = c01
    inv[:, 0, 2] = inv[:, 2, 0] = c02
    inv[:, 1, 1] = c11
    inv[:, 1, 2] = inv[:, 2, 1] = c12
    inv[:, 2, 2] = c22
    return inv


__all__ = ["inverse_3x3", "sym_inverse_3x3"]
