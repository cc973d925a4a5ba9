"""What the benches that run the product need alike: the CLI in a fresh process, its alpha PNGs
read back, and alpha composites over a checkerboard for looking. Not a bench itself."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], label: str) -> tuple[subprocess.CompletedProcess, float]:
    """``python -m alphagan_video *args`` in a fresh process (as a user runs it), this checkout
    first on PYTHONPATH -> (the finished process, wall seconds). Exit 0 and 2 (a refusal the
    bench reports) are accepted; any other status stops the bench with ``label``, the command
    and the end of stderr."""
    cmd = [sys.executable, "-m", "alphagan_video", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    tick = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - tick
    if proc.returncode not in (0, 2):
        raise SystemExit(f"{label} failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return proc, wall


def read_alpha_png(path: Path) -> np.ndarray:
    """An alpha PNG the product wrote (8 or 16 bit, grey or its first channel) -> (H,W) float32
    in [0,1]; stops the bench when the file is missing."""
    m = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if m is None:
        raise SystemExit(f"the product wrote no {path}")
    m = m[..., 0] if m.ndim == 3 else m
    return m.astype(np.float32) / (65535.0 if m.dtype == np.uint16 else 255.0)


def checkerboard_composite(rgb: np.ndarray, alpha: np.ndarray, cell: int = 16) -> np.ndarray:
    """RGB uint8 (H,W,3) over a grey checkerboard with alpha (H,W) float [0,1] -> uint8 RGB."""
    h, w = alpha.shape
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // cell) + (xx // cell)) % 2 == 0, 0.85, 0.55)[..., None]
    out = alpha[..., None] * (rgb.astype(np.float32) / 255.0) + (1.0 - alpha[..., None]) * board
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


__all__ = ["checkerboard_composite", "read_alpha_png", "run_cli"]
