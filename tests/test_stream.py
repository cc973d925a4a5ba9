"""Throughput machinery: the stage runner (alphagan_video/engine.py, ``Threads``), overlapped == sequential
pipeline output, atomic abort under overlap, the 10-bit colour conversions and the
band-restricted foreground estimate."""
from __future__ import annotations

import copy
import os
import threading
import time
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch

from alphagan_video.config import MaskConfig, ModelConfig, OutputConfig, PipelineConfig, RefineConfig
from alphagan_video.foreground.blur_fusion import _box_sum, _box_sum_1d, estimate_foreground, estimate_foreground_band
from alphagan_video.engine import Threads
from tests.e2e import decode_frames, plane, tiny_checkpoint  # noqa: F401 - tiny_checkpoint is a fixture
from tests.media import make_video

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- stage runner

def _alive_stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("alphagan-") and t.is_alive()]


def test_stages_keep_order_and_run_concurrently():
    started = []

    def slow(x):
        started.append((threading.current_thread().name, x))
        time.sleep(0.01)
        return x * 10

    with Threads(maxsize=2) as stages:
        out = list(stages.map(lambda x: x + 1, stages.map(slow, stages.source(range(20), "src"), "slow"), "add"))
    assert out == [x * 10 + 1 for x in range(20)]
    assert {name for name, _ in started} == {"alphagan-slow"}  # really in a stage thread
    assert not _alive_stage_threads()


def test_stages_bound_how_far_the_source_runs_ahead():
    produced = []

    def source():
        for i in range(100):
            produced.append(i)
            yield i

    with Threads(maxsize=2) as stages:
        items = stages.map(lambda x: x, stages.source(source(), "src"), "id")
        assert next(items) == 0
        time.sleep(0.3)  # give the producers every chance to run ahead
        # queues of 2 between stages + one item held by each stage thread + one consumed
        assert len(produced) <= 1 + 2 * (2 + 1) + 1
    assert len(produced) < 100
    assert not _alive_stage_threads()


@pytest.mark.parametrize("where", ["source", "map"])
def test_stage_exception_reaches_consumer_after_earlier_items_and_everything_stops(where):
    closed = threading.Event()

    def source():
        try:
            for i in range(1000):
                if where == "source" and i == 3:
                    raise ValueError("decode failed at 3")
                yield i
        finally:
            closed.set()

    def fail_at_3(x):
        if where == "map" and x == 3:
            raise ValueError("model failed at 3")
        return x

    got = []
    with pytest.raises(ValueError, match="failed at 3"):
        with Threads(maxsize=2) as stages:
            for x in stages.map(fail_at_3, stages.source(source(), "src"), "model"):
                got.append(x)
    assert got == [0, 1, 2]
    assert closed.wait(1.0)  # the source generator's finally ran (in its own thread)
    assert not _alive_stage_threads()


def test_consumer_error_and_keyboard_interrupt_stop_all_threads():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    with pytest.raises(KeyboardInterrupt):
        with Threads(maxsize=1) as stages:
            for x in stages.map(lambda v: v, stages.source(endless(), "src"), "id"):
                if x == 5:
                    raise KeyboardInterrupt  # what Ctrl-C raises in the consuming thread
    assert closed.is_set() and not _alive_stage_threads()


def test_keyboard_interrupt_inside_a_stage_propagates():
    def boom(x):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        with Threads() as stages:
            list(stages.map(boom, stages.source(range(3))))
    assert not _alive_stage_threads()


def test_ctrl_c_while_a_stage_thread_starts_stays_a_keyboard_interrupt(monkeypatch):
    """Ctrl-C can land inside Thread.start() (it waits for the thread to come up) while the
    pipeline builds its stages: leaving the ``with`` must still raise KeyboardInterrupt (the CLI's
    exit 130), not "cannot join thread before it is started", and stop the stages already up."""
    real_start = threading.Thread.start
    starts = []

    def start(self):
        starts.append(self.name)
        if len(starts) == 2:  # the second stage: interrupted before it ever runs
            raise KeyboardInterrupt
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(KeyboardInterrupt):
        with Threads(maxsize=1) as stages:
            stages.map(lambda v: v, stages.source(iter(range(10**9)), "src"), "id")
    monkeypatch.undo()
    assert starts == ["alphagan-src", "alphagan-id"]
    deadline = time.monotonic() + 5
    while _alive_stage_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive_stage_threads()


def test_stages_reject_bad_queue_size():
    with pytest.raises(ValueError, match="maxsize must be >= 1, got 0"):
        Threads(maxsize=0)


# ----------------------------------------------------------------------------- pipeline overlap

def _cfg(checkpoint: str, **output) -> PipelineConfig:
    return PipelineConfig(
        mask=MaskConfig(source="chroma"),
        model=ModelConfig(checkpoint=checkpoint, batch_size=2, device="cpu"),
        refine=RefineConfig(enabled=False),
        output=OutputConfig(**output),
    )


def _green_clip(path: str, frames: int = 7) -> str:
    """FFV1 clip (lossless, so the chroma mask is deterministic) of a square over green."""
    from tests.e2e import make_green_screen_video

    make_green_screen_video(path, frames=frames)
    return path


@pytest.mark.parametrize("suffix,codec", [(".mov", None), (".mov", "prores_aw")], ids=["prores_ks", "prores_aw"])
def test_overlapped_output_equals_sequential(tmp_path, tiny_checkpoint, suffix, codec):
    from alphagan_video.pipeline import matte_video

    clip = _green_clip(str(tmp_path / "in.mkv"))
    cfg = _cfg(tiny_checkpoint, codec=codec)
    seq, ovl = tmp_path / f"seq{suffix}", tmp_path / f"ovl{suffix}"
    r1 = matte_video(clip, seq, replace(cfg, overlap=False))
    r2 = matte_video(clip, ovl, replace(cfg, overlap=True))
    assert r1.frames == r2.frames == 7 and r2.settings["overlap"] is True
    a, b = decode_frames(str(seq)), decode_frames(str(ovl))
    assert len(a) == len(b) == 7
    for fa, fb in zip(a, b):
        assert fa.pts == fb.pts
        for k in range(4):
            np.testing.assert_array_equal(plane(fa, k, fa.width), plane(fb, k, fb.width))
    assert seq.read_bytes() == ovl.read_bytes()  # ProRes is deterministic: same bytes


@pytest.mark.parametrize("stage,error", [("OutputStage", RuntimeError), ("GeneratorStage", KeyboardInterrupt)])
def test_error_in_the_middle_of_an_overlapped_run_leaves_no_output(tmp_path, tiny_checkpoint, monkeypatch,
                                                                      stage, error):
    from alphagan_video import pipeline
    from alphagan_video.stages import generator, output

    clip = _green_clip(str(tmp_path / "in.mkv"), frames=9)
    # The render lane's last stage, or the matte lane's generator.
    cls = getattr(output, stage) if stage == "OutputStage" else getattr(generator, stage)
    original = cls.__call__
    calls = []

    def failing(self, work):
        calls.append(1)
        if len(calls) == 3:  # batches 1 and 2 are through (and may be encoded) by now
            raise error("stage broke mid-clip")
        return original(self, work)

    monkeypatch.setattr(cls, "__call__", failing)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(error):
        pipeline.matte_video(clip, out_dir / "out.mov", _cfg(tiny_checkpoint))
    assert os.listdir(out_dir) == []  # no output, no hidden temporary
    assert not _alive_stage_threads()


# ----------------------------------------------------------------------------- colour conversion

def _exact_ycc10(rgb: np.ndarray) -> np.ndarray:
    """Reference BT.709 limited-range 10-bit codes in float64, round half up. rgb (...,3) [0,1]."""
    kr, kb = 0.2126, 0.0722
    kg = 1 - kr - kb
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = kr * r + kg * g + kb * b
    cb = (b - y) / (2 * (1 - kb))
    cr = (r - y) / (2 * (1 - kr))
    return np.floor(np.stack([64 + 876 * y, 512 + 896 * cb, 512 + 896 * cr], -1) + 0.5)


def test_colour_conversions_match_exact_bt709_within_one_10bit_level():
    from alphagan_video.io.colour import rgb_to_ycc10_torch, rgb_to_yuv10_frame

    rng = np.random.default_rng(3)
    h, w = 37, 53
    rgb = rng.random((h, w, 3), dtype=np.float32)
    rgb[0, :8] = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]])
    alpha = rng.random((h, w), dtype=np.float32)
    alpha[0, :2] = (0.0, 1.0)
    exact = _exact_ycc10(rgb)
    exact_alpha = np.floor(alpha.astype(np.float64) * 1023 + 0.5)

    frame = rgb_to_yuv10_frame(rgb, alpha, "yuva444p10le")  # the writer's cv2 path
    cv_codes = np.stack([plane(frame, k, w) for k in range(3)], -1).astype(np.int64)
    torch_codes = rgb_to_ycc10_torch(torch.from_numpy(rgb).permute(2, 0, 1)[None],
                                     torch.from_numpy(alpha)[None, None])[0].numpy().astype(np.int64)
    for codes in (cv_codes, np.moveaxis(torch_codes[:3], 0, -1)):
        diff = np.abs(codes - exact)
        assert diff.max() <= 1
        assert (diff == 0).mean() > 0.99  # off-by-one only at rounding ties
    # primaries and black/white land exactly on the legal codes
    np.testing.assert_array_equal(cv_codes[0, :2], [[64, 512, 512], [940, 512, 512]])
    np.testing.assert_array_equal(np.moveaxis(torch_codes[:3], 0, -1)[0, :8], exact[0, :8])
    # alpha: exact to rounding, 0 and 1 exact
    np.testing.assert_array_equal(plane(frame, 3, w), exact_alpha)
    np.testing.assert_array_equal(torch_codes[3], exact_alpha)


def test_writer_fills_prores_frames_from_device_planes(tmp_path):
    """OutputBatch.planes (the CUDA path's pre-converted codes) encode like the colour path."""
    from alphagan_video.io import open_input, open_output
    from alphagan_video.io.colour import rgb_to_ycc10_torch
    from alphagan_video.types import OutputBatch

    clip = make_video(str(tmp_path / "in.mp4"), frames=3)
    with open_input(clip.path) as reader:
        info = reader.info
    rng = np.random.default_rng(0)
    color = rng.random((3, info.height, info.width, 3), dtype=np.float32)
    alpha = rng.random((3, info.height, info.width), dtype=np.float32)
    planes = rgb_to_ycc10_torch(torch.from_numpy(color).permute(0, 3, 1, 2),
                                torch.from_numpy(alpha)[:, None]).numpy().view(np.uint16)
    pts = [0, 1, 2]
    outs = {}
    for name, batch in (("color", OutputBatch(color, alpha, pts, pts, Fraction(1, 24))),
                        ("planes", OutputBatch(None, None, pts, pts, Fraction(1, 24), planes=planes))):
        path = tmp_path / f"{name}.mov"
        with open_output(path, info, OutputConfig(), has_color=True, has_alpha=True) as w:
            assert w.accepts_planes(4) and not w.accepts_planes(3)
            w.write(batch)
        outs[name] = decode_frames(str(path))
    for fa, fb in zip(outs["color"], outs["planes"]):
        for k in range(4):
            a, b = plane(fa, k, fa.width).astype(int), plane(fb, k, fb.width).astype(int)
            assert np.abs(a - b).max() <= 16  # 12-bit decode: one 10-bit level = 4, plus codec noise
            assert np.abs(a - b).mean() < 1.0


# ----------------------------------------------------------------------------- foreground

def test_cv2_box_sum_matches_cumsum_box_sum():
    x = torch.rand(2, 3, 41, 67)
    for radius in (1, 5, 30):
        ref = _box_sum_1d(_box_sum_1d(x, radius, -1), radius, -2)
        torch.testing.assert_close(_box_sum(x, radius), ref, rtol=1e-5, atol=1e-4)


def test_band_restricted_foreground_equals_full_frame_on_soft_pixels():
    gen = torch.Generator().manual_seed(1)
    image = torch.rand(3, 3, 120, 200, generator=gen)
    alpha = torch.zeros(3, 1, 120, 200)
    alpha[0, :, 40:80, 120:170] = 1.0
    alpha[0, :, 36:40, 116:174] = torch.rand(1, 4, 58, generator=gen)  # a soft band at the top edge
    alpha[1, :, 10:110, 10:190] = torch.rand(1, 100, 180, generator=gen)  # soft almost everywhere
    # frame 2: hard matte only (no soft pixels) -> the image itself, nothing computed
    alpha[2, :, 50:70, 50:90] = 1.0
    radii = (20, 3)
    full = estimate_foreground(image, alpha, radii)
    band = estimate_foreground_band(image, alpha, radii)
    soft = ((alpha > 0) & (alpha < 1)).expand_as(image)
    assert soft[0].any() and soft[1].any()
    assert (band[soft] - full[soft]).abs().max() < 1e-5
    known = ~soft
    torch.testing.assert_close(band[known], image[known])
    # frame 0 went through the cropped path (grown box 50x104 < 60% of 120x200), frame 1 the
    # whole-frame path; both agree with the full-frame estimate above.


# ----------------------------------------------------------------------------- GPU code paths on the CPU

def test_render_to_device_planes_matches_the_colour_path(tmp_path, tiny_checkpoint):
    """The CUDA output path (YCbCr codes made on the device) exercised on the CPU."""
    from alphagan_video.io import open_input
    from alphagan_video.io.colour import rgb_to_yuv10_frame
    from alphagan_video.pipeline import build_chain
    from alphagan_video.engine import Work
    from alphagan_video.engine import Window

    clip = _green_clip(str(tmp_path / "in.mkv"), frames=3)
    with open_input(clip) as reader, build_chain(reader.info, _cfg(tiny_checkpoint, kind="rgba")) as chain:
        work = Work(batch=next(reader.iter_batches(3)))
        for stage in chain.stages[:-1]:  # everything up to the output stage
            work = stage(work)
        reference = chain.output(copy.copy(work)).output  # the output stage lets go of its inputs
        chain.output.device_planes = True
        planes = chain.output(work).output
    assert planes.color is None and planes.planes.shape == (3, 4, 48, 64) and planes.planes.dtype == np.uint16
    for i in range(3):
        frame = rgb_to_yuv10_frame(reference.color[i], reference.alpha[i], "yuva444p10le")
        expected = np.stack([plane(frame, k, 64) for k in range(4)]).astype(int)
        assert np.abs(planes.planes[i].astype(int) - expected).max() <= 1
    kept = Window(1, 3).select(planes)
    assert kept.index == [1, 2] and kept.planes.shape[0] == 2


def test_cli_flags_map_to_config():
    from alphagan_video.cli.options import _build_config

    common = dict(overwrite=False, output_kind=None, codec=None, background=None, mask_source=None,
                  sam_checkpoint=None, sam_model=None, box=None, points=(), prompts_json=None, trimap_path=None,
                  trimap_band=None, checkpoint=None, variant=None, device=None, no_amp=False, tiling=None,
                  refine=None, temporal=None, temporal_strength=None, no_audio=False)
    default = _build_config(batch_size=None, compile_model=None, overlap=None, **common)
    assert default.overlap and default.model.auto_batch and not default.model.compile
    cfg = _build_config(batch_size=3, compile_model=True, overlap=False, **common)
    assert not cfg.overlap and not cfg.model.auto_batch and cfg.model.compile and cfg.model.batch_size == 3
