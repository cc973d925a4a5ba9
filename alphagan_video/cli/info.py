"""``alphagan-video info``: versions, devices, encoders and the model weights in use, without
importing torch or the model."""
from __future__ import annotations

import struct
import sys

import click

from alphagan_video import __version__
from alphagan_video._files import safetensors_header, sha256_file
from alphagan_video.cli.group import main
from alphagan_video.device import describe_torch
from alphagan_video.model.registry import DEFAULT_WEIGHTS_PATH


@main.command("info")
def info_command() -> None:
    """Print versions, devices, encoders and the model weights in use."""
    for line in collect_info():
        click.echo(line)


def collect_info() -> list[str]:
    """The ``info`` lines. Lazy: torch and the model are not imported (torch's version comes from
    its package files, CUDA from the driver: ``device.describe_torch``; the weights from the
    safetensors header), so ``info`` answers in about a second."""
    import av

    torch_version, cuda = describe_torch()
    lines = [f"alphagan-video {__version__}", f"python {sys.version.split()[0]}",
             f"torch {torch_version} (CUDA available: {bool(cuda)}"
             + (f", {len(cuda)} device(s): " + ", ".join(cuda) if cuda else "") + ")",
             f"PyAV {av.__version__}, FFmpeg {getattr(av, 'ffmpeg_version_info', 'unknown')}"]
    encoders = []
    for name in ("prores_ks", "prores_aw", "ffv1", "png", "exr", "libx264", "libx265", "libvpx-vp9"):
        try:
            av.codec.Codec(name, "w")
            encoders.append(name)
        except Exception:  # noqa: BLE001 - absent encoder
            pass
    lines.append("encoders: " + ", ".join(encoders))
    lines.append("model weights: " + _describe_default_weights())
    return lines


def _describe_default_weights() -> str:
    """``PATH (variant V, norm N, sha256 H)`` from the safetensors header, or ``unavailable (why)``."""
    path = DEFAULT_WEIGHTS_PATH
    try:
        meta = safetensors_header(path).get("__metadata__") or {}
        digest = sha256_file(path)
    except FileNotFoundError:
        return f"unavailable (checkpoint file not found: {path})"
    except (OSError, ValueError, struct.error, AttributeError) as exc:
        return f"unavailable (cannot read {path}: {exc})"
    if not meta.get("variant"):
        return f"unavailable ({path} does not record its variant)"
    return f"{path} (variant {meta['variant']}, norm {meta.get('norm', 'gn')}, sha256 {digest[:12]})"
