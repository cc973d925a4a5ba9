"""The AlphaGAN seed's random training trimap (OpenCV, per sample in the data loader)."""
from __future__ import annotations

import numpy as np

from alphagan_video.errors import UserInputError

#: Ranges of the random training trimap (AlphaGAN seed): kernel size in [2, 4], iterations in [5, 14].
RANDOM_KERNEL_SIZES = (2, 3, 4)
RANDOM_ITERATIONS = (5, 14)


def sample_random_trimap_params(rng: np.random.Generator) -> tuple[int, int]:
    """Draw (kernel_size in 2..4, iterations in 5..14) for :func:`random_trimap` from ``rng``."""
    if not isinstance(rng, np.random.Generator):
        raise UserInputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    kernel_size = int(rng.integers(RANDOM_KERNEL_SIZES[0], RANDOM_KERNEL_SIZES[-1] + 1))
    iterations = int(rng.integers(RANDOM_ITERATIONS[0], RANDOM_ITERATIONS[1] + 1))
    return kernel_size, iterations


def random_trimap(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The AlphaGAN seed's training trimap, with the randomness made explicit.

    Foreground = alpha >= 254/255 (after rounding to 8 bits), eroded; anything with alpha >=
    1/255, dilated, is not background; the rest of the dilated region is unknown. Kernel: OpenCV
    ellipse of size ``k`` in 2..4, applied ``n`` times, n in 5..14, both drawn from ``rng`` by
    :func:`sample_random_trimap_params` (same rng state -> same trimap). CPU/OpenCV: it runs per
    sample in the data loader.

    Args:
        alpha: (H, W) float in [0, 1].
        rng: numpy Generator; two draws are consumed.

    Returns:
        (H, W) uint8 in {0, 128, 255}.
    """
    import cv2

    if not isinstance(alpha, np.ndarray) or alpha.ndim != 2 or not np.issubdtype(alpha.dtype, np.floating):
        got = f"{alpha.dtype} {alpha.shape}" if isinstance(alpha, np.ndarray) else type(alpha).__name__
        raise UserInputError(f"random_trimap: alpha expected a float (H,W) array in [0, 1], got {got}")
    kernel_size, iterations = sample_random_trimap_params(rng)
    alpha8 = np.rint(np.clip(alpha, 0.0, 1.0) * 255.0)
    fg = (alpha8 >= 254).astype(np.uint8)
    nonzero = (alpha8 >= 1).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel_size, kernel_size))
    dilated = cv2.dilate(nonzero, kernel, iterations=iterations)
    eroded = cv2.erode(fg, kernel, iterations=iterations)
    trimap = np.full(alpha.shape, 128, dtype=np.uint8)
    trimap[eroded > 0] = 255
    trimap[dilated == 0] = 0
    return trimap


__all__ = ["RANDOM_ITERATIONS", "RANDOM_KERNEL_SIZES", "random_trimap", "sample_random_trimap_params"]
