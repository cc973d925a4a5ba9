"""AlphaGAN networks (generator, discriminator), their registry and checkpoint IO.

Example:
    >>> from alphagan_video.model import build_generator
    >>> generator = build_generator("tiny").eval()
"""
from __future__ import annotations

from alphagan_video.model.checkpoint import DEFAULT_WEIGHTS_PATH, GeneratorMeta, load_generator, save_generator
from alphagan_video.model.discriminator import PatchDiscriminator, build_discriminator
from alphagan_video.model.generator import (
    GENERATOR_VARIANTS,
    AlphaGANGenerator,
    GeneratorSpec,
    build_generator,
)

__all__ = [
    "AlphaGANGenerator",
    "DEFAULT_WEIGHTS_PATH",
    "GENERATOR_VARIANTS",
    "GeneratorMeta",
    "GeneratorSpec",
    "PatchDiscriminator",
    "build_discriminator",
    "build_generator",
    "load_generator",
    "save_generator",
]
