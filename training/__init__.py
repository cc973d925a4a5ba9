"""AlphaGAN training: synthetic foregrounds, DIM-style compositing, the AlphaGAN objective and
the training loop. Not installed with the ``alphagan_video`` wheel (``training`` is a generic
top-level name); run it from a source checkout: ``python -m training --config ...``."""
from __future__ import annotations
