"""Shared fixtures. Media helpers live in tests/media.py (importable as ``tests.media``)."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # the test machine has 2 shared cores

import pytest

from tests.media import Clip, make_video

REPO = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory) -> dict:
    """An environment in which importing torch fails (a stub ``torch`` package first on the path):
    a console-script run that exits 2 there was refused before torch was imported."""
    d = tmp_path_factory.mktemp("notorch")
    (d / "torch").mkdir()
    (d / "torch" / "__init__.py").write_text("raise ImportError('torch was imported')\n")
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=f"{d}{os.pathsep}{REPO}")
