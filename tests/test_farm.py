"""Render farms (issue 6): chunks with context, lossless assembly, resumable jobs, job files.

Every run uses the tiny seeded generator and the clip's true masks (``file:`` source, per frame)
with --no-refine; the clip has 12 frames of 64x48 and one audio stream.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from alphagan_video.cli import user_message, worker_commands
from alphagan_video.config import MaskConfig, PipelineConfig
from alphagan_video.errors import ParameterError
from alphagan_video.farm import (
    FarmError,
    FarmUsageError,
    choose_segments,
    create_job,
    load_job,
    plan_chunks,
    run_chunk,
    verify_segment,
)
from tests.e2e import (  # noqa: F401 - tiny_checkpoint is a fixture
    cli,
    clip_with_masks,
    error_lines,
    prores_alpha,
    run_ok,
    tiny_checkpoint,
)
from alphagan_video.farm.job import check_on_plan
from tests.media import read_packets

CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def video_packets(path) -> list[tuple[int, str]]:
    """(pts, md5 of the payload) of every video packet, in file order."""
    with av.open(str(path)) as c:
        return [(p.pts, hashlib.md5(bytes(p)).hexdigest()) for p in c.demux(c.streams.video[0]) if p.size]


def codec_tag(path) -> str:
    with av.open(str(path)) as c:
        return c.streams.video[0].codec_context.codec_tag


@pytest.fixture
def shot(tmp_path, tiny_checkpoint):
    """(clip, options for run/farm commands without --temporal choice)."""
    clip, spec = clip_with_masks(tmp_path, frames=12, audio_streams=1)
    return clip, ["--checkpoint", tiny_checkpoint, "--mask", spec, "--no-refine", "--batch-size", "2"]


def unchunked(tmp_path, clip, opts, *extra, name="full.mov") -> Path:
    out = tmp_path / name
    run_ok(clip.path, "-o", out, *opts, *extra, "-q")
    return out


def assert_same_file_content(a, b) -> None:
    """Frame payloads byte for byte, pts, fourcc and the decoded alpha equal."""
    assert video_packets(a) == video_packets(b)
    assert codec_tag(a) == codec_tag(b) == "ap4h"
    np.testing.assert_array_equal(prores_alpha(str(a)), prores_alpha(str(b)))


# --------------------------------------------------------------------------- chunks

def test_plan_and_parse():
    from alphagan_video.frame_range import parse_frame_range

    assert plan_chunks(12, 5, batch_size=2) == [(0, 5), (6, 11)]  # rounded up to the batch grid
    assert plan_chunks(10, 4) == [(0, 3), (4, 7), (8, 9)]
    assert parse_frame_range("4-7", single=True) == (4, 7) and parse_frame_range("9", single=True) == (9, 9)
    # The library names the parameter; the CLI shows it as the flag.
    with pytest.raises(ParameterError, match=r"^frames '7-4': expected 0 <= A <= B$") as err:
        parse_frame_range("7-4", single=True)
    assert user_message(err.value) == "--frames '7-4': expected 0 <= A <= B"
    with pytest.raises(ParameterError, match=r"^frames 'x': expected A-B or A with 0-based frame numbers$"):
        parse_frame_range("x", single=True)
    with pytest.raises(FarmUsageError, match=r"^chunk_size 0: must be at least 1 frame$") as err:
        plan_chunks(12, 0)
    assert user_message(err.value) == "--chunk-size 0: must be at least 1 frame"


def test_context_chunk_writes_only_its_frames_with_original_pts(tmp_path, shot):
    clip, opts = shot
    full = unchunked(tmp_path, clip, opts, "--no-temporal")
    seg = tmp_path / "seg.mov"
    # A=5 is off the batch grid (2): warm-up starts at 2, the last batch ends at 9 (discarded).
    run_ok(clip.path, "-o", seg, *opts, "--no-temporal", "--frames", "5-8", "--context", "3", "--no-audio", "-q")
    assert video_packets(seg) == video_packets(full)[5:9]
    assert [p for p, _ in video_packets(seg)] == clip.pts[5:9]
    with av.open(str(seg)) as c:
        assert len(c.streams.audio) == 0


# --------------------------------------------------------------------------- chunked == unchunked

def test_chunked_equals_unchunked_byte_for_byte(tmp_path, shot):
    """--no-temporal: every frame depends on itself only, so identity is guaranteed."""
    clip, opts = shot
    full = unchunked(tmp_path, clip, opts, "--no-temporal")
    out = tmp_path / "farm.mov"
    result = run_ok("farm", "local", clip.path, "-o", out, "--chunk-size", "4", *opts, "--no-temporal")
    assert "3 segment(s) (3 matted, 0 reused)" in result.stderr
    assert_same_file_content(full, out)
    assert [p for p, _ in video_packets(out)] == clip.pts
    assert read_packets(str(out)) == read_packets(clip.path)  # the source's audio, copied
    manifest = json.loads(Path(str(out) + ".alphagan-job.json").read_text())
    assert [(s["first"], s["last"]) for s in manifest["segments"]] == [(0, 3), (4, 7), (8, 11)]
    assert manifest["context"] == 0 and manifest["frame_count"] == 12
    assert manifest["assembled"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    for s in manifest["segments"]:
        seg = out.parent / (out.name + ".alphagan-segments") / s["file"]
        assert hashlib.sha256(seg.read_bytes()).hexdigest() == s["sha256"]


def test_chunked_with_temporal_context_matches_within_tolerance(tmp_path, shot):
    """Temporal smoothing is recursive: finite context matches to within half an 8-bit step
    by design (temporal.context_frames_needed); on this clip it is exact."""
    clip, opts = shot
    full = unchunked(tmp_path, clip, opts)
    out = tmp_path / "farm.mov"
    run_ok("farm", "local", clip.path, "-o", out, "--chunk-size", "4", *opts)
    job = load_job(str(out) + ".alphagan-job.json")
    assert job.context >= 8  # default: what strength 0.5 needs
    diff = np.abs(prores_alpha(str(full)) - prores_alpha(str(out)))
    assert diff.max() <= 1.0 / 255
    assert video_packets(out) == video_packets(full)  # measured: exact here
    # Without warm-up the chunks' first frames start the recursive filter afresh: visibly different.
    cold = tmp_path / "cold.mov"
    run_ok("farm", "local", clip.path, "-o", cold, "--chunk-size", "4", "--context", "0", *opts)
    assert np.abs(prores_alpha(str(full)) - prores_alpha(str(cold))).max() > 8.0 / 255


# --------------------------------------------------------------------------- resumable

def test_resume_after_sigkill_mid_chunk(tmp_path, shot):
    clip, opts = shot
    full = unchunked(tmp_path, clip, opts, "--no-temporal")
    out = tmp_path / "farm.mov"
    cfg_opts = [*opts, "--no-temporal"]
    run_ok("farm", "openjd", clip.path, "-o", out, "--chunk-size", "4", *cfg_opts, "--template", tmp_path / "t.json")
    job = load_job(str(out) + ".alphagan-job.json")
    run_chunk(job, 0, 3)
    kept = os.stat(job.segment_path(0, 3)).st_mtime_ns
    seg_dir = Path(job.segments_dir)
    # A real worker process; killed with SIGKILL as soon as it has started writing (temp file).
    proc = subprocess.Popen([sys.executable, "-m", "alphagan_video", "farm", "chunk", job.job_path, "--frames", "4-7"],
                            env=CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".seg_000004-000007.tmp-") for p in seg_dir.iterdir()):
            assert proc.poll() is None, "the worker ended before it started writing"
            assert time.monotonic() < deadline, "the worker never started writing"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not os.path.exists(job.segment_path(4, 7)) and verify_segment(job, 4, 7) is None
    with pytest.raises(FarmUsageError, match=r"frames 4-11 of .* have no segment in .*no finished segment whose sha256"):
        choose_segments(job)
    result = run_ok("farm", "local", clip.path, "-o", out, "--chunk-size", "4", *cfg_opts)
    assert "(2 matted, 1 reused)" in result.stderr
    assert os.stat(job.segment_path(0, 3)).st_mtime_ns == kept
    assert_same_file_content(full, out)
    assert not [p.name for p in seg_dir.iterdir() if ".tmp-" in p.name]  # the killed worker's temporary


def test_corrupt_segment_is_detected_and_redone(tmp_path, shot):
    clip, opts = shot
    out = tmp_path / "farm.mov"
    args = ("farm", "local", clip.path, "-o", out, "--chunk-size", "4", *opts, "--no-temporal")
    run_ok(*args)
    reference = out.read_bytes()
    job = load_job(str(out) + ".alphagan-job.json")
    seg = Path(job.segment_path(4, 7))
    original = seg.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF  # one flipped byte in a frame payload: same size, other checksum
    seg.write_bytes(bytes(data))
    assert verify_segment(job, 4, 7) is None and verify_segment(job, 0, 3) is not None
    # Issue 28 item 8: a corrupt or missing segment is not our bug: exit 2 (it was 1), one line.
    result = cli("farm", "assemble", "--job", job.job_path, "--overwrite")
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"alphagan-video: error: frames 4-7 of {job.input} have a corrupt or unfinished segment in "
        f"{job.segments_dir} (no finished segment whose sha256 matches its record); rerun the job or 'farm chunk' "
        "for those frames (finished segments are kept) and assemble again"
    ]
    assert out.read_bytes() == reference  # the failed assembly left the output alone
    last = Path(job.segment_path(8, 11))
    last_bytes = last.read_bytes()
    seg.write_bytes(original)
    last.unlink()
    os.remove(job.record_path(8, 11))
    result = cli("farm", "assemble", "--job", job.job_path, "--overwrite")
    assert result.exit_code == 2 and len(error_lines(result)) == 1
    assert f"frames 8-11 of {job.input} have no segment in {job.segments_dir}" in error_lines(result)[0]
    # Explicit segments: a missing file and a file that is no video exit 2 too.
    result = cli("farm", "assemble", "--input", clip.path, "-o", tmp_path / "x.mov", job.segment_path(0, 3), last)
    assert result.exit_code == 2 and f"segment not found: {last}" in error_lines(result)[0]
    garbage = tmp_path / "garbage.mov"
    garbage.write_bytes(b"\0" * 4096)
    result = cli("farm", "assemble", "--input", clip.path, "-o", tmp_path / "x.mov", job.segment_path(0, 3), garbage)
    assert result.exit_code == 2 and len(error_lines(result)) == 1 and "garbage.mov" in error_lines(result)[0]
    assert not (tmp_path / "x.mov").exists()
    seg.write_bytes(data)
    result = run_ok(*args, "--overwrite")
    assert "(2 matted, 1 reused)" in result.stderr
    assert seg.read_bytes() == original and last.read_bytes() == last_bytes  # redone, deterministically
    assert out.read_bytes() == reference


def test_job_with_other_settings_is_refused_and_segments_of_old_settings_ignored(tmp_path, shot):
    clip, opts = shot
    out = tmp_path / "farm.mov"
    run_ok("farm", "local", clip.path, "-o", out, "--chunk-size", "4", *opts, "--no-temporal")
    other = ("farm", "local", clip.path, "-o", out, "--chunk-size", "4", *opts, "--no-temporal", "--trimap-band", "5")
    result = cli(*other)
    assert result.exit_code == 2
    assert "pass --overwrite or choose another name" in error_lines(result)[0]
    result = run_ok(*other, "--overwrite")
    assert "(3 matted, 0 reused)" in result.stderr  # the old segments' records carry the old settings
    assert load_job(str(out) + ".alphagan-job.json").config.trimap.band_px == 5


# --------------------------------------------------------------------------- errors and masks

def test_farm_refuses_outputs_that_cannot_be_joined_losslessly(tmp_path, shot):
    clip, opts = shot
    result = cli("farm", "local", clip.path, "-o", tmp_path / "o.mp4", *opts, "--output-kind", "alpha")
    assert result.exit_code == 2
    assert "segments are joined by stream copy, which needs an intra-only codec in .mov" in error_lines(result)[0]
    result = cli("farm", "local", clip.path, "-o", tmp_path / "o.mov", *opts, "--output-kind", "alpha", "--codec", "h264")
    assert result.exit_code == 2
    assert "codec libx264 is not intra-only" in error_lines(result)[0]


def test_sam_needs_the_prepass_and_the_prepass_writes_prompts_json(tmp_path, shot):
    import torch

    from alphagan_video.farm.prepass import run_prepass
    from alphagan_video.masks.sam import read_prompts_json
    from tests.tiny_sam import build_tiny_sam

    clip, _ = shot
    ckpt = tmp_path / "tiny_sam.pth"
    torch.save(build_tiny_sam(seed=1).state_dict(), ckpt)
    sam = MaskConfig(source="sam", sam_model="test_tiny", sam_checkpoint=ckpt, box=(0, 12, 20, 30))
    cfg = PipelineConfig(mask=sam)
    with pytest.raises(FarmUsageError, match=r"mask\.source sam propagates from the first frame.*farm prepass") as err:
        create_job(clip.path, tmp_path / "o.mov", cfg, chunk_size=4)
    assert user_message(err.value) == (
        "--mask sam propagates from the first frame, which a chunk does not have; run 'alphagan-video farm prepass "
        "INPUT -o prompts.json --mask sam ...' first and pass --prompts prompts.json (per-frame boxes) instead of "
        "--box or --point")
    report = run_prepass(clip.path, tmp_path / "prompts.json", cfg)
    assert report.frames == 12
    prompts = read_prompts_json(tmp_path / "prompts.json", 64, 48)  # the format --prompts reads
    assert sorted(prompts) == [i for i in range(12) if i not in report.empty]
    assert len(prompts) == report.boxes >= 1
    for p in prompts.values():
        x0, y0, x1, y1 = p.box
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 48


# --------------------------------------------------------------------------- job files

def test_openjd_template_runs_locally_with_openjd_cli(tmp_path, shot):
    openjd = Path(sys.executable).parent / "openjd"
    if not openjd.exists():
        pytest.skip("openjd-cli is not installed (pip install 'alphagan-video[test]')")
    from openjd.model import create_job as openjd_create_job
    from openjd.model import decode_job_template

    clip, opts = shot
    full = unchunked(tmp_path, clip, opts, "--no-temporal")
    out = tmp_path / "farm.mov"
    template_path = tmp_path / "template.json"
    run_ok("farm", "openjd", clip.path, "-o", out, "--chunk-size", "6", *opts, "--no-temporal",
           "--executable", f"{sys.executable} -m alphagan_video", "--template", template_path)
    template = json.loads(template_path.read_text())
    assert template["parameterDefinitions"][0]["default"] == "farm.mov.alphagan-job.json"  # relative
    assert template["extensions"] == ["TASK_CHUNKING"]
    decoded = decode_job_template(template=template, supported_extensions=["TASK_CHUNKING"])
    assert [s.name for s in openjd_create_job(job_template=decoded, job_parameter_values={}).steps] == ["Matte", "Assemble"]
    run = subprocess.run([str(openjd), "run", str(template_path), "--step", "Assemble", "--run-dependencies"],
                         env=CHILD_ENV, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert_same_file_content(full, out)
    assert read_packets(str(out)) == read_packets(clip.path)


def test_opencue_outline_serialises_offline(tmp_path, shot, monkeypatch):
    from alphagan_video.farm.opencue import SESSION_ENV

    # pyoutline reads its configuration when first imported: set the session dir before that.
    monkeypatch.setenv(SESSION_ENV, str(tmp_path / "cue-sessions"))
    pytest.importorskip("outline", reason="opencue-pyoutline is not installed (pip install 'alphagan-video[test]')")
    clip, opts = shot
    out = tmp_path / "farm.mov"
    result = run_ok("farm", "opencue", clip.path, "-o", out, "--chunk-size", "4", *opts, "--no-temporal",
                    "--show", "vfx", "--shot", "sh010", "--user", "artist", "--gpus", "1")
    xml = result.stdout
    assert "<show>vfx</show>" in xml and "<shot>sh010</shot>" in xml
    assert '<layer name="matte" type="Render">' in xml and "<range>0-11</range><chunk>4</chunk>" in xml
    assert "<cores>2.0</cores><gpus>1</gpus>" in xml
    assert '<layer name="assemble"' in xml
    assert '<deplayer>assemble</deplayer><onjob>' in xml and "<onlayer>matte</onlayer>" in xml
    # The outline session (read by every render node through pycuerun) went where it was told.
    sessions = list((tmp_path / "cue-sessions").glob("vfx-sh010-artist_*/*/outline.yaml"))
    assert len(sessions) == 1 and str(sessions[0]) in xml
    # The layers render nodes execute: one 'farm chunk' per chunk with the chunk's range.
    import outline.io

    from alphagan_video.farm.opencue import build_outline

    ran = []
    monkeypatch.setattr(outline.io, "system", lambda cmd, ignore_error=False, frame=None: ran.append(cmd))
    ol = build_outline(load_job(str(out) + ".alphagan-job.json"), commands=worker_commands(["alphagan-video"]))
    ol.get_layer("matte")._execute([4, 5, 6, 7])
    ol.get_layer("assemble")._execute([0])
    job_file = str(out) + ".alphagan-job.json"
    assert ran == [["alphagan-video", "farm", "chunk", job_file, "--frames", "4-7"],
                   ["alphagan-video", "farm", "assemble", "--job", job_file]]


def test_assemble_explicit_segments(tmp_path, shot):
    clip, opts = shot
    full = unchunked(tmp_path, clip, opts, "--no-temporal")
    segs = []
    for a, b in [(0, 5), (6, 11)]:
        seg = tmp_path / f"s{a}.mov"
        run_ok(clip.path, "-o", seg, *opts, "--no-temporal", "--frames", f"{a}-{b}", "--context", "0", "--no-audio", "-q")
        segs.append(seg)
    out = tmp_path / "joined.mov"
    run_ok("farm", "assemble", "--input", clip.path, "-o", out, *segs)
    assert_same_file_content(full, out)
    result = cli("farm", "assemble", "--input", clip.path, "-o", tmp_path / "bad.mov", segs[1], segs[0])
    assert result.exit_code == 2
    assert "overlapping or out-of-order segments" in error_lines(result)[0]
    assert not (tmp_path / "bad.mov").exists()


def test_sam_job_with_prepass_prompts_equals_unchunked(tmp_path, shot, tiny_checkpoint):
    """With the pre-pass's per-frame prompts every SAM mask depends on its own frame only."""
    import torch

    from alphagan_video.config import ModelConfig, RefineConfig, TemporalConfig
    from alphagan_video.farm import assemble_job, run_local
    from alphagan_video.farm.prepass import run_prepass
    from tests.tiny_sam import build_tiny_sam
    from alphagan_video.pipeline import matte_video

    clip, _ = shot
    ckpt = tmp_path / "tiny_sam.pth"
    torch.save(build_tiny_sam(seed=1).state_dict(), ckpt)
    sam = MaskConfig(source="sam", sam_model="test_tiny", sam_checkpoint=ckpt, box=(0, 12, 20, 30))
    report = run_prepass(clip.path, tmp_path / "prompts.json", PipelineConfig(mask=sam))
    assert report.empty == [] and report.boxes == 12
    cfg = PipelineConfig(
        mask=MaskConfig(source="sam", sam_model="test_tiny", sam_checkpoint=ckpt, prompts_json=tmp_path / "prompts.json"),
        model=ModelConfig(checkpoint=Path(tiny_checkpoint), batch_size=2), refine=RefineConfig(enabled=False),
        temporal=TemporalConfig(enabled=False),
    )
    full = tmp_path / "full.mov"
    matte_video(clip.path, full, cfg)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({k: v for k, v in json.loads((tmp_path / "prompts.json").read_text()).items()
                                   if k != "7"}))
    with pytest.raises(FarmUsageError, match=r"has no prompt for 1 frame\(s\) \(first: \[7\]\)"):
        create_job(clip.path, tmp_path / "farm.mov", PipelineConfig(mask=MaskConfig(
            source="sam", sam_model="test_tiny", sam_checkpoint=ckpt, prompts_json=partial)), chunk_size=4)
    job = create_job(clip.path, tmp_path / "farm.mov", cfg, chunk_size=4)
    run_local(job)
    assemble_job(job)
    assert_same_file_content(full, job.output)


def test_config_round_trips_through_the_job_file(tmp_path, monkeypatch):
    from alphagan_video.config import ModelConfig, RefineConfig
    from alphagan_video.config_json import config_from_dict, config_to_dict
    from alphagan_video.farm.job import job_config_from_dict

    cfg = PipelineConfig(
        mask=MaskConfig(source="sam", box=(1.0, 2.0, 30.0, 40.0), points=((5.0, 6.0, 1), (7.0, 8.0, 0)),
                        sam_checkpoint=tmp_path / "s.pth", prompts_json=tmp_path / "p.json"),
        model=ModelConfig(checkpoint=tmp_path / "g.safetensors", batch_size=3), refine=RefineConfig(enabled=False),
    )
    back = config_from_dict(json.loads(json.dumps(config_to_dict(cfg))))
    assert back == cfg
    # Paths inside option strings are made absolute too: farm tasks run in other directories.
    monkeypatch.chdir(tmp_path)
    rel = PipelineConfig(mask=MaskConfig(source="file:masks/m_%04d.png"))
    assert config_to_dict(rel)["mask"]["source"] == f"file:{tmp_path}/masks/m_%04d.png"
    assert config_to_dict(PipelineConfig(mask=MaskConfig(source="chroma")))["mask"]["source"] == "chroma"
    with pytest.raises(FarmUsageError, match=r"job settings \[model\] have unknown fields \['warp_speed'\]"):
        job_config_from_dict({**config_to_dict(cfg), "model": {"warp_speed": 9}})


def test_assembly_keeps_timecode_tags_and_audio_of_the_input(tmp_path, shot):
    clip, opts = shot
    src = tmp_path / "tc.mov"
    with av.open(clip.path) as inp:
        tb = inp.streams.video[0].time_base
        with av.open(str(src), "w", options={"movie_timescale": str(tb.denominator)}) as out:
            streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
            streams[inp.streams.video[0].index].metadata["timecode"] = "01:00:10:05"
            out.metadata["title"] = "Shot 10"
            for p in inp.demux():
                if p.dts is not None:
                    p.stream = streams[p.stream_index]
                    out.mux(p)
    out = tmp_path / "farm.mov"
    run_ok("farm", "local", src, "-o", out, "--chunk-size", "6", *opts, "--no-temporal")
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "Shot 10"
        assert c.streams.video[0].metadata.get("timecode") == "01:00:10:05"
        assert [s.metadata.get("timecode") for s in c.streams.data] == ["01:00:10:05"]  # QuickTime tmcd track
    assert read_packets(str(out)) == read_packets(str(src))


def test_unchunked_run_has_the_same_metadata_as_the_assembled_job(tmp_path, shot):
    clip, opts = shot
    src = tmp_path / "tc.mov"
    with av.open(clip.path) as inp:
        v = inp.streams.video[0]
        with av.open(str(src), "w", options={"movie_timescale": str(v.time_base.denominator)}) as out:
            vs = out.add_stream_from_template(v, rate=v.average_rate)
            vs.metadata["timecode"] = "10:00:00:00"
            out.metadata["title"] = "Shot 20"
            out.metadata["comment"] = "take 3"
            for p in inp.demux(v):
                if p.dts is not None:
                    p.stream = vs
                    out.mux(p)

    def metadata(path):
        with av.open(str(path)) as c:
            return ({k: v for k, v in c.metadata.items() if k != "encoder"},
                    [(s.type, s.metadata.get("timecode")) for s in c.streams])

    farm = tmp_path / "farm.mov"
    run_ok("farm", "local", src, "-o", farm, "--chunk-size", "6", *opts, "--no-temporal")
    full = tmp_path / "full.mov"
    run_ok(src, "-o", full, *opts, "--no-temporal", "-q")
    assert metadata(full) == metadata(farm)
    assert metadata(full)[1] == [("video", "10:00:00:00"), ("data", "10:00:00:00")]
    assert metadata(full)[0]["title"] == "Shot 20" and metadata(full)[0]["comment"] == "take 3"
    part = tmp_path / "part.mov"
    run_ok(src, "-o", part, *opts, "--no-temporal", "--frames", "5-8", "-q")
    assert metadata(part)[1] == [("video", "10:00:00:05"), ("data", "10:00:00:05")]


def test_plan_lists_chunks_and_chunk_outside_the_job_is_refused(tmp_path, shot):
    clip, opts = shot
    out = tmp_path / "farm.mov"
    result = run_ok("farm", "plan", clip.path, "-o", out, "--chunk-size", "5", *opts)
    assert result.stdout.split() == ["0-5", "6-11"]  # 5 rounded up to the batch grid (2)
    job_file = str(out) + ".alphagan-job.json"
    assert json.loads(run_ok("farm", "plan", clip.path, "-o", out, "--chunk-size", "5", *opts, "--json").stdout) == {
        "job": job_file, "frame_count": 12, "context": load_job(job_file).context, "chunks": ["0-5", "6-11"]}
    result = cli("farm", "chunk", job_file, "--frames", "10-12")
    assert result.exit_code == 2
    assert error_lines(result) == [f"alphagan-video: error: --frames 10-12 is outside the job's frames 0-11 ({job_file})"]
    result = cli("farm", "chunk", tmp_path / "nope.json", "--frames", "0-3")
    assert result.exit_code == 2 and "job file not found" in error_lines(result)[0]


# --------------------------------------------------------------------------- chroma across chunks

def drifting_screen_video(path: str, frames: int = 12, width: int = 64, height: int = 48) -> None:
    """FFV1 clip of a subject (soft-edged disc) over a green screen whose colour and noise drift
    from frame to frame, so a key detected on frame 6 differs from one detected on frame 0."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(path, "w") as c:
        s = c.add_stream("ffv1", rate=24)
        s.width, s.height, s.pix_fmt = width, height, "bgr0"
        for i in range(frames):
            screen = np.array([0.08 + 0.02 * i, 0.72 - 0.015 * i, 0.22 + 0.01 * i], np.float32)
            noise = rng.normal(0, 0.01 + 0.004 * i, (height, width, 3)).astype(np.float32)
            r = np.hypot(x - (20 + 2 * i), y - 24)
            cover = np.clip((14 - r) / 6, 0, 1)[..., None]  # 6 px soft edge
            img = screen * (1 - cover) + np.float32([0.85, 0.6, 0.5]) * cover + noise
            rgb = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_chunked_chroma_job_equals_unchunked_run_with_the_same_key(tmp_path, tiny_checkpoint):
    src = str(tmp_path / "screen.mkv")
    drifting_screen_video(src)
    opts = ["--checkpoint", tiny_checkpoint, "--mask", "chroma", "--no-refine", "--batch-size", "2", "--no-temporal"]
    out = tmp_path / "farm.mov"
    run_ok("farm", "local", src, "-o", out, "--chunk-size", "6", *opts)
    job = load_job(str(out) + ".alphagan-job.json")
    key, tolerance = job.config.mask.chroma_key, job.config.mask.chroma_tolerance
    assert isinstance(key, tuple) and tolerance is not None  # measured once, on frame 0, at job creation
    assert job.config.mask.chroma_key == pytest.approx((0.08, 0.72, 0.22), abs=0.02)
    full = tmp_path / "full.mov"
    run_ok(src, "-o", full, *opts, "--chroma-key", ",".join(map(repr, key)), "-q")
    assert video_packets(out) == video_packets(full)
    # Without the fixed key a chunk keys with the colour of its own first frame: it differs.
    own = tmp_path / "own.mov"
    run_ok(src, "-o", own, *opts, "--frames", "6-11", "--context", "0", "-q")
    assert video_packets(own) != video_packets(full)[6:]
    # A user's --chroma-key is kept; only the tolerance is measured.
    job2 = create_job(src, tmp_path / "farm2.mov", PipelineConfig(mask=MaskConfig(source="chroma", chroma_key=(0.1, 0.7, 0.2))),
                      chunk_size=6)
    assert job2.config.mask.chroma_key == (0.1, 0.7, 0.2) and job2.config.mask.chroma_tolerance > 0
    result = cli(src, "-o", tmp_path / "bad.mov", "--mask", "chroma", "--chroma-key", "green")
    assert result.exit_code == 2
    assert error_lines(result) == ["alphagan-video: error: --chroma-key 'green': expected R,G,B with each value "
                                   "in 0..1 (e.g. 0.1,0.7,0.2) or #RRGGBB"]


# --------------------------------------------------------------------------- job files (issue 28 item 9)

def _planned(tmp_path, shot) -> tuple[Path, dict]:
    """A job planned by the CLI (no chunk run yet): (job file, its JSON)."""
    clip, opts = shot
    out = tmp_path / "farm.mov"
    run_ok("farm", "plan", clip.path, "-o", out, "--chunk-size", "4", *opts, "--no-temporal")
    job_file = Path(str(out) + ".alphagan-job.json")
    return job_file, json.loads(job_file.read_text())


NAN = float("nan")


@pytest.mark.parametrize("where, value, needle", [
    (("model", "batch_size"), NAN, "config model.batch_size nan: expected an integer"),
    (("model", "batch_size"), 2.0, "config model.batch_size 2.0: expected an integer"),
    (("output", "codec"), ["prores4444"], "config output.codec ['prores4444']: expected a string"),
    (("output", "codec"), NAN, "config output.codec nan: expected a string"),
    (("output", "codec"), "h264", "codec 'h264' cannot write colour + alpha into .mov"),
    (("trimap", "band_px"), [5], "config trimap.band_px [5]: expected an integer"),
    (("mask", "box"), [NAN, 1, 20, 30], "config mask.box nan,1,20,30: expected a finite number"),
    (("mask", "box"), [1, 2], "config mask.box 1,2: expected 4 values, got 2"),
    (("mask", "box"), "1,2,3,4", "config mask.box '1,2,3,4': expected a list"),
    (("mask", "chroma_key"), [NAN, 0, 0], "config mask.chroma_key nan,0,0: expected a finite number"),
    (("mask", "chroma_key"), [[0.1], 0.7, 0.2], "config mask.chroma_key ([0.1], 0.7, 0.2): expected a number (at [0.1])"),
    (("refine", "expand"), NAN, "config refine.expand nan: expected an integer"),
    (("temporal", "strength"), 7, "config temporal.strength 7: must be between 0 and 1"),
    (("overlap",), "yes", "config overlap 'yes': expected true or false"),
    (("model", "tiling"), "sideways", "config model.tiling 'sideways': expected one of auto, on, off"),
])
def test_malformed_job_config_fields_exit_2_naming_the_field(tmp_path, shot, where, value, needle):
    """Each field of a job file's config is checked as the CLI checks its options (types,
    finiteness, ranges, choices): one line naming the field, exit 2, nothing made. Before, NaN
    batch sizes and list codecs were "internal error" (exit 1), NaN boxes and keys ran (exit 0)."""
    job_file, data = _planned(tmp_path, shot)
    target = data["config"]
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    job_file.write_text(json.dumps(data))  # NaN is written as the (accepted) NaN token
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = cli("farm", "chunk", job_file, "--frames", "0-3")
    assert result.exit_code == 2, result.output
    assert len(error_lines(result)) == 1 and result.stderr.strip() == error_lines(result)[0], result.stderr
    line = error_lines(result)[0]
    assert line.startswith(f"alphagan-video: error: job file {job_file}: ") and needle in line, line
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_job_config_missing_fields_unknown_fields_and_digest_are_checked(tmp_path, shot):
    job_file, data = _planned(tmp_path, shot)
    segments = Path(str(job_file)[: -len(".alphagan-job.json")] + ".alphagan-segments")

    def refused(edited: dict, needle: str) -> None:
        job_file.write_text(json.dumps(edited))
        result = cli("farm", "chunk", job_file, "--frames", "0-3")
        assert result.exit_code == 2 and len(error_lines(result)) == 1, result.output
        assert needle in error_lines(result)[0], error_lines(result)[0]
        assert list(segments.iterdir()) == []

    # "config": {} ran with today's defaults (exit 0, a segment of other settings).
    refused({**data, "config": {}}, "config lacks the field(s) mask, trimap, model, refine, temporal, output and 1 more")
    partial = json.loads(json.dumps(data))
    del partial["config"]["refine"]["expand"]
    refused(partial, "config lacks the field(s) refine.expand;")
    extra = json.loads(json.dumps(data))
    extra["config"]["model"]["turbo"] = True
    refused(extra, "job settings [model] have unknown fields ['turbo']")
    refused({**data, "surprise": 1}, "has unknown fields ['surprise']")
    # A well-formed edit that changes the pixels: the settings digest no longer matches.
    edited = json.loads(json.dumps(data))
    edited["config"]["trimap"]["band_px"] = 3
    refused(edited, "'settings_sha256' does not match its settings")
    refused({**data, "settings_sha256": "0" * 64}, "'settings_sha256' does not match its settings")
    job_file.write_text(json.dumps(data))
    assert cli("farm", "chunk", job_file, "--frames", "0-3", "-q").exit_code == 0  # the original still runs


def test_chunk_off_the_plan_is_refused_whole_chunks_run(tmp_path, shot):
    """``farm chunk --frames 1-5`` on a 4-frame plan made a segment no assembly uses (exit 0)."""
    job_file, _ = _planned(tmp_path, shot)
    for frames in ("1-5", "0-2", "4-6", "3-3"):
        result = cli("farm", "chunk", job_file, "--frames", frames)
        assert result.exit_code == 2, frames
        assert error_lines(result) == [f"alphagan-video: error: --frames {frames} is off the job's chunk plan (chunks "
                                       f"of 4 frames from frame 0, e.g. {int(frames.split('-')[0]) // 4 * 4}-"
                                       f"{int(frames.split('-')[0]) // 4 * 4 + 3}; 'alphagan-video farm plan' lists "
                                       f"them): run whole chunks ({job_file})"]
    job = load_job(job_file)
    check_on_plan(job, 0, 7)  # two whole chunks at once: fine
    check_on_plan(job, 8, 11)


def test_failed_chunk_leaves_no_empty_segments_folder(tmp_path, shot):
    """A chunk that fails (here: its mask file vanished after planning) leaves the job folder as
    it found it: no empty ``*.alphagan-segments/``."""
    job_file, data = _planned(tmp_path, shot)
    segments = Path(str(job_file)[: -len(".alphagan-job.json")] + ".alphagan-segments")
    segments.rmdir()  # as on a fresh worker that did not plan the job
    from alphagan_video.masks.spec import parse_mask_spec

    mask_dir = Path(parse_mask_spec(data["config"]["mask"]["source"]).arg).parent  # file:DIR/m_%04d.png
    mask_dir.rename(mask_dir.with_name("gone"))
    result = cli("farm", "chunk", job_file, "--frames", "0-3")
    assert result.exit_code == 2 and len(error_lines(result)) == 1, result.output
    assert not segments.exists()


# --------------------------------------------------------------------------- determinism (issue 28 item 10)

def test_the_same_chunk_is_byte_identical_run_after_run(tmp_path, shot):
    """The same ``farm chunk --frames 0-3`` made a different packet 0 in 2 of 20 runs (issue 28
    item 10). Every stage on (refine with its prepare workers, temporal smoothing, the overlapped
    lanes), the chunk is made again and again -- in this process, and in fresh processes with
    other hash seeds and thread counts (what differs between two farm workers) -- and every
    segment must be the same bytes."""
    clip, opts = shot
    opts = [o for o in opts if o != "--no-refine"]  # the refine's worker threads are the risk
    out = tmp_path / "farm.mov"
    run_ok("farm", "plan", clip.path, "-o", out, "--chunk-size", "4", *opts)
    job = load_job(str(out) + ".alphagan-job.json")
    segment = Path(job.segment_path(0, 3))

    def again() -> bytes:
        data = segment.read_bytes()
        segment.unlink()
        os.remove(job.record_path(0, 3))
        return data

    made = []
    for _ in range(3):
        run_chunk(job, 0, 3)
        made.append(again())
    for seed, threads in (("1", "1"), ("2", "2"), ("3", "1")):
        env = {**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": threads}
        subprocess.run([sys.executable, "-m", "alphagan_video", "farm", "chunk", job.job_path, "--frames", "0-3",
                        "-q"], env=env, check=True, timeout=300)
        made.append(again())
    sizes = [[p.size for p in av.open(io_bytes(m)).demux(video=0) if p.size] for m in made]
    assert all(m == made[0] for m in made), f"packet sizes per run: {sizes}"


def io_bytes(data: bytes):
    import io

    return io.BytesIO(data)


def test_farm_plan_into_a_closed_pipe_exits_2_with_one_line(tmp_path, shot):
    """``farm plan ... | head`` whose reader is gone: "internal error: BrokenPipeError" (exit 1)
    before; a closed stdout is the environment (issue 28 item 7, for every command)."""
    clip, opts = shot
    argv = [sys.executable, "-m", "alphagan_video", "farm", "plan", clip.path, "-o", tmp_path / "farm.mov",
            "--chunk-size", "2", *opts]
    shell = " ".join(f"'{a}'" for a in argv) + " | true"  # the reader exits before anything is written
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", shell], stderr=subprocess.PIPE, env=CHILD_ENV, timeout=300)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["alphagan-video: error: stdout was closed by the process reading it (broken pipe)"], err


@pytest.mark.parametrize("source, digest", [
    ("plate:shots/plate.png", "ec448147ce4c69fe9deb387ff13e3382828a69b2db061a5e6c67f0ae9241c9a5"),
    (" File:m/m_%04d.png", "70e36f0bfb7c9b24040886380250c98e6bfc24914a1f9cceccf47398940e5054"),
    ("chroma", "f86616d4b6db132f3277b4de395eaca4b2318bdc82f0fc81b149aa38fe38d305"),
    ("file:/abs/a:b.mov", "f3d8b6a18cd15f908f4be83f2660f4eb49fa716564b61ae836f7bb362c032966"),
])
def test_settings_digest_is_the_one_main_wrote(source, digest, monkeypatch):
    """The typed mask spec (masks.spec) changed how ``mask.source`` is made absolute, not what:
    the digests below were computed by commit 90833d7 (version pinned to "0", cwd "/"), so job
    files written before still match their settings and are not redone."""
    import alphagan_video
    from alphagan_video.config import MaskConfig, OutputConfig, PipelineConfig, TrimapConfig
    from alphagan_video.farm.job import settings_digest

    monkeypatch.setattr(alphagan_video, "__version__", "0")
    monkeypatch.chdir("/")
    cfg = PipelineConfig(mask=MaskConfig(source=source), trimap=TrimapConfig(band_px=12),
                         output=OutputConfig(kind="alpha", background="#102030"))
    assert settings_digest("/nonexistent/in.mp4", cfg, 3) == digest
