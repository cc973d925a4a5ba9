"""Trimaps: (B,1,H,W) float {0 background, 0.5 unknown, 1 foreground}.

One method per module:

* ``band``: the AlphaGAN band around a coarse mask's contour (``make_trimap``, ``default_band_px``);
* ``auto``: evidence trimaps (``auto_trimap``): the band, widened where the mask is unsure and
  where the local colours doubt its certainty;
* ``random_trimap``: the AlphaGAN seed's random training trimap;
* ``codes``: the convention, conversions from/to uint8 images and ``clamp_known``.
"""
from .auto import CONFIDENT, KEEP_ODDS, auto_trimap, auto_trimap_numpy, colour_posterior
from .band import BAND_FRACTION, MIN_BAND_PX, default_band_px, ellipse_kernel, make_trimap
from .codes import clamp_known, trimap_from_uint8, trimap_to_uint8
from .random_trimap import RANDOM_ITERATIONS, RANDOM_KERNEL_SIZES, random_trimap, sample_random_trimap_params

__all__ = [
    "BAND_FRACTION",
    "CONFIDENT",
    "KEEP_ODDS",
    "MIN_BAND_PX",
    "RANDOM_ITERATIONS",
    "RANDOM_KERNEL_SIZES",
    "auto_trimap",
    "auto_trimap_numpy",
    "clamp_known",
    "colour_posterior",
    "default_band_px",
    "ellipse_kernel",
    "make_trimap",
    "random_trimap",
    "sample_random_trimap_params",
    "trimap_from_uint8",
    "trimap_to_uint8",
]
