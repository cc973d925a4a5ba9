"""AlphaGAN networks (generator, discriminator), their registry and checkpoint IO.

Example:
    >>> from alphagan_video.model import build_generator
    >>> generator = build_generator("tiny").eval()

The names below are imported on first use (PEP 562), so that ``alphagan_video.model.registry``
(the variants and the shipped weights' path, what the CLI needs before any work starts) can be
imported without torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name -> the submodule that defines it.
_EXPORTS = {
    "AlphaGANGenerator": "generator",
    "DEFAULT_WEIGHTS_PATH": "registry",
    "GENERATOR_VARIANTS": "registry",
    "GeneratorMeta": "checkpoint",
    "GeneratorSpec": "registry",
    "PatchDiscriminator": "discriminator",
    "build_discriminator": "discriminator",
    "build_generator": "generator",
    "load_generator": "checkpoint",
    "save_generator": "checkpoint",
}

if TYPE_CHECKING:
    from alphagan_video.model.checkpoint import GeneratorMeta, load_generator, save_generator
    from alphagan_video.model.discriminator import PatchDiscriminator, build_discriminator
    from alphagan_video.model.generator import AlphaGANGenerator, build_generator
    from alphagan_video.model.registry import DEFAULT_WEIGHTS_PATH, GENERATOR_VARIANTS, GeneratorSpec


#: Submodules reachable as attributes of the package (``alphagan_video.model.checkpoint``).
_SUBMODULES = ("checkpoint", "discriminator", "efficientnet", "generator", "registry")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))


__all__ = sorted(_EXPORTS)
