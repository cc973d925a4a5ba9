"""Reader / writer round trips on tiny synthetic media (tests/media.py)."""
from __future__ import annotations

import os
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from alphagan_video.config import OutputConfig
from alphagan_video.errors import InputMediaError, OutputError
from alphagan_video.io import (
    describe_output,
    open_input,
    open_output,
    supported_output_suffixes,
)
from alphagan_video.types import OutputBatch
from tests.media import (
    make_truncated_faststart_video,
    VFR_DURATIONS,
    make_audio_only,
    make_empty_video,
    make_image,
    make_sequence,
    make_video,
    read_packets,
)

RGBA = dict(has_color=True, has_alpha=True)
MATTE = dict(has_color=False, has_alpha=True)
COLOR = dict(has_color=True, has_alpha=False)


# ----------------------------------------------------------------------------- helpers
def soft_alpha(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """(n, h, w) float32 alpha with exact 0 and 1 regions and a random soft band."""
    rng = np.random.default_rng(seed)
    a = rng.random((n, h, w), dtype=np.float32)
    a[:, : h // 4] = 0.0
    a[:, -(h // 4):] = 1.0
    return a


def transcode(src: str, dst: str, cfg: OutputConfig, flags: dict, batch: int = 5, alpha=None):
    """Read src with the reader, write dst with the writer: colour = the decoded frames,
    alpha = ``alpha`` (n, h, w) or the frame's normalised green channel."""
    with open_input(src) as r:
        info = r.info
        with open_output(dst, info, cfg, **flags) as w:
            for b in r.iter_batches(batch):
                rgb = b.rgb_float()
                a = alpha[b.index] if alpha is not None else rgb[..., 1].copy()
                w.write(
                    OutputBatch(
                        rgb if flags["has_color"] else None,
                        a if flags["has_alpha"] else None,
                        b.pts,
                        b.index,
                        b.time_base,
                    )
                )
    return info


def read_all(path: str):
    with open_input(path) as r:
        batches = list(r.iter_batches(4))
        info = r.info
    rgb = np.concatenate([b.rgb for b in batches])
    pts = [p for b in batches for p in b.pts]
    idx = [i for b in batches for i in b.index]
    return info, rgb, pts, idx


def decode_rgba(path: str) -> np.ndarray:
    """(N, H, W, 4) float64 in [0, 1] straight from PyAV: colour via BT.709 limited range, alpha
    from the decoder's own alpha plane (no swscale rounding)."""
    out = []
    with av.open(path) as c:
        for f in c.decode(video=0):
            rgb = f.reformat(format="rgb48le", src_colorspace="ITU709",
                             src_color_range="MPEG", dst_color_range="JPEG").to_ndarray()
            depth = 12 if "12" in f.format.name else 10
            plane = f.planes[3]
            itemsize = 2
            a = np.frombuffer(plane, np.uint16).reshape(f.height, plane.line_size // itemsize)
            a = a[:, : f.width] / (2 ** depth - 1)
            out.append(np.concatenate([rgb / 65535.0, a[..., None]], axis=2))
    return np.stack(out)


def listing(directory) -> list[str]:
    return sorted(os.listdir(directory))


# ----------------------------------------------------------------------------- reader
def test_reader_video_info_and_frames(tmp_path):
    clip = make_video(str(tmp_path / "a.mp4"), pix_fmt="yuv444p", frames=10,
                      options={"qp": "0"})
    info, rgb, pts, idx = read_all(clip.path)
    assert info.kind == "video" and info.codec_name == "h264"
    assert (info.width, info.height) == (64, 48)
    assert info.bit_depth == 8 and rgb.dtype == np.uint8
    assert info.color.space == 1 and info.color.range == 1
    assert info.frame_rate == 24 and info.frame_count == 10
    assert idx == list(range(10))
    assert pts == clip.pts and info.time_base == clip.time_base
    # lossless BT.709 4:4:4: only 8-bit YUV rounding remains (a BT.601 decode is ~20 off)
    assert np.abs(rgb.astype(int) - clip.rgb).max() <= 2


def test_reader_uses_bt601_for_untagged_sd(tmp_path):
    clip = make_video(str(tmp_path / "sd.mp4"), pix_fmt="yuv444p", tag_bt709=False, frames=2,
                      options={"qp": "0"})
    info, rgb, _, _ = read_all(clip.path)
    assert info.color.space == 2  # unspecified
    assert np.abs(rgb.astype(int) - clip.rgb).max() <= 2


def test_reader_start_stop_and_short_last_batch(tmp_path):
    clip = make_video(str(tmp_path / "a.mp4"), frames=12)
    with open_input(clip.path) as r:
        batches = list(r.iter_batches(4, start=3, stop=10))
        all_rgb = np.concatenate([b.rgb for b in r.iter_batches(5)])
    assert [len(b) for b in batches] == [4, 3]
    assert [i for b in batches for i in b.index] == list(range(3, 10))
    assert [p for b in batches for p in b.pts] == clip.pts[3:10]
    np.testing.assert_array_equal(np.concatenate([b.rgb for b in batches]), all_rgb[3:10])


@pytest.mark.parametrize(
    "name,codec,pix_fmt",
    [("h10.mkv", "libx265", "yuv420p10le"), ("p10.mov", "prores_ks", "yuv422p10le")],
)
def test_ten_bit_input_reads_uint16(tmp_path, name, codec, pix_fmt):
    clip = make_video(str(tmp_path / name), codec=codec, pix_fmt=pix_fmt, ten_bit=True,
                      frames=3)
    info, rgb, _, _ = read_all(clip.path)
    assert info.bit_depth == 10
    assert rgb.dtype == np.uint16
    # away from the square (chroma subsampling smears its edges) the gradient is accurate
    far = np.stack([cv2.dilate(m, np.ones((9, 9), np.uint8)) == 0 for m in clip.mask])
    err = np.abs(rgb.astype(np.int64) - clip.rgb.astype(np.int64))[far]
    assert np.median(err) <= 257 // 2 and np.percentile(err, 99) <= 3 * 257
    assert np.unique(rgb[0, :, :, 0] % 257).size > 1  # not 8-bit values scaled up


def test_single_image_and_gray_png(tmp_path):
    img = make_image(str(tmp_path / "still.png"))
    info, rgb, pts, idx = read_all(str(tmp_path / "still.png"))
    assert info.kind == "image" and info.frame_count == 1 and idx == [0] and pts == [0]
    np.testing.assert_array_equal(rgb[0], img)

    gray = make_image(str(tmp_path / "g16.png"), gray=True, deep=True)
    info, rgb, _, _ = read_all(str(tmp_path / "g16.png"))
    assert info.bit_depth == 16 and rgb.dtype == np.uint16
    for ch in range(3):
        np.testing.assert_array_equal(rgb[0, ..., ch], gray)

    jpg = make_image(str(tmp_path / "p.jpg"))
    _, rgb, _, _ = read_all(str(tmp_path / "p.jpg"))
    assert np.abs(rgb[0].astype(int) - jpg).mean() < 3  # JPEG full-range BT.601 handled


def test_exr_image_input(tmp_path):
    data = make_image(str(tmp_path / "x.exr"))
    info, rgb, _, _ = read_all(str(tmp_path / "x.exr"))
    assert rgb.dtype == np.uint16 and info.bit_depth == 32
    assert np.abs(rgb[0] / 65535.0 - data).max() < 1e-4


def test_image_sequence_input(tmp_path):
    seq = make_sequence(str(tmp_path / "shots"), "f_%04d.png", frames=5, start=7, gray=True)
    # a decoy that matches the prefix but not the %04d formatting must be ignored
    cv2.imwrite(str(tmp_path / "shots" / "f_3.png"), seq.frames[0])
    with open_input(seq.pattern) as r:
        info = r.info
        assert r.sequence_start == 7
        batches = list(r.iter_batches(2, start=1))
    assert info.kind == "sequence" and info.frame_count == 5
    assert [i for b in batches for i in b.index] == [1, 2, 3, 4]
    assert [p for b in batches for p in b.pts] == [1, 2, 3, 4]
    assert info.time_base == Fraction(1, 24)
    rgb = np.concatenate([b.rgb for b in batches])
    np.testing.assert_array_equal(rgb[..., 0], np.stack(seq.frames[1:]))


def test_sequence_gap_is_an_error(tmp_path):
    seq = make_sequence(str(tmp_path / "s"), "f_%03d.png", frames=4, start=0)
    os.remove(seq.files[2])
    with pytest.raises(InputMediaError, match=r"gap in image sequence .*f_002\.png is missing"):
        open_input(seq.pattern)


# ----------------------------------------------------------------------------- reader errors
def test_missing_input(tmp_path):
    with pytest.raises(InputMediaError, match=r"input not found: .*nope\.mp4"):
        open_input(tmp_path / "nope.mp4")


def test_directory_input(tmp_path):
    with pytest.raises(InputMediaError, match=r"input is a directory: .*%04d\.png"):
        open_input(tmp_path)


def test_not_media(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 50)
    with pytest.raises(InputMediaError, match=r"not a readable media file: .*notes\.mp4"):
        open_input(p)
    q = tmp_path / "fake.png"
    q.write_text("hello")
    with pytest.raises(InputMediaError, match=r"fake\.png"):
        open_input(q)


def test_truncated_video_tail_missing(tmp_path):
    clip = make_video(str(tmp_path / "full.mp4"), frames=24)
    data = open(clip.path, "rb").read()
    cut = tmp_path / "cut.mp4"  # moov atom at the end is lost
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputMediaError, match=r"not a readable media file: .*cut\.mp4"):
        open_input(cut)


def test_truncated_faststart_video_names_frame(tmp_path):
    cut = make_truncated_faststart_video(str(tmp_path))  # index intact, media data cut
    with open_input(cut) as r:
        assert r.info.frame_count == 24
        with pytest.raises(InputMediaError, match=r"(corrupt|truncated) video: .*cut\.mp4.* frame \d+"):
            for _ in r.iter_batches(4):
                pass


def test_corrupt_middle_names_frame(tmp_path):
    clip = make_video(str(tmp_path / "c.mp4"), frames=24)
    b = bytearray(open(clip.path, "rb").read())
    mid = len(b) // 2
    b[mid: mid + 400] = np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(b))
    with open_input(bad) as r:
        with pytest.raises(InputMediaError, match=r"corrupt video: .*bad\.mp4: decode error at frame \d+"):
            for _ in r.iter_batches(4):
                pass


def test_zero_frame_video(tmp_path):
    p = make_empty_video(str(tmp_path / "empty.mkv"))
    with pytest.raises(InputMediaError, match=r"video has no frames: .*empty\.mkv"):
        open_input(p)


def test_audio_only(tmp_path):
    p = make_audio_only(str(tmp_path / "voice.m4a"))
    with pytest.raises(InputMediaError, match=r"audio-only file: .*voice\.m4a has no video"):
        open_input(p)


def test_empty_sequence_pattern(tmp_path):
    with pytest.raises(InputMediaError, match=r"no files match the sequence pattern .*%04d"):
        open_input(tmp_path / "shot_%04d.png")


# ----------------------------------------------------------------------------- timing, audio
@pytest.mark.parametrize("vfr", [False, True])
def test_pts_and_time_base_preserved(tmp_path, vfr):
    clip = make_video(str(tmp_path / "in.mp4"), frames=10, vfr=vfr)
    if vfr:
        assert clip.time_base == Fraction(1, 90000)
        assert len(set(np.diff(clip.pts))) == len(VFR_DURATIONS)
    out = str(tmp_path / "out.mov")
    transcode(clip.path, out, OutputConfig(), RGBA, batch=3)
    with av.open(out) as c:
        s = c.streams.video[0]
        out_pts = sorted(p.pts for p in c.demux(s) if p.pts is not None)
        assert Fraction(s.time_base) == clip.time_base
    assert out_pts == clip.pts
    info, _, pts, _ = read_all(out)
    assert pts == clip.pts and len(pts) == 10


def test_h264_output_keeps_vfr_pts_and_tags(tmp_path):
    clip = make_video(str(tmp_path / "in.mp4"), frames=9, vfr=True)
    out = str(tmp_path / "fg.mp4")
    transcode(clip.path, out, OutputConfig(kind="foreground"), COLOR)
    info, rgb, pts, _ = read_all(out)
    _, src, _, _ = read_all(clip.path)
    assert pts == clip.pts
    assert info.color.space == 1 and info.color.primaries == 1 and info.color.range == 1
    assert np.median(np.abs(rgb.astype(int) - src)) <= 2


@pytest.mark.parametrize("n_audio", [1, 2])
def test_audio_copied_byte_identical(tmp_path, n_audio):
    clip = make_video(str(tmp_path / "in.mp4"), frames=12, audio_streams=n_audio, vfr=True)
    out = str(tmp_path / "out.mov")
    transcode(clip.path, out, OutputConfig(), RGBA, batch=4)
    src, dst = read_packets(clip.path), read_packets(out)
    assert len(src) > 10 and len({k for k, *_ in src}) == n_audio
    assert [(k, p, d) for k, p, d, _ in dst] == [(k, p, d) for k, p, d, _ in src]
    assert [b for *_, b in dst] == [b for *_, b in src]
    with av.open(out) as c:
        assert [Fraction(s.time_base) for s in c.streams.audio] == [Fraction(1, 48000)] * n_audio
        # interleaved: audio packets are spread through the file, not all at the end
        kinds = [p.stream.type for p in c.demux() if p.size]
    first_audio = kinds.index("audio")
    assert first_audio < len(kinds) // 2


def test_audio_not_copied_when_disabled(tmp_path):
    clip = make_video(str(tmp_path / "in.mp4"), frames=4, audio_streams=1)
    out = str(tmp_path / "out.mov")
    transcode(clip.path, out, OutputConfig(copy_audio=False), RGBA)
    with av.open(out) as c:
        assert len(c.streams.audio) == 0


def test_rotation_preserved(tmp_path):
    clip = make_video(str(tmp_path / "rot.mp4"), frames=3, rotation=90, audio_streams=1)
    with open_input(clip.path) as r:
        assert r.info.rotation == 90
        assert (r.info.width, r.info.height) == (64, 48)  # frames are not rotated
    out = str(tmp_path / "rot.mov")
    transcode(clip.path, out, OutputConfig(), RGBA)
    info, rgb, _, _ = read_all(out)
    assert info.rotation == 90 and rgb.shape[1:3] == (48, 64)


# ----------------------------------------------------------------------------- formats
@pytest.mark.parametrize("codec", [None, "prores4444xq", "prores_aw"])
def test_prores4444_alpha_roundtrip(tmp_path, codec):
    clip = make_video(str(tmp_path / "in.mp4"), pix_fmt="yuv444p", frames=4)
    alpha = soft_alpha(4, 48, 64)
    out = str(tmp_path / "out.mov")
    transcode(clip.path, out, OutputConfig(codec=codec), RGBA, alpha=alpha)
    got = decode_rgba(out)
    with open_input(clip.path) as r:
        src = np.concatenate([b.rgb_float() for b in r.iter_batches(4)])
    got_a = got[..., 3]
    if codec == "prores_aw":
        # the fast encoder stores 10-bit alpha shifted (a << 6): opaque decodes as 65472/65535
        assert np.abs(got_a - alpha).max() <= 2 / 1023
        assert np.all(got_a[alpha == 0] == 0) and np.all(got_a[alpha == 1] >= 0.999)
    else:  # prores_ks keeps 10-bit alpha exactly
        assert np.abs(got_a - alpha).max() <= 1 / 1023
        assert np.all(got_a[alpha == 0] == 0) and np.all(got_a[alpha == 1] == 1)
    # colour: prores_aw quantises harder (measured max 3.9/255 here, 2.2/255 for prores_ks)
    assert np.abs(got[..., :3] - src).max() <= (5 if codec == "prores_aw" else 3) / 255
    with av.open(out) as c:
        s = c.streams.video[0]
        f = next(c.decode(s))
        assert s.codec_context.codec_tag == ("ap4x" if codec == "prores4444xq" else "ap4h")
        assert (f.colorspace, f.color_primaries, f.color_trc, f.color_range) == (1, 1, 1, 1)
        assert f.format.name == "yuva444p12le"


def test_prores4444_odd_sizes(tmp_path):
    clip = make_video(str(tmp_path / "odd.mkv"), width=63, height=47, frames=3,
                      codec="ffv1", pix_fmt="yuv444p")
    alpha = soft_alpha(3, 47, 63, seed=3)
    out = str(tmp_path / "odd_out.mov")
    transcode(clip.path, out, OutputConfig(), RGBA, alpha=alpha)
    got = decode_rgba(out)
    assert got.shape == (3, 47, 63, 4)
    assert np.abs(got[..., 3] - alpha).max() <= 1 / 1023


def test_big_odd_frame(tmp_path):
    clip = make_video(str(tmp_path / "big.mov"), width=1919, height=1079, frames=1,
                      codec="prores_ks", pix_fmt="yuv422p10le", ten_bit=True)
    info, rgb, _, _ = read_all(clip.path)
    assert rgb.shape == (1, 1079, 1919, 3) and rgb.dtype == np.uint16
    alpha = np.zeros((1, 1079, 1919), np.float32)
    alpha[:, 300:700, 500:1500] = 1.0
    out = str(tmp_path / "big_out.mov")
    transcode(clip.path, out, OutputConfig(), RGBA, alpha=alpha)
    got = decode_rgba(out)
    assert got.shape == (1, 1079, 1919, 4)
    assert np.abs(got[..., 3] - alpha).max() == 0


@pytest.mark.parametrize(
    "name,codec,tol,lossless",
    [
        ("m.mov", None, 2 / 255, False),  # ProRes 422 HQ, matte in luma
        ("m_png.mov", "png", 1 / 65535, True),  # PNG in MOV, 16-bit
        ("m.mkv", None, 1 / 65535, True),  # FFV1 16-bit
        ("m.mp4", None, 6 / 255, False),  # H.264 yuv420p
    ],
)
def test_matte_outputs(tmp_path, name, codec, tol, lossless):
    clip = make_video(str(tmp_path / "in.mp4"), frames=4)
    if lossless:  # any matte at all, noise included, comes back exactly
        alpha = soft_alpha(4, 48, 64, seed=2)
    else:  # lossy codecs get a matte-like signal: flat 0 / 1 regions and a soft ramp
        ramp = np.clip(np.linspace(-0.3, 1.3, 64, dtype=np.float32), 0, 1)
        alpha = np.broadcast_to(ramp[None, None], (4, 48, 64)).copy()
        alpha[:, :, 40:44] = 0.0  # a hard edge
    out = str(tmp_path / name)
    transcode(clip.path, out, OutputConfig(kind="alpha", codec=codec), MATTE, alpha=alpha)
    info, rgb, pts, _ = read_all(out)
    if name.endswith(".mkv"):  # Matroska stores milliseconds
        assert info.time_base == Fraction(1, 1000)
        assert all(abs(Fraction(p, 1000) - q * clip.time_base) <= Fraction(1, 2000)
                   for p, q in zip(pts, clip.pts))
    else:
        assert pts == clip.pts
    got = rgb[..., 0] / (65535.0 if rgb.dtype == np.uint16 else 255.0)
    assert np.abs(got - alpha).max() <= tol + 1e-9
    if name != "m.mp4":  # ProRes keeps 0 and 1 exact; H.264 drifts by a level or two
        assert np.all(got[alpha == 0] == 0) and np.all(got[alpha == 1] == 1)
        np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])  # neutral chroma


def test_colour_only_prores(tmp_path):
    clip = make_video(str(tmp_path / "in.mp4"), pix_fmt="yuv444p", frames=3)
    for codec in (None, "prores422hq"):
        out = str(tmp_path / f"fg_{codec}.mov")
        transcode(clip.path, out, OutputConfig(kind="foreground", codec=codec), COLOR)
        info, rgb, _, _ = read_all(out)
        assert info.codec_name == "prores" and info.color.space == 1
        diff = np.abs(rgb.astype(np.int64) // 257 - clip.rgb)
        assert np.median(diff) <= 1 and diff.mean() < 3


def test_png_sequence_straight_alpha(tmp_path):
    clip = make_video(str(tmp_path / "in.mp4"), frames=5)
    alpha = soft_alpha(5, 48, 64, seed=4)
    outdir = tmp_path / "out"
    outdir.mkdir()
    pattern = str(outdir / "m_%04d.png")
    transcode(clip.path, pattern, OutputConfig(), RGBA, alpha=alpha, batch=2)
    assert listing(outdir) == [f"m_{i:04d}.png" for i in range(5)]  # 0-based frame index
    with open_input(clip.path) as r:
        src = np.concatenate([b.rgb_float() for b in r.iter_batches(5)])
    for i in range(5):
        bgra = cv2.imread(str(outdir / f"m_{i:04d}.png"), cv2.IMREAD_UNCHANGED)
        assert bgra.dtype == np.uint16 and bgra.shape == (48, 64, 4)
        rgba = bgra[..., [2, 1, 0, 3]] / 65535.0
        # straight: colour is stored as given even where alpha is small
        assert np.abs(rgba[..., :3] - src[i]).max() <= 0.5 / 65535 + 1e-7
        assert np.abs(rgba[..., 3] - alpha[i]).max() <= 0.5 / 65535 + 1e-7


def test_exr_sequence_premultiplied(tmp_path):
    clip = make_video(str(tmp_path / "in.mp4"), frames=3)
    alpha = soft_alpha(3, 48, 64, seed=5)
    outdir = tmp_path / "exr"
    outdir.mkdir()
    transcode(clip.path, str(outdir / "m.%04d.exr"), OutputConfig(), RGBA, alpha=alpha)
    with open_input(clip.path) as r:
        src = np.concatenate([b.rgb_float() for b in r.iter_batches(3)])
    for i in range(3):
        with av.open(str(outdir / f"m.{i:04d}.exr")) as c:
            f = next(c.decode(video=0))
        assert f.format.name == "gbrapf32le"
        rgba = f.to_ndarray(format="gbrapf32le")  # RGBA order
        np.testing.assert_allclose(rgba[..., 3], alpha[i], atol=0)
        np.testing.assert_allclose(rgba[..., :3], src[i] * alpha[i][..., None], atol=1e-6)
    # matte EXR: single gray float channel, exact
    transcode(clip.path, str(outdir / "a.%04d.exr"), OutputConfig(kind="alpha"), MATTE,
              alpha=alpha)
    with av.open(str(outdir / "a.0001.exr")) as c:
        f = next(c.decode(video=0))
    assert f.format.name == "grayf32le"
    np.testing.assert_array_equal(f.to_ndarray(), alpha[1])


def test_single_image_in_png_out(tmp_path):
    img = make_image(str(tmp_path / "photo.png"), width=63, height=47)
    out = str(tmp_path / "cut.png")
    alpha = soft_alpha(1, 47, 63)
    transcode(str(tmp_path / "photo.png"), out, OutputConfig(), RGBA, alpha=alpha)
    bgra = cv2.imread(out, cv2.IMREAD_UNCHANGED)
    assert bgra.shape == (47, 63, 4) and bgra.dtype == np.uint16
    np.testing.assert_array_equal(bgra[..., [2, 1, 0]] // 257, img)
    assert np.abs(bgra[..., 3] / 65535.0 - alpha[0]).max() <= 0.5 / 65535 + 1e-7
    assert listing(tmp_path) == ["cut.png", "photo.png"]


def test_sequence_in_single_image_out_is_rejected(tmp_path):
    seq = make_sequence(str(tmp_path / "s"), frames=3)
    with open_input(seq.pattern) as r:
        with pytest.raises(OutputError, match=r"3 frames cannot go into the single image .*out\.png; use a pattern such as .*out_%04d\.png"):
            open_output(str(tmp_path / "out.png"), r.info, OutputConfig(), **RGBA)
    assert not (tmp_path / "out.png").exists()


# ----------------------------------------------------------------------------- writer errors
def _info(tmp_path):
    clip = make_video(str(tmp_path / "in.mp4"), frames=4)
    with open_input(clip.path) as r:
        return r.info


def test_unknown_output_extension(tmp_path):
    info = _info(tmp_path)
    with pytest.raises(OutputError, match=r"unknown output extension '\.avi' .*supported: \.mov, \.mp4, \.mkv, \.png, \.exr"):
        open_output(str(tmp_path / "out.avi"), info, OutputConfig(), **RGBA)
    assert ".mov" in supported_output_suffixes()


def test_existing_output_without_overwrite(tmp_path):
    info = _info(tmp_path)
    out = tmp_path / "out.mov"
    out.write_bytes(b"precious")
    # The library names the parameter; the CLI shows it as the flag.
    with pytest.raises(OutputError, match=r"output exists: .*out\.mov; pass output\.overwrite or choose") as err:
        open_output(str(out), info, OutputConfig(), **RGBA)
    from alphagan_video.cli import user_message

    assert user_message(err.value) == f"output exists: {out}; pass --overwrite or choose another name"
    assert out.read_bytes() == b"precious"
    seqdir = tmp_path / "seq"
    seqdir.mkdir()
    (seqdir / "m_0003.png").write_bytes(b"x")
    with pytest.raises(OutputError, match=r"output sequence .* already has files .*m_0003\.png"):
        open_output(str(seqdir / "m_%04d.png"), info, OutputConfig(), **RGBA)


def test_overwrite_replaces_output(tmp_path):
    clip = make_video(str(tmp_path / "in.mp4"), frames=3)
    out = tmp_path / "out.mov"
    out.write_bytes(b"old")
    transcode(clip.path, str(out), OutputConfig(overwrite=True), RGBA)
    assert read_all(str(out))[1].shape[0] == 3
    assert listing(tmp_path) == ["in.mp4", "out.mov"]


def test_missing_output_dir_and_bad_combinations(tmp_path):
    info = _info(tmp_path)
    with pytest.raises(OutputError, match=r"output directory does not exist: .*nodir"):
        open_output(str(tmp_path / "nodir" / "o.mov"), info, OutputConfig(), **RGBA)
    with pytest.raises(OutputError, match=r"\.mp4 \(H\.264\) has no alpha channel"):
        open_output(str(tmp_path / "o.mp4"), info, OutputConfig(), **RGBA)
    with pytest.raises(OutputError, match=r"unknown output codec 'dnxhd'"):
        open_output(str(tmp_path / "o.mov"), info, OutputConfig(codec="dnxhd"), **RGBA)
    with pytest.raises(OutputError, match=r"codec 'ffv1' cannot write colour \+ alpha into \.mov"):
        open_output(str(tmp_path / "o.mov"), info, OutputConfig(codec="ffv1"), **RGBA)
    assert listing(tmp_path) == ["in.mp4"]


def test_odd_size_h264_is_a_clear_error(tmp_path):
    clip = make_video(str(tmp_path / "odd.mkv"), width=63, height=47, frames=2,
                      codec="ffv1", pix_fmt="yuv444p")
    with open_input(clip.path) as r:
        with pytest.raises(OutputError, match=r"H\.264 yuv420p needs an even frame size, the input is 63x47"):
            open_output(str(tmp_path / "o.mp4"), r.info, OutputConfig(kind="alpha"), **MATTE)


@pytest.mark.parametrize("name", ["out.mov", "out.png", "seq_%04d.png", "e.%04d.exr"])
@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_mid_write_leaves_nothing(tmp_path, name, exc):
    clip = make_video(str(tmp_path / "in.mp4"), frames=6, audio_streams=1)
    outdir = tmp_path / "o"
    outdir.mkdir()
    with open_input(clip.path) as r:
        info = r.info
        with pytest.raises(exc):
            with open_output(str(outdir / name), info, OutputConfig(), **RGBA) as w:
                for b in r.iter_batches(1 if name == "out.png" else 3):
                    rgb = b.rgb_float()
                    w.write(OutputBatch(rgb, rgb[..., 0].copy(), b.pts, b.index, b.time_base))
                    raise exc("boom")
    assert listing(outdir) == []


def test_describe_output():
    assert describe_output("x.mov", OutputConfig()) == (
        "ProRes 4444 (prores_ks), straight alpha, yuva444p10le"
    )
    assert "matte in luma" in describe_output("x.mov", OutputConfig(kind="alpha"))
    assert "premultiplied" in describe_output("x.%04d.exr", OutputConfig())
    assert describe_output("m.mkv", OutputConfig(kind="alpha")).startswith("FFV1 lossless")
    assert "lossy" in describe_output("m.mp4", OutputConfig(kind="alpha"))
    assert describe_output("m_%04d.png", OutputConfig()).endswith("sequence")


# ----------------------------------------------------------------------------- source metadata
def with_timecode(src: str, dst: str, timecode, title: str = "Shot 10") -> str:
    """Remux src's video into dst (.mov) with a start timecode (None: none) and a title tag."""
    with av.open(src) as inp:
        s = inp.streams.video[0]
        with av.open(dst, "w", options={"movie_timescale": str(s.time_base.denominator)}) as out:
            vs = out.add_stream_from_template(s, rate=s.average_rate)  # the tmcd track needs the rate
            if timecode:
                vs.metadata["timecode"] = timecode
            out.metadata["title"] = title
            for p in inp.demux(s):
                if p.dts is not None:
                    p.stream = vs
                    out.mux(p)
    return dst


def stream_tags(path: str) -> tuple[dict, list[tuple[str, dict]]]:
    with av.open(path) as c:
        return dict(c.metadata), [(s.type, dict(s.metadata)) for s in c.streams]


def write_range(src: str, dst: str, frame_range, cfg: OutputConfig = OutputConfig()) -> None:
    with open_input(src) as r:
        start, stop = (0, None) if frame_range is None else (frame_range[0], frame_range[1] + 1)
        with open_output(dst, r.info, cfg, frame_range=frame_range, **RGBA) as w:
            for b in r.iter_batches(4, start=start, stop=stop):
                rgb = b.rgb_float()
                w.write(OutputBatch(rgb, rgb[..., 1].copy(), b.pts, b.index, b.time_base))


def test_offset_timecode_counts_like_ffmpeg():
    from alphagan_video.io.writer import offset_timecode

    assert offset_timecode("01:00:10:05", Fraction(24), 0) == "01:00:10:05"
    assert offset_timecode("01:00:10:05", Fraction(24), 7) == "01:00:10:12"
    assert offset_timecode("01:00:10:05", Fraction(24), 19) == "01:00:11:00"
    assert offset_timecode("23:59:59:24", Fraction(25), 1) == "00:00:00:00"  # 24-hour wrap
    # SMPTE drop-frame at 29.97: frames ;00 and ;01 are skipped each minute except every tenth
    assert offset_timecode("00:00:59;29", Fraction(30000, 1001), 1) == "00:01:00;02"
    assert offset_timecode("00:09:59;29", Fraction(30000, 1001), 1) == "00:10:00;00"
    assert offset_timecode("00:00:00;00", Fraction(30000, 1001), 17982) == "00:10:00;00"
    assert offset_timecode("00:00:00;00", Fraction(60000, 1001), 3600) == "00:01:00;04"
    assert offset_timecode("not a timecode", Fraction(24), 5) == "not a timecode"


def test_video_output_carries_source_timecode_and_tags(tmp_path):
    """Same metadata as the farm assembly writes; for a --frames range the timecode of its
    first frame, so an editor relinking by timecode lines the range up with the source."""
    clip = make_video(str(tmp_path / "in.mp4"), frames=12)
    src = with_timecode(clip.path, str(tmp_path / "tc.mov"), "01:00:10:05")
    write_range(src, str(tmp_path / "full.mov"), None)
    tags, streams = stream_tags(str(tmp_path / "full.mov"))
    assert tags["title"] == "Shot 10"
    assert streams == [("video", {**streams[0][1], "timecode": "01:00:10:05"}),
                       ("data", {**streams[1][1], "timecode": "01:00:10:05"})]  # QuickTime tmcd track
    write_range(src, str(tmp_path / "part.mov"), (5, 8))
    _, streams = stream_tags(str(tmp_path / "part.mov"))
    assert [s[1].get("timecode") for s in streams] == ["01:00:10:10", "01:00:10:10"]
    write_range(src, str(tmp_path / "part.mkv"), (5, 8))
    tags, streams = stream_tags(str(tmp_path / "part.mkv"))
    assert tags["title"] == "Shot 10" and streams[0][1]["TIMECODE"] == "01:00:10:10"
    # drop-frame 29.97: FFmpeg's muxer accepts the advanced timecode and reads it back
    clip30 = make_video(str(tmp_path / "in30.mp4"), frames=4, rate=Fraction(30000, 1001))
    src30 = with_timecode(clip30.path, str(tmp_path / "tc30.mov"), "00:00:59;29")
    write_range(src30, str(tmp_path / "df.mov"), (1, 2))
    assert [s[1].get("timecode") for s in stream_tags(str(tmp_path / "df.mov"))[1]] == ["00:01:00;02"] * 2
    # no timecode in the source: none written, no tmcd track
    plain = with_timecode(clip.path, str(tmp_path / "plain.mov"), None)
    write_range(plain, str(tmp_path / "none.mov"), (2, 3))
    _, streams = stream_tags(str(tmp_path / "none.mov"))
    assert [s[0] for s in streams] == ["video"] and "timecode" not in streams[0][1]


def test_sequence_overwrite_removes_stale_frames_of_full_runs_only(tmp_path):
    """An older, longer sequence: a full-clip overwrite leaves exactly its own frames; a
    --frames range (other chunks of a farm job) deletes nothing; a failed run deletes nothing."""
    long_clip = make_video(str(tmp_path / "long.mp4"), frames=8)
    short_clip = make_video(str(tmp_path / "short.mp4"), frames=6)
    seq = tmp_path / "seq"
    seq.mkdir()
    pattern = str(seq / "f_%04d.png")
    write_range(long_clip.path, pattern, None)
    (seq / "notes.txt").write_text("keep")
    eight = [f"f_{i:04d}.png" for i in range(8)]
    assert listing(seq) == eight + ["notes.txt"]
    write_range(short_clip.path, pattern, (2, 3), OutputConfig(overwrite=True))
    assert listing(seq) == eight + ["notes.txt"]
    with pytest.raises(RuntimeError, match="boom"):
        with open_input(short_clip.path) as r, open_output(pattern, r.info, OutputConfig(overwrite=True), **RGBA) as w:
            b = next(r.iter_batches(6))
            rgb = b.rgb_float()
            w.write(OutputBatch(rgb, rgb[..., 1].copy(), b.pts, b.index, b.time_base))
            raise RuntimeError("boom")
    assert listing(seq) == eight + ["notes.txt"]
    write_range(short_clip.path, pattern, None, OutputConfig(overwrite=True))
    assert listing(seq) == [f"f_{i:04d}.png" for i in range(6)] + ["notes.txt"]


def _one_timestamp_mp4(path: str, frames: int = 6) -> str:
    """An H.264 mp4 whose ``stts`` deltas are all 0: every frame carries timestamp 0."""
    import struct

    from tests.fuzz_corpus import make_mp4

    make_mp4(path, frames=frames, audio=False)
    data = bytearray(open(path, "rb").read())
    at = data.find(b"stts")
    for k in range(struct.unpack(">I", data[at + 8:at + 12])[0]):
        data[at + 16 + 8 * k:at + 20 + 8 * k] = b"\0\0\0\0"
    with open(path, "wb") as fh:
        fh.write(bytes(data))
    return path


def test_frames_that_share_one_timestamp_are_repaired_with_a_warning(tmp_path):
    """Issue 28 item 4: an input whose frames all carry the same timestamp failed the mux
    ("muxing ... failed: Invalid argument", exit 1). Timestamps that do not increase are now
    repaired (the previous one plus a nominal frame), with a warning; a frame range gets the
    same timestamps as the whole clip (every run decodes from frame 0)."""
    from alphagan_video.model import build_generator, save_generator
    from tests.e2e import cli

    import torch

    src = _one_timestamp_mp4(str(tmp_path / "same_pts.mp4"))
    with av.open(src) as c:
        assert [f.pts for f in c.decode(video=0)] == [0] * 6
    torch.manual_seed(0)
    ckpt = tmp_path / "tiny.safetensors"
    save_generator(build_generator("tiny"), ckpt)
    opts = ["--checkpoint", ckpt, "--no-refine", "--mask", "chroma", "-q"]
    out = tmp_path / "out.mov"
    result = cli(src, "-o", out, *opts)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "5 frame(s) carried a timestamp not after the previous frame's (first: frame 1)" \
        in warnings[0], result.stderr
    with av.open(str(out)) as c:
        pts = [p.pts for p in c.demux(video=0) if p.size]
    assert len(pts) == 6 and pts == sorted(set(pts)) and pts[0] == 0
    part = tmp_path / "part.mov"
    assert cli(src, "-o", part, *opts, "--frames", "2-4", "--no-audio").exit_code == 0
    with av.open(str(part)) as c:
        assert [p.pts for p in c.demux(video=0) if p.size] == pts[2:5]
