"""The one run loop (engine.run) and the bugs found on the way to it (issue 13)."""
from __future__ import annotations

import doctest
from fractions import Fraction

import numpy as np
import pytest
import torch

from alphagan_video import engine
from alphagan_video.engine import Stage, Work
from alphagan_video.types import FrameBatch


def _batches(count: int, size: int):
    for start in range(0, count, size):
        index = list(range(start, min(count, start + size)))
        yield FrameBatch(rgb=np.full((len(index), 2, 2, 3), 7, np.uint8), pts=index, index=index,
                         time_base=Fraction(1, 25))


class _Count(Stage):
    """Counts the frames it sees (a stateful stage) and records which batches."""

    name = "count"

    def __init__(self, lane="matte", on_warm_up=True):
        self.lane, self.on_warm_up, self.seen = lane, on_warm_up, []

    def __call__(self, work: Work) -> Work:
        self.seen.append(list(work.batch.index))
        return work


@pytest.mark.parametrize("overlap", [True, False])
def test_run_passes_every_batch_in_order_and_skips_warm_up_work_at_output_stages(overlap):
    state, output = _Count(), _Count(lane="render", on_warm_up=False)
    written, progress = [], []
    tally = engine.run(_batches(10, 3), [state, output], lambda work: written.append(work.batch.index),
                       overlap=overlap, window=engine.Window(start=4), progress=lambda done, total: progress.append((done, total)),
                       total=6)
    assert state.seen == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]  # the warm-up batch advances state
    assert output.seen == written == [[3, 4, 5], [6, 7, 8], [9]]  # ... and goes no further
    assert tally.frames == 7 and progress[-1] == (7, 6)
    assert {"decode", "encode", "count"} <= set(tally.seconds)


def test_run_reraises_a_stage_error_after_stopping_every_thread():
    class Broken(Stage):
        name = "broken"

        def __call__(self, work):
            if work.batch.index[0] == 3:
                raise RuntimeError("stage broke")
            return work

    written = []
    with pytest.raises(RuntimeError, match="stage broke"):
        engine.run(_batches(9, 3), [Broken()], lambda work: written.append(work.batch.index))
    assert written == [[0, 1, 2]]
    import threading

    assert not [t for t in threading.enumerate() if t.name.startswith("alphagan-")]


def test_a_stage_that_times_itself_reports_its_own_laps():
    class Split(Stage):
        name = "split"

        def __init__(self):
            self.laps = {"first": 0.0, "second": 0.0}

        def __call__(self, work):
            self.laps["first"] += 1.0
            self.laps["second"] += 2.0
            return work

    tally = engine.run(_batches(4, 2), [Split()], lambda work: None, overlap=False)
    assert tally.seconds["first"] == 2.0 and tally.seconds["second"] == 4.0 and "split" not in tally.seconds


def test_engine_docstring_example_runs():
    result = doctest.testmod(engine, verbose=False)
    assert result.attempted >= 1 and result.failed == 0


def test_band_zero_is_a_binary_trimap_not_automatic():
    """Bug: ``band_px or default`` turned an explicit 0 into the automatic band."""
    from alphagan_video.config import PipelineConfig, TrimapConfig
    from alphagan_video.plan import trimap_band
    from alphagan_video.stages.trimap import TrimapStage
    from alphagan_video.types import VideoInfo

    info = VideoInfo(path="x.mp4", kind="video", width=64, height=48, time_base=Fraction(1, 25),
                     frame_rate=Fraction(25), frame_count=1, pix_fmt="yuv420p", bit_depth=8)
    assert trimap_band(PipelineConfig(trimap=TrimapConfig(band_px=0)), info) == (0, False)
    assert trimap_band(PipelineConfig(trimap=TrimapConfig(band_px=6)), info) == (6, False)
    band, auto = trimap_band(PipelineConfig(), info)
    assert band > 0 and auto
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:12, 4:12] = 1
    work = TrimapStage(0, False)(Work(batch=None, image=torch.zeros(1, 3, 16, 16), soft=mask, mask=mask))
    assert not bool((work.trimap == 0.5).any()) and torch.equal(work.trimap, mask)


@pytest.mark.parametrize("kind", ["rgba", "alpha", "composite"])
def test_the_output_stage_hands_on_only_the_output(kind):
    """After rendering, a work waits in the encoder's queue: it keeps the output it renders and
    lets go of the float32 image, alpha and trimap (the writer reads only ``work.output``)."""
    from alphagan_video.stages.output import OutputStage

    alpha = torch.rand(2, 1, 8, 8)
    work = Work(batch=next(_batches(2, 2)), image=torch.rand(2, 3, 8, 8), trimap=torch.full((2, 1, 8, 8), 0.5),
                alpha=alpha.clone())
    background = torch.zeros(1, 3, 8, 8) if kind == "composite" else None
    out = OutputStage(kind, background)(work)
    assert out.image is None and out.alpha is None and out.trimap is None
    assert out.output is not None and len(out.output) == 2
    if kind == "composite":  # over black: alpha * foreground
        assert out.output.alpha is None and out.output.color.shape == (2, 8, 8, 3)
    else:  # the alpha rendered before the work let go of it
        assert np.array_equal(out.output.alpha, alpha.numpy()[:, 0])


def test_the_temporal_stage_lets_go_of_what_no_later_stage_reads():
    """A prepared refine problem holds its factorisation (~100 MB per 720p frame): neither the
    work (into the render lane's queue) nor the solve may keep it after the frame's solve; the
    work lets go of the masks too."""
    from alphagan_video.config import RefineConfig, TemporalConfig
    from alphagan_video.stages.refine import RefinePrepareStage
    from alphagan_video.stages.temporal import TemporalStage
    from alphagan_video.temporal.solve import TemporalSolve

    trimap = torch.zeros(2, 1, 8, 8)
    trimap[..., 2:6] = 0.5
    trimap[..., 6:] = 1.0
    work = Work(batch=next(_batches(2, 2)), image=torch.rand(2, 3, 8, 8), soft=torch.rand(2, 1, 8, 8),
                mask=torch.ones(2, 1, 8, 8), trimap=trimap, alpha=torch.rand(2, 1, 8, 8))
    solve = TemporalSolve(TemporalConfig(), RefineConfig(), torch.device("cpu"))
    try:
        work = RefinePrepareStage(solve)(work)
        assert solve.pending == 2  # prepared beside the generator, held by the solve, not the work
        out = TemporalStage(solve)(work)
    finally:
        solve.close()
    assert solve.pending == 0 and out.soft is None and out.mask is None
    # The float image and the trimap wait for the render lane no more: the output stage rebuilds
    # the image from the decoded frames (test_the_output_stage_rebuilds_a_released_image).
    assert out.image is None and out.trimap is None
    assert out.alpha.shape == (2, 1, 8, 8) and out.batch is not None  # what the output stage reads


@pytest.mark.parametrize("kind", ["rgba", "composite"])
def test_the_output_stage_rebuilds_a_released_image(kind):
    """Work whose float image was released while queued renders exactly what it renders with the
    upload stage's image (the same frames_to_tensor of the same decoded frames)."""
    from alphagan_video.stages.output import OutputStage
    from alphagan_video.stages.upload import frames_to_tensor

    rng = np.random.default_rng(0)
    batch = FrameBatch(rgb=rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8), pts=[0, 1], index=[0, 1],
                       time_base=Fraction(1, 25))
    alpha = torch.from_numpy(rng.random((2, 1, 8, 8), dtype=np.float32))
    alpha[..., :2, :] = 0.0
    alpha[..., 6:, :] = 1.0
    background = torch.full((1, 3, 8, 8), 0.25) if kind == "composite" else None
    cpu = torch.device("cpu")
    stage = OutputStage(kind, background, image_of=lambda b: frames_to_tensor(b, cpu))
    kept = stage(Work(batch=batch, image=frames_to_tensor(batch, cpu), alpha=alpha.clone())).output
    rebuilt = stage(Work(batch=batch, image=None, alpha=alpha.clone())).output
    assert np.array_equal(kept.color, rebuilt.color)
    assert (kept.alpha is None and rebuilt.alpha is None) or np.array_equal(kept.alpha, rebuilt.alpha)
    with pytest.raises(ValueError, match="needs work.image, or image_of"):
        OutputStage(kind, background)(Work(batch=batch, image=None, alpha=alpha.clone()))


@pytest.mark.parametrize("workers,batch_size", [(1, 1), (2, 2), (2, 3)])
def test_refine_factorisations_are_made_used_and_freed_in_one_thread(monkeypatch, workers, batch_size):
    """scipy's SuperLU frees a factorisation's memory only when asked from the thread that made
    it (a per-thread allocation table): one dropped from another thread leaks for good. With
    prepare workers, every factorisation must be created, used and dropped in the worker that
    made it; with several workers the frames of a batch are spread over all of them."""
    import gc
    import threading

    from alphagan_video.config import RefineConfig, TemporalConfig
    from alphagan_video.refine import sparse
    from alphagan_video.stages.refine import RefinePrepareStage
    from alphagan_video.stages.temporal import TemporalStage
    from alphagan_video.temporal.solve import TemporalSolve

    import itertools

    events: list[tuple[str, int, int]] = []
    serial = itertools.count()  # not id(): ids of freed objects are reused

    class TrackedLU:
        def __init__(self, lu):
            self.lu, self.key = lu, next(serial)
            events.append(("made", threading.get_ident(), self.key))

        def solve(self, b):
            events.append(("used", threading.get_ident(), self.key))
            return self.lu.solve(b)

        def __del__(self):
            events.append(("freed", threading.get_ident(), self.key))

    real_splu = sparse._splu
    monkeypatch.setattr(sparse, "_splu", lambda A: TrackedLU(real_splu(A)))
    rng = np.random.default_rng(0)
    solve = TemporalSolve(TemporalConfig(), RefineConfig(), torch.device("cpu"), workers=workers)
    prepare, temporal = RefinePrepareStage(solve), TemporalStage(solve)
    frames = 6
    try:
        for batch in _batches(frames, batch_size):
            b = len(batch)
            trimap = torch.zeros(b, 1, 24, 24)
            trimap[..., 8:16] = 0.5
            trimap[..., 16:] = 1.0
            image = torch.from_numpy(rng.random((b, 3, 24, 24), dtype=np.float32))
            work = Work(batch=batch, image=image, trimap=trimap, alpha=torch.rand(b, 1, 24, 24))
            temporal(prepare(work))
            assert solve.pending == 0
    finally:
        solve.close()
    gc.collect()
    assert [e for e, _, _ in events].count("made") == frames
    assert [e for e, _, _ in events].count("freed") == frames
    made = {key: thread for kind, thread, key in events if kind == "made"}
    assert all(thread == made[key] for _, thread, key in events), "a factorisation crossed threads"
    assert len(set(made.values())) == workers and threading.get_ident() not in made.values()


@pytest.mark.skipif(not __import__("platform").libc_ver()[0] == "glibc", reason="glibc only")
def test_malloc_controls_reach_glibc():
    """The arena cap (CLI) and the per-batch trim (engine.run) find glibc's functions;
    a silent no-op here would bring back memory that creeps with clip length."""
    from alphagan_video import _malloc

    assert _malloc._glibc() is not None
    _malloc.return_free_memory()
    _malloc.limit_arenas(8)  # glibc's own default for a process this size; harmless here
