"""libx264 without its AVX-512 code: the same frames give the same H.264 packets every run.

Why: on a CPU with AVX-512 (this project's 2-core AMD EPYC), libx264 165 of the bundled FFmpeg
read memory nobody had written in its AVX-512 macroblock-tree code (the lookahead's rate
control): the same frames, single-threaded, gave different packets from run to run (96x64
synthetic clip, 10 frames: 3-6 variants in 10-12 encodes, packet 0 first), and which one
followed from the heap's old contents -- with glibc's ``MALLOC_PERTURB_`` fill byte 0x55 always
one, with 0xAA always another. Measured, each on its own, making it repeatable (1 variant in
10-12 encodes): the CPU flags without AVX-512 (every other SIMD kept), x264 without SIMD, or
``mbtree=0``; neither our frames' line padding nor the rest of their buffers (set to 0x00 /
0xFF: the same variants) played a part. x264's SIMD is bit-exact with its C code, so without
AVX-512 it writes what a machine without AVX-512 writes; ``mbtree=0`` would change the rate
control instead (sample clip at crf 12: 149 kB and 54.3 dB PSNR vs 121 kB and 53.6 dB).
"""
from __future__ import annotations

import ctypes
import functools
import re
from typing import Optional

#: ``X264_CPU_AVX512`` in x264.h (builds 152 and later).
X264_CPU_AVX512 = 0x0010000
_FIRST_BUILD_WITH_AVX512 = 152


def _loaded_libx264() -> Optional[tuple[str, int]]:
    """(path, x264 build) of the libx264 shared library mapped into this process (libavcodec
    loads it with PyAV), or None: not Linux, or x264 linked statically into libavcodec."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip()
                found = re.search(r"/libx264[^/]*\.so\.(\d+)$", path)
                if found:
                    return path, int(found.group(1))
    except OSError:
        pass
    return None


@functools.lru_cache(maxsize=1)
def x264_cpu_flags_without_avx512() -> Optional[int]:
    """libx264's own CPU detection (``x264_cpu_detect``) less ``X264_CPU_AVX512``; None when
    it found no AVX-512 here or libx264 cannot be asked (then nothing needs changing, or
    nothing can be)."""
    import av  # noqa: F401 - maps libavcodec and with it libx264

    loaded = _loaded_libx264()
    if loaded is None or loaded[1] < _FIRST_BUILD_WITH_AVX512:
        return None
    try:
        detect = ctypes.CDLL(loaded[0]).x264_cpu_detect
    except (OSError, AttributeError):
        return None
    detect.restype = ctypes.c_uint32
    detect.argtypes = []
    flags = int(detect())
    return flags & ~X264_CPU_AVX512 if flags & X264_CPU_AVX512 else None


def deterministic_x264_options() -> dict[str, str]:
    """Encoder options for ``libx264`` that keep AVX-512 off (``{"x264-params": "asm=FLAGS"}``),
    or {} where there is none to keep off. Give them with any other options of the stream."""
    flags = x264_cpu_flags_without_avx512()
    return {} if flags is None else {"x264-params": f"asm={flags}"}


__all__ = ["X264_CPU_AVX512", "deterministic_x264_options", "x264_cpu_flags_without_avx512"]
