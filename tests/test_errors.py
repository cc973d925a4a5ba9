"""Issue 14: one regression test per failure found by the hostile-user pass, and one per row of
README's exit-code table (0 ok, 2 bad input / usage / environment, 1 our bug, 130 SIGINT, 143
SIGTERM). Real PyAV, real subprocesses and real signals where the behaviour is the process's.
"""
from __future__ import annotations

import json
import shutil
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from alphagan_video import cli as cli_module
from alphagan_video.cli.preflight import _fit_batch
from alphagan_video.device import torch_build
from alphagan_video.memory import estimate_peak_memory
from alphagan_video._atomic import parse_temp_name, remove_stale_temporaries, temp_name
from alphagan_video.config import ModelConfig, PipelineConfig
from alphagan_video.errors import ResourceLimitError
from alphagan_video.model import build_generator
from tests.e2e import assert_clean_failure, cli, listing, run_ok, tiny_checkpoint  # noqa: F401 - fixture
from tests.fuzz_corpus import make_mp4, make_png, png_in_mov, png_with_size, y4m_header_only

REPO = Path(__file__).resolve().parents[1]
FAST = ("--mask", "chroma", "--no-refine", "-q")


@pytest.fixture
def media(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    return {"mp4": make_mp4(str(d / "a.mp4")), "png": make_png(str(d / "a.png")), "dir": d}


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def _env(**extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.update(extra)
    return env


def _script(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alphagan_video", *map(str, args)], capture_output=True,
                          text=True, timeout=kwargs.pop("timeout", 120), env=kwargs.pop("env", _env()), **kwargs)


# ----------------------------------------------------------------------------- 1. exit 1 on bad input

def test_audio_stream_without_codec_exits_2_before_the_model(tmp_path, media, out_dir, no_torch):
    data = bytearray(Path(media["mp4"]).read_bytes())
    for box in (b"mp4a", b"esds"):
        i = data.find(box)
        data[i:i + 4] = b"zzzz"
    bad = tmp_path / "nocodec.mp4"
    bad.write_bytes(bytes(data))
    done = _script(bad, "-o", out_dir / "o.mov", *FAST, env=no_torch)
    assert done.returncode == 2, done.stderr
    assert "has no codec FFmpeg knows" in done.stderr and "--no-audio" in done.stderr
    assert listing(out_dir) == []


def test_pipe_huge_size_and_band_exit_2_before_allocating(tiny_checkpoint):
    runner = CliRunner()
    for args, needle in ((["--size", "100000x100000"], "over the budget"),
                         (["--size", "64x48", "--trimap-band", "100000"], "--trimap-band 100000")):
        result = runner.invoke(cli_module.main, ["pipe", *args, "--rate", "25", "--checkpoint", tiny_checkpoint],
                               input=b"\0" * 10)
        assert result.exit_code == 2, result.output
        assert needle in result.stderr and "Traceback" not in result.output


def test_trimap_band_wider_than_the_frame_exits_2(media, out_dir):
    result = cli(media["mp4"], "-o", out_dir / "o.mov", "--trimap-band", 100000, *FAST)
    assert_clean_failure(result, 2, "--trimap-band 100000", "wider than the 64x48 frame", out_dir=out_dir)


@pytest.mark.parametrize("field,value,needle", [
    ("chunk_size", "abc", "'chunk_size' must be an integer"),
    ("chunk_size", None, "'chunk_size' must be an integer"),
    ("chunk_size", 0, "'chunk_size' is 0"),
    ("chunk_size", -4, "'chunk_size' is -4"),
    ("frame_count", 1.5, "'frame_count' must be an integer"),
    ("context", -1, "'context' is -1"),
    ("input", 7, "'input' must be a non-empty string"),
    ("config", {"model": "abc"}, "bad 'config'"),
    ("config", {"model": {"batch_size": "4"}}, "model.batch_size"),
])
def test_malformed_job_files_exit_2_naming_the_field(tmp_path, field, value, needle):
    out = tmp_path / "shot.mov"
    job = tmp_path / ("shot.mov" + ".alphagan-job.json")
    from alphagan_video.config import PipelineConfig
    from alphagan_video.config_json import config_to_dict

    data = {"format": "alphagan-video-job", "version": 1, "input": "in.mp4", "output": "shot.mov",
            "frame_count": 8, "chunk_size": 4, "context": 0, "settings_sha256": "0" * 64,
            "config": config_to_dict(PipelineConfig())}  # complete: a missing field is an error of its own
    if field == "config":  # one section (or one field of it) replaced
        for section, part in value.items():
            if isinstance(part, dict):
                data["config"][section].update(part)
            else:
                data["config"][section] = part
    else:
        data[field] = value
    job.write_text(json.dumps(data))
    for args in (("farm", "chunk", job, "--frames", "0-3"), ("farm", "assemble", "--job", job)):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        assert needle in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [job.name] and not out.exists()


def test_job_path_that_is_a_directory_exits_2(tmp_path):
    result = cli("farm", "assemble", "--job", tmp_path)
    assert result.exit_code == 2 and "is a directory" in result.stderr


def test_unwritable_output_locations_exit_2(media, out_dir):
    result = cli(media["mp4"], "-o", "/proc/out.mov", *FAST)
    assert result.exit_code == 2 and "cannot create files in the output directory /proc" in result.stderr
    result = cli(media["mp4"], "-o", out_dir / "missing" / "o.mov", *FAST)
    assert_clean_failure(result, 2, "output directory does not exist", out_dir=out_dir)


def test_full_disk_exits_2_and_leaves_nothing(tmp_path, tiny_checkpoint):
    """A real ENOSPC: a 64 KiB tmpfs in a private mount namespace (skipped where unshare is refused)."""
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unprivileged mount namespaces are not available here")
    clip = make_mp4(str(tmp_path / "big.mp4"), frames=24, width=320, height=240)
    full = tmp_path / "full"
    full.mkdir()
    command = (f"mount -t tmpfs -o size=64k tmpfs {full} && {sys.executable} -m alphagan_video {clip} "
               f"-o {full}/o.mov --checkpoint {tiny_checkpoint} {' '.join(FAST)}; rc=$?; ls -A {full}; exit $rc")
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", command],
                          capture_output=True, text=True, timeout=180, env=_env())
    assert done.returncode == 2, done.stderr
    assert "the disk is full" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout.strip() == ""  # nothing left on the full file system


# ----------------------------------------------------------------------------- 2. pixel budget

def peak_rss_mb(args, env) -> tuple[int, str, float]:
    """(exit code, stderr, peak RSS in MB) of ``python -m alphagan_video ARGS``: VmHWM (the
    process's own high-water mark since exec) read from /proc until it exits."""
    proc = subprocess.Popen([sys.executable, "-m", "alphagan_video", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    return proc.returncode, proc.stderr.read(), peak / 1024


def test_oversized_frames_are_refused_from_the_declared_size(tmp_path, media, out_dir, no_torch):
    big_png = tmp_path / "big.png"
    big_png.write_bytes(png_with_size(Path(media["png"]).read_bytes(), 16000, 16000))
    cases = [(big_png, "out.png", "16000x16000"),
             (png_in_mov(str(tmp_path / "big.mov"), 16000, 16000), "out.mov", "pixel budget"),
             (y4m_header_only(str(tmp_path / "huge.y4m"), 60000, 40000), "out.mov", "60000x40000")]
    for path, name, needle in cases:
        code, err, peak = peak_rss_mb([path, "-o", out_dir / name, *FAST], no_torch)
        assert code == 2, err
        assert needle in err and "Device or resource busy" not in err and "Traceback" not in err
        assert peak < 400, f"{path}: peak RSS {peak:.0f} MB before being refused"
    assert listing(out_dir) == []


def test_max_pixels_is_configurable(media, out_dir, tiny_checkpoint):
    result = cli(media["png"], "-o", out_dir / "o.png", "--max-pixels", "32x32", *FAST)
    assert_clean_failure(result, 2, "64x48 = 3072 pixels, over the budget of 1024 (32x32)", out_dir=out_dir)
    run_ok(media["png"], "-o", out_dir / "o.png", "--max-pixels", 3072, "--checkpoint", tiny_checkpoint, *FAST)
    assert listing(out_dir) == ["o.png"]


def test_memory_estimate_lowers_the_batch_or_refuses(capsys):
    cfg = PipelineConfig(model=ModelConfig(batch_size=4))
    need = estimate_peak_memory(1920, 1080, 4)
    assert _fit_batch(cfg, 1920, 1080, adjustable=True, warn=True, available=need) is cfg
    lowered = _fit_batch(cfg, 1920, 1080, adjustable=True, warn=True, available=estimate_peak_memory(1920, 1080, 2))
    assert lowered.model.batch_size == 2
    assert "--batch-size lowered from 4 to 2" in capsys.readouterr().err
    with pytest.raises(ResourceLimitError, match=r"1920x1080 frames at batch size 4 need about"):
        _fit_batch(cfg, 1920, 1080, adjustable=False, warn=True, available=need - 1)
    with pytest.raises(ResourceLimitError, match=r"scale the input down"):
        _fit_batch(cfg, 16000, 16000, adjustable=True, warn=True, available=2**30)


# ----------------------------------------------------------------------------- 3. signals and temporaries

def _wait_for(predicate, proc, seconds=90.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be signalled"


def _signal_when(proc, predicate, sig, on_ready=None) -> str:
    """Wait until ``predicate()`` holds while ``proc`` runs, call ``on_ready()``, send ``sig``
    and return the process's stderr; the process never outlives the test."""
    try:
        _wait_for(predicate, proc)
        if on_ready is not None:
            on_ready()
        proc.send_signal(sig)
        return proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()


def _popen(args, env):
    return subprocess.Popen([sys.executable, "-m", "alphagan_video", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_sigint_while_torch_is_imported_exits_130_without_aborted(media, out_dir, tiny_checkpoint):
    proc = _popen([media["mp4"], "-o", out_dir / "o.mov", "--checkpoint", tiny_checkpoint, *FAST], _env())

    def importing_torch() -> bool:
        try:
            return "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text()
        except OSError:
            return False
    err = _signal_when(proc, importing_torch, signal.SIGINT)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "alphagan-video: error: interrupted; no output was written"
    assert "Aborted" not in err and "Traceback" not in err
    assert listing(out_dir) == []


def test_sigterm_mid_write_exits_143_and_leaves_nothing(tmp_path, out_dir, tiny_checkpoint):
    clip = make_mp4(str(tmp_path / "long.mp4"), frames=300)
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    proc = _popen([clip, "-o", out_dir / "o.mov", "--checkpoint", tiny_checkpoint, "--batch-size", 1, *FAST],
                  _env(TMPDIR=str(tmpdir)))

    def temp_names_this_run():
        assert parse_temp_name(listing(out_dir)[0]) == (proc.pid, parse_temp_name(temp_name("x"))[1])

    err = _signal_when(proc, lambda: any(n.startswith(".o.tmp-") for n in listing(out_dir)), signal.SIGTERM,
                       on_ready=temp_names_this_run)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "alphagan-video: error: terminated; no output was written"
    assert "Traceback" not in err
    assert listing(out_dir) == []
    assert list(tmpdir.iterdir()) == []  # no empty torchinductor_<user>/ left in $TMPDIR


def test_sigkill_leftovers_are_removed_by_the_next_run(tmp_path, out_dir, tiny_checkpoint):
    clip = make_mp4(str(tmp_path / "long.mp4"), frames=300)
    proc = _popen([clip, "-o", out_dir / "o.mov", "--checkpoint", tiny_checkpoint, "--batch-size", 1, *FAST], _env())
    _signal_when(proc, lambda: any(n.startswith(".o.tmp-") for n in listing(out_dir)), signal.SIGKILL)
    (stale,) = listing(out_dir)
    short = make_mp4(str(tmp_path / "short.mp4"), frames=2, audio=False)
    result = run_ok(short, "-o", out_dir / "o.mov", "--checkpoint", tiny_checkpoint, "--mask", "chroma",
                    "--no-refine")
    assert f"removed {out_dir / stale}, a temporary left by process {proc.pid}, which is no longer running" \
        in result.stderr
    assert listing(out_dir) == ["o.mov"]


def test_stale_sweep_keeps_live_and_foreign_temporaries(tmp_path):
    live = tmp_path / temp_name("a", ".mov")  # this process: alive
    foreign = tmp_path / ".b.tmp-1-0123abcd-alphagan@otherhost.mov"
    dead_pid = 2**22 + 12345  # above the usual pid_max
    dead = tmp_path / temp_name("c", ".mov").replace(f"-{os.getpid()}-", f"-{dead_pid}-")
    for p in (live, foreign, dead):
        p.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [(str(dead), dead_pid)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, foreign.name])


# ----------------------------------------------------------------------------- 4. farm job files

@pytest.fixture
def finished_job(tmp_path, tiny_checkpoint):
    shot = tmp_path / "shot"
    shot.mkdir()
    clip = make_mp4(str(shot / "in.mp4"), frames=4, audio=False)
    args = ("farm", "local", clip, "-o", shot / "out.mov", "--chunk-size", 2, "--checkpoint", tiny_checkpoint,
            "--no-temporal", *FAST[:3])
    run_ok(*args)
    return shot, args


def test_finished_job_rerun_is_already_complete_and_touches_nothing(finished_job):
    shot, args = finished_job

    def state():
        return sorted((str(p.relative_to(shot)), p.stat().st_mtime_ns) for p in shot.rglob("*"))
    before = state()
    result = run_ok(*args)
    assert "already complete" in result.stderr
    assert state() == before


def test_job_paths_resolve_against_the_job_folder_and_stay_in_it(finished_job, tmp_path):
    shot, _ = finished_job
    job_path = shot / "out.mov.alphagan-job.json"
    data = json.loads(job_path.read_text())
    data.update(input="in.mp4", output="out.mov")  # relative: to the job file's folder
    job_path.write_text(json.dumps(data))
    os.chdir(tmp_path)  # the worker stands elsewhere
    try:
        result = run_ok("farm", "chunk", job_path, "--frames", "0-1")  # the job's first chunk (chunk size 2)
        assert "verified, kept" in result.stderr and str(shot) in result.stderr
        data["output"] = "../../x.mov"
        job_path.write_text(json.dumps(data))
        result = cli("farm", "chunk", job_path, "--frames", "0-1")
    finally:
        os.chdir(REPO)
    assert result.exit_code == 2 and "outside the job's folder" in result.stderr
    assert not (tmp_path.parent / "x.mov").exists()


def test_chunk_does_not_create_a_missing_output_folder(finished_job, tmp_path):
    from alphagan_video.farm import load_job, run_chunk
    from alphagan_video.farm.job import FarmUsageError

    shot, _ = finished_job
    data = json.loads((shot / "out.mov.alphagan-job.json").read_text())
    missing = tmp_path / "missing"
    data["output"] = str(missing / "out.mov")  # a folder that does not exist
    job = shot / "other.json"
    job.write_text(json.dumps(data))
    result = cli("farm", "chunk", job, "--frames", "0-1")
    assert result.exit_code == 2 and "outside the job's folder" in result.stderr
    # The job's own folder vanished after planning (an unmounted share): refused, not recreated.
    sub = tmp_path / "sub"
    sub.mkdir()
    data["output"] = "out.mov"
    job2 = sub / "out.mov.alphagan-job.json"
    job2.write_text(json.dumps(data))
    loaded = load_job(job2)
    job2.unlink()
    sub.rmdir()
    with pytest.raises(FarmUsageError, match=r"output folder .* does not exist; a chunk does not create it"):
        run_chunk(loaded, 0, 1)
    assert not sub.exists() and not missing.exists()


# ----------------------------------------------------------------------------- 5. smaller ones

def test_checkpoint_with_nan_weights_exits_2_naming_the_tensor(tmp_path, media, out_dir):
    model = build_generator("tiny")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first_float = next(k for k, v in state.items() if v.is_floating_point())
    second = [k for k, v in state.items() if v.is_floating_point()][3]
    state[second].view(-1)[0] = float("inf")
    bad = tmp_path / "nan.safetensors"
    save_file(state, str(bad), metadata={"format": "alphagan-video-generator", "variant": "tiny", "norm": "gn"})
    result = cli(media["mp4"], "-o", out_dir / "o.mov", "--checkpoint", bad, *FAST)
    assert_clean_failure(result, 2, f"tensor {second!r}", "non-finite", out_dir=out_dir)
    assert first_float != second


def test_output_checks_run_before_torch_is_imported(media, out_dir, no_torch):
    (out_dir / "o.mov").write_bytes(b"old")
    for args, needle in (((media["mp4"], "-o", out_dir / "o.mov"), "output exists"),
                         ((media["mp4"], "-o", out_dir / "o.xyz"), "unknown output extension"),
                         ((media["mp4"], "-o", out_dir / "o.mov", "--mask", "nope"), "unknown mask source"),
                         ((media["mp4"], "-o", out_dir / "n.mov", "--mask", "file:missing.mov"), "input not found"),
                         ((media["dir"] / "none.mp4", "-o", out_dir / "n.mov"), "input not found")):
        done = _script(*args, *FAST[2:], env=no_torch)
        assert done.returncode == 2, done.stderr
        assert needle in done.stderr and "torch was imported" not in done.stderr
    done = _script("info", env=no_torch)
    assert done.returncode == 0 and "model weights:" in done.stdout, done.stderr


def test_exit_1_is_for_our_own_bugs(media, out_dir, monkeypatch):
    """A bug (any unexpected exception) is exit 1 with one line, not a traceback."""
    import alphagan_video.pipeline as pipeline

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(pipeline, "matte_video", broken)
    result = CliRunner().invoke(cli_module.main, [media["mp4"], "-o", str(out_dir / "o.mov"), *FAST])
    assert result.exit_code == 1
    assert "internal error: ZeroDivisionError: a bug" in result.stderr and "Traceback" not in result.output


def test_light_copies_match_the_library():
    assert torch_build()[0] == torch.__version__


def test_farm_jobs_carry_the_pixel_budget_to_every_chunk(tmp_path, tiny_checkpoint):
    shot = tmp_path / "shot"
    shot.mkdir()
    clip = make_mp4(str(shot / "in.mp4"), frames=4, audio=False)
    common = ("--chunk-size", 4, "--checkpoint", tiny_checkpoint, "--no-temporal", *FAST[:3])
    result = cli("farm", "plan", clip, "-o", shot / "out.mov", "--max-pixels", 1000, *common)
    assert result.exit_code == 2 and "over the budget of 1000" in result.stderr
    assert sorted(p.name for p in shot.iterdir()) == ["in.mp4"]
    run_ok("farm", "plan", clip, "-o", shot / "out.mov", "--max-pixels", 3072, *common)
    job = shot / "out.mov.alphagan-job.json"
    assert json.loads(job.read_text())["max_pixels"] == 3072
    run_ok("farm", "chunk", job, "--frames", "0-3")
    data = json.loads(job.read_text())
    data["max_pixels"] = 1000
    job.write_text(json.dumps(data))
    shutil.rmtree(shot / "out.mov.alphagan-segments")
    result = cli("farm", "chunk", job, "--frames", "0-3")
    assert result.exit_code == 2 and "over the budget of 1000" in result.stderr


def test_long_output_names(media, out_dir, tiny_checkpoint):
    """A name the file system refuses is exit 2 before any work; a legal long name gets a
    (shortened) temporary and works (the temporary's marker must not push it over 255 bytes)."""
    result = cli(media["mp4"], "-o", out_dir / ("x" * 300 + ".mov"), *FAST)
    assert_clean_failure(result, 2, "output file name is too long", out_dir=out_dir)
    name = "\u00e9" * 125 + ".mov"  # 254 bytes
    assert len(os.fsencode(temp_name(name[:-4], ".mov"))) <= 255
    run_ok(media["mp4"], "-o", out_dir / name, "--checkpoint", tiny_checkpoint, *FAST)
    assert listing(out_dir) == [name]
