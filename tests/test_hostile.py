"""Issue 28 items 1-3 and 11, and the fail-fast promises: regression tests through the installed
console script (real subprocesses, real signals). A run that exits 2 in the ``no_torch``
environment (importing torch fails there) was refused before torch -- and so the model -- loaded.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from alphagan_video import cli as cli_module
from tests.e2e import listing, tiny_checkpoint  # noqa: F401 - fixture
from tests.fuzz_corpus import make_mp4

REPO = Path(__file__).resolve().parents[1]
FAST = ("--mask", "chroma", "--no-refine", "-q")
_SCRIPT = Path(sys.executable).with_name("alphagan-video")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "alphagan_video"]


def _env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def _script(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=env or _env())


@pytest.fixture
def clip(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    return Path(make_mp4(str(d / "clip.mp4")))


def _refused(done: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2 with exactly one line on stderr, before torch, containing every needle."""
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("alphagan-video: error: "), done.stderr
    assert "torch was imported" not in done.stderr and "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# ----------------------------------------------------------------------------- 1+2. output == input

def test_output_onto_the_input_is_refused_even_with_overwrite(clip, no_torch):
    """Issue 28 item 2: the source survives, named directly, through a symlink or a hard link."""
    source = clip.read_bytes()
    sym = clip.with_name("sym.mp4")
    sym.symlink_to(clip)
    hard = clip.with_name("hard.mp4")
    os.link(clip, hard)
    for inp, out in ((clip, clip), (clip, sym), (clip, hard), (sym, hard), (hard, clip)):
        done = _script(inp, "-o", out, "--overwrite", "--output-kind", "alpha", *FAST, env=no_torch)
        _refused(done, f"OUTPUT {out} is the same file as INPUT {inp}", "--overwrite never replaces an input")
    assert clip.read_bytes() == source and sym.is_symlink() and hard.read_bytes() == source
    assert sorted(os.listdir(clip.parent)) == ["clip.mp4", "hard.mp4", "sym.mp4"]


def test_output_onto_a_side_input_is_refused(clip, tmp_path, no_torch):
    """A mask file, a trimap or a checkpoint is never overwritten either."""
    mask = tmp_path / "in" / "m.mov"
    mask.write_bytes(b"mask bytes")
    done = _script(clip, "-o", mask, "--overwrite", "--mask", f"file:{mask}", "-q", env=no_torch)
    _refused(done, f"OUTPUT {mask} is the same file as --mask {mask}")
    ckpt = tmp_path / "in" / "w.safetensors"
    ckpt.write_bytes(b"weights")
    done = _script(clip, "-o", tmp_path / "o.mov", "--json-report", ckpt, "--checkpoint", ckpt, *FAST, env=no_torch)
    _refused(done, f"--json-report {ckpt} is the same file as --checkpoint {ckpt}")
    assert mask.read_bytes() == b"mask bytes" and ckpt.read_bytes() == b"weights"
    from alphagan_video.model.registry import DEFAULT_WEIGHTS_PATH

    if DEFAULT_WEIGHTS_PATH.is_file():  # through a link: a failed check would replace the link, not the weights
        link = tmp_path / "weights.mov"
        link.symlink_to(DEFAULT_WEIGHTS_PATH)
        done = _script(clip, "-o", link, "--overwrite", *FAST, env=no_torch)
        _refused(done, f"OUTPUT {link} is the same file as the shipped weights")


def test_json_report_onto_input_or_output_exits_2(clip, tmp_path, no_torch):
    """Issue 28 item 1."""
    source = clip.read_bytes()
    done = _script(clip, "-o", tmp_path / "o.mov", "--json-report", clip, *FAST, env=no_torch)
    _refused(done, f"--json-report {clip} is the same file as INPUT {clip}, which this run reads")
    done = _script(clip, "-o", tmp_path / "o.mov", "--json-report", tmp_path / "." / "o.mov", *FAST, env=no_torch)
    _refused(done, "is the same file as OUTPUT", "give them different names")
    assert clip.read_bytes() == source and not (tmp_path / "o.mov").exists()


def test_sequence_output_onto_the_input_frames_is_refused(tmp_path, no_torch):
    """A written pattern is checked frame by frame against what the run reads."""
    import cv2
    import numpy as np

    for i in range(3):
        cv2.imwrite(str(tmp_path / f"f_{i:04d}.png"), np.full((48, 64, 3), 40 * i, np.uint8))
    before = (tmp_path / "f_0001.png").read_bytes()
    done = _script(tmp_path / "f_0001.png", "-o", tmp_path / "f_%04d.png", "--overwrite", *FAST, env=no_torch)
    _refused(done, "is the same file as INPUT")
    assert (tmp_path / "f_0001.png").read_bytes() == before


def test_farm_side_files_onto_the_input_exit_2(clip, tmp_path, no_torch):
    done = _script("farm", "openjd", clip, "-o", tmp_path / "f.mov", "--template", clip, "--mask", "chroma",
                   env=no_torch)
    _refused(done, f"--template {clip} is the same file as INPUT {clip}")
    done = _script("farm", "plan", clip, "-o", clip, "--overwrite", "--mask", "chroma", env=no_torch)
    _refused(done, f"OUTPUT {clip} is the same file as INPUT {clip}")
    assert sorted(os.listdir(tmp_path)) == ["in"] and os.listdir(clip.parent) == ["clip.mp4"]


# ----------------------------------------------------------------------------- 3. unwritable report

@pytest.mark.parametrize("report,needle", [
    ("{tmp}", "is a folder"),
    ("/proc/x.json", "cannot create a file in /proc"),
    ("{tmp}/" + "x" * 300 + ".json", "longer than the 255"),
    ("{tmp}/missing/r.json", "does not exist"),
])
def test_unwritable_json_report_exits_2_before_the_model(clip, tmp_path, no_torch, report, needle):
    done = _script(clip, "-o", tmp_path / "o.mov", "--json-report", report.format(tmp=tmp_path), *FAST,
                   env=no_torch)
    _refused(done, "--json-report", needle)
    assert sorted(os.listdir(tmp_path)) == ["in"]


def test_report_that_cannot_be_written_leaves_neither_file(clip, tmp_path, tiny_checkpoint, monkeypatch):
    """Issue 28 item 3: the report is staged before OUTPUT is published; a full disk while
    writing it (injected) fails the run with exit 2 and leaves no OUTPUT and no report."""
    import alphagan_video.cli.paths as paths

    real_write = paths._write_new_file
    out = tmp_path / "out"
    out.mkdir()

    def full_disk(path, text):
        with open(path, "w") as fh:  # the temporary exists, then the write fails
            fh.write(text[:3])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    monkeypatch.setattr(paths, "_write_new_file", full_disk)
    result = CliRunner().invoke(cli_module.main, [str(clip), "-o", str(out / "o.mov"), "--json-report",
                                                  str(out / "r.json"), "--checkpoint", tiny_checkpoint, *FAST])
    assert result.exit_code == 2, result.output
    assert "the disk is full" in result.stderr and "Traceback" not in result.output
    assert listing(out) == []

    def rename_fails(self):
        from alphagan_video.errors import OutputError

        self.discard()
        raise OutputError("--json-report: cannot be moved into place (injected)")
    monkeypatch.setattr(paths, "_write_new_file", real_write)  # the report is staged; its rename fails
    monkeypatch.setattr(paths.StagedReport, "publish", rename_fails)
    result = CliRunner().invoke(cli_module.main, [str(clip), "-o", str(out / "o.mov"), "--json-report",
                                                  str(out / "r.json"), "--checkpoint", tiny_checkpoint, *FAST])
    assert result.exit_code == 2 and "injected" in result.stderr, result.output
    assert listing(out) == []  # OUTPUT, published a moment before, was taken back
    monkeypatch.undo()
    result = CliRunner().invoke(cli_module.main, [str(clip), "-o", str(out / "o.mov"), "--json-report",
                                                  str(out / "r.json"), "--checkpoint", tiny_checkpoint, *FAST])
    assert result.exit_code == 0, result.output
    assert listing(out) == ["o.mov", "r.json"]
    report = json.loads((out / "r.json").read_text())
    assert report["frames"] == 6 and report["seconds"]["total"] > 0


def test_report_rename_failure_takes_back_only_this_runs_frames(clip, tmp_path, tiny_checkpoint, monkeypatch):
    """Item 3 for an image-sequence OUTPUT: the report's rename fails (injected) after the frames
    were moved into place: exit 2 and none of this run's frames stay -- the frames of another
    chunk (``--frames``) that were there before do."""
    import alphagan_video.cli.paths as paths

    out = tmp_path / "out"
    out.mkdir()
    seq = str(out / "f_%04d.png")
    args = ["--checkpoint", tiny_checkpoint, "--output-kind", "alpha", *FAST]
    result = CliRunner().invoke(cli_module.main, [str(clip), "-o", seq, "--frames", "0-2", *args])
    assert result.exit_code == 0, result.output
    before = {name: (out / name).read_bytes() for name in listing(out)}
    assert sorted(before) == ["f_0000.png", "f_0001.png", "f_0002.png"]

    def rename_fails(self):
        from alphagan_video.errors import OutputError

        self.discard()
        raise OutputError("--json-report: cannot be moved into place (injected)")
    monkeypatch.setattr(paths.StagedReport, "publish", rename_fails)
    for frames in ("3-5", "0-5"):  # another chunk of the pattern needs --overwrite
        result = CliRunner().invoke(cli_module.main, [str(clip), "-o", seq, "--frames", frames, "--overwrite",
                                                      "--json-report", str(out / "r.json"), *args])
        assert result.exit_code == 2 and "injected" in result.stderr, result.output
        survivors = {name: (out / name).read_bytes() for name in listing(out)}
        if frames == "3-5":  # the other chunk's frames are kept, byte for byte
            assert survivors == before
        else:  # a run that replaced frames 0-2 takes back what it wrote; nothing of it stays
            assert survivors == {}
    monkeypatch.undo()
    result = CliRunner().invoke(cli_module.main, [str(clip), "-o", seq, "--json-report", str(out / "r.json"),
                                                  *args])
    assert result.exit_code == 0, result.output
    assert listing(out) == [f"f_{i:04d}.png" for i in range(6)] + ["r.json"]


# ----------------------------------------------------------------------------- 11. early Ctrl-C

def _interrupt_after(args, wait) -> tuple[int, str]:
    proc = subprocess.Popen([*COMMAND, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    try:
        wait(proc)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        return proc.wait(timeout=60), proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()


def _mapped(proc, library: str) -> bool:
    try:
        return library in Path(f"/proc/{proc.pid}/maps").read_text()
    except OSError:
        return False


def _until_mapped(library: str):
    def wait(proc):
        deadline = time.monotonic() + 60
        while not _mapped(proc, library) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
    return wait


@pytest.mark.parametrize("when", [0.2, 0.35, "libavformat", "cv2"])
def test_early_ctrl_c_exits_130_with_one_line(clip, tmp_path, tiny_checkpoint, when):
    """Issue 28 item 11: SIGINT while ``alphagan_video.cli`` imports PyAV / OpenCV (or at fixed
    early delays) is held by the handlers installed first, and answered with one line."""
    wait = (lambda proc: time.sleep(when)) if isinstance(when, float) else _until_mapped(when)
    code, err = _interrupt_after([clip, "-o", tmp_path / "o.mov", "--checkpoint", tiny_checkpoint, *FAST], wait)
    assert code == 130, err
    assert err.strip().splitlines() == ["alphagan-video: error: interrupted; no output was written"], err
    assert not (tmp_path / "o.mov").exists()


# ----------------------------------------------------------------------------- fail fast

def _plate_or_mask(tmp_path, name, **kwargs) -> str:
    (tmp_path / "in").mkdir(exist_ok=True)
    return make_mp4(str(tmp_path / "in" / name), **kwargs)


def _fail_fast_cases():
    from alphagan_video.device import driver_cuda_devices

    gpu = bool(driver_cuda_devices())
    cases = [
        (["--device", "cpu:0"], "--device 'cpu:0': unknown device"),
        (["--device", "meta"], "--device 'meta': unknown device"),
        (["--output-kind", "composite", "--background", "nope"], "--background 'nope': expected #RRGGBB"),
        (["--frames", "100-200"], "--frames 100-200: {clip} has 6 frame(s) (0-5)"),
        (["--trimap", "{short}"], "has 3 frame(s) but frame 3 is needed (the run reads frames 0-5"),
        (["--trimap", "{wide}"], "is 80x48 but the video is 64x48"),
        (["--mask", "file:{short}"], "has 3 frame(s) but frame 3 is needed (the run reads frames 0-5"),
        (["--mask", "file:{wide}"], "is 80x48 but the video is 64x48"),
        (["--mask", "plate:{wide}"], "is 80x48 but the video is 64x48"),
        (["--prior-scale", "7"], "--prior-scale 7.0: expected a number in (0, 1]"),
    ]
    if not gpu:
        cases += [(["--device", "cuda"], "--device cuda: CUDA is not available on this machine; use --device cpu"),
                  (["--device", "cuda:0"], "CUDA is not available")]
    if sys.platform != "darwin":
        cases.append((["--device", "mps"], "--device mps: MPS is not available"))
    return cases


@pytest.mark.parametrize("args,needle", _fail_fast_cases())
def test_model_free_refusals_come_before_torch(clip, tmp_path, no_torch, args, needle):
    """The fail-fast promises: refused in the preflight, in an environment where torch (and so the
    model) cannot even be imported."""
    paths = {"clip": clip, "short": _plate_or_mask(tmp_path, "short.mp4", frames=3),
             "wide": _plate_or_mask(tmp_path, "wide.mp4", width=80)}
    args = [a.format(**paths) for a in args]
    out = tmp_path / "out"
    out.mkdir()
    fast = [f for f in FAST if f not in ("--mask", "chroma")] if any(a == "--mask" for a in args) else list(FAST)
    if "--trimap" in args:
        fast = ["--no-refine", "-q"]
    done = _script(clip, "-o", out / "o.mov", *args, *fast, env=no_torch)
    _refused(done, needle.format(**paths))
    assert os.listdir(out) == []


@pytest.mark.parametrize("input_ext,needle", [
    ("mp4", "short.mkv has 3 frame(s) but frame 3 is needed (the run reads frames 0-5 of"),
    ("mkv", "short.mkv has 3 frame(s) but frame 3 is needed (the run reads frames 0-3 or more of"),
])
def test_matroska_side_media_too_short_is_refused_before_torch(tmp_path, no_torch, input_ext, needle):
    """Matroska headers state no frame count: the preflight counts the side file's packets (and,
    when INPUT is Matroska too, INPUT's up to one past the side file's length) instead of
    leaving the refusal to the decode, after the model loaded."""
    clip = _plate_or_mask(tmp_path, f"clip.{input_ext}")
    short = _plate_or_mask(tmp_path, "short.mkv", frames=3)
    for args in (["--mask", f"file:{short}", "--no-refine", "-q"], ["--trimap", short, "--no-refine", "-q"]):
        done = _script(clip, "-o", tmp_path / "o.mov", *args, env=no_torch)
        _refused(done, needle)
        assert not (tmp_path / "o.mov").exists()


def test_frames_past_a_matroska_input_are_refused_before_torch(tmp_path, no_torch):
    clip = _plate_or_mask(tmp_path, "clip.mkv")
    done = _script(clip, "-o", tmp_path / "o.mov", "--frames", "100-200", *FAST, env=no_torch)
    _refused(done, "--frames 100-200:", "clip.mkv has 6 frame(s) (0-5)")


def test_matroska_side_media_long_enough_passes_the_preflight(tmp_path):
    """The counting refuses only what is short: equal lengths, both Matroska, are accepted."""
    from alphagan_video.cli.preflight import _check_against_input
    from alphagan_video.config import MaskConfig, PipelineConfig
    from alphagan_video.io.reader import open_input
    from alphagan_video.masks.spec import parse_mask_spec

    clip = _plate_or_mask(tmp_path, "clip.mkv")
    mask = _plate_or_mask(tmp_path, "mask.mkv")
    cfg = PipelineConfig(mask=MaskConfig(source=f"file:{mask}"))
    with open_input(clip) as reader:
        info = reader.info
    assert info.frame_count is None  # the case under test: no count in the header
    _check_against_input(cfg, info, None, parse_mask_spec(cfg.mask.source), device_here=False)
    _check_against_input(cfg, info, (2, 5), parse_mask_spec(cfg.mask.source), device_here=False)


def test_output_through_a_missing_folder_is_refused_first(clip, tmp_path, no_torch):
    """``-o missing/../x.mov``: the OS walks ``missing/`` (which does not exist)."""
    done = _script(clip, "-o", tmp_path / "missing" / ".." / "x.mov", *FAST, env=no_torch)
    _refused(done, "output directory does not exist", "missing/..")
    assert sorted(os.listdir(tmp_path)) == ["in"]


def test_special_and_odd_inputs_are_named_for_what_they_are(tmp_path, no_torch):
    from tests.fuzz_corpus import y4m_header_only
    from tests.media import make_empty_video

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    cases = [("/dev/zero", "input is a character device, not a media file: /dev/zero"),
             ("/dev/urandom", "input is a character device"),
             (fifo, "input is a named pipe (FIFO), not a media file"),
             (make_empty_video(str(tmp_path / "empty.mp4")), "a video written with 0 frames reads so"),
             (y4m_header_only(str(tmp_path / "neg.y4m"), -64, 48), "YUV4MPEG2 header declares width -64")]
    for path, needle in cases:
        done = _script(path, "-o", tmp_path / "o.mov", *FAST, env=no_torch, timeout=60)
        line = _refused(done, needle)
        assert "empty file" not in line and "Device or resource busy" not in line


@pytest.mark.parametrize("rate", ["1e400", "1e-400", "2147483648"])
def test_pipe_rate_out_of_range_exits_2(rate, no_torch):
    done = subprocess.run([*COMMAND, "pipe", "--size", "64x48", "--rate", rate], input=b"\0" * 9216,
                          capture_output=True, timeout=60, env=no_torch)
    assert done.returncode == 2, done.stderr
    assert f"--rate '{rate}': out of range".encode() in done.stderr and b"Traceback" not in done.stderr


def test_pipe_device_is_checked_before_the_model(no_torch):
    done = subprocess.run([*COMMAND, "pipe", "--size", "64x48", "--rate", "25", "--device", "meta"],
                          input=b"\0" * 9216, capture_output=True, timeout=60, env=no_torch)
    assert done.returncode == 2 and b"--device 'meta': unknown device" in done.stderr, done.stderr


def test_timeline_report_onto_the_edit_exits_2(tmp_path):
    edit = tmp_path / "cut.otio"
    edit.write_text("{}")
    done = _script("timeline", edit, "-o", tmp_path / "mattes", "--json-report", edit, timeout=60)
    _refused(done, f"--json-report {edit} is the same file as EDIT {edit}")
    assert edit.read_text() == "{}"
    done = _script("timeline", edit, "-o", tmp_path / "mattes", "--json-report", tmp_path, timeout=60)
    _refused(done, "--json-report", "is a folder")
    done = _script("timeline", edit, "-o", tmp_path / "mattes", "--device", "meta", timeout=60)
    _refused(done, "--device 'meta': unknown device")
    assert sorted(os.listdir(tmp_path)) == ["cut.otio"]


def test_timeline_side_files_may_go_into_the_folder_it_creates(tmp_path):
    """-o DIR is created by the command: a report or timeline inside it is not refused for that."""
    from alphagan_video.cli.paths import RunPath, check_run_paths

    mattes = tmp_path / "mattes"
    check_run_paths([RunPath("EDIT", tmp_path / "cut.otio")], None, json_report=mattes / "r.json",
                    side_files=[RunPath("--timeline-out", mattes / "t.otio")], created_folder=mattes)
    with pytest.raises(Exception, match="does not exist"):
        check_run_paths([], None, json_report=tmp_path / "elsewhere" / "r.json", created_folder=mattes)


def test_farm_jobs_for_other_machines_may_name_a_gpu_this_one_lacks(clip, tmp_path, no_torch):
    """``farm plan --device cuda`` describes a job for the farm's workers: not refused here;
    ``farm local`` runs it here: refused before the model loads."""
    from alphagan_video.device import driver_cuda_devices

    if driver_cuda_devices():
        pytest.skip("this machine has a CUDA device")
    done = _script("farm", "plan", clip, "-o", tmp_path / "f.mov", "--mask", "chroma", "--device", "cuda")
    assert done.returncode == 0, done.stderr  # (farm plan imports torch to write the job: the real one here)
    done = _script("farm", "local", clip, "-o", tmp_path / "g.mov", "--mask", "chroma", "--device", "cuda",
                   env=no_torch)
    _refused(done, "--device cuda: CUDA is not available")


# ----------------------------------------------------------------------------- timeline: clip mattes

def _cut(tmp_path: Path, *clips: tuple) -> Path:
    """``tmp_path/cut.otio``: one video track of (name, media path) clips, 3 frames each."""
    otio = pytest.importorskip("opentimelineio", reason="the otio extra (opentimelineio) is not installed")
    rt, tr = otio.opentime.RationalTime, otio.opentime.TimeRange
    timeline = otio.schema.Timeline(name="cut")
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for name, media in clips:
        track.append(otio.schema.Clip(name=name, media_reference=otio.schema.ExternalReference(
            target_url=Path(media).as_uri()), source_range=tr(rt(0, 24), rt(3, 24))))
    timeline.tracks.append(track)
    otio.adapters.write_to_file(timeline, str(tmp_path / "cut.otio"))
    return tmp_path / "cut.otio"


def test_timeline_clip_mattes_never_onto_the_sources_or_each_other(clip, tmp_path, no_torch):
    """A clip's matte (DIR/<track>_<clip>_<name>.mov) that is a source clip of the edit -- by name,
    symlink or hard link -- or another clip's matte or the new timeline: exit 2 before any clip
    is matted (before torch), --overwrite or not; no source is modified, nothing is written."""
    mattes = tmp_path / "mattes"
    mattes.mkdir()
    source = clip.read_bytes()
    victim = mattes / "00_001_B.mov"
    victim.write_bytes(source)  # B's source media has the name B's matte would get
    cut = _cut(tmp_path, ("A", clip), ("B", victim))
    for extra in ((), ("--overwrite",)):
        done = _script("timeline", cut, "-o", mattes, *extra, *FAST, env=no_torch)
        _refused(done, f"the matte of clip 'B' {victim} is the same file as the media of clip 'B' {victim}, "
                       "which this run reads", "--overwrite never replaces an input")
    victim.unlink()
    (mattes / "00_001_B.mov").symlink_to(clip)  # through a symlink: A's (and B's) source
    cut = _cut(tmp_path, ("A", clip), ("B", clip))
    done = _script("timeline", cut, "-o", mattes, "--overwrite", *FAST, env=no_torch)
    _refused(done, f"the matte of clip 'B' {victim} is the same file as the media of clip 'A' {clip}")
    (mattes / "00_001_B.mov").unlink()
    other = tmp_path / "in" / "other.mp4"
    other.write_bytes(source)
    (mattes / "00_000_A.mov").write_bytes(b"old matte")
    os.link(mattes / "00_000_A.mov", mattes / "00_001_B.mov")  # two clips, one file
    cut = _cut(tmp_path, ("A", clip), ("B", other))
    done = _script("timeline", cut, "-o", mattes, "--overwrite", *FAST, env=no_torch)
    _refused(done, f"the matte of clip 'B' {mattes / '00_001_B.mov'} is the same file as the matte of clip 'A'",
             "give them different names")
    done = _script("timeline", cut, "-o", tmp_path / "new", "--timeline-out", tmp_path / "new" / "00_000_A.mov",
                   *FAST, env=no_torch)
    _refused(done, f"the matte of clip 'A' {tmp_path / 'new' / '00_000_A.mov'} is the same file as --timeline-out")
    assert clip.read_bytes() == source and other.read_bytes() == source
    assert listing(mattes) == ["00_000_A.mov", "00_001_B.mov"] and not (tmp_path / "new").exists()
    assert sorted(os.listdir(tmp_path)) == ["cut.otio", "in", "mattes"]


def test_matte_timeline_checks_every_clip_before_the_first(clip, tmp_path, monkeypatch):
    """The library refuses it too (OutputError) before any clip is matted."""
    import alphagan_video.pipeline as pipeline
    from alphagan_video.errors import OutputError
    from alphagan_video.timeline import matte_timeline

    def never(*args, **kwargs):
        raise AssertionError("a clip was matted")
    monkeypatch.setattr(pipeline, "matte_video", never)
    mattes = tmp_path / "mattes"
    mattes.mkdir()
    victim = mattes / "00_001_B.mov"
    victim.write_bytes(clip.read_bytes())
    with pytest.raises(OutputError, match="the matte of clip 'B' .* is the same file as the media of clip 'B'"):
        matte_timeline(_cut(tmp_path, ("A", clip), ("B", victim)), mattes)
    assert victim.read_bytes() == clip.read_bytes() and listing(mattes) == ["00_001_B.mov"]
