"""The one place that deals with devices: picks a device and a precision policy, and probes
what the machine has (CUDA devices, free GPU memory, torch's CUDA build, native bf16).

torch is imported by the functions that need it, not by this module: the command line's
``info`` reports torch's version and the CUDA devices (``describe_torch``) without loading it.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, ContextManager

from alphagan_video.errors import DeviceError

if TYPE_CHECKING:
    import torch


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a usable ``torch.device``.

    ``auto`` picks the first CUDA GPU when one is usable, else the CPU.

    Raises:
        DeviceError: the device is unknown or absent, about ``model.device`` (names the value
            and what is available).
    """
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError.about("model.device", spec,
                                    "CUDA is not available on this machine; use model.device cpu or auto")
        index = 0
        if ":" in spec:
            try:
                index = int(spec.split(":", 1)[1])
            except ValueError:
                raise DeviceError.about("model.device", spec, "expected cuda:N with an integer N") from None
        count = torch.cuda.device_count()
        if not 0 <= index < count:
            raise DeviceError.about("model.device", spec,
                                    f"only {count} CUDA device(s) present (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)
    if spec == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise DeviceError.about("model.device", "mps", "MPS is not available; use model.device cpu or auto")
        return torch.device("mps")
    raise DeviceError.about("model.device", repr(spec), "unknown device; use auto, cpu, cuda or cuda:N")


def check_device(spec: str = "auto") -> None:
    """``resolve_device``'s refusals made without importing torch (the CLI's preflight, before the
    model loads): an unknown spelling (``cpu:0``, ``meta``, ``gpu``), ``cuda``/``cuda:N`` when this
    torch build has no CUDA or the driver reports no (or too few) devices, ``mps`` off macOS.
    Passing here does not promise the device works; ``resolve_device`` decides.

    Raises:
        DeviceError: as ``resolve_device`` would, about ``model.device``.
    """
    spec = (spec or "auto").strip().lower()
    if spec in ("auto", "cpu"):
        return
    if spec == "cuda" or spec.startswith("cuda:"):
        index = 0
        if ":" in spec:
            try:
                index = int(spec[len("cuda:"):])
            except ValueError:
                raise DeviceError.about("model.device", spec, "expected cuda:N with an integer N") from None
        _version, cuda_build = torch_build()
        count = len(driver_cuda_devices()) if cuda_build else 0
        if count == 0:
            raise DeviceError.about("model.device", spec,
                                    "CUDA is not available on this machine; use model.device cpu or auto")
        if not 0 <= index < count:
            raise DeviceError.about("model.device", spec,
                                    f"only {count} CUDA device(s) present (cuda:0..cuda:{count - 1})")
        return
    if spec == "mps":
        if sys.platform != "darwin":
            raise DeviceError.about("model.device", "mps", "MPS is not available; use model.device cpu or auto")
        return
    raise DeviceError.about("model.device", repr(spec), "unknown device; use auto, cpu, cuda or cuda:N")


def cpu_has_fast_bf16() -> bool:
    """True when oneDNN runs bfloat16 convolutions natively on this CPU (AVX512-BF16 / AMX, e.g.
    Xeon Sapphire Rapids and later); elsewhere bf16 is emulated and slower than fp32."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # private probe: absent in some builds
        return False


def autocast_for(device: torch.device, enabled: bool = True) -> ContextManager:
    """The generator's mixed-precision context: fp16 autocast on CUDA; bf16 autocast on CPUs
    with native bf16 (``cpu_has_fast_bf16``: the resnet18 generator on an 800x600 photo takes
    0.23 s instead of 0.39 s, measured on this project's 2-core Sapphire Rapids VM); a no-op
    elsewhere (fp32). ``enabled=False`` (``ModelConfig.mixed_precision`` off) always means fp32."""
    import torch

    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    if enabled and device.type == "cpu" and cpu_has_fast_bf16():
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cuda_free_memory(device: torch.device) -> int:
    """Free bytes on the CUDA ``device`` (what the driver reports)."""
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    return free


def torch_build() -> tuple[str, bool]:
    """(torch.__version__, built with CUDA) read from torch/version.py without importing torch."""
    import importlib.metadata
    import importlib.util
    import re

    try:
        spec = importlib.util.find_spec("torch")
        text = Path(next(iter(spec.submodule_search_locations)), "version.py").read_text()
        version = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)", text, re.M).group(1)
        cuda = re.search(r"^cuda\s*(?::[^=]*)?=\s*(None|['\"][^'\"]*['\"])", text, re.M)
        return version, bool(cuda and cuda.group(1) != "None")
    except (AttributeError, ImportError, OSError, StopIteration, TypeError, ValueError):
        try:
            return importlib.metadata.version("torch"), True
        except importlib.metadata.PackageNotFoundError:
            return "not installed", False


def driver_cuda_devices() -> list[str]:
    """Names of the CUDA devices the driver reports (libcuda through ctypes); [] without a driver."""
    import ctypes

    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return []
    try:
        if lib.cuInit(0) != 0:
            return []
        count = ctypes.c_int()
        if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return []
        names = []
        for i in range(count.value):
            device, name = ctypes.c_int(), ctypes.create_string_buffer(256)
            if lib.cuDeviceGet(ctypes.byref(device), i) == 0 and lib.cuDeviceGetName(name, 256, device) == 0:
                names.append(name.value.decode(errors="replace"))
        return names
    except (AttributeError, OSError):
        return []


def describe_torch() -> tuple[str, list[str]]:
    """(torch's version, names of the usable CUDA devices), without importing torch: torch's own
    answers when it is already imported, else its package files and the driver (asked only when
    this torch build has CUDA)."""
    torch_mod = sys.modules.get("torch")
    if torch_mod is not None:
        cuda = [torch_mod.cuda.get_device_name(i) for i in range(torch_mod.cuda.device_count())] \
            if torch_mod.cuda.is_available() else []
        return torch_mod.__version__, cuda
    version, cuda_build = torch_build()
    return version, driver_cuda_devices() if cuda_build else []
