"""The command line: exit codes, one-line errors that leave nothing behind, interruption,
``--json-report``, ``info``, ``--version`` and the installed console script."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import av
import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import alphagan_video
import alphagan_video.pipeline as pipeline
from alphagan_video.model import build_generator
from tests.e2e import (  # noqa: F401 - tiny_checkpoint is a fixture
    assert_clean_failure,
    cli,
    clip_with_masks,
    error_lines,
    listing,
    mask_images,
    prores_alpha,
    run_ok,
    tiny_checkpoint,
    trimap_images,
    video_pts,
    write_gray_sequence,
)
from tests.media import make_audio_only, make_empty_video, make_truncated_faststart_video, make_video


@pytest.fixture
def out_dir(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


@pytest.fixture
def clip6(tmp_path):
    """(clip, ``file:`` mask spec) for a 6-frame 64x48 clip with one audio stream."""
    return clip_with_masks(tmp_path, frames=6, audio_streams=1)


# ----------------------------------------------------------------------------- bad input files

def _input_case(kind: str, tmp_path) -> tuple[str, str]:
    """(input path, expected fragment of the error)."""
    if kind == "missing":
        return str(tmp_path / "nope.mp4"), "input not found"
    if kind == "not-media":
        p = tmp_path / "notes.mp4"
        p.write_text("this is not a video\n" * 50)
        return str(p), "not a readable media file"
    if kind == "truncated":
        clip = make_video(str(tmp_path / "full.mp4"), frames=24)
        data = open(clip.path, "rb").read()
        (tmp_path / "trunc.mp4").write_bytes(data[: len(data) // 2])  # moov lost
        return str(tmp_path / "trunc.mp4"), "not a readable media file"
    if kind == "corrupt-mid-run":  # fails after frames were already written
        return make_truncated_faststart_video(str(tmp_path)), "video: "
    if kind == "zero-frames":
        return make_empty_video(str(tmp_path / "empty.mkv")), "video has no frames"
    if kind == "audio-only":
        return make_audio_only(str(tmp_path / "sound.m4a")), "audio-only file"
    raise ValueError(kind)


@pytest.mark.parametrize(
    "kind", ["missing", "not-media", "truncated", "corrupt-mid-run", "zero-frames", "audio-only"]
)
def test_bad_input_file(tmp_path, out_dir, tiny_checkpoint, kind):
    path, problem = _input_case(kind, tmp_path)
    mask = tmp_path / "mask.png"  # a valid mask for any 64x48 input, so the input is what fails
    cv2.imwrite(str(mask), np.full((48, 64), 255, np.uint8))
    result = cli(path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--mask", f"file:{mask}",
                 "--batch-size", 4)
    line = assert_clean_failure(result, 2, problem, os.path.basename(path), out_dir=out_dir,
                                whole_stderr=kind != "corrupt-mid-run")
    if kind == "corrupt-mid-run":  # batches had gone into the writer's temporary before the error
        assert int(re.search(r"frame (\d+)", line).group(1)) >= 4


@pytest.mark.parametrize(
    "name,args,needles",
    [("out.avi", (), ("unknown output extension '.avi'", "out.avi")),
     ("out.mp4", (), ("has no alpha channel", "out.mp4")),
     ("nodir/out.mov", (), ("output directory does not exist", "nodir")),
     ("out.mov", ("--output-kind", "alpha", "--codec", "ffv1"), ("codec 'ffv1' cannot write a matte into .mov",))],
    ids=["extension", "alpha-in-mp4", "missing-dir", "codec"],
)
def test_unusable_output(tmp_path, out_dir, tiny_checkpoint, clip6, name, args, needles):
    clip, mask = clip6
    result = cli(clip.path, "-o", out_dir / name, "--checkpoint", tiny_checkpoint, "--mask", mask, *args)
    assert_clean_failure(result, 2, *needles, out_dir=out_dir)


# ----------------------------------------------------------------------------- bad masks / trimaps

def test_mask_sequence_shorter_than_video(tmp_path, out_dir, tiny_checkpoint):
    clip = make_video(str(tmp_path / "in.mp4"), frames=6)
    mask = write_gray_sequence(tmp_path / "short", mask_images(clip.mask[:4]))
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--mask", f"file:{mask}",
                 "--batch-size", 2)
    # refused in the preflight: the sequence has fewer frames than the run reads
    assert_clean_failure(result, 2, mask, "has 4 frame(s)", "frame 4", out_dir=out_dir, whole_stderr=False)


def test_mask_of_another_size(tmp_path, out_dir, tiny_checkpoint):
    clip = make_video(str(tmp_path / "in.mp4"), frames=3)
    mask = write_gray_sequence(tmp_path / "small", np.zeros((3, 24, 32), np.uint8))
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--mask", f"file:{mask}")
    assert_clean_failure(result, 2, mask, "32x24", "64x48", out_dir=out_dir)


def test_trimap_sequence_shorter_than_video(tmp_path, out_dir, tiny_checkpoint):
    clip = make_video(str(tmp_path / "in.mp4"), frames=6)
    tri = write_gray_sequence(tmp_path / "tri", trimap_images(clip.mask[:5]), "t_%04d.png")
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--trimap", tri,
                 "--batch-size", 4)
    assert_clean_failure(result, 2, f"--trimap {tri}", "has 5 frame(s)", "frame 5", out_dir=out_dir,
                         whole_stderr=False)


def test_trimap_of_another_size(tmp_path, out_dir, tiny_checkpoint):
    clip = make_video(str(tmp_path / "in.mp4"), frames=3)
    tri = write_gray_sequence(tmp_path / "tri", np.full((3, 48, 60), 128, np.uint8), "t_%04d.png")
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--trimap", tri)
    assert_clean_failure(result, 2, tri, "60x48", "64x48", out_dir=out_dir)


def test_missing_trimap_names_the_option(tmp_path, out_dir, tiny_checkpoint):
    clip = make_video(str(tmp_path / "in.mp4"), frames=3)
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--trimap",
                 tmp_path / "tri.png")
    assert_clean_failure(result, 2, "--trimap", "tri.png", "not found", out_dir=out_dir)


# ----------------------------------------------------------------------------- bad checkpoints

def test_unreadable_checkpoint(tmp_path, out_dir, clip6):
    clip, mask = clip6
    bad = tmp_path / "random.safetensors"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", bad, "--mask", mask)
    assert_clean_failure(result, 2, "cannot read checkpoint", str(bad), out_dir=out_dir)


def test_checkpoint_of_another_variant(tmp_path, out_dir, clip6):
    clip, mask = clip6
    state = {k: v.contiguous() for k, v in build_generator("tiny").state_dict().items()}
    path = tmp_path / "claims_resnet18.safetensors"
    save_file(state, str(path), metadata={"format": "alphagan-video-generator", "variant": "resnet18",
                                          "norm": "gn", "in_channels": "4"})
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", path, "--mask", mask)
    assert_clean_failure(result, 2, str(path), "does not fit generator variant 'resnet18'", out_dir=out_dir)


def test_checkpoint_with_garbage_keys(tmp_path, out_dir, clip6):
    clip, mask = clip6
    path = tmp_path / "garbage.pt"
    torch.save({"variant": "tiny", "state_dict": {"foo.weight": torch.zeros(3), "bar": torch.ones(2)}}, path)
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", path, "--mask", mask)
    assert_clean_failure(result, 2, str(path), "missing keys", "unexpected keys: foo.weight", out_dir=out_dir)


def test_bare_state_dict_without_variant(tmp_path, out_dir, clip6):
    clip, mask = clip6
    path = tmp_path / "bare.pt"
    torch.save(build_generator("tiny").state_dict(), path)
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", path, "--mask", mask)
    assert_clean_failure(result, 2, str(path), "does not say which generator variant", out_dir=out_dir)


def test_default_weights_missing_or_loadable(tmp_path, out_dir, clip6):
    """Without --checkpoint the shipped weights are used; absent, the error says what to do."""
    from alphagan_video.model import DEFAULT_WEIGHTS_PATH

    clip, mask = clip6
    result = cli(clip.path, "-o", out_dir / "out.mov", "--mask", mask, "--no-refine", "-q")
    if DEFAULT_WEIGHTS_PATH.is_file():
        assert result.exit_code == 0, result.output
    else:
        assert_clean_failure(result, 2, "shipped generator weights are missing", "--checkpoint", out_dir=out_dir)


# ----------------------------------------------------------------------------- bad options

def test_sam_without_checkpoint(tmp_path, out_dir, tiny_checkpoint, clip6):
    clip, _ = clip6
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--mask", "sam",
                 "--box", "5,5,40,40")
    assert_clean_failure(result, 2, "--mask sam needs a checkpoint", out_dir=out_dir)


def test_sam_without_prompt(tmp_path, out_dir, tiny_checkpoint, clip6):
    from tests.tiny_sam import build_tiny_sam

    clip, _ = clip6
    sam = tmp_path / "sam.pth"
    torch.save(build_tiny_sam().state_dict(), sam)
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--mask", "sam",
                 "--sam-checkpoint", sam)
    assert_clean_failure(result, 2, "--mask sam needs a prompt", "box", out_dir=out_dir)


@pytest.mark.parametrize(
    "args,needles",
    [
        (("--mask", "sam", "--box", "1,2,3"), ("--box", "'1,2,3'", "x0,y0,x1,y1")),
        (("--mask", "sam", "--box", "40,5,10,30"), ("--box", "x1 must exceed x0")),
        (("--mask", "sam", "--point", "a,b"), ("--point", "'a,b'")),
        (("--device", "tpu"), ("--device 'tpu'", "unknown device")),
        (("--batch-size", "0"), ("--batch-size 0",)),
        (("--temporal-strength", "2"), ("--temporal-strength 2",)),
        (("--output-kind", "composite", "--background", "#12345"), ("--background", "#12345")),
        (("--mask", "rainbow"), ("--mask 'rainbow'", "unknown mask source")),
    ],
    ids=["box-syntax", "box-empty", "point-syntax", "device", "batch-size", "strength", "background", "mask"],
)
def test_bad_option_values(tmp_path, out_dir, tiny_checkpoint, clip6, args, needles):
    clip, _ = clip6
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, *args)
    assert_clean_failure(result, 2, *needles, out_dir=out_dir)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_machine(tmp_path, out_dir, tiny_checkpoint, clip6):
    clip, mask = clip6
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--mask", mask,
                 "--device", "cuda")
    assert_clean_failure(result, 2, "--device cuda", "CUDA is not available", out_dir=out_dir)


def test_click_usage_errors_exit_2(tmp_path, out_dir, clip6):
    clip, _ = clip6
    assert cli(clip.path).exit_code == 2  # no -o
    assert cli(clip.path, "-o", out_dir / "o.mov", "--output-kind", "sparkles").exit_code == 2
    assert listing(out_dir) == []


def test_existing_output_is_untouched_without_overwrite(tmp_path, out_dir, tiny_checkpoint, clip6):
    clip, mask = clip6
    out = out_dir / "out.mov"
    out.write_bytes(b"precious")
    stamp = os.stat(out).st_mtime_ns
    result = cli(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", mask)
    assert_clean_failure(result, 2, "output exists", str(out), "--overwrite", out_dir=out_dir, before=["out.mov"])
    assert out.read_bytes() == b"precious" and os.stat(out).st_mtime_ns == stamp
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", mask, "--overwrite", "--no-refine", "-q")
    assert prores_alpha(str(out)).shape == (6, 48, 64) and listing(out_dir) == ["out.mov"]


def test_existing_sequence_is_untouched_without_overwrite(tmp_path, out_dir, tiny_checkpoint, clip6):
    clip, mask = clip6
    (out_dir / "f_0003.png").write_bytes(b"precious")
    result = cli(clip.path, "-o", out_dir / "f_%04d.png", "--checkpoint", tiny_checkpoint, "--mask", mask)
    assert_clean_failure(result, 2, "already has files", "f_0003.png", out_dir=out_dir, before=["f_0003.png"])
    assert (out_dir / "f_0003.png").read_bytes() == b"precious"


def test_debug_shows_the_traceback(tmp_path, out_dir, tiny_checkpoint):
    result = cli(tmp_path / "nope.mp4", "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--debug")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and len(error_lines(result)) == 1
    assert listing(out_dir) == []


# ----------------------------------------------------------------------------- failures mid-run

def _fail_on_second_batch(monkeypatch, exc: BaseException) -> list:
    calls = []
    from alphagan_video.stages.temporal import TemporalStage

    real = TemporalStage.__call__

    def flaky(self, work):
        calls.append(1)
        if len(calls) == 2:
            raise exc
        return real(self, work)

    monkeypatch.setattr(TemporalStage, "__call__", flaky)
    return calls


@pytest.mark.parametrize("output", ["out.mov", "f_%04d.png"])
@pytest.mark.parametrize(
    "exc,code,needle",
    [(RuntimeError("boom in stage"), 1, "internal error: RuntimeError: boom in stage"),
     (KeyboardInterrupt(), 130, "interrupted; no output was written")],
    ids=["internal-error", "interrupt"],
)
def test_failure_mid_run_leaves_nothing(tmp_path, out_dir, tiny_checkpoint, clip6, monkeypatch, output, exc,
                                        code, needle):
    clip, mask = clip6
    (out_dir / "unrelated.txt").write_text("keep me")
    calls = _fail_on_second_batch(monkeypatch, exc)
    result = cli(clip.path, "-o", out_dir / output, "--checkpoint", tiny_checkpoint, "--mask", mask,
                 "--batch-size", 2, "--no-refine")
    assert len(calls) == 2  # the first batch went through (into the writer's temporaries)
    assert_clean_failure(result, code, needle, out_dir=out_dir, before=["unrelated.txt"], whole_stderr=False)


# ----------------------------------------------------------------------------- report, info, version

def test_json_report_times_refine_and_temporal_apart(tmp_path, out_dir, tiny_checkpoint, clip6):
    """Bug (issue 13): with the refine and smoothing both on, the temporal seconds were 0.0 (the
    fused solve lapped everything into "refine")."""
    clip, mask = clip6
    report_path = tmp_path / "report.json"
    run_ok(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--mask", mask,
           "--batch-size", 3, "--json-report", report_path, "-q")
    report = json.loads(report_path.read_text())
    assert report["settings"]["refine"] is True and report["settings"]["temporal"] is True
    assert report["seconds"]["temporal"] > 0 and report["seconds"]["refine"] > 0


def test_trimap_band_zero_is_a_binary_trimap(tmp_path, out_dir, tiny_checkpoint, clip6):
    """Bug (issue 13): an explicit band of 0 silently meant "automatic"; it is the binary trimap
    ``make_trimap`` documents (no unknown band), and the CLI accepts it."""
    clip, mask = clip6
    report_path = tmp_path / "report.json"
    run_ok(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--mask", mask,
           "--trimap-band", 0, "--json-report", report_path, "-q")
    settings = json.loads(report_path.read_text())["settings"]
    assert settings["trimap_band_px"] == 0 and settings["trimap"] == "band"
    result = cli(clip.path, "-o", out_dir / "neg.mov", "--checkpoint", tiny_checkpoint, "--trimap-band", -1)
    assert result.exit_code == 2 and "--trimap-band -1: must be 0 or more pixels" in result.stderr


def test_json_report(tmp_path, out_dir, tiny_checkpoint, clip6):
    clip, mask = clip6
    report_path = tmp_path / "report.json"
    result = run_ok(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--mask", mask,
                    "--batch-size", 4, "--trimap-band", 6, "--temporal-strength", 0.3, "--no-refine",
                    "--json-report", report_path)
    report = json.loads(report_path.read_text())
    assert report["frames"] == 6 and (report["width"], report["height"]) == (64, 48)
    assert report["input"] == clip.path and report["output"] == str(out_dir / "out.mov")
    assert report["device"] == "cpu"
    assert report["model"]["variant"] == "tiny" and report["model"]["path"] == tiny_checkpoint
    assert len(report["model"]["sha256"]) == 12
    assert report["mask_source"].startswith("file")
    assert report["output_description"].startswith("ProRes 4444")
    expected = {"batch_size": 4, "trimap_band_px": 6, "temporal": True, "temporal_strength": 0.3,
                "refine": False, "output_kind": "rgba", "frame_range": None}
    assert {k: report["settings"].get(k) for k in expected} == expected
    seconds = report["seconds"]
    assert {"decode", "mask", "model", "encode", "total"} <= set(seconds)
    assert seconds["total"] > 0 and all(v >= 0 for v in seconds.values())
    assert seconds["total"] >= sum(v for k, v in seconds.items() if k != "total") - 1e-3
    # without -q a summary line goes to stderr (and nothing to stdout)
    assert "wrote" in result.stderr and "6 frame(s)" in result.stderr and result.stdout == ""


def test_json_report_into_a_missing_directory_fails_first(tmp_path, out_dir, tiny_checkpoint, clip6):
    clip, mask = clip6
    result = cli(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--mask", mask,
                 "--json-report", tmp_path / "nodir" / "r.json")
    assert_clean_failure(result, 2, "--json-report", "nodir", out_dir=out_dir)


def test_info_command():
    result = cli("info")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"alphagan-video {alphagan_video.__version__}"
    assert any(line.startswith("python 3.") for line in lines)
    assert any(line.startswith(f"torch {torch.__version__}") for line in lines)
    assert any(line.startswith(f"PyAV {av.__version__}") for line in lines)
    encoders = next(line for line in lines if line.startswith("encoders: "))
    assert {"prores_ks", "ffv1", "png", "libx264"} <= set(encoders[len("encoders: "):].split(", "))
    assert any(line.startswith("model weights: ") for line in lines)


def test_version_and_help():
    result = cli("--version")
    assert result.exit_code == 0 and alphagan_video.__version__ in result.stdout
    result = cli("run", "--help")
    assert result.exit_code == 0
    assert "STRAIGHT" in result.stdout and "PREMULTIPLIED" in result.stdout


# ----------------------------------------------------------------------------- installed script

def test_installed_console_script(tmp_path, out_dir, tiny_checkpoint):
    """The entry point works, and a real Ctrl-C (SIGINT) mid-run exits 130 with one line and
    leaves nothing behind."""
    script = shutil.which("alphagan-video", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    assert script is not None, "console script missing: pip install -e . (setup.cfg entry_points)"
    clip, mask = clip_with_masks(tmp_path, frames=3, audio_streams=1)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = out_dir / "out.mov"
    done = subprocess.run([script, clip.path, "-o", str(out), "--checkpoint", tiny_checkpoint, "--mask", mask,
                           "--no-refine", "-q"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    pts, tb, n_audio = video_pts(str(out))
    assert pts == clip.pts and tb == clip.time_base and n_audio == 1

    long_clip = make_video(str(tmp_path / "long.mp4"), frames=400, audio_streams=1)  # ~5 s of work
    (tmp_path / "sig").mkdir()
    cv2.imwrite(str(tmp_path / "mask.png"), mask_images(long_clip.mask[:1])[0])
    proc = subprocess.Popen(
        [script, long_clip.path, "-o", str(tmp_path / "sig" / "out.mov"), "--checkpoint", tiny_checkpoint,
         "--mask", f"file:{tmp_path / 'mask.png'}", "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell may ignore it
    )
    try:
        deadline = time.monotonic() + 60
        def writing() -> bool:  # the writer's temporary exists: frames are being written (the
            # preflight's writability probe, created and removed at once, does not count)
            return any(name.startswith(".out.tmp-") for name in listing(tmp_path / "sig"))

        while not writing() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run ended before it could be interrupted"
        assert listing(tmp_path / "sig")[0].startswith(".out.tmp-")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "alphagan-video: error: interrupted; no output was written"
    assert "Traceback" not in err
    assert listing(tmp_path / "sig") == []


# ----------------------------------------------------------------------------- progress and speed

def test_progress_bar_and_closing_line_print_one_speed(out_dir, tiny_checkpoint, clip6):
    """Newcomer finding (issue 26): the bar showed tqdm's rate (counted from its first batch,
    smoothed, in s/frame below 1 fps) and the closing line frames per second of the whole run.
    Both now print ``cli.run.speed``: frames written per second since the run started; the bar's
    last line shows the closing line's figure."""
    from alphagan_video.cli.run import speed

    assert speed(6, 3.0) == "2.00 fps" and speed(0, 0.0) == "0.00 fps"
    clip, mask = clip6
    result = run_ok(clip.path, "-o", out_dir / "out.mov", "--checkpoint", tiny_checkpoint, "--mask", mask,
                    "--batch-size", 3)
    closing = re.search(r"^wrote .*: 6 frame\(s\), .*, (\d+\.\d\d fps)$", result.stderr, re.M)
    assert closing, result.stderr
    bar = [line for line in re.split(r"[\r\n]", result.stderr) if line.startswith("matting:")]
    assert bar and bar[-1].startswith("matting: 100%|") and "| 6/6 [" in bar[-1], result.stderr
    assert bar[-1].endswith(f"<00:00, {closing.group(1)}]"), result.stderr
    assert "frame/s" not in result.stderr and "s/frame" not in result.stderr
