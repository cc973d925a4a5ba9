"""``alphagan-video pipe`` between real ffmpeg processes (plugins/ffmpeg/README.md recipes).

The ffmpeg binary is the static one from imageio-ffmpeg (a test extra). Every run uses a tiny
random generator and a user trimap with fixed known regions, so known-region alpha is exact
whatever the generator outputs: bg block -> 0, fg block -> 1 (clamp_known).
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
import torch

from alphagan_video.config import (MaskConfig, ModelConfig, OutputConfig, PipelineConfig, RefineConfig, TemporalConfig,
                                   TrimapConfig)
from alphagan_video.errors import InputMediaError
from alphagan_video.io import open_input
from alphagan_video.model import build_generator, save_generator
from alphagan_video.pipe import OutputPipeClosedError, encode_output, output_pix_fmt, parse_rate, parse_size, run_pipe
from alphagan_video.types import OutputBatch
from tests.media import make_video

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="imageio-ffmpeg (test extra) provides the ffmpeg binary")

torch.set_num_threads(1)
W, H, N = 64, 48, 10
BG = (slice(0, 12), slice(0, 12))      # rows, cols of the known-background block
FG = (slice(30, 44), slice(40, 60))     # rows, cols of the known-foreground block
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
CLI = [sys.executable, "-m", "alphagan_video"]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """(clip with audio, tiny checkpoint path, trimap png path, ffmpeg exe)."""
    d = tmp_path_factory.mktemp("pipe")
    torch.manual_seed(0)
    ckpt = d / "tiny.safetensors"
    save_generator(build_generator("tiny"), ckpt)
    trimap = np.full((H, W), 128, np.uint8)
    trimap[BG] = 0
    trimap[FG] = 255
    cv2.imwrite(str(d / "trimap.png"), trimap)
    clip = make_video(str(d / "in.mp4"), width=W, height=H, frames=N, audio_streams=1)
    return clip, str(ckpt), str(d / "trimap.png"), imageio_ffmpeg.get_ffmpeg_exe()


def _cfg(trimap: str, ckpt: str, kind: str = "rgba", batch: int = 4) -> PipelineConfig:
    return PipelineConfig(trimap=TrimapConfig(trimap_path=trimap), model=ModelConfig(checkpoint=ckpt, batch_size=batch,
                          device="cpu"), refine=RefineConfig(enabled=False), output=OutputConfig(kind=kind))


def _pipe_args(ckpt: str, trimap: str, *extra: str, size: str = f"{W}x{H}") -> list[str]:
    return [*CLI, "pipe", "--size", size, "--rate", "24", "--checkpoint", ckpt, "--trimap", trimap,
            "--no-refine", "--device", "cpu", "--batch-size", "4", *extra]


def _three(ff: str, src: str, pipe_args: list[str], encode_args: list[str]) -> tuple[list[int], bytes]:
    """ffmpeg decode | alphagan-video pipe | ffmpeg encode; returns (exit codes, pipe's stderr)."""
    dec = subprocess.Popen([ff, "-v", "error", "-i", src, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                           stdout=subprocess.PIPE)
    mid = subprocess.Popen(pipe_args, stdin=dec.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    dec.stdout.close()  # so dec sees SIGPIPE if mid exits
    enc = subprocess.Popen([ff, "-v", "error", "-y", *encode_args], stdin=mid.stdout, stderr=subprocess.PIPE)
    mid.stdout.close()
    enc_err = enc.communicate(timeout=120)[1]
    mid_err = mid.stderr.read()
    mid.wait(timeout=60)
    dec.wait(timeout=60)
    assert enc.returncode == 0, enc_err.decode(errors="replace")
    return [dec.returncode, mid.returncode, enc.returncode], mid_err


def _decode_rgba(path: str) -> tuple[np.ndarray, list[str]]:
    """All frames as (N,H,W,4) uint16 (full scale) and the list of stream types."""
    with av.open(path) as c:
        types = [s.type for s in c.streams]
        frames = [f.to_ndarray(format="rgba64le") for f in c.decode(video=0)]
    return np.stack(frames), types


def test_three_process_prores4444_with_audio(media, tmp_path):
    clip, ckpt, trimap, ff = media
    out = str(tmp_path / "out.mov")
    codes, err = _three(ff, clip.path, _pipe_args(ckpt, trimap), [
        "-f", "rawvideo", "-pix_fmt", "rgba", "-s", f"{W}x{H}", "-framerate", "24", "-i", "-", "-i", clip.path,
        "-map", "0:v", "-map", "1:a?", "-c:a", "copy", "-c:v", "prores_ks", "-profile:v", "4444",
        "-pix_fmt", "yuva444p10le", "-alpha_bits", "16", "-vendor", "apl0", out])
    assert codes == [0, 0, 0], err.decode(errors="replace")
    with av.open(out) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "prores" and "yuva" in v.codec_context.pix_fmt
        assert len(c.streams.audio) == 1
    rgba, _ = _decode_rgba(out)
    assert rgba.shape == (N, H, W, 4)
    alpha = rgba[..., 3].astype(np.float64) / 65535
    # known regions survive the 8-bit pipe and the 10-bit ProRes alpha within a level
    assert np.abs(alpha[:, BG[0], BG[1]]).max() < 2 / 255
    assert np.abs(alpha[:, FG[0], FG[1]] - 1).max() < 2 / 255


def test_alpha_pipe_alphamerge_and_matte_file(media, tmp_path):
    """README recipes in one run: the matte from the pipe is alphamerged with the original video
    (second input) into ProRes 4444 with the original audio, and also saved as an FFV1 matte."""
    clip, ckpt, trimap, ff = media
    matte, merged = str(tmp_path / "matte.mkv"), str(tmp_path / "merged.mov")
    codes, err = _three(ff, clip.path, _pipe_args(ckpt, trimap, "--output-kind", "alpha"), [
        "-i", clip.path, "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{W}x{H}", "-framerate", "24", "-i", "-",
        "-filter_complex",
        "[0:v]format=yuv444p[c];[1:v]format=gray,split[m][keep];[c][m]alphamerge,format=yuva444p10le[v]",
        "-map", "[v]", "-map", "0:a?", "-c:a", "copy", "-c:v", "prores_ks", "-profile:v", "4444",
        "-alpha_bits", "16", "-vendor", "apl0", merged,
        "-map", "[keep]", "-c:v", "ffv1", "-pix_fmt", "gray", matte])
    assert codes == [0, 0, 0], err.decode(errors="replace")
    with av.open(matte) as c:
        gray = np.stack([f.to_ndarray(format="gray") for f in c.decode(video=0)])
    assert gray.shape == (N, H, W)
    assert gray[:, BG[0], BG[1]].max() == 0 and gray[:, FG[0], FG[1]].min() == 255
    rgba, types = _decode_rgba(merged)
    assert rgba.shape[0] == N and types == ["video", "audio"]
    # swscale gray8 -> 10-bit alpha moves a few pixels by up to ~2.5 levels
    np.testing.assert_allclose(rgba[..., 3] / 65535, gray / 255, atol=3 / 255)


def test_broken_output_pipe_is_one_clear_line(media, tmp_path):
    clip, ckpt, trimap, ff = media
    raw = (tmp_path / "in.rgb")
    subprocess.run([ff, "-v", "error", "-i", clip.path, "-f", "rawvideo", "-pix_fmt", "rgb24", str(raw)], check=True)
    with open(raw, "rb") as stdin:
        proc = subprocess.Popen(_pipe_args(ckpt, trimap), stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=ENV)
        proc.stdout.read(100)  # downstream reads a little, then goes away
        proc.stdout.close()    # 10 RGBA frames = 120 KiB > the 64 KiB pipe buffer: the writer must hit EPIPE
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert code == 2, err  # the environment, not our bug (issue 28 item 7)
    assert "Traceback" not in err and "Exception ignored" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "broken pipe" in lines[0] and "stdout was closed" in lines[0], err


@pytest.mark.parametrize("stdout", ["/dev/full", "closed"])
def test_full_or_closed_stdout_exits_2_with_one_line(media, tmp_path, stdout):
    """Issue 28 item 7: ``> /dev/full`` and ``>&-`` exited 1 ("internal error"); both are the
    environment: exit 2, one line, nothing else on stderr, and ``pipe --help`` says so."""
    _clip, ckpt, trimap, _ff = media
    frames = np.zeros((2, H, W, 3), np.uint8)
    shell = " ".join(f"'{a}'" for a in _pipe_args(ckpt, trimap)) + (" >/dev/full" if stdout == "/dev/full" else " >&-")
    proc = subprocess.run(["sh", "-c", shell], input=frames.tobytes(), stderr=subprocess.PIPE, env=ENV, timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and "Exception ignored" not in err and "internal error" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    expected = "the device is full" if stdout == "/dev/full" else "stdout is closed"
    assert len(lines) == 1 and expected in lines[0], err
    help_text = subprocess.run([*CLI, "pipe", "--help"], capture_output=True, text=True, env=ENV).stdout
    assert "exits 1" not in help_text and "(> /dev/full) exit 2" in help_text


def test_wrong_frame_size_names_the_byte_counts(media, tmp_path):
    clip, ckpt, _, ff = media
    # the user says 64x47; a matching trimap so nothing else trips first
    trimap47 = str(tmp_path / "t47.png")
    cv2.imwrite(trimap47, np.full((47, W), 128, np.uint8))
    raw = tmp_path / "in.rgb"
    subprocess.run([ff, "-v", "error", "-i", clip.path, "-f", "rawvideo", "-pix_fmt", "rgb24", str(raw)], check=True)
    with open(raw, "rb") as stdin:
        proc = subprocess.run(_pipe_args(ckpt, trimap47, size="64x47"), stdin=stdin, capture_output=True, env=ENV,
                              timeout=120)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    # 10 frames of 64x48 rgb24 = 92160 bytes = 10 frames of 64x47 (9024 B) + 1920 bytes
    assert "stdin ended inside frame 10: got 1920 of 9024 bytes" in err, err
    assert "--size and --pix-fmt must match" in err
    # the 10 complete (wrongly sized) frames were still written before the error
    assert len(proc.stdout) == 10 * 64 * 47 * 4


# ----------------------------------------------------------------------------- in-process

def _decoded_frames(path: str) -> np.ndarray:
    with open_input(path) as reader:
        return np.concatenate([b.rgb for b in reader.iter_batches(16)])


def test_pipe_matches_run_and_16_bit_path(media, tmp_path):
    """The pipe's alpha equals ``matte_video``'s on the same frames; rgb48le gives rgba64le."""
    from alphagan_video.pipeline import matte_video

    clip, ckpt, trimap, _ = media
    frames = _decoded_frames(clip.path)
    cfg = _cfg(trimap, ckpt, "alpha", batch=3)  # batch 3: a short last batch, temporal state across batches
    ref_path = str(tmp_path / "ref.mkv")
    matte_video(clip.path, ref_path, cfg)
    with av.open(ref_path) as c:
        ref = np.stack([f.to_ndarray(format="gray16le") for f in c.decode(video=0)]).astype(np.float64) / 65535

    out = io.BytesIO()
    report = run_pipe(io.BytesIO(frames.tobytes()), out, W, H, Fraction(24), cfg)
    assert report.frames == N and report.output_pix_fmt == "gray"
    gray = np.frombuffer(out.getvalue(), np.uint8).reshape(N, H, W) / 255
    np.testing.assert_allclose(gray, ref, atol=0.6 / 255)

    deep_in = (frames.astype(np.uint16) * 257).astype("<u2")
    out16 = io.BytesIO()
    report16 = run_pipe(io.BytesIO(deep_in.tobytes()), out16, W, H, Fraction(24), _cfg(trimap, ckpt, "rgba", 3),
                        pix_fmt="rgb48le")
    assert report16.output_pix_fmt == "rgba64le"
    rgba16 = np.frombuffer(out16.getvalue(), "<u2").reshape(N, H, W, 4)
    np.testing.assert_allclose(rgba16[..., 3] / 65535, ref, atol=1e-3)


def test_mask_file_source_and_truncation_in_process(media, tmp_path):
    clip, ckpt, _, _ = media
    frames = _decoded_frames(clip.path)[:3]
    mask = np.zeros((H, W), np.uint8)
    mask[10:40, 10:50] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    cfg = PipelineConfig(mask=MaskConfig(source=f"file:{tmp_path / 'mask.png'}"), trimap=TrimapConfig(band_px=6),
                         model=ModelConfig(checkpoint=ckpt, batch_size=2, device="cpu"), refine=RefineConfig(enabled=False),
                         temporal=TemporalConfig(enabled=False), output=OutputConfig(kind="alpha"))
    out = io.BytesIO()
    assert run_pipe(io.BytesIO(frames.tobytes()), out, W, H, Fraction(24), cfg).frames == 3
    alpha = np.frombuffer(out.getvalue(), np.uint8).reshape(3, H, W)
    assert alpha[:, 0, 0].max() == 0 and alpha[:, 25, 30].min() == 255  # far outside / deep inside the mask

    short = frames.tobytes()[:-5]
    out = io.BytesIO()
    with pytest.raises(InputMediaError, match=r"stdin ended inside frame 2: got 9211 of 9216 bytes"):
        run_pipe(io.BytesIO(short), out, W, H, Fraction(24), cfg)
    assert len(out.getvalue()) == 2 * W * H  # the complete frames came out first
    with pytest.raises(InputMediaError, match=r"stdin held no frames"):
        run_pipe(io.BytesIO(b""), io.BytesIO(), W, H, Fraction(24), cfg)

    class Closed(io.BytesIO):
        def write(self, data):
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(OutputPipeClosedError, match=r"after 0 frame\(s\) \(broken pipe\)"):
        run_pipe(io.BytesIO(frames.tobytes()), Closed(), W, H, Fraction(24), cfg)


def test_parsers_and_formats():
    assert parse_size("1920x1080") == (1920, 1080)
    assert parse_rate("30000/1001") == Fraction(30000, 1001) and parse_rate("29.97") == Fraction(2997, 100)
    from alphagan_video.cli import user_message

    with pytest.raises(ValueError) as err:
        parse_size("1920-1080")
    assert user_message(err.value).startswith("--size '1920-1080': expected WIDTHxHEIGHT")  # the CLI's words
    with pytest.raises(ValueError) as err:
        parse_rate("0")
    assert err.value.param == "rate" and user_message(err.value) == "--rate '0': must be positive"
    assert [output_pix_fmt(k, "rgb24") for k in ("rgba", "alpha", "composite")] == ["rgba", "gray", "rgb24"]
    assert [output_pix_fmt(k, "rgb48le") for k in ("rgba", "alpha", "foreground")] == ["rgba64le", "gray16le", "rgb48le"]
    color = np.array([[[[0.0, 0.5, 1.0]]]], np.float32)
    alpha = np.array([[[0.25]]], np.float32)
    packed = encode_output(OutputBatch(color, alpha, [0], [0], Fraction(1, 24)), deep=False)
    assert packed == bytes([0, 128, 255, 64])
    packed16 = np.frombuffer(encode_output(OutputBatch(color, alpha, [0], [0], Fraction(1, 24)), deep=True), "<u2")
    assert packed16.tolist() == [0, 32768, 65535, 16384]
