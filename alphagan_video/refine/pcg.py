"""Matrix-free matting-Laplacian solve: preconditioned conjugate gradients in torch (CPU or CUDA).

Solves the same system as the assembled solve (``refine.sparse``),

    (L_UU + diag(d)) a_U = -L_UK a_K + d * prior_U,

without assembling L. L is the closed-form matting Laplacian (Levin et al. 2008) with
pymatting's ``cf_laplacian`` conventions, exactly as ``refine.laplacian.matting_system`` builds it:
windows of radius r (n = (2r+1)^2 pixels) whose centres lie at least r px inside the image,
covariance regularised by eps / n. For one window k with colour mean mu_k and regularised
covariance Delta_k = Sigma_k + eps/n I,

    (L p)_i = sum_{k containing i} [ p_i - pbar_k - (I_i - mu_k)^T a_k ],
    a_k = Delta_k^-1 ( mean_k(I p) - mu_k pbar_k ),   pbar_k = mean_k(p),

so one product L p is: box means of p and I p over windows, a 3x3 product per window, and box
sums of a_k and b_k = pbar_k - a_k^T mu_k back over pixels (He, Sun, Tang, "Fast matting using
large kernel matting Laplacian matrices", CVPR 2010). The box sums use running sums for large
windows, so the cost per pixel does not depend on the window size.

Only rows of unknown pixels are needed, so the work is restricted to the square tiles (``tile``
px) that contain unknown pixels, each with a halo of 2r px (the pixels whose windows reach the
tile). Window statistics (mu_k, Delta_k^-1, the validity of each centre) and the diagonal of L
are computed once per operator in float64, then cast to the working dtype; the per-iteration
work runs in that dtype (float64 for exactness, float32 on a GPU).

The preconditioner is Jacobi, diag(L) + d, with diag(L) from box sums too:
L_ii = sum_k [1 - (1 + (I_i - mu_k)^T Delta_k^-1 (I_i - mu_k)) / n].
CG is warm-started (the caller's prior, e.g. the generator's alpha) and stops on the relative
residual |b - A x| / |b| <= rtol. ``DEFAULT_RTOL`` comes from synthetic composites (see there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch

from alphagan_video.errors import ParameterError, UserInputError

from .inverse import sym_inverse_3x3
from .priors import check_window

__all__ = [
    "MattingOperator", "MatrixFreeSystem", "matrix_free_system", "PCGResult", "pcg", "solve_pcg",
    "DEFAULT_RTOL", "DEFAULT_TILE",
]

# Tile side in px: halos add (1 + 4r/tile)^2 of work (1.13x at r = 1), smaller tiles follow a
# thin band more closely. 32 px keeps both small for hair-like bands.
DEFAULT_TILE = 32
# Relative residual at which PCG stops. Chosen on synthetic composites, not the dev photos
# (bench/refine_solvers.py section 1: 6 composites of the training generator, 8-bit, the
# product's data terms and the generator's alpha as prior): worst mean |pcg - direct| over the
# band 4.8e-4 / 1.4e-4 / 7.2e-5 / 5.5e-5 at 1e-4 / 3e-5 / 1e-5 / 3e-6, so 1e-5 keeps a >= 10x
# margin under the 1e-3 target (the pcg solve's agreement with the direct one) and tighter buys little (the direct solve's own
# mixed-precision residual is 1e-7). Confirmed afterwards on alphamatting-dev: mean 6.5e-5,
# worst photo 1.6e-4, SAD unchanged to 3 decimals.
DEFAULT_RTOL = 1e-5
# Iteration cap: a matte after this many steps is still usable (raising would lose a frame).
DEFAULT_MAX_ITER = 2000
# float32 recursion drifts from the true residual; it is recomputed (b - A x) this often.
_REPLACE_EVERY = 50

ArrayLike = Union[np.ndarray, torch.Tensor]


def _box_valid(x: torch.Tensor, r: int) -> torch.Tensor:
    """Sums over (2r+1)^2 windows with no padding along the last two dims:
    (..., H, W) -> (..., H - 2r, W - 2r). Short windows add shifted slices; longer ones use
    running sums (cost independent of r)."""
    k = 2 * r + 1
    for dim in (-1, -2):
        length = x.shape[dim] - 2 * r
        if k <= 7:
            y = x.narrow(dim, 0, length).clone()
            for j in range(1, k):
                y += x.narrow(dim, j, length)
        else:
            cs = torch.cumsum(x, dim=dim)
            first = cs.narrow(dim, k - 1, 1)
            y = torch.cat([first, cs.narrow(dim, k, length - 1) - cs.narrow(dim, 0, length - 1)], dim=dim)
        x = y
    return x


def _sym_matvec(m: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(T, 6, h, w) symmetric 3x3 times (T, 3, h, w) vectors -> (T, 3, h, w)."""
    m00, m01, m02, m11, m12, m22 = m.unbind(1)
    v0, v1, v2 = v.unbind(1)
    return torch.stack([m00 * v0 + m01 * v1 + m02 * v2,
                        m01 * v0 + m11 * v1 + m12 * v2,
                        m02 * v0 + m12 * v1 + m22 * v2], 1)


class MattingOperator:
    """The matting Laplacian of one image restricted to its unknown pixels, matrix-free.

    image: (H, W, 3) float in [0, 1] (numpy or torch); unknown: (H, W) bool;
    alpha_known: (H, W) float, the known part of the solution (1 on foreground, 0 elsewhere;
    its values on unknown pixels are ignored). radius, eps: as ``refine.laplacian.matting_system``.
    tile: tile side in px. device / dtype: where and in what the products run.

    Attributes: n (number of unknowns); unknown_index (n,) int64 numpy, row-major flat indices
    of the unknown pixels (the order of ``refine.laplacian.matting_system``); diagonal (n,) of L_UU and
    rhs_known (n,) = -L_UK a_K, both torch on ``device`` in ``dtype``.
    ``matvec(x)``: (n,) -> (n,), L_UU x.
    """

    def __init__(
        self, image: ArrayLike, unknown: ArrayLike, alpha_known: ArrayLike, *, radius: int = 1,
        eps: float = 1e-7, tile: int = DEFAULT_TILE, device: Union[str, torch.device] = "cpu",
        dtype: torch.dtype = torch.float64,
    ):
        check_window(radius, eps)
        if not isinstance(tile, (int, np.integer)) or tile < 1:
            raise ParameterError.about("tile", repr(tile), "must be an integer >= 1 px")
        if dtype not in (torch.float32, torch.float64):
            raise ParameterError.about("dtype", repr(dtype), "must be torch.float32 or torch.float64")
        self.device = torch.device(device)
        self.dtype = dtype
        self.radius = int(radius)
        s = int(tile)
        img = torch.as_tensor(image).to(self.device, torch.float64)
        unk = torch.as_tensor(unknown).to(self.device, torch.bool)
        known = torch.as_tensor(alpha_known).to(self.device, torch.float64)
        if img.ndim != 3 or img.shape[2] != 3 or unk.shape != img.shape[:2] or known.shape != img.shape[:2]:
            raise UserInputError(
                f"refine: image (H, W, 3), unknown (H, W) and alpha_known (H, W) expected, got "
                f"{tuple(img.shape)}, {tuple(unk.shape)}, {tuple(known.shape)}"
            )
        h, w = unk.shape
        self.shape = (h, w)
        self.unknown_index = np.flatnonzero(unk.cpu().numpy().ravel())
        self.n = n_u = int(self.unknown_index.size)
        if n_u == 0:
            self.diagonal = torch.zeros(0, device=self.device, dtype=dtype)
            self.rhs_known = torch.zeros(0, device=self.device, dtype=dtype)
            return
        canvas_img, canvas_known, valid = self._layout(img, known, s)
        self._window_statistics(canvas_img, valid, eps, s)
        self._known_canvas = canvas_known.to(dtype)
        self._known_canvas.view(-1)[self._canvas_pos] = 0.0
        self.rhs_known = -self._apply(self._known_canvas)

    def _layout(self, img: torch.Tensor, known: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Lay the band's tiles (side ``s``) on a canvas: sets the gather/scatter indices and
        returns (canvas image (3, hc, wc), canvas known alpha (hc, wc), valid centres (hc, wc)),
        float64 / bool on the operator's device."""
        r = self.radius
        h, w = self.shape
        uy_np, ux_np = np.divmod(self.unknown_index, w)
        y0, x0 = int(uy_np.min()), int(ux_np.min())
        ny = (int(uy_np.max()) - y0) // s + 1
        nx = (int(ux_np.max()) - x0) // s + 1
        halo = 2 * r
        size = s + 2 * halo
        # Canvas: the tile grid over the band's bounding box plus the halo, in global pixels
        # (oy, ox) .. (oy + hc, ox + wc); outside the image it holds zeros and no valid centre.
        oy, ox = y0 - halo, x0 - halo
        hc, wc = ny * s + 2 * halo, nx * s + 2 * halo
        gy0, gx0 = max(oy, 0), max(ox, 0)
        gy1, gx1 = min(oy + hc, h), min(ox + wc, w)
        canvas_img = torch.zeros(3, hc, wc, device=self.device, dtype=torch.float64)
        canvas_img[:, gy0 - oy : gy1 - oy, gx0 - ox : gx1 - ox] = img[gy0:gy1, gx0:gx1].permute(2, 0, 1)
        canvas_known = torch.zeros(hc, wc, device=self.device, dtype=torch.float64)
        canvas_known[gy0 - oy : gy1 - oy, gx0 - ox : gx1 - ox] = known[gy0:gy1, gx0:gx1]
        ys = torch.arange(hc, device=self.device) + oy
        xs = torch.arange(wc, device=self.device) + ox
        valid = ((ys >= r) & (ys < h - r))[:, None] & ((xs >= r) & (xs < w - r))[None, :]

        # Tiles holding unknown pixels, and each unknown pixel's slot in the tiles' interiors.
        ty_np, tx_np = (uy_np - y0) // s, (ux_np - x0) // s
        tile_id_of_cell = np.full(ny * nx, -1, dtype=np.int64)
        cells = np.unique(ty_np * nx + tx_np)
        tile_id_of_cell[cells] = np.arange(cells.size)
        tid = tile_id_of_cell[ty_np * nx + tx_np]
        self.n_tiles = t_count = int(cells.size)
        self.tile_pixels = t_count * s * s
        slot = tid * (s * s) + ((uy_np - y0) % s) * s + (ux_np - x0) % s
        self._out_slot = torch.as_tensor(slot, device=self.device)
        self._canvas_pos = torch.as_tensor((uy_np - oy) * wc + (ux_np - ox), device=self.device)
        cy, cx = np.divmod(cells, nx)
        base = torch.as_tensor(cy * s * wc + cx * s, device=self.device)
        local = (torch.arange(size, device=self.device)[:, None] * wc + torch.arange(size, device=self.device)[None, :])
        self._gather = base[:, None, None] + local[None]  # (T, S, S) canvas indices of each halo tile
        self._hw_canvas = (hc, wc)
        return canvas_img, canvas_known, valid

    def _window_statistics(self, canvas_img: torch.Tensor, valid: torch.Tensor, eps: float, s: int) -> None:
        """Window statistics on the tiles' centre grids, in float64, cast to the working dtype:
        colour means, regularised inverse covariances, valid-window counts and diag(L_UU)."""
        r, dtype = self.radius, self.dtype
        halo = 2 * r
        size = s + 2 * halo
        i_tiles = canvas_img.reshape(3, -1)[:, self._gather].permute(1, 0, 2, 3)  # (T, 3, S, S)
        v_tiles = valid.reshape(-1)[self._gather][:, None, r : size - r, r : size - r].to(torch.float64)
        # Centre each tile's colours on its mean: L does not change, the float32 products lose less.
        offset = i_tiles.mean(dim=(2, 3), keepdim=True)
        i_tiles = i_tiles - offset
        n_win = float((2 * r + 1) ** 2)
        mean = _box_valid(i_tiles, r) / n_win  # (T, 3, S-2r, S-2r)
        prods = torch.stack([i_tiles[:, a] * i_tiles[:, b] for a, b in _PAIRS], 1)
        cov = _box_valid(prods, r) / n_win - torch.stack([mean[:, a] * mean[:, b] for a, b in _PAIRS], 1)
        cov[:, [0, 3, 5]] += eps / n_win
        # (T, 6, h, w): the six entries of each symmetric inverse; zero at invalid centres (no contribution)
        dinv = torch.stack(sym_inverse_3x3(*cov.unbind(1)), 1) * v_tiles
        inner = i_tiles[:, :, halo : size - halo, halo : size - halo]  # (T, 3, s, s)
        count = _box_valid(v_tiles, r)  # (T, 1, s, s) number of valid windows covering a pixel
        # diag L_ii = count (1 - 1/n) - (1/n) sum_k (I_i - mu_k)^T Dinv_k (I_i - mu_k), expanded.
        s2 = _box_valid(dinv, r)
        dmu = _sym_matvec(dinv, mean)
        s1 = _box_valid(dmu, r)
        s0 = _box_valid((dmu * mean).sum(1, keepdim=True), r)
        quad = (inner * _sym_matvec(s2, inner)).sum(1, keepdim=True) - 2 * (inner * s1).sum(1, keepdim=True) + s0
        diag_tiles = count * (1.0 - 1.0 / n_win) - quad / n_win
        self._n_win = n_win
        self._image = i_tiles.to(dtype)
        self._inner = inner.to(dtype)
        self._mean = mean.to(dtype)
        self._dinv = dinv.to(dtype)
        self._valid = v_tiles.to(dtype)
        self._count = count.to(dtype)
        self.diagonal = diag_tiles.reshape(-1)[self._out_slot].to(dtype)

    def _apply(self, canvas: torch.Tensor) -> torch.Tensor:
        """(L z)_U for the canvas image z ((hc, wc), in the working dtype)."""
        r, n_win = self.radius, self._n_win
        p = canvas.reshape(-1)[self._gather][:, None]  # (T, 1, S, S)
        means = _box_valid(torch.cat([p, self._image * p], 1), r) / n_win  # (T, 4, S-2r, S-2r)
        pbar = means[:, :1]
        a = _sym_matvec(self._dinv, means[:, 1:] - self._mean * pbar)
        b = self._valid * pbar - (a * self._mean).sum(1, keepdim=True)
        sums = _box_valid(torch.cat([a, b], 1), r)  # (T, 4, s, s)
        size = p.shape[-1]
        halo = 2 * r
        p_in = p[:, :, halo : size - halo, halo : size - halo]
        out = self._count * p_in - (sums[:, :3] * self._inner).sum(1, keepdim=True) - sums[:, 3:]
        return out.reshape(-1)[self._out_slot]

    def matvec(self, x: torch.Tensor) -> torch.Tensor:
        """L_UU x: x (n,) on the operator's device/dtype -> (n,)."""
        if self.n == 0:
            return x.clone()
        canvas = torch.zeros(self._hw_canvas, device=self.device, dtype=self.dtype)
        canvas.view(-1)[self._canvas_pos] = x
        return self._apply(canvas)


_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


@dataclass(frozen=True)
class MatrixFreeSystem:
    """The matrix-free counterpart of ``refine.laplacian.MattingSystem`` (same unknown order).

    operator: the MattingOperator (L_UU products, diag(L_UU), rhs_known = -L_UK a_K).
    unknown_index: (n_u,) int64 numpy flat indices (row-major) of the unknown pixels.
    alpha_known: (H, W) float64 numpy, 1 on fg, 0 elsewhere.
    """

    operator: MattingOperator
    unknown_index: np.ndarray
    alpha_known: np.ndarray


def matrix_free_system(
    image: np.ndarray, fg: np.ndarray, unknown: np.ndarray, *, radius: int = 1, eps: float = 1e-7,
    device: Union[str, torch.device] = "cpu", dtype: Optional[torch.dtype] = None,
) -> MatrixFreeSystem:
    """image: (H, W, 3) float in [0, 1]; fg, unknown: (H, W) bool (``refine.priors.trimap_regions``).
    dtype None = ``default_dtype(device)``."""
    alpha_known = np.asarray(fg, dtype=np.float64)
    op = MattingOperator(image, unknown, alpha_known, radius=radius, eps=eps, device=device,
                         dtype=default_dtype(device) if dtype is None else dtype)
    return MatrixFreeSystem(op, op.unknown_index, alpha_known)


@dataclass(frozen=True)
class PCGResult:
    """x: (n,) solution (torch, the operator's dtype); iterations: CG steps taken;
    relative_residual: |b - A x| / |b| at exit (the recursion's estimate); converged: it reached rtol."""

    x: torch.Tensor
    iterations: int
    relative_residual: float
    converged: bool


def pcg(
    matvec, b: torch.Tensor, x0: torch.Tensor, inv_diag: torch.Tensor, *, rtol: float = DEFAULT_RTOL,
    max_iter: int = DEFAULT_MAX_ITER, check_every: int = 1,
) -> PCGResult:
    """Jacobi-preconditioned conjugate gradients for an SPD A given by ``matvec`` ((n,) -> (n,)).

    b, x0, inv_diag: (n,) tensors of one dtype/device (inv_diag = 1 / diag(A)). Stops when
    |r| <= rtol |b| (checked every ``check_every`` steps, to save device syncs on CUDA) or after
    ``max_iter`` steps (the last iterate is returned, converged False). The residual is
    recomputed from b - A x every ``_REPLACE_EVERY`` steps so float32 round-off does not let the
    recursion claim a residual the iterate does not have.
    """
    bnorm = float(torch.linalg.vector_norm(b))
    if bnorm == 0.0:
        return PCGResult(torch.zeros_like(b), 0, 0.0, True)
    x = x0.clone()
    r = b - matvec(x)
    z = inv_diag * r
    p = z.clone()
    rz = torch.dot(r, z)
    stop = rtol * bnorm
    k = 0
    rnorm = float(torch.linalg.vector_norm(r))
    while rnorm > stop and k < max_iter:
        ap = matvec(p)
        step = rz / torch.dot(p, ap)
        x += step * p
        k += 1
        if k % _REPLACE_EVERY == 0:
            r = b - matvec(x)
        else:
            r -= step * ap
        z = inv_diag * r
        rz_new = torch.dot(r, z)
        p = z + (rz_new / rz) * p
        rz = rz_new
        if k % check_every == 0 or k >= max_iter:
            rnorm = float(torch.linalg.vector_norm(r))
    return PCGResult(x, k, rnorm / bnorm, rnorm <= stop)


def solve_pcg(
    operator: MattingOperator, data_weight: ArrayLike, data_target: ArrayLike, x0: Optional[ArrayLike] = None,
    *, rtol: float = DEFAULT_RTOL, max_iter: int = DEFAULT_MAX_ITER,
) -> PCGResult:
    """Solve (L_UU + diag(d)) a = -L_UK a_K + d * target over the operator's unknown pixels.

    data_weight d: (n,) float >= 0 (or a scalar); data_target: (n,) float in [0, 1] (the prior);
    x0: (n,) warm start (default: data_target). All in the operator's unknown order; numpy or
    torch. Returns a PCGResult whose x is (n,) on the operator's device, not clipped.
    """
    dev, dt, n = operator.device, operator.dtype, operator.n
    d = torch.as_tensor(data_weight, device=dev, dtype=torch.float64).to(dt).expand(n).contiguous()
    target = torch.as_tensor(data_target, device=dev, dtype=torch.float64).to(dt)
    if target.shape != (n,):
        raise UserInputError(f"refine: data_target must have shape ({n},), got {tuple(target.shape)}")
    if n == 0:
        return PCGResult(target.clone(), 0, 0.0, True)
    start = target if x0 is None else torch.as_tensor(x0, device=dev, dtype=torch.float64).to(dt)
    b = operator.rhs_known + d * target
    diag = operator.diagonal + d
    inv_diag = torch.where(diag > 0, 1.0 / diag, torch.ones_like(diag))

    def matvec(x: torch.Tensor) -> torch.Tensor:
        return operator.matvec(x) + d * x

    check = 1 if dev.type == "cpu" else 10
    return pcg(matvec, b, start, inv_diag, rtol=rtol, max_iter=max_iter, check_every=check)


def default_dtype(device: Union[str, torch.device]) -> torch.dtype:
    """float64 on every device. float32 products lose too much to cancellation in near-flat
    windows (Delta_k^-1 up to n / eps = 9e7): with the product's weak prior (smallest
    eigenvalue ~ RefineConfig.mu = 3e-5 against |L| ~ 9) PCG stagnates or diverges on the dev photos
    (bench/refine_solvers.py prints the float32 column). With a video frame's temporal term it
    converges, but 1.1e-3 - 4.4e-3 max off the direct solve at DEFAULT_RTOL, over the 1e-3 target
    (``bench/refine_solvers.py --profile``)."""
    return torch.float64

