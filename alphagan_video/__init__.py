"""alphagan-video: video matting with the AlphaGAN generator, streamed into ProRes 4444 with alpha."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
