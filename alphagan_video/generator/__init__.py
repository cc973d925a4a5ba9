"""The AlphaGAN generator as a method: RGB + trimap -> alpha.

* ``prepare``: a loaded generator made ready for a device (``prepare_generator``);
* ``tiling``: inference on whole frames or on tiles covering the trimap's unknown band
  (``infer_alpha``);
* ``scale``: inference at a reduced working scale, when the alpha is only the refine's prior
  (``infer_alpha_at_scale``).

The network itself (architecture, checkpoints, registry) lives in ``alphagan_video.model``.
"""
from .prepare import compile_model, prepare_generator

__all__ = ["compile_model", "prepare_generator"]
