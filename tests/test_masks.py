"""Coarse-mask sources: person (bundled model on a real photo), chroma, plate, file, SAM."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch

from alphagan_video.config import MaskConfig
from alphagan_video.errors import CheckpointError, MaskSourceError, SubjectLostError
from alphagan_video.cli import user_message
from alphagan_video.masks import (
    MASK_SOURCE_NAMES, MASK_SOURCES, MaskSource, MaskSpec, build_mask_source, describe_mask_source, parse_mask_spec,
)
from alphagan_video.types import VideoInfo

CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def info_for(width: int, height: int, rotation: int = 0) -> VideoInfo:
    return VideoInfo(
        path="clip.mp4", kind="video", width=width, height=height, time_base=Fraction(1, 25),
        frame_rate=Fraction(25), frame_count=None, pix_fmt="yuv420p", bit_depth=8, rotation=rotation,
    )


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(B,H,W,3) or (H,W,3) uint8 -> (B,3,H,W) float32 [0,1]."""
    if rgb.ndim == 3:
        rgb = rgb[None]
    return torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float((a & b).sum()) / float((a | b).sum())


def check_mask(m: torch.Tensor, b: int, h: int, w: int) -> None:
    assert m.shape == (b, 1, h, w)
    assert m.dtype == torch.float32
    assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0


# --------------------------------------------------------------------------- spec / registry
def test_parse_spec_and_registry():
    assert set(MASK_SOURCES) == {"person", "sam", "chroma", "plate", "file"}
    assert parse_mask_spec("person") == MaskSpec("person", "")
    assert parse_mask_spec(" Chroma ") == MaskSpec("chroma", "")
    # only the first ':' splits: Windows drive letters survive
    assert parse_mask_spec(r"file:C:\shots\mask.mov") == MaskSpec("file", r"C:\shots\mask.mov")
    assert parse_mask_spec("plate:/a:b/plate.png") == MaskSpec("plate", "/a:b/plate.png")
    assert parse_mask_spec("plate:/a:b/plate.png").takes_path and not parse_mask_spec("sam").takes_path
    with pytest.raises(MaskSourceError, match=r"unknown mask source; use one of person, sam, chroma, plate:PATH, file:PATH"):
        parse_mask_spec("rotoscope")
    # The library names the setting; the CLI shows it as the flag the user typed.
    with pytest.raises(MaskSourceError, match=r"mask.source 'plate': plate needs a path; use mask.source plate:PATH") as info:
        parse_mask_spec("plate")
    assert (info.value.param, info.value.value_text) == ("mask.source", "'plate'")
    assert user_message(info.value) == "--mask 'plate': plate needs a path; use --mask plate:PATH"
    with pytest.raises(MaskSourceError, match=r"person takes no argument") as info:
        parse_mask_spec("person:x.png")
    assert user_message(info.value) == "--mask 'person:x.png': person takes no argument; use --mask person"


def test_mask_spec_absolute_rewrites_the_path_as_written(tmp_path, monkeypatch):
    """``MaskSpec.absolute`` (the farm job's ``mask.source``): only the PATH changes, the name
    stays as written, so a job's settings digest is the one main wrote."""
    monkeypatch.chdir(tmp_path)
    assert parse_mask_spec("plate:p.png").absolute() == f"plate:{tmp_path / 'p.png'}"
    assert parse_mask_spec(" Plate:p.png").absolute() == f" Plate:{tmp_path / 'p.png'}"
    assert parse_mask_spec("file:/abs/m_%04d.png").absolute() == "file:/abs/m_%04d.png"
    assert parse_mask_spec("Chroma").absolute() == "Chroma"
    assert MaskSpec("plate", "p.png").absolute() == f"plate:{tmp_path / 'p.png'}"
    assert MaskSpec("sam").absolute() == "sam"
    assert MASK_SOURCE_NAMES == tuple(MASK_SOURCES)


def test_describe_mask_source():
    assert describe_mask_source(MaskConfig()).startswith("person (MediaPipe")
    text = describe_mask_source(MaskConfig(source="sam", sam_checkpoint=Path("ck.pth"), box=(1, 2, 30, 40)))
    assert text == "sam (vit_b, ck.pth; box 1,2,30,40)"
    assert describe_mask_source(MaskConfig(source="file:m/%04d.png")) == "file (user masks from m/%04d.png)"
    assert "plate.png" in describe_mask_source(MaskConfig(source="plate:plate.png"))


# --------------------------------------------------------------------------- person
def astronaut_scene(h: int, w: int, shift: int = 0) -> tuple[np.ndarray, tuple[int, int, int]]:
    """scikit-image's astronaut portrait (NASA, public domain) pasted at the bottom centre of a
    plain, slightly graded background. Returns (H,W,3) uint8 and (y0, x0, size) of the photo."""
    from skimage import data

    photo = data.astronaut()
    size = int(min(h, w) * 0.9)
    photo = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)
    grad = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None]
    frame = (np.array([80, 100, 130], np.float32) + 40 * grad) * np.ones((h, w, 1), np.float32)
    frame = frame.astype(np.uint8)
    y0, x0 = h - size, (w - size) // 2 + shift
    frame[y0:, x0 : x0 + size] = photo
    return frame, (y0, x0, size)


def person_regions(h, w, y0, x0, size):
    """Boolean masks: the astronaut's face/torso centre, and background far from the photo."""
    def s(v):
        return int(v * size / 512)

    centre = np.zeros((h, w), bool)
    centre[y0 + s(120) : y0 + s(450), x0 + s(200) : x0 + s(330)] = True
    far = np.ones((h, w), bool)
    pad = int(0.08 * size)
    far[max(0, y0 - pad) :, max(0, x0 - pad) : x0 + size + pad] = False
    return centre, far


@pytest.mark.parametrize("w,h", [(640, 360), (360, 640)])
def test_person_segments_real_photo(w, h):
    from alphagan_video.masks.person import GENERAL_MODEL, LANDSCAPE_MODEL

    frame, (y0, x0, size) = astronaut_scene(h, w)
    src = build_mask_source(MaskConfig(), info_for(w, h), CPU)
    assert isinstance(src, MaskSource)
    assert src.model_path == (LANDSCAPE_MODEL if w > h else GENERAL_MODEL)
    m = src(to_tensor(frame), [0])
    check_mask(m, 1, h, w)
    centre, far = person_regions(h, w, y0, x0, size)
    p = m[0, 0].numpy()
    assert p[centre].mean() > 0.7
    assert p[far].mean() < 0.2
    src.close()


def test_person_batches_and_rotation():
    w, h = 320, 180
    frames = np.stack([astronaut_scene(h, w, shift)[0] for shift in (-30, 0, 30)])
    src = build_mask_source(MaskConfig(), info_for(w, h), CPU)
    batched = src(to_tensor(frames), [0, 1, 2])
    single = torch.cat([src(to_tensor(frames[i]), [i]) for i in range(3)])
    check_mask(batched, 3, h, w)
    assert torch.allclose(batched, single, atol=1e-5)
    # A phone clip: coded sideways, display matrix rotation 90 (counter-clockwise). The source
    # must segment the upright picture and hand the mask back in coded orientation.
    coded = np.ascontiguousarray(np.rot90(frames[1], k=-1))
    rot_src = build_mask_source(MaskConfig(), info_for(h, w, rotation=90), CPU)
    m_rot = rot_src(to_tensor(coded), [0])
    check_mask(m_rot, 1, w, h)
    expected = torch.rot90(batched[1:2], k=-1, dims=(2, 3))
    assert iou(m_rot[0, 0].numpy() > 0.5, expected[0, 0].numpy() > 0.5) > 0.9
    # without the rotation hint the sideways person is segmented worse than upright
    plain = build_mask_source(MaskConfig(), info_for(h, w), CPU)(to_tensor(coded), [0])
    assert iou(plain[0, 0].numpy() > 0.5, expected[0, 0].numpy() > 0.5) < iou(
        m_rot[0, 0].numpy() > 0.5, expected[0, 0].numpy() > 0.5
    )


# --------------------------------------------------------------------------- chroma
def screen_scene(rng: np.random.Generator, colour: str, h: int = 120, w: int = 160, cx: int = 80):
    """An unevenly lit green/blue screen with a person-like shape (skin head, dark and white
    clothes) in front. Returns (H,W,3) uint8 and the true mask."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 0.65 + 0.35 * (x / w) * (1 - 0.5 * y / h)  # the screen is darker to the left/bottom
    base = np.array([0.12, 0.70, 0.25] if colour == "green" else [0.10, 0.25, 0.75], np.float32)
    img = base * light[..., None]
    truth = np.zeros((h, w), bool)
    head = ((x - cx) / 14) ** 2 + ((y - 35) / 17) ** 2 <= 1
    body = (np.abs(x - cx) <= 28) & (y >= 50)
    shirt = body & (y < 85)
    trousers = body & (y >= 85)
    img[head] = [0.85, 0.62, 0.50]
    img[shirt] = [0.92, 0.92, 0.90]
    img[trousers] = [0.08, 0.08, 0.10]
    truth = head | body
    img = img + rng.normal(0, 0.02, img.shape).astype(np.float32)  # ~5 levels of sensor noise
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), truth


@pytest.mark.parametrize("colour", ["green", "blue"])
def test_chroma_key_detects_screen_and_keys_shape(colour):
    rng = np.random.default_rng(1)
    frames, truths = zip(*(screen_scene(rng, colour, cx=cx) for cx in (60, 80, 100)))
    src = build_mask_source(MaskConfig(source="chroma"), info_for(160, 120), CPU)
    m = src(to_tensor(np.stack(frames)), [0, 1, 2])
    check_mask(m, 3, 120, 160)
    assert src.key.colour == colour
    for i in range(3):
        assert iou(m[i, 0].numpy() > 0.5, truths[i]) > 0.95
    # the key found on the first frame is kept for later batches
    key = src.key
    src(to_tensor(frames[0]), [3])
    assert src.key is key


def test_chroma_without_screen_fails():
    frame, _ = astronaut_scene(120, 160)
    src = build_mask_source(MaskConfig(source="chroma"), info_for(160, 120), CPU)
    with pytest.raises(MaskSourceError, match=r"of the frame border is green or blue screen .*use mask.source person") as info:
        src(to_tensor(frame), [0])
    assert user_message(info.value).startswith("--mask chroma: only ")
    assert user_message(info.value).endswith("; use --mask person, plate:PATH or file:PATH")


def test_chroma_fixed_key_does_not_depend_on_the_first_frame_seen():
    """With chroma_key + chroma_tolerance every frame keys the same whichever frame a run (or a
    farm chunk) starts on; detection on the first frame seen does not."""
    from alphagan_video.masks.chroma import chroma_settings

    rng = np.random.default_rng(2)
    a, truth = screen_scene(rng, "green", cx=70)
    b, _ = screen_scene(rng, "green", cx=90)
    b = (np.clip(b.astype(np.float32) * [1.15, 0.9, 1.1], 0, 255)).astype(np.uint8)  # the lighting changed
    key, tolerance = chroma_settings(to_tensor(a)[0])
    assert key == pytest.approx(tuple(0.79 * v for v in (0.12, 0.70, 0.25)), abs=0.03)  # median lighting ~0.79
    fixed = MaskConfig(source="chroma", chroma_key=key, chroma_tolerance=tolerance)
    from_a = build_mask_source(fixed, info_for(160, 120), CPU)
    from_b = build_mask_source(fixed, info_for(160, 120), CPU)
    torch.testing.assert_close(from_a(to_tensor(np.stack([a, b])), [0, 1])[1:],
                               from_b(to_tensor(b), [1]), rtol=0, atol=0)
    detect_a = build_mask_source(MaskConfig(source="chroma"), info_for(160, 120), CPU)
    detect_b = build_mask_source(MaskConfig(source="chroma"), info_for(160, 120), CPU)
    assert not torch.equal(detect_a(to_tensor(np.stack([a, b])), [0, 1])[1:], detect_b(to_tensor(b), [1]))
    # a fixed key without tolerance measures it on the first frame, like the farm job does
    only_key = build_mask_source(MaskConfig(source="chroma", chroma_key=key), info_for(160, 120), CPU)
    only_key(to_tensor(a), [0])
    assert only_key.key.low == tolerance
    assert iou(from_a(to_tensor(a), [0])[0, 0].numpy() > 0.5, truth) > 0.95
    assert "fixed key colour" in describe_mask_source(fixed)


def test_chroma_key_errors_name_the_value():
    info = info_for(160, 120)
    with pytest.raises(MaskSourceError, match=r"mask.chroma_key 0\.5,0\.5,0\.5: that colour is nearly grey") as grey:
        build_mask_source(MaskConfig(source="chroma", chroma_key=(0.5, 0.5, 0.5)), info, CPU)
    assert user_message(grey.value).startswith("--chroma-key 0.5,0.5,0.5: that colour is nearly grey")
    with pytest.raises(MaskSourceError, match=r"mask.chroma_key 20,180,60: expected R,G,B with each value in 0\.\.1"):
        build_mask_source(MaskConfig(source="chroma", chroma_key=(20, 180, 60)), info, CPU)
    with pytest.raises(MaskSourceError, match=r"chroma_tolerance -0\.1: must be a positive CbCr distance"):
        build_mask_source(MaskConfig(source="chroma", chroma_key=(0.1, 0.7, 0.2), chroma_tolerance=-0.1), info, CPU)


# --------------------------------------------------------------------------- plate
def plate_and_frames(rng: np.random.Generator, n: int = 4, h: int = 60, w: int = 80):
    """A textured plate, and frames = plate + noise with a moving square in front."""
    tex = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 3)
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    plate = (0.2 + 0.6 * tex).astype(np.float32)
    frames, truths = [], []
    for k in range(n):
        f = plate + rng.normal(0, 0.012, plate.shape).astype(np.float32)
        t = np.zeros((h, w), bool)
        t[15:40, 10 + 8 * k : 35 + 8 * k] = True
        f[t] = [0.85, 0.35, 0.30] + rng.normal(0, 0.012, (int(t.sum()), 3))
        frames.append(f)
        truths.append(t)
    u8 = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    return u8(plate), u8(np.stack(frames)), truths


def write_png(path: Path, rgb_or_gray: np.ndarray) -> None:
    a = rgb_or_gray
    if a.ndim == 3:
        a = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), a)


def test_plate_image_difference(tmp_path):
    rng = np.random.default_rng(2)
    plate, frames, truths = plate_and_frames(rng)
    write_png(tmp_path / "plate.png", plate)
    src = build_mask_source(MaskConfig(source=f"plate:{tmp_path / 'plate.png'}"), info_for(80, 60), CPU)
    m = src(to_tensor(frames[:3]), [0, 1, 2])
    m2 = src(to_tensor(frames[3:]), [3])  # any B, state across calls
    check_mask(m, 3, 60, 80)
    masks = torch.cat([m, m2])[:, 0].numpy()
    for i in range(4):
        assert iou(masks[i] > 0.5, truths[i]) > 0.9
    # noise alone (no subject) leaves no specks
    noisy = np.clip(plate.astype(np.float32) + np.random.default_rng(3).normal(0, 3, plate.shape), 0, 255)
    empty = src(to_tensor(noisy.astype(np.uint8)), [4])
    assert float(empty.max()) < 0.5
    # Another scene entirely differs everywhere: the threshold now comes from the images' noise,
    # not from the frame's median difference (which used to rise above every pixel and return a
    # silently empty mask, issue 15), so the mask is (nearly) full -- and the pipeline warns.
    other = src(to_tensor(plate_and_frames(np.random.default_rng(3), n=1)[0]), [5])
    assert float((other > 0.5).float().mean()) > 0.9
    src.close()


def test_plate_video_sequence_in_step(tmp_path):
    rng = np.random.default_rng(4)
    plate, frames, truths = plate_and_frames(rng)
    # a clean pass whose lighting changes per frame: only an in-step plate explains it
    seq_dir = tmp_path / "plate"
    seq_dir.mkdir()
    gains = [0.8, 1.0, 1.2, 0.9]
    lit_frames = []
    for k, g in enumerate(gains):
        write_png(seq_dir / f"{k:04d}.png", np.clip(plate.astype(np.float32) * g, 0, 255).astype(np.uint8))
        lf = frames[k].astype(np.float32)
        lf[~truths[k]] *= g
        lit_frames.append(np.clip(lf, 0, 255).astype(np.uint8))
    src = build_mask_source(MaskConfig(source=f"plate:{seq_dir / '%04d.png'}"), info_for(80, 60), CPU)
    m = src(to_tensor(np.stack(lit_frames)), [0, 1, 2, 3])[:, 0].numpy()
    for k in range(4):
        assert iou(m[k] > 0.5, truths[k]) > 0.9


def test_plate_size_mismatch(tmp_path):
    write_png(tmp_path / "plate.png", np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(MaskSourceError, match=r"plate\.png is 64x48 but the video is 80x60"):
        build_mask_source(MaskConfig(source=f"plate:{tmp_path / 'plate.png'}"), info_for(80, 60), CPU)


# --------------------------------------------------------------------------- file
def make_masks(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """n distinct uint8 gray masks with soft values (a ramp and a moving disc)."""
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for k in range(n):
        m = ((np.hypot(x - 20 - 5 * k, y - 24) < 12) * 200 + (x * 55 // (w - 1))).astype(np.uint8)
        out.append(m)
    return np.stack(out)


def test_file_png_sequence(tmp_path):
    masks = make_masks(5)
    for k, m in enumerate(masks):
        write_png(tmp_path / f"m_{k:03d}.png", m)
    cfg = MaskConfig(source=f"file:{tmp_path / 'm_%03d.png'}")
    src = build_mask_source(cfg, info_for(64, 48), CPU)
    frames = torch.zeros(5, 3, 48, 64)
    a = src(frames[:2], [0, 1])
    b = src(frames[2:], [2, 3, 4])
    check_mask(a, 2, 48, 64)
    got = torch.cat([a, b])[:, 0].numpy()
    assert np.allclose(got, masks / 255.0, atol=1e-6)
    # a farm chunk starting mid-shot reads the matching files
    src2 = build_mask_source(cfg, info_for(64, 48), CPU)
    assert np.allclose(src2(frames[:2], [3, 4])[:, 0].numpy(), masks[3:] / 255.0, atol=1e-6)
    src.close()
    src2.close()


def test_file_single_image_16bit_rgb(tmp_path):
    rng = np.random.default_rng(5)
    m16 = (rng.random((48, 64)) * 65535).astype(np.uint16)
    rgb = np.stack([m16] * 3, axis=-1)
    write_png(tmp_path / "matte.png", rgb)
    src = build_mask_source(MaskConfig(source=f"file:{tmp_path / 'matte.png'}"), info_for(64, 48), CPU)
    out = src(torch.zeros(3, 3, 48, 64), [0, 1, 2])
    check_mask(out, 3, 48, 64)
    assert np.allclose(out[2, 0].numpy(), m16 / 65535.0, atol=1e-6)
    assert torch.equal(out[0], out[2])
    assert torch.equal(src(torch.zeros(1, 3, 48, 64), [99])[0], out[0])


def write_gray_video(path: Path, masks: np.ndarray) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = masks.shape[2], masks.shape[1], "gray"
        for m in masks:
            for p in s.encode(av.VideoFrame.from_ndarray(m, format="gray")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_file_mask_video_and_short_video(tmp_path):
    masks = make_masks(4)
    write_gray_video(tmp_path / "matte.mkv", masks)
    src = build_mask_source(MaskConfig(source=f"file:{tmp_path / 'matte.mkv'}"), info_for(64, 48), CPU)
    got = src(torch.zeros(3, 3, 48, 64), [0, 1, 2])[:, 0].numpy()
    assert np.abs(got - masks[:3] / 255.0).max() <= 2 / 255.0  # gray -> RGB -> mean round trip
    assert np.abs(got - masks[:3] / 255.0).mean() < 0.5 / 255.0
    with pytest.raises(MaskSourceError, match=r"matte\.mkv has 4 frame\(s\) but frame 4 is needed"):
        src(torch.zeros(2, 3, 48, 64), [3, 4])


def test_file_short_sequence_and_size_errors(tmp_path):
    for k, m in enumerate(make_masks(3)):
        write_png(tmp_path / f"{k:04d}.png", m)
    cfg = MaskConfig(source=f"file:{tmp_path / '%04d.png'}")
    src = build_mask_source(cfg, info_for(64, 48), CPU)
    src(torch.zeros(2, 3, 48, 64), [0, 1])
    with pytest.raises(MaskSourceError, match=r"%04d\.png has 3 frame\(s\) but frame 3 is needed"):
        src(torch.zeros(2, 3, 48, 64), [2, 3])
    with pytest.raises(MaskSourceError, match=r"%04d\.png is 64x48 but the video is 65x48; supply one of the same size"):
        build_mask_source(cfg, info_for(65, 48), CPU)
    with pytest.raises(MaskSourceError, match=r"mask.source file:.*nope\.png: input not found") as info:
        build_mask_source(MaskConfig(source=f"file:{tmp_path / 'nope.png'}"), info_for(64, 48), CPU)
    assert user_message(info.value).startswith(f"--mask file:{tmp_path / 'nope.png'}: input not found")


# --------------------------------------------------------------------------- SAM
from alphagan_video.masks.sam import (  # noqa: E402
    SamMaskSource,
    SamPrompt,
    padded_box,
    read_sam_state_dict,
    subject_lost_reason,
)
from tests.tiny_sam import build_tiny_sam  # noqa: E402 - registers sam_model test_tiny

SAM_W, SAM_H = 128, 96


def sam_frames(n: int = 3) -> torch.Tensor:
    """A warm rectangle moving right over a dark background, (n,3,96,128)."""
    f = torch.full((n, 3, SAM_H, SAM_W), 0.2)
    for k in range(n):
        f[k, :, 30:70, 40 + 4 * k : 80 + 4 * k] = torch.tensor([0.9, 0.5, 0.3]).view(3, 1, 1)
    return f


@pytest.fixture
def tiny_ckpt(tmp_path) -> Path:
    path = tmp_path / "tiny_sam.pth"
    torch.save(build_tiny_sam(seed=1).state_dict(), path)
    return path


def sam_cfg(ckpt: Path, **kw) -> MaskConfig:
    return MaskConfig(source="sam", sam_model="test_tiny", sam_checkpoint=ckpt, **kw)


def test_sam_checkpoint_loads_through_public_builder(tiny_ckpt):
    src = build_mask_source(sam_cfg(tiny_ckpt, box=(40, 30, 80, 70)), info_for(SAM_W, SAM_H), CPU)
    loaded = src._predictor.model.state_dict()
    saved = torch.load(tiny_ckpt, weights_only=True)
    fresh = build_tiny_sam(seed=0).state_dict()  # what the builder starts from
    name = "mask_decoder.iou_prediction_head.layers.0.weight"
    assert not torch.equal(fresh[name], saved[name])
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)


def test_sam_box_prompt_propagates_three_frames(tiny_ckpt):
    src = build_mask_source(sam_cfg(tiny_ckpt, box=(40, 30, 80, 70)), info_for(SAM_W, SAM_H), CPU)
    m = src(sam_frames(3), [0, 1, 2])
    check_mask(m, 3, SAM_H, SAM_W)
    assert [h[:2] for h in src.history] == [(0, "prompt"), (1, "propagate"), (2, "propagate")]
    # the stored propagation box is the last mask's bounding box plus a 10% margin
    assert src._prev_box == padded_box(m[2, 0] > 0.5, 0.1)
    assert [h[2] for h in src.history] == [int((m[i, 0] > 0.5).sum()) for i in range(3)]
    # calling batch after batch continues the propagation
    m4 = src(sam_frames(4)[3:], [3])
    check_mask(m4, 1, SAM_H, SAM_W)
    assert src.history[-1][:2] == (3, "propagate")


def test_sam_point_prompt_and_prompts_json(tiny_ckpt, tmp_path):
    src = build_mask_source(sam_cfg(tiny_ckpt, points=((60, 50, 1),)), info_for(SAM_W, SAM_H), CPU)
    check_mask(src(sam_frames(2), [0, 1]), 2, SAM_H, SAM_W)
    assert [h[1] for h in src.history] == ["prompt", "propagate"]

    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"0": {"box": [40, 30, 80, 70]}, "2": {"box": [48, 30, 88, 70], "points": [[60, 50, 1], [5, 5, 0]]}}))
    src = build_mask_source(sam_cfg(tiny_ckpt, prompts_json=prompts), info_for(SAM_W, SAM_H), CPU)
    src(sam_frames(3), [0, 1, 2])
    assert [h[1] for h in src.history] == ["prompt", "propagate", "prompt"]
    # the re-prompted frame gives the same mask as a fresh source prompted there directly
    direct = SamMaskSource(build_tiny_sam(seed=1), info_for(SAM_W, SAM_H), CPU,
                           first=SamPrompt(box=(48, 30, 88, 70), points=((60, 50, 1), (5, 5, 0))))
    again = build_mask_source(sam_cfg(tiny_ckpt, prompts_json=prompts), info_for(SAM_W, SAM_H), CPU)
    assert torch.allclose(again(sam_frames(3), [0, 1, 2])[2], direct(sam_frames(3)[2:], [2])[0], atol=1e-5)


def test_sam_option_errors(tiny_ckpt, tmp_path):
    info = info_for(SAM_W, SAM_H)
    with pytest.raises(MaskSourceError, match=r"mask.source sam needs a checkpoint"):
        build_mask_source(MaskConfig(source="sam", box=(1, 1, 20, 20)), info, CPU)
    with pytest.raises(MaskSourceError, match=r"mask.source sam needs a prompt") as no_prompt:
        build_mask_source(sam_cfg(tiny_ckpt), info, CPU)
    assert user_message(no_prompt.value).startswith("--mask sam needs a prompt: give a box")
    with pytest.raises(MaskSourceError, match=r"sam_model 'vit_x' is unknown; use one of vit_b, vit_l, vit_h"):
        build_mask_source(MaskConfig(source="sam", sam_model="vit_x", sam_checkpoint=tiny_ckpt, box=(1, 1, 9, 9)), info, CPU)
    with pytest.raises(MaskSourceError, match=r"box \[200, 10, 250, 50\] lies outside the 128x96 frame"):
        build_mask_source(sam_cfg(tiny_ckpt, box=(200, 10, 250, 50)), info, CPU)
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": {"box": [1, 2, 3, 4]}}')
    with pytest.raises(MaskSourceError, match=r"entry 'x': keys must be frame indices"):
        build_mask_source(sam_cfg(tiny_ckpt, prompts_json=bad), info, CPU)
    bad.write_text('{"0": {"points": [[10, 10, 7]]}}')
    with pytest.raises(MaskSourceError, match=r"point \[10, 10, 7\] must be \[x, y, label\]"):
        build_mask_source(sam_cfg(tiny_ckpt, prompts_json=bad), info, CPU)
    bad.write_text("{not json")
    with pytest.raises(MaskSourceError, match=r"bad\.json is not valid JSON"):
        build_mask_source(sam_cfg(tiny_ckpt, prompts_json=bad), info, CPU)
    # prompts only for a later frame: the first frame processed has none
    bad.write_text('{"5": {"box": [1, 2, 30, 40]}}')
    src = build_mask_source(sam_cfg(tiny_ckpt, prompts_json=bad), info, CPU)
    with pytest.raises(MaskSourceError, match=r'no prompt for frame 0, the first frame processed.*"0": '):
        src(sam_frames(1), [0])


def test_sam_checkpoint_errors(tiny_ckpt, tmp_path):
    info = info_for(SAM_W, SAM_H)
    with pytest.raises(CheckpointError, match=r"SAM checkpoint not found: .*missing\.pth; download"):
        build_mask_source(sam_cfg(tmp_path / "missing.pth", box=(1, 1, 9, 9)), info, CPU)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(tiny_ckpt.read_bytes()[:5000])  # truncated download
    with pytest.raises(CheckpointError, match=r"corrupt\.pth is not a readable PyTorch checkpoint"):
        build_mask_source(sam_cfg(corrupt, box=(1, 1, 9, 9)), info, CPU)
    sd = torch.load(tiny_ckpt, weights_only=True)
    # wrapped and prefixed (DataParallel / torch.compile) state dicts still load
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": {"module." + k: v for k, v in sd.items()}}, wrapped)
    assert set(read_sam_state_dict(wrapped)) == set(sd)
    build_mask_source(sam_cfg(wrapped, box=(1, 1, 9, 9)), info, CPU)
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in sd.items() if not k.startswith("mask_decoder.iou")}, partial)
    with pytest.raises(CheckpointError, match=r"does not match test_tiny: missing keys mask_decoder\.iou"):
        build_mask_source(sam_cfg(partial, box=(1, 1, 9, 9)), info, CPU)
    # an official vit_h file given with the default vit_b is recognised before building
    vit_h_like = tmp_path / "sam_vit_h.pth"
    torch.save({"image_encoder.pos_embed": torch.zeros(1, 2, 2, 1280)}, vit_h_like)
    with pytest.raises(CheckpointError, match=r"is a vit_h checkpoint but sam_model is vit_b; use sam_model vit_h"):
        build_mask_source(MaskConfig(source="sam", sam_checkpoint=vit_h_like, box=(1, 1, 9, 9)), info, CPU)
    pickled = tmp_path / "pickled.pth"
    torch.save({"weights": [1, 2, 3], "object": object.__name__, "fn": np.float64(1.0)}, pickled)
    with pytest.raises(CheckpointError, match=r"pickled\.pth (is not a readable|does not hold)"):
        build_mask_source(sam_cfg(pickled, box=(1, 1, 9, 9)), info, CPU)


def test_subject_lost_rule():
    assert subject_lost_reason(0, 100, 10_000) == "is empty"
    assert subject_lost_reason(9_500, 9_000, 10_000) == "covers 95% of the frame"
    assert subject_lost_reason(400, 100, 10_000) == "grew 4.0x in one frame"
    assert subject_lost_reason(250, 100, 10_000) is None
    assert subject_lost_reason(250, None, 10_000) is None
    assert padded_box(torch.zeros(8, 8, dtype=torch.bool), 0.1) is None
    m = torch.zeros(50, 60, dtype=torch.bool)
    m[10:20, 20:40] = True
    assert padded_box(m, 0.1) == (18.0, 9.0, 42.0, 21.0)
    assert padded_box(m, 10.0) == (0.0, 0.0, 60.0, 50.0)


def constant_logit_sam(sign: float):
    """A tiny SAM whose decoder is set to predict the same logit everywhere (about
    -3.4 for sign -1: nothing is subject; +3.4 for sign +1: everything is)."""
    sam = build_tiny_sam(seed=1)
    dec = sam.mask_decoder
    with torch.no_grad():
        last_up = dec.output_upscaling[3]  # ConvTranspose2d before the final GELU
        last_up.weight.zero_()
        last_up.bias.fill_(1.0)  # upscaled embedding = GELU(1) everywhere
        for mlp in dec.output_hypernetworks_mlps:
            mlp.layers[-1].weight.zero_()
            mlp.layers[-1].bias.fill_(sign)
    return sam


def test_sam_garbage_checkpoint_is_a_checkpoint_error_naming_the_file(tmp_path):
    """Issue 28 item 6: a 5-byte text file as the SAM checkpoint raised ``KeyError: 101`` (exit 1)."""
    info = info_for(SAM_W, SAM_H)
    for name, data in (("text.pth", b"hello"), ("zeros.pth", bytes(64)), ("one.pth", b"\x80")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=rf"SAM checkpoint .*{name[:-4]}\.pth is not a readable PyTorch checkpoint"):
            build_mask_source(sam_cfg(path, box=(1, 1, 9, 9)), info, CPU)


def test_sam_lost_subject_detected_end_to_end():
    info = info_for(SAM_W, SAM_H)
    empty = SamMaskSource(constant_logit_sam(-1.0), info, CPU, first=SamPrompt(box=(40, 30, 80, 70)))
    with pytest.raises(SubjectLostError, match=r'lost the subject on frame 7: the mask is empty; .*"7": \{"box"'):
        empty(sam_frames(1), [7])
    # A prompted frame may cover everything (the user asked for it); propagating a mask that
    # covers the whole frame means the subject was lost.
    full = SamMaskSource(constant_logit_sam(1.0), info, CPU, first=SamPrompt(box=(40, 30, 80, 70)))
    with pytest.raises(SubjectLostError, match=r"lost the subject on frame 1: the mask covers 100% of the frame"):
        full(sam_frames(2), [0, 1])
    assert full.history == [(0, "prompt", SAM_W * SAM_H)]


def test_morphology_cpu_and_device_paths_agree():
    """The CPU uses cv2; CUDA/MPS use the torch versions: both must give the same result."""
    from alphagan_video.masks import _morph as M

    g = torch.Generator().manual_seed(0)
    m = (torch.rand(2, 1, 37, 53, generator=g) > 0.7).float() * torch.rand(2, 1, 37, 53, generator=g)
    for k in (3, 5, 9):
        assert torch.equal(M._cv2_apply(m, k, "dilate"), M._max_sep(m, k))
        assert torch.equal(M._cv2_apply(m, k, "erode"), -M._max_sep(-m, k))
    assert torch.equal(M.median3(m), M._median3_torch(m))
    speck = torch.zeros(1, 1, 20, 20)
    speck[0, 0, 5, 5] = 1.0  # isolated pixel: opened away
    speck[0, 0, 10:18, 10:18] = 1.0
    speck[0, 0, 13, 13] = 0.0  # pinhole: closed
    cleaned = M.open_close(speck, 3)
    assert cleaned[0, 0, 5, 5] == 0 and cleaned[0, 0, 13, 13] == 1 and cleaned[0, 0, 10:18, 10:18].min() == 1
