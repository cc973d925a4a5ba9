"""The generator's forward beside busy single-thread workers, on its default team vs one thread.

A run's shape on the CPU: the matting thread runs the generator while the refine's prepare
workers (one per frame of a batch, one per core) factorise beside it. Fixed work -- ``--frames``
forwards of the shipped generator on one frame at ``--size`` (bf16 autocast as a run does) and
``--factorisations`` sparse LU factorisations in each of ``--workers`` threads -- is timed with
the forward on torch's default team and on one thread (``generator.threads.forward_threads``),
alternately; printed: wall and process CPU seconds of the whole, and the generator's wall.

    python bench/generator_threads.py [--size 640x360] [--frames 6] [--workers 2] [--reps 3]
"""
from __future__ import annotations

import argparse
import resource
import threading
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from skimage import data


def _frame(width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The astronaut (public domain) at width x height with a band trimap around a centre disc."""
    import cv2

    rgb = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    y, x = np.mgrid[:height, :width]
    r = np.hypot(y - height / 2, x - width / 2)
    radius = 0.35 * min(height, width)
    trimap = np.where(r < radius - 8, 1.0, np.where(r > radius + 8, 0.0, 0.5)).astype(np.float32)
    image = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255)
    return image.contiguous(memory_format=torch.channels_last), torch.from_numpy(trimap)[None, None]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="640x360", help="WxH of the generator's input (720p at the prior scale)")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--factorisations", type=int, default=6, help="per worker")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)

    from alphagan_video.device import autocast_for
    from alphagan_video.generator.prepare import prepare_generator
    from alphagan_video.generator.threads import forward_threads
    from alphagan_video.model import load_generator

    cpu = torch.device("cpu")
    model = prepare_generator(load_generator()[0], cpu)
    width, height = (int(v) for v in args.size.split("x"))
    image, trimap = _frame(width, height)
    n = 220  # a 5-point Laplacian on 220^2 unknowns: ~a 720p frame's band after expansion
    system = (sp.diags([-1.0, -1.0, 4.001, -1.0, -1.0], [-n, -1, 0, 1, n], shape=(n * n, n * n))).tocsc()

    def worker() -> None:
        for _ in range(args.factorisations):
            spla.splu(system)

    def forwards(threads) -> None:
        with forward_threads(threads), torch.inference_mode(), autocast_for(cpu):
            for _ in range(args.frames):
                model(image, trimap)

    forwards(1), forwards(None)  # warm both teams' primitives
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for _ in range(args.reps):
        for threads in (None, 1):
            label = f"generator on {threads or torch.get_num_threads()} thread(s)"
            cpu0, tick = _cpu_seconds(), time.perf_counter()
            pool = [threading.Thread(target=worker) for _ in range(args.workers)]
            for thread in pool:
                thread.start()
            forwards(threads)
            generator = time.perf_counter() - tick
            for thread in pool:
                thread.join()
            wall, used = time.perf_counter() - tick, _cpu_seconds() - cpu0
            rows.setdefault(label, []).append((wall, used, generator))
            print(f"{label}: {wall:.2f} s wall, {used:.2f} s CPU, generator {generator:.2f} s", flush=True)
    for label, values in rows.items():
        print(f"{label}: min wall {min(v[0] for v in values):.2f} s, min CPU {min(v[1] for v in values):.2f} s, "
              f"min generator {min(v[2] for v in values):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
