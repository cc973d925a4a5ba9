"""plugins/blender: the pure core (always) and the add-on in a real headless Blender (``bpy``).

``bpy`` 5.0.1 from PyPI needs Python 3.11 and numpy<2, so it lives in its own venv, found in this order:
- ALPHAGAN_BPY_PYTHON=/path/to/venv/bin/python: use that interpreter;
- ALPHAGAN_BPY_VENV=DIR (relative to the checkout): that venv; else ``.venv-bpy/`` at the checkout's
  root (git-ignored); else an older ~/.cache/alphagan-video/bpy-venv when it already exists;
- else, with ALPHAGAN_BUILD_BPY_VENV=1, build it at $ALPHAGAN_BPY_VENV or ``.venv-bpy/`` (python3.11 -m
  venv + pip install bpy==5.0.1, a 374 MB download, ~1 GB on disk; delete the folder to get it back);
- else the bpy test is skipped, saying which of these to do.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from alphagan_video.model import build_generator, save_generator
from tests.media import make_video

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / "blender"
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def core():
    spec = importlib.util.spec_from_file_location("alphagan_blender_core", PLUGIN_DIR / "alphagan_blender" / "core.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_used_frames_and_placement(core):
    # strip starts at scene frame 11; trimmed 3 movie frames at the start and 5 at the end of 24
    a, b, first, last = core.used_frames(11, 14, 30, 24, handles=2)
    assert (first, last) == (3, 18) and (a, b) == (1, 20)
    assert core.placement(11, a, first, last, b) == {"frame_start": 12, "frame_offset_start": 2,
                                                     "frame_offset_end": 2}
    assert core.used_frames(1, 1, 25, 24, handles=10) == (0, 23, 0, 23)  # clamped to the movie
    with pytest.raises(ValueError, match=r"handles -1: must be 0 or more"):
        core.used_frames(1, 1, 25, 24, handles=-1)


def test_free_channel(core):
    occupied = [(1, 1, 25), (2, 1, 10), (3, 20, 40), (4, 0, 100)]
    assert core.free_channel(occupied, above=1, start=1, end=25) == 5
    assert core.free_channel(occupied, above=1, start=10, end=20) == 2  # touching ends do not overlap
    assert core.free_channel(occupied, above=2, start=12, end=18) == 3
    with pytest.raises(ValueError, match=r"no free channel above 3 for frames 0..9"):
        core.free_channel([(4, 0, 10)], above=3, start=0, end=10, max_channel=4)


def test_command_paths_and_progress(core):
    assert core.cli_argv("/v/bin/python -m alphagan_video") == ["/v/bin/python", "-m", "alphagan_video"]
    assert core.cli_argv("", which=lambda n: "/usr/local/bin/" + n) == ["/usr/local/bin/alphagan-video"]
    with pytest.raises(ValueError, match=r"not found on PATH: set its path in the add-on preferences"):
        core.cli_argv("", which=lambda n: None)
    out = core.output_path("/o", "/m/Shot 01.mp4", "Shot 01.mp4.001", 3, 40)
    assert out == "/o/Shot_01_Shot_01.mp4.001_3-40_alphagan.mov"
    assert core.build_command(["av"], "/m/a.mp4", out, 3, 40, extra_args=["--device", "cuda"]) == [
        "av", "run", "/m/a.mp4", "-o", out, "--frames", "3-40", "--output-kind", "rgba", "--overwrite",
        "--device", "cuda"]
    text = "matting:   0%|          | 0/38 [00:00<?, ?frame/s]\rmatting:  21%|##  | 8/38 [00:01<00:04, 7.1frame/s]"
    assert core.parse_progress(text) == (8, 38) and core.parse_progress("starting") is None
    assert core.last_error("x\nalphagan-video: error: --frames '3': expected A-B\n") == (
        "alphagan-video: error: --frames '3': expected A-B")


# ----------------------------------------------------------------------------- real Blender

REPO_ROOT = Path(__file__).resolve().parents[1]
BPY_VENV_DEFAULT = ".venv-bpy"                                  # inside the checkout, in .gitignore
BPY_VENV_LEGACY = Path(".cache") / "alphagan-video" / "bpy-venv"  # under $HOME: where it used to be built


def locate_bpy_venv(environ, repo_root: Path, home: Path) -> tuple[Path | None, Path]:
    """(the python of a usable bpy venv or None, the venv folder to build when there is none).

    No side effects: only ``is_file`` checks, so the order can be tested without building anything."""
    explicit = environ.get("ALPHAGAN_BPY_VENV")
    if explicit:
        venv = Path(explicit).expanduser()
        venv = venv if venv.is_absolute() else repo_root / venv
        python = venv / "bin" / "python"
        return (python if python.is_file() else None), venv
    venv = repo_root / BPY_VENV_DEFAULT
    for candidate in (venv, home / BPY_VENV_LEGACY):
        python = candidate / "bin" / "python"
        if python.is_file():
            return python, venv
    return None, venv


def _bpy_python() -> str:
    explicit = os.environ.get("ALPHAGAN_BPY_PYTHON")
    if explicit:
        if not os.path.isfile(explicit):
            pytest.fail(f"ALPHAGAN_BPY_PYTHON={explicit} does not exist")
        return explicit
    found, venv = locate_bpy_venv(os.environ, REPO_ROOT, Path.home())
    if found is not None:
        return str(found)
    python = venv / "bin" / "python"
    if os.environ.get("ALPHAGAN_BUILD_BPY_VENV") != "1":
        pytest.skip("no bpy venv: set ALPHAGAN_BPY_PYTHON to a Python 3.11 with bpy==5.0.1, or "
                    f"ALPHAGAN_BUILD_BPY_VENV=1 to build one at {venv} (374 MB download, ~1 GB on disk)")
    base = shutil.which("python3.11")
    if base is None:
        pytest.skip("bpy 5.0.1 needs Python 3.11 and python3.11 is not on PATH")
    try:
        subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "bpy==5.0.1", "numpy<2"], check=True,
                       capture_output=True, timeout=1800)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.skip(f"could not build the bpy venv at {venv}: {exc}")
    return str(python)


def _fake_venv(root: Path) -> Path:
    python = root / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("")
    return python


def test_bpy_venv_location(tmp_path):
    # where the bpy venv is looked for and built; nothing is downloaded
    repo, home = tmp_path / "checkout", tmp_path / "home"
    repo.mkdir()
    home.mkdir()
    inside = repo / ".venv-bpy"
    assert locate_bpy_venv({}, repo, home) == (None, inside)  # built inside the checkout by default
    legacy = _fake_venv(home / ".cache" / "alphagan-video" / "bpy-venv")
    assert locate_bpy_venv({}, repo, home) == (legacy, inside)  # an old ~/.cache venv is still used
    own = _fake_venv(inside)
    assert locate_bpy_venv({}, repo, home) == (own, inside)  # the checkout's own venv comes first
    assert locate_bpy_venv({"ALPHAGAN_BPY_VENV": "elsewhere"}, repo, home) == (None, repo / "elsewhere")
    other = _fake_venv(tmp_path / "abs")
    assert locate_bpy_venv({"ALPHAGAN_BPY_VENV": str(tmp_path / "abs")}, repo, home) == (other, tmp_path / "abs")


def test_bpy_venv_build_goes_into_the_checkout(tmp_path, monkeypatch):
    # ALPHAGAN_BUILD_BPY_VENV=1 with no venv anywhere: the build is aimed at <checkout>/.venv-bpy
    # (subprocess.run is faked and fails, so nothing is installed or downloaded)
    calls = []

    def fake_run(argv, **kwargs):
        calls.append([str(a) for a in argv])
        raise subprocess.CalledProcessError(1, argv)

    monkeypatch.setattr(sys.modules[__name__], "REPO_ROOT", tmp_path / "checkout")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ALPHAGAN_BPY_PYTHON", raising=False)
    monkeypatch.delenv("ALPHAGAN_BPY_VENV", raising=False)
    monkeypatch.setenv("ALPHAGAN_BUILD_BPY_VENV", "1")
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/python3.11")
    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(pytest.skip.Exception, match=r"could not build the bpy venv at .*checkout/\.venv-bpy"):
        _bpy_python()
    assert calls == [["/usr/bin/python3.11", "-m", "venv", str(tmp_path / "checkout" / ".venv-bpy")]]


def test_bpy_venv_is_ignored_by_git():
    ignored = (REPO_ROOT / ".gitignore").read_text().split()
    assert "/.venv-bpy/" in ignored or ".venv-bpy/" in ignored


BPY_SCRIPT = r"""
import json, sys
import bpy
sys.path.insert(0, sys.argv[-1])
import alphagan_blender
args = json.loads(sys.argv[-2])
alphagan_blender.register()
scene = bpy.context.scene
scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 48, 100
scene.render.fps = 24
se = scene.sequence_editor_create()
src = se.strips.new_movie(name="src", filepath=args["movie"], channel=1, frame_start=11)
src.frame_offset_start, src.frame_offset_end = 3, 5          # visible: movie frames 3..18 at scene 14..29
blocker = se.strips.new_movie(name="blocker", filepath=args["movie"], channel=2, frame_start=1)
blocker.frame_offset_end = 14                                 # channel 2 busy over scene 1..10 only
for s in se.strips_all:
    s.select = s.name == "src"
result = bpy.ops.sequencer.alphagan_matte(cli=args["cli"], extra_args=args["extra"], output_dir=args["out"],
                                          handles=2)
new = [s for s in se.strips_all if s.name not in ("src", "blocker")]
info = {"result": sorted(result), "strips": [
    {"name": s.name, "channel": s.channel, "filepath": s.filepath, "frame_start": s.frame_start,
     "final": [s.frame_final_start, s.frame_final_end], "duration": s.frame_duration,
     "alpha_mode": s.alpha_mode, "blend_type": s.blend_type} for s in new],
    "src_final": [src.frame_final_start, src.frame_final_end]}
# render scene frame 20 with the source muted: what is left is the RGBA strip's own alpha
src.mute = blocker.mute = True
scene.frame_set(20)
scene.render.image_settings.file_format = "PNG"
scene.render.image_settings.color_mode = "RGBA"
scene.render.filepath = args["render"]
bpy.ops.render.render(write_still=True)
print("RESULT " + json.dumps(info))
"""


def test_addon_in_headless_blender(tmp_path):
    python = _bpy_python()
    clip = make_video(str(tmp_path / "a.mp4"), frames=24, rate=Fraction(24))
    mask = np.zeros((48, 64), np.uint8)
    mask[12:36, 16:48] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    torch.manual_seed(0)
    save_generator(build_generator("tiny"), tmp_path / "tiny.safetensors")
    args = {
        "movie": clip.path, "out": str(tmp_path / "out"), "render": str(tmp_path / "frame.png"),
        "cli": f"{sys.executable} -m alphagan_video",
        "extra": f"--checkpoint {tmp_path / 'tiny.safetensors'} --mask file:{tmp_path / 'mask.png'} "
                 "--trimap-band 6 --no-refine --device cpu --no-temporal",
    }
    script = tmp_path / "drive.py"
    script.write_text(BPY_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([python, str(script), json.dumps(args), str(PLUGIN_DIR)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=str(REPO_ROOT))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    info = json.loads(line[len("RESULT "):])
    assert info["result"] == ["FINISHED"]
    (strip,) = info["strips"]
    # movie frames 3..18 visible, handles 2 -> frames 1..20 matted; placed so it shows exactly scene 14..29
    assert strip["duration"] == 20 and strip["frame_start"] == 12
    assert strip["final"] == info["src_final"] == [14, 30]
    assert strip["channel"] == 2  # channel 2 is free over 14..29 (the blocker ends at 10)
    assert strip["alpha_mode"] == "STRAIGHT" and strip["blend_type"] == "ALPHA_OVER"
    assert os.path.isfile(strip["filepath"]) and strip["filepath"].endswith("_1-20_alphagan.mov")
    rgba = cv2.imread(str(tmp_path / "frame.png"), cv2.IMREAD_UNCHANGED)
    assert rgba is not None and rgba.shape == (48, 64, 4)
    alpha = rgba[..., 3]
    # mask file 16..47 x 12..35 with a 6 px band: deep inside is known foreground, the corner background
    assert alpha[20:28, 24:40].min() >= 250 and alpha[:4, :4].max() <= 5
