"""The generator at a reduced working scale when its alpha is only the refine's prior
(``generator/scale.py``, ``ModelConfig.prior_scale``)."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from alphagan_video.config import (CPU_PRIOR_SCALE, ModelConfig, PipelineConfig, RefineConfig, check_config,
                                   check_prior_scale, prior_scale_for)
from alphagan_video.errors import ParameterError
from alphagan_video.model import build_generator
from alphagan_video.engine import Work
from alphagan_video.stages.generator import GeneratorStage
from alphagan_video.generator.scale import (MIN_WORKING_SIDE, downscale_trimap, infer_alpha_at_scale,
                                                      working_size)
from alphagan_video.generator.tiling import infer_alpha
from alphagan_video.types import FrameBatch
from tests.e2e import tiny_checkpoint  # noqa: F401 - fixture


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class SizeRecorder(nn.Module):
    """Returns the image's mean colour as alpha and records every input size it is called with."""

    stride = 16

    def __init__(self):
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def forward(self, image: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(image.shape[-2:]))
        return image.mean(1, keepdim=True)


def test_working_size_halves_large_frames_and_keeps_small_ones():
    assert working_size(1080, 1920, 0.5) == (540, 960)
    assert working_size(2160, 3840, 0.5) == (1080, 1920)
    assert working_size(1080, 1920, 1.0) == (1080, 1920)
    # The short side stays >= MIN_WORKING_SIDE: 720p at 0.25 would be 180 px tall.
    h, w = working_size(720, 1280, 0.25)
    assert h == MIN_WORKING_SIDE and w == round(1280 * MIN_WORKING_SIDE / 720)
    # Frames already at or below that side are not reduced at all.
    assert working_size(240, 320, 0.5) == (240, 320)
    assert working_size(MIN_WORKING_SIDE, 900, 0.5) == (MIN_WORKING_SIDE, 900)


@pytest.mark.parametrize("bad", [0, -0.5, 1.5, math.nan, "half", None])
def test_prior_scale_out_of_range_is_a_parameter_error(bad):
    with pytest.raises(ParameterError, match=r"model\.prior_scale"):
        check_prior_scale(bad)
    if isinstance(bad, float) or isinstance(bad, int):
        with pytest.raises(ParameterError, match=r"model\.prior_scale"):
            check_config(PipelineConfig(model=ModelConfig(prior_scale=bad)))


def test_downscaled_trimap_keeps_only_uniform_cells_known():
    trimap = torch.zeros(1, 1, 64, 64)
    trimap[..., :, 32:] = 1.0
    trimap[..., :, 33] = 0.5  # a one-pixel unknown column inside the foreground half
    trimap[..., 10, :32] = 0.5  # a one-pixel unknown row inside the background half
    small = downscale_trimap(trimap, (32, 32))
    assert set(small.unique().tolist()) <= {0.0, 0.5, 1.0}
    # The 1-px unknown column and row survive the 2x reduction.
    assert bool((small[..., :, 16] == 0.5).all()) and bool((small[..., 5, :16] == 0.5).all())
    # Uniform cells keep their label.
    assert bool((small[..., 20:, :16] == 0).all()) and bool((small[..., :, 17:] == 1).all())
    # A cell straddling a hard fg/bg edge (columns 4|5 of 8 -> cell 2 of 4) is unknown.
    edge = torch.zeros(1, 1, 8, 8)
    edge[..., :, 5:] = 1.0
    assert downscale_trimap(edge, (4, 4))[0, 0, 0].tolist() == [0.0, 0.0, 0.5, 1.0]


def _frame(height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, height, width, generator=g)
    trimap = torch.zeros(1, 1, height, width)
    trimap[..., height // 4: 3 * height // 4, width // 4: 3 * width // 4] = 1.0
    trimap[..., height // 4 - 6: height // 4 + 6, :] = 0.5
    return image, trimap


def test_scaled_alpha_runs_the_model_at_the_working_size_and_clamps_at_full_size():
    image, trimap = _frame(720, 1000)
    model = SizeRecorder()
    alpha = infer_alpha_at_scale(model, image, trimap, 0.5, tiling="off")
    assert model.sizes == [(360, 500)]
    assert alpha.shape == (1, 1, 720, 1000) and alpha.dtype == torch.float32
    assert bool((alpha[trimap == 0] == 0).all()) and bool((alpha[trimap == 1] == 1).all())
    # The model's output (the mean colour, ~0.5 for uniform noise) reaches the band upsampled.
    band = alpha[trimap == 0.5]
    assert 0.3 < float(band.mean()) < 0.7 and float(band.min()) >= 0 and float(band.max()) <= 1


def test_scale_one_and_small_frames_are_exactly_the_full_resolution_answer():
    model = build_generator("tiny").eval()
    for size, scale in (((360, 480), 1.0), ((200, 300), 0.5)):
        image, trimap = _frame(*size, seed=3)
        expected = infer_alpha(model, image, trimap, tiling="off")
        assert torch.equal(infer_alpha_at_scale(model, image, trimap, scale, tiling="off"), expected)


def test_scaled_alpha_of_a_real_generator_is_close_to_full_resolution_on_smooth_input():
    """A trained-like smooth input (blurred image): the half-scale prior follows the full-scale
    one; it is not a different answer, only a coarser one."""
    model = build_generator("tiny").eval()
    image, trimap = _frame(640, 704, seed=5)
    image = torch.nn.functional.avg_pool2d(image, 9, stride=1, padding=4)
    full = infer_alpha(model, image, trimap, tiling="off")
    half = infer_alpha_at_scale(model, image, trimap, 0.5, tiling="off")
    band = trimap == 0.5
    assert float((full - half).abs()[band].mean()) < 0.1


def test_generator_stage_uses_its_scale():
    image, trimap = _frame(720, 960)
    work = Work(batch=FrameBatch(rgb=np.zeros((1, 720, 960, 3), np.uint8), pts=[0], index=[0],
                                 time_base=Fraction(1, 25)))
    work.image, work.trimap = image, trimap
    model = SizeRecorder()
    GeneratorStage(model, torch.device("cpu"), "off", False, scale=0.5)(work)
    GeneratorStage(model, torch.device("cpu"), "off", False)(work)
    assert model.sizes == [(360, 480), (720, 960)]


def test_prior_scale_by_device_and_refine():
    """None (the default) = CPU_PRIOR_SCALE on the CPU, full resolution on CUDA; a set value wins;
    with the refine off the generator's alpha is the product and always full resolution."""
    default, half, full = PipelineConfig(), PipelineConfig(model=ModelConfig(prior_scale=0.5)), \
        PipelineConfig(model=ModelConfig(prior_scale=1.0))
    assert ModelConfig().prior_scale is None and CPU_PRIOR_SCALE == 0.5
    assert prior_scale_for(default, "cpu") == 0.5 and prior_scale_for(default, "cuda") == 1.0
    assert prior_scale_for(half, "cuda") == 0.5 and prior_scale_for(full, "cpu") == 1.0
    no_refine = PipelineConfig(model=ModelConfig(prior_scale=0.5), refine=RefineConfig(enabled=False))
    assert prior_scale_for(no_refine, "cpu") == 1.0
    check_config(default)  # None is valid


@pytest.mark.parametrize("refine", [True, False])
def test_the_run_scales_the_generator_only_when_it_is_the_refines_prior(tiny_checkpoint, refine):  # noqa: F811
    """On the CPU with the refine on the generator runs at CPU_PRIOR_SCALE; refine off at full
    resolution (the chain the CLI builds)."""
    from alphagan_video.config import MaskConfig
    from alphagan_video.types import VideoInfo
    from alphagan_video.pipeline import build_chain

    info = VideoInfo(path="clip.mp4", kind="video", width=1280, height=720, time_base=Fraction(1, 25),
                     frame_rate=Fraction(25), frame_count=None, pix_fmt="yuv420p", bit_depth=8)
    cfg = PipelineConfig(mask=MaskConfig(source="chroma"), model=ModelConfig(checkpoint=tiny_checkpoint, device="cpu"),
                         refine=RefineConfig(enabled=refine))
    with build_chain(info, cfg) as chain:
        (stage,) = [s for s in chain.stages if isinstance(s, GeneratorStage)]
        assert stage.scale == (CPU_PRIOR_SCALE if refine else 1.0)
