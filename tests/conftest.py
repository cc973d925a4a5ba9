"""Shared fixtures. Media helpers live in tests/media.py (importable as ``tests.media``)."""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the test machine has 2 shared cores

import pytest

from tests.media import Clip, make_video


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test, restored afterwards (modules that time or compare model
    runs use it: ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def small_clip(tmp_path) -> Clip:
    """12-frame 64x48 H.264 .mp4 (BT.709 tagged, 24 fps) of the synthetic moving square."""
    return make_video(str(tmp_path / "small.mp4"))


@pytest.fixture
def clip_factory(tmp_path):
    """``clip_factory(name, **make_video_kwargs) -> Clip`` writing into tmp_path."""

    def factory(name: str = "clip.mp4", **kwargs) -> Clip:
        return make_video(str(tmp_path / name), **kwargs)

    return factory
