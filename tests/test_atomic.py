"""alphagan_video._atomic.atomic_write: all-or-nothing writes used by checkpoints and farm manifests."""
from __future__ import annotations

import os
import stat

import pytest

from alphagan_video._atomic import atomic_write


def test_replaces_the_file_with_usual_permissions(tmp_path):
    path = tmp_path / "job.json"
    path.write_text("old\n")
    old_umask = os.umask(0o022)
    try:
        with atomic_write(path, "w", encoding="utf-8") as fh:
            fh.write("new\n")
            assert path.read_text() == "old\n"  # readers see the old content until the block ends
    finally:
        os.umask(old_umask)
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # like open(path, "w"), not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json"]


def test_an_error_in_the_block_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(path) as fh:
            fh.write(b"half")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights.pt"]


def test_unsupported_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="mode 'ab' is not supported"):
        with atomic_write(tmp_path / "x", "ab"):
            pass
