"""The generator's forward threads (``generator.threads``): the calling thread's OpenMP team only,
restored afterwards, the same alpha, and the run's choice of how many."""
from __future__ import annotations

import threading

import pytest
import torch

from alphagan_video.generator.threads import _omp_set_num_threads, forward_threads, generator_threads
from alphagan_video.model import build_generator

needs_omp = pytest.mark.skipif(_omp_set_num_threads() is None, reason="torch without a reachable OpenMP runtime")


def _in_thread(fn):
    """Run ``fn`` in a fresh thread and return its result (re-raising its exception)."""
    box: dict = {}

    def body():
        try:
            box["value"] = fn()
        except BaseException as error:  # noqa: BLE001 - re-raised below
            box["error"] = error

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


@needs_omp
def test_forward_threads_sets_the_calling_thread_only_and_restores():
    outer = torch.get_num_threads()
    if outer < 2:
        torch.set_num_threads(2)  # something to come down from
    try:
        start = torch.get_num_threads()
        seen = {}

        def body():
            seen["before"] = torch.get_num_threads()
            with forward_threads(1):
                seen["inside"] = torch.get_num_threads()
                # Another thread started meanwhile keeps the process's setting.
                seen["other"] = _in_thread(torch.get_num_threads)
            seen["after"] = torch.get_num_threads()
            return seen

        _in_thread(body)
        assert seen == {"before": start, "inside": 1, "other": start, "after": start}
        assert torch.get_num_threads() == start  # this thread untouched
    finally:
        torch.set_num_threads(outer)


@needs_omp
def test_forward_threads_restores_after_an_exception():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with forward_threads(max(1, before - 1) if before > 1 else 2):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


def test_forward_threads_none_changes_nothing_and_rejects_zero():
    before = torch.get_num_threads()
    with forward_threads(None):
        assert torch.get_num_threads() == before
    # Never above the process's own limit (OMP_NUM_THREADS=1, torch.set_num_threads(1)).
    with forward_threads(before + 1):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match=r"threads must be >= 1 or None, got 0"):
        with forward_threads(0):
            pass


@needs_omp
def test_generator_alpha_is_the_same_on_one_thread():
    # A thread count only changes how the work is split; the tiny generator's alpha must agree
    # with the default team's to float32 rounding (oneDNN may order a reduction differently).
    torch.manual_seed(0)
    model = build_generator("tiny").eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    image = torch.rand(1, 3, 96, 160, generator=g)
    trimap = torch.full((1, 1, 96, 160), 0.5)
    with torch.inference_mode():
        reference = model(image, trimap)
        with forward_threads(1):
            single = model(image, trimap)
    assert float((single - reference).abs().max()) < 1e-5


def test_generator_threads_leaves_the_workers_their_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert generator_threads(torch.device("cpu"), refine_workers=2) == 1
    assert generator_threads(torch.device("cpu"), refine_workers=1) == 1
    assert generator_threads(torch.device("cpu"), refine_workers=0) == 2  # refine off: every core
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert generator_threads(torch.device("cpu"), refine_workers=2) == 6
    assert generator_threads(torch.device("cuda", 0), refine_workers=2) is None
