"""The trimap convention and its conversions.

Inside the package a trimap is a (B, 1, H, W) float tensor with values exactly 0 (background),
0.5 (unknown) and 1 (foreground). On disk / in the matting metrics it is uint8 0 / 128 / 255
(:func:`trimap_to_uint8`, :func:`trimap_from_uint8`). :func:`clamp_known` forces an alpha to the
trimap's known regions.
"""
from __future__ import annotations

from typing import TypeVar, Union

import numpy as np
import torch

from alphagan_video.errors import UserInputError

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


def _check_b1hw(func: str, name: str, t: object) -> None:
    if not isinstance(t, torch.Tensor):
        raise UserInputError(f"{func}: {name} expected a torch.Tensor (B,1,H,W), got {type(t).__name__}")
    if t.ndim != 4 or t.shape[1] != 1:
        raise UserInputError(f"{func}: {name} expected (B,1,H,W), got {tuple(t.shape)}")


def clamp_known(alpha: ArrayOrTensor, trimap: ArrayOrTensor) -> ArrayOrTensor:
    """Force known trimap regions: 0 where trimap == 0, 1 where trimap == 1, alpha elsewhere.

    Args:
        alpha: (B, 1, H, W) float tensor (or numpy array of any shape) in [0, 1].
        trimap: same shape and type, values exactly {0, 0.5, 1}.

    Returns:
        A new tensor/array like ``alpha``.
    """
    if isinstance(alpha, torch.Tensor) and isinstance(trimap, torch.Tensor):
        if alpha.shape != trimap.shape:
            raise UserInputError(
                f"clamp_known: alpha {tuple(alpha.shape)} and trimap {tuple(trimap.shape)} must have the same shape"
            )
        trimap = trimap.to(alpha.device)
        out = alpha.clone()
        out[trimap == 0] = 0
        out[trimap == 1] = 1
        return out
    if isinstance(alpha, np.ndarray) and isinstance(trimap, np.ndarray):
        if alpha.shape != trimap.shape:
            raise UserInputError(
                f"clamp_known: alpha {alpha.shape} and trimap {trimap.shape} must have the same shape"
            )
        out_np = alpha.copy()
        out_np[trimap == 0] = 0
        out_np[trimap == 1] = 1
        return out_np
    raise UserInputError(
        "clamp_known: alpha and trimap must both be torch tensors or both numpy arrays, got "
        f"{type(alpha).__name__} and {type(trimap).__name__}"
    )


def trimap_from_uint8(trimap: np.ndarray) -> np.ndarray:
    """Convert a user trimap image to the float convention.

    Values <= 10 % of the dtype's maximum become 0, values >= 90 % become 1, the rest 0.5
    (uint8: <= 25 -> 0, >= 230 -> 1; uint16: <= 6553 -> 0, >= 58982 -> 1), so JPEG noise or a
    grey of 127/128/129 all read as intended.

    Args:
        trimap: (H, W), (H, W, 1), or (H, W, 3|4) uint8 or uint16 (colour: the mean of RGB).

    Returns:
        (H, W) float32 in {0, 0.5, 1}.
    """
    if not isinstance(trimap, np.ndarray) or trimap.dtype not in (np.uint8, np.uint16):
        got = trimap.dtype if isinstance(trimap, np.ndarray) else type(trimap).__name__
        raise UserInputError(f"trimap_from_uint8: expected a uint8 or uint16 array, got {got}")
    if trimap.ndim == 3 and trimap.shape[2] in (1, 3, 4):
        values = trimap[..., :3].astype(np.float32).mean(axis=2) if trimap.shape[2] >= 3 else trimap[..., 0]
    elif trimap.ndim == 2:
        values = trimap
    else:
        raise UserInputError(f"trimap_from_uint8: expected (H,W) or (H,W,1|3|4), got {trimap.shape}")
    top = float(np.iinfo(trimap.dtype).max)
    values = np.asarray(values, dtype=np.float32)
    out = np.full(values.shape, 0.5, dtype=np.float32)
    out[values <= 0.1 * top] = 0.0
    out[values >= 0.9 * top] = 1.0
    return out


def trimap_to_uint8(trimap: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """Float trimap {0, 0.5, 1} (numpy or tensor, any shape) -> numpy uint8 {0, 128, 255}, same shape.

    Values < 0.25 map to 0, > 0.75 to 255, the rest to 128.
    """
    if isinstance(trimap, torch.Tensor):
        values = trimap.detach().to("cpu", torch.float32).numpy()
    elif isinstance(trimap, np.ndarray):
        values = trimap.astype(np.float32, copy=False)
    else:
        raise UserInputError(f"trimap_to_uint8: expected a numpy array or torch tensor, got {type(trimap).__name__}")
    out = np.full(values.shape, 128, dtype=np.uint8)
    out[values < 0.25] = 0
    out[values > 0.75] = 255
    return out


__all__ = ["ArrayOrTensor", "clamp_known", "trimap_from_uint8", "trimap_to_uint8"]
