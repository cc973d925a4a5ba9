"""The small library modules the CLI reads before torch is loaded: ``_files`` (the one sha256
of a file and the safetensors header), ``memory`` (the memory model) and the probes of
``device`` (issue 26: each was written inside ``cli.py``, sha256 three times)."""
from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from alphagan_video import device, memory
from alphagan_video._files import safetensors_header, sha256_file

REPO = Path(__file__).resolve().parents[1]


def test_sha256_file_reads_in_blocks(tmp_path):
    data = os.urandom((1 << 20) + 123)  # more than one block
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(str(tmp_path / "empty")) == hashlib.sha256(b"").hexdigest()


def test_safetensors_header(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(2, 3)}, str(path), metadata={"variant": "resnet18", "norm": "gn"})
    header = safetensors_header(path)
    assert header["__metadata__"] == {"variant": "resnet18", "norm": "gn"}
    assert header["a"]["shape"] == [2, 3]
    (tmp_path / "short").write_bytes(b"\x01\x02")
    with pytest.raises(struct.error):
        safetensors_header(tmp_path / "short")
    (tmp_path / "huge").write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(ValueError, match="bad header size"):
        safetensors_header(tmp_path / "huge")
    with pytest.raises(FileNotFoundError):
        safetensors_header(tmp_path / "missing")


def test_memory_model():
    peak = memory.estimate_peak_memory(1920, 1080, 4)
    assert peak == memory.MEMORY_BASE_BYTES + 600 * 1920 * 1080 * 5
    assert memory.frames_that_fit(1920, 1080, peak) == 4
    assert memory.frames_that_fit(1920, 1080, peak - 1) == 3
    assert memory.frames_that_fit(16000, 16000, 2**30) == 0
    available = memory.available_memory()
    assert available is None or available > 0


def test_cuda_free_memory_asks_the_driver(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d: (123, 456))
    assert device.cuda_free_memory(torch.device("cuda", 0)) == 123


def test_describe_torch_without_importing_it():
    code = ("import sys, alphagan_video.device as d; v, cuda = d.describe_torch(); "
            "assert 'torch' not in sys.modules; print(v)")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == torch.__version__
    version, cuda = device.describe_torch()  # torch imported here: its own answers
    assert version == torch.__version__ and len(cuda) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
