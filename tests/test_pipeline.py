"""End to end through the real CLI and pipeline: timing, audio, alpha algebra, output kinds and
unusual (valid) inputs. Error paths, reports and the console script are in test_cli.py."""
from __future__ import annotations

import json
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from tests.e2e import (  # noqa: F401 - tiny_checkpoint is a fixture
    clip_with_masks,
    decode_frames,
    listing,
    luma_matte,
    make_green_screen_video,
    mask_images,
    prores_alpha,
    read_exr,
    read_png,
    read_rgb,
    remux_with_offset,
    run_ok,
    tiny_checkpoint,
    trimap_images,
    video_pts,
    write_gray_sequence,
)
from tests.media import make_image, make_sequence, make_video, read_packets

FAST = ("--no-refine", "-q")


# ----------------------------------------------------------------------------- timing and audio

@pytest.mark.parametrize("vfr,n_audio", [(False, 1), (True, 2)], ids=["cfr-1audio", "vfr-2audio"])
def test_frames_pts_time_base_and_audio_preserved(tmp_path, tiny_checkpoint, vfr, n_audio):
    clip, mask = clip_with_masks(tmp_path, frames=7, vfr=vfr, audio_streams=n_audio)
    if vfr:
        assert len(set(np.diff(clip.pts))) > 1  # really variable frame durations
    out = tmp_path / "out.mov"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", mask, "--batch-size", 3, *FAST)
    pts, tb, n_out_audio = video_pts(str(out))
    assert tb == clip.time_base
    assert pts == clip.pts and len(pts) == 7  # every frame, every timestamp
    assert len(decode_frames(str(out))) == 7
    assert n_out_audio == n_audio
    src, dst = read_packets(clip.path), read_packets(str(out))
    assert len({k for k, *_ in src}) == n_audio
    assert dst == src  # (stream, pts, dts, payload) byte-identical


def test_no_audio_drops_audio_streams(tmp_path, tiny_checkpoint):
    clip, mask = clip_with_masks(tmp_path, frames=4, audio_streams=2)
    out = tmp_path / "out.mov"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", mask, "--no-audio", *FAST)
    pts, tb, n_audio = video_pts(str(out))
    assert n_audio == 0
    assert pts == clip.pts and tb == clip.time_base


@pytest.mark.parametrize("vfr", [False, True], ids=["cfr", "vfr"])
def test_input_not_starting_at_zero_keeps_its_pts(tmp_path, tiny_checkpoint, vfr):
    clip, mask = clip_with_masks(tmp_path, "src.mov", frames=5, vfr=vfr, audio_streams=1)
    shifted = str(tmp_path / "late.mov")
    remux_with_offset(clip.path, shifted, offset=7001)  # not a multiple of anything convenient
    src_pts, src_tb, _ = video_pts(shifted)
    assert src_pts[0] == clip.pts[0] + 7001
    out = tmp_path / "out.mov"
    run_ok(shifted, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", mask, "--batch-size", 2, *FAST)
    pts, tb, _ = video_pts(str(out))
    assert tb == src_tb and pts == src_pts
    assert read_packets(str(out)) == read_packets(shifted)


def test_frame_range_keeps_original_pts(tmp_path, tiny_checkpoint):
    clip, mask = clip_with_masks(tmp_path, frames=8)
    assert clip.time_base == Fraction(1, 12288)  # 24 fps in .mp4: frame 2 starts at 83.33 ms = 1024 ticks
    out = tmp_path / "part.mov"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", mask, "--frames", "2-4", *FAST)
    pts, tb, _ = video_pts(str(out))
    assert tb == clip.time_base and pts == clip.pts[2:5]


def test_frame_range_copies_only_the_audio_of_those_frames(tmp_path, tiny_checkpoint):
    clip, mask = clip_with_masks(tmp_path, frames=12, audio_streams=1)
    out = tmp_path / "part.mov"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", mask, "--frames", "4-7", *FAST)
    source = read_packets(clip.path, "audio")
    copied = read_packets(str(out), "audio")
    first = Fraction(clip.pts[4]) * clip.time_base
    end = Fraction(clip.pts[7]) * clip.time_base + Fraction(1, 24)
    with av.open(clip.path) as c:
        audio_tb = c.streams.audio[0].time_base
    # Byte-identical packets, a contiguous run of the source's, all overlapping frames 4..7.
    assert copied and len(copied) < len(source)
    start_at = source.index(copied[0])
    assert source[start_at : start_at + len(copied)] == copied
    assert all(p[1] * audio_tb <= end for p in copied)
    assert all(p[1] * audio_tb + Fraction(1024) * audio_tb > first for p in copied)


# ----------------------------------------------------------------------------- alpha

def test_trimap_known_regions_are_exact_in_prores_4444(tmp_path, tiny_checkpoint):
    clip = make_video(str(tmp_path / "in.mp4"), frames=5)
    tri = trimap_images(clip.mask, radius=3)
    tri_path = write_gray_sequence(tmp_path / "tri", tri, "t_%04d.png")
    out = tmp_path / "out.mov"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--trimap", tri_path, "--batch-size", 2, *FAST)
    frames = decode_frames(str(out))
    assert frames[0].format.name.startswith("yuva444p")  # ProRes 4444 with an alpha plane
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.name == "prores"
    alpha = prores_alpha(str(out))
    assert alpha.shape == (5, 48, 64)
    assert np.all(alpha[tri == 0] == 0.0)
    assert np.all(alpha[tri == 255] == 1.0)
    unknown = alpha[tri == 128]
    assert unknown.size > 0 and 0.0 <= unknown.min() and unknown.max() <= 1.0


@pytest.mark.parametrize("form", ["image", "video"])
def test_trimap_as_single_image_or_video(tmp_path, tiny_checkpoint, form):
    clip = make_video(str(tmp_path / "in.mp4"), frames=3)
    if form == "image":  # one trimap for every frame: frame 0's, widened to cover the motion
        tri = trimap_images(clip.mask.max(axis=0, keepdims=True), radius=3).repeat(3, axis=0)
        tri_path = str(tmp_path / "tri.png")
        cv2.imwrite(tri_path, tri[0])
    else:
        tri = trimap_images(clip.mask, radius=3)
        tri_path = str(tmp_path / "tri.mkv")
        c = av.open(tri_path, "w")
        s = c.add_stream("ffv1", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "gray"
        for i, t in enumerate(tri):
            f = av.VideoFrame.from_ndarray(t, format="gray")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
        c.close()
    out = tmp_path / "out.mov"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--trimap", tri_path, "--batch-size", 2, *FAST)
    alpha = prores_alpha(str(out))
    assert alpha.shape == (3, 48, 64)
    assert np.all(alpha[tri == 0] == 0) and np.all(alpha[tri == 255] == 1)


def test_png_straight_exr_premultiplied_and_composite_algebra(tmp_path, tiny_checkpoint):
    clip = make_video(str(tmp_path / "in.mp4"), frames=4)
    tri = trimap_images(clip.mask, radius=4)
    tri_path = write_gray_sequence(tmp_path / "tri", tri, "t_%04d.png")
    common = ("--checkpoint", tiny_checkpoint, "--trimap", tri_path, "--batch-size", 3, *FAST)
    (tmp_path / "png").mkdir()
    (tmp_path / "exr").mkdir()
    (tmp_path / "comp").mkdir()
    run_ok(clip.path, "-o", tmp_path / "png" / "f_%04d.png", *common)
    run_ok(clip.path, "-o", tmp_path / "exr" / "f.%04d.exr", *common)
    run_ok(clip.path, "-o", tmp_path / "comp" / "c_%04d.png", "--output-kind", "composite",
           "--background", "#102030", *common)
    run_ok(clip.path, "-o", tmp_path / "comp.mp4", "--output-kind", "composite", "--background", "#102030", *common)
    names = [f"{i:04d}" for i in range(4)]
    assert listing(tmp_path / "png") == [f"f_{n}.png" for n in names]
    assert listing(tmp_path / "exr") == [f"f.{n}.exr" for n in names]
    image = read_rgb(clip.path)
    bg = np.array([0x10, 0x20, 0x30]) / 255.0
    mp4 = read_rgb(str(tmp_path / "comp.mp4"))
    assert mp4.shape == (4, 48, 64, 3)
    for i, n in enumerate(names):
        png = read_png(tmp_path / "png" / f"f_{n}.png")
        exr = read_exr(tmp_path / "exr" / f"f.{n}.exr").astype(np.float64)
        comp = read_png(tmp_path / "comp" / f"c_{n}.png")
        assert png.shape == (48, 64, 4) and exr.shape == (48, 64, 4) and comp.shape == (48, 64, 3)
        a, f = png[..., 3], png[..., :3]
        assert np.all(a[tri[i] == 0] == 0) and np.all(a[tri[i] == 255] == 1)
        # the same run settings give the same alpha in both formats
        assert np.abs(exr[..., 3] - a).max() <= 1 / 65535
        # PNG is straight: colour is F, not F*a -- opaque pixels are the input colour exactly and
        # semi-transparent ones are brighter than their alpha (impossible when premultiplied)
        np.testing.assert_array_equal(f[a == 1], image[i][a == 1])
        soft = (a > 0) & (a < 0.8)
        assert np.sum(f[soft].max(-1) > a[soft] + 0.05) > 10
        # EXR is premultiplied: RGB == F * a
        np.testing.assert_allclose(exr[..., :3], f * a[..., None], atol=2 / 65535)
        assert np.all(exr[..., :3][a == 0] == 0)
        # composite == a F + (1 - a) BG
        np.testing.assert_allclose(comp, a[..., None] * f + (1 - a[..., None]) * bg, atol=2 / 65535)
        np.testing.assert_array_equal(comp[a == 0], np.broadcast_to(bg, comp[a == 0].shape))
        # .mp4 composite: lossy H.264 of the same picture
        assert np.abs(mp4[i] - comp).mean() < 2 / 255


def test_output_kinds_alpha_foreground_composite(tmp_path, tiny_checkpoint):
    clip = make_video(str(tmp_path / "in.mp4"), frames=4)
    tri = trimap_images(clip.mask, radius=4)
    tri_path = write_gray_sequence(tmp_path / "tri", tri, "t_%04d.png")
    common = ("--checkpoint", tiny_checkpoint, "--trimap", tri_path, "--batch-size", 4, *FAST)
    (tmp_path / "ref").mkdir()
    run_ok(clip.path, "-o", tmp_path / "ref" / "r_%04d.png", *common)
    ref = np.stack([read_png(tmp_path / "ref" / f"r_{i:04d}.png") for i in range(4)])
    ref_a, ref_f = ref[..., 3], ref[..., :3]

    run_ok(clip.path, "-o", tmp_path / "a.mov", "--output-kind", "alpha", *common)
    frames = decode_frames(str(tmp_path / "a.mov"))
    assert len(frames) == 4 and frames[0].format.name.startswith("yuv422p")  # ProRes 422 HQ matte
    matte = luma_matte(str(tmp_path / "a.mov")).clip(0, 1)
    # lossy: known regions within 1/255 of 0 / 1 (DCT ringing next to the band), 2/255 overall
    assert np.abs(matte[tri == 0]).max() <= 1 / 255 and np.abs(matte[tri == 255] - 1).max() <= 1 / 255
    assert np.mean(matte[tri != 128] == np.round(ref_a[tri != 128])) > 0.9
    assert np.abs(matte - ref_a).max() <= 2 / 255

    run_ok(clip.path, "-o", tmp_path / "a.mkv", "--output-kind", "alpha", *common)
    with av.open(str(tmp_path / "a.mkv")) as c:
        assert c.streams.video[0].codec_context.name == "ffv1"
        mkv = np.stack([f.to_ndarray() for f in c.decode(video=0)])
    assert mkv.dtype == np.uint16 and mkv.shape == (4, 48, 64)
    np.testing.assert_array_equal(mkv, np.round(ref_a * 65535).astype(np.uint16))  # lossless

    run_ok(clip.path, "-o", tmp_path / "fg.mov", "--output-kind", "foreground", *common)
    frames = decode_frames(str(tmp_path / "fg.mov"))
    assert frames[0].format.name.startswith("yuv444p") and not frames[0].format.name.startswith("yuva")
    fg = read_rgb(str(tmp_path / "fg.mov"))
    assert np.abs(fg - ref_f).mean() < 1.5 / 255

    run_ok(clip.path, "-o", tmp_path / "comp.mov", "--output-kind", "composite", "--background", "white", *common)
    comp = read_rgb(str(tmp_path / "comp.mov"))
    expected = ref_a[..., None] * ref_f + (1 - ref_a[..., None]) * 1.0
    assert np.abs(comp - expected).mean() < 1.5 / 255


# ----------------------------------------------------------------------------- unusual inputs

def _assert_same_timing(out, clip, frames):
    pts, tb, _ = video_pts(str(out))
    assert len(pts) == frames and pts == clip.pts and tb == clip.time_base


def test_odd_size_input(tmp_path, tiny_checkpoint):
    clip, mask = clip_with_masks(tmp_path, "odd.mkv", width=63, height=47, frames=5, codec="ffv1",
                                 pix_fmt="yuv444p")
    out = tmp_path / "out.mov"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", mask, "--batch-size", 2, *FAST)
    alpha = prores_alpha(str(out))
    assert alpha.shape == (5, 47, 63)


def test_big_odd_single_frame(tmp_path, tiny_checkpoint):
    clip = make_video(str(tmp_path / "big.mov"), width=1919, height=1079, frames=1, codec="prores_ks",
                      pix_fmt="yuv422p10le", ten_bit=True)
    cv2.imwrite(str(tmp_path / "mask.png"), mask_images(clip.mask)[0])
    out = tmp_path / "out.mov"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", f"file:{tmp_path / 'mask.png'}",
           "--no-temporal", *FAST)
    alpha = prores_alpha(str(out))
    assert alpha.shape == (1, 1079, 1919)
    m = clip.mask[0]
    assert alpha[0][m == 1].mean() > 0.9 and alpha[0][m == 0].mean() < 0.1  # the trimap's known regions


def test_rotation_is_preserved(tmp_path, tiny_checkpoint):
    clip, mask = clip_with_masks(tmp_path, "rot.mp4", frames=3, rotation=90)
    out = tmp_path / "out.mov"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", mask, *FAST)
    frames = decode_frames(str(out))
    assert len(frames) == 3 and frames[0].rotation == 90
    assert (frames[0].width, frames[0].height) == (64, 48)  # pixels not rotated, metadata kept
    _assert_same_timing(out, clip, 3)


@pytest.mark.parametrize(
    "name,codec,pix_fmt",
    [("hevc10.mkv", "libx265", "yuv420p10le"), ("prores10.mov", "prores_ks", "yuv422p10le")],
)
def test_ten_bit_input(tmp_path, tiny_checkpoint, name, codec, pix_fmt):
    clip, mask = clip_with_masks(tmp_path, name, frames=4, codec=codec, pix_fmt=pix_fmt, ten_bit=True)
    out = tmp_path / "out.mov"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", mask, "--batch-size", 3, *FAST)
    assert prores_alpha(str(out)).shape == (4, 48, 64)
    pts, _, _ = video_pts(str(out))
    assert len(pts) == 4
    if name.endswith(".mov"):  # Matroska inputs store milliseconds, QuickTime keeps its ticks
        _assert_same_timing(out, clip, 4)
    # colour of opaque pixels survives a 10-bit round trip (the foreground equals the image there)
    src, got = read_rgb(clip.path), read_rgb(str(out))
    opaque = prores_alpha(str(out)) == 1
    assert opaque.sum() > 100 and np.abs(got[opaque] - src[opaque]).mean() < 1 / 255


def test_single_frame_video(tmp_path, tiny_checkpoint):
    clip, mask = clip_with_masks(tmp_path, "one.mp4", frames=1)
    out = tmp_path / "out.mov"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", mask, *FAST)
    _assert_same_timing(out, clip, 1)


def test_single_image_in_png_out(tmp_path, tiny_checkpoint):
    img = make_image(str(tmp_path / "photo.png"), width=63, height=47)
    tri = trimap_images(make_mask_like(img))
    cv2.imwrite(str(tmp_path / "tri.png"), tri[0])
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "cut.png"
    run_ok(tmp_path / "photo.png", "-o", out, "--checkpoint", tiny_checkpoint, "--trimap", tmp_path / "tri.png", *FAST)
    assert listing(tmp_path / "out") == ["cut.png"]
    rgba = read_png(out)
    assert rgba.shape == (47, 63, 4)
    a = rgba[..., 3]
    assert np.all(a[tri[0] == 0] == 0) and np.all(a[tri[0] == 255] == 1)
    np.testing.assert_array_equal(np.round(rgba[..., :3][a == 1] * 255), img[a == 1])


def make_mask_like(img: np.ndarray) -> np.ndarray:
    """The synthetic square of frame 0 (the exact colour (230, 40, 200)) as a (1,H,W) mask."""
    return np.all(img == (230, 40, 200), axis=-1)[None].astype(np.float32)


def test_image_sequence_in(tmp_path, tiny_checkpoint):
    seq = make_sequence(str(tmp_path / "shots"), "s_%04d.png", frames=5, start=7)
    masks = np.concatenate([make_mask_like(f) for f in seq.frames])
    mask = write_gray_sequence(tmp_path / "masks", mask_images(masks))
    out = tmp_path / "out.mov"
    run_ok(seq.pattern, "-o", out, "--checkpoint", tiny_checkpoint, "--mask", f"file:{mask}", "--batch-size", 2, *FAST)
    pts, tb, _ = video_pts(str(out))
    assert len(pts) == 5 and [Fraction(p) * tb for p in pts] == [Fraction(i, 24) for i in range(5)]
    alpha = prores_alpha(str(out))
    assert alpha.shape == (5, 48, 64)


def test_chroma_mask_source(tmp_path, tiny_checkpoint):
    masks = make_green_screen_video(str(tmp_path / "green.mkv"), frames=5)
    out = tmp_path / "out.mov"
    run_ok(tmp_path / "green.mkv", "-o", out, "--checkpoint", tiny_checkpoint, "--mask", "chroma",
           "--trimap-band", 4, "--batch-size", 2, *FAST)
    alpha = prores_alpha(str(out))
    assert alpha.shape == (5, 48, 64)
    # the key finds the square: far inside opaque, far outside transparent
    kernel = np.ones((7, 7), np.uint8)
    inner = np.stack([cv2.erode(m.astype(np.uint8), kernel) for m in masks]) > 0
    outer = np.stack([cv2.dilate(m.astype(np.uint8), kernel) for m in masks]) == 0
    assert np.all(alpha[inner] == 1) and np.all(alpha[outer] == 0)


def test_default_person_source_runs(tmp_path, tiny_checkpoint):
    clip = make_video(str(tmp_path / "in.mp4"), frames=2)
    out = tmp_path / "out.mov"
    report = tmp_path / "r.json"
    run_ok(clip.path, "-o", out, "--checkpoint", tiny_checkpoint, "--json-report", report, *FAST)
    assert json.loads(report.read_text())["mask_source"].startswith("person")
    _assert_same_timing(out, clip, 2)


def test_refine_default_on(tmp_path, tiny_checkpoint):
    clip = make_video(str(tmp_path / "in.mp4"), frames=3)
    tri = trimap_images(clip.mask, radius=3)
    tri_path = write_gray_sequence(tmp_path / "tri", tri, "t_%04d.png")
    common = ("--checkpoint", tiny_checkpoint, "--trimap", tri_path, "-q")
    run_ok(clip.path, "-o", tmp_path / "refined.mov", *common, "--json-report", tmp_path / "r.json")
    run_ok(clip.path, "-o", tmp_path / "raw.mov", *common, "--no-refine")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["settings"]["refine"] is True and report["seconds"]["refine"] > 0
    refined, raw = prores_alpha(str(tmp_path / "refined.mov")), prores_alpha(str(tmp_path / "raw.mov"))
    assert np.all(refined[tri == 0] == 0) and np.all(refined[tri == 255] == 1)
    assert np.abs(refined - raw)[tri == 128].max() > 0.01  # the solve changed the unknown band
