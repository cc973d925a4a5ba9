"""Tests of the pretrained-encoder variant and the GPU recipe: ImageNet stem mapping, time budget,
batch reuse, and data-parallel training (DDP, gloo backend on the CPU, started with torchrun)."""
from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from alphagan_video.model import build_generator, load_generator, save_generator
from alphagan_video.model.efficientnet import LITE0_BLOCKS, EfficientLiteEncoder
from training.config import load_config
from training.schedule import BudgetPlanner, scale_schedule
from training.train import lr_factor, reuse_variants

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "training" / "configs" / "tiny_test.json"


def _fake_imagenet_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in the naming and shapes of the ImageNet EfficientNet-Lite0 file, random values."""
    g = torch.Generator().manual_seed(seed)

    def bn(prefix: str, n: int) -> dict[str, torch.Tensor]:
        return {prefix + ".weight": torch.rand(n, generator=g) + 0.5, prefix + ".bias": torch.randn(n, generator=g),
                prefix + ".running_mean": torch.randn(n, generator=g), prefix + ".running_var": torch.rand(n, generator=g) + 0.1,
                prefix + ".num_batches_tracked": torch.tensor(0)}

    state = {"_conv_stem.weight": torch.randn(32, 3, 3, 3, generator=g), **bn("_bn0", 32)}
    for i, (kernel, _, expand, cin, cout) in enumerate(LITE0_BLOCKS):
        mid = cin * expand
        p = f"_blocks.{i}."
        if expand != 1:
            state[p + "_expand_conv.weight"] = torch.randn(mid, cin, 1, 1, generator=g)
            state.update(bn(p + "_bn0", mid))
        state[p + "_depthwise_conv.weight"] = torch.randn(mid, 1, kernel, kernel, generator=g)
        state.update(bn(p + "_bn1", mid))
        state[p + "_project_conv.weight"] = torch.randn(cout, mid, 1, 1, generator=g)
        state.update(bn(p + "_bn2", cout))
    state["_conv_head.weight"] = torch.randn(1280, 320, 1, 1, generator=g)
    state["_fc.weight"] = torch.randn(10, 1280, generator=g)
    return state


# ------------------------------------------------------------------ the variant


def test_efficientnet_variant_shapes_any_size_and_roundtrip(tmp_path):
    g = build_generator("efficientnet_lite0").eval()
    with torch.no_grad():
        y = g(torch.rand(1, 3, 47, 63), torch.full((1, 1, 47, 63), 0.5))
    assert y.shape == (1, 1, 47, 63) and float(y.min()) >= 0 and float(y.max()) <= 1
    assert g.encoder.out_channels == 320 and g.encoder.skip_in_channels == 24
    # Output stride 16: the deepest features of a 64x96 input are 4x6.
    _, indices, skip, deep = g.encoder(torch.rand(1, 4, 64, 96))
    assert deep.shape[-2:] == (4, 6) and skip.shape[-2:] == (16, 24) and indices.shape[-2:] == (16, 24)
    path = save_generator(g, tmp_path / "e.safetensors", fp16=False)
    loaded, meta = load_generator(path)
    assert meta.variant == "efficientnet_lite0"
    for (k, a), b in zip(g.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k


def test_efficientnet_normalisation_is_independent_of_the_picture():
    """The encoder's normalisation is a fixed per-channel affine map: its features of a crop equal
    the crop of its features away from the borders (what tiling needs), unlike GroupNorm's."""
    enc = EfficientLiteEncoder(4).eval()
    for p in enc.parameters():  # non-trivial affine maps
        p.data.add_(torch.randn_like(p) * 0.05)
    x = torch.rand(1, 4, 128, 128)
    with torch.no_grad():
        full = enc(x)[2]  # stride-4 skip, receptive field well inside 32 px
        crop = enc(x[..., 32:96, 32:96])[2]
    torch.testing.assert_close(crop[..., 4:12, 4:12], full[..., 12:20, 12:20], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ ImageNet mapping


def test_imagenet_mapping_copies_rgb_filters_zeroes_trimap_and_folds_batchnorm(tmp_path):
    from training.pretrained import IMAGENET_BN_EPS, encoder_state_from_imagenet, init_encoder_from_imagenet

    source = _fake_imagenet_state()
    g = build_generator("efficientnet_lite0")
    state = encoder_state_from_imagenet(g.encoder, source)
    assert set(state) == set(g.encoder.state_dict())
    stem = state["stem.0.weight"]
    assert stem.shape == (32, 4, 3, 3)
    assert torch.equal(stem[:, :3], source["_conv_stem.weight"])  # RGB filters from ImageNet
    assert torch.count_nonzero(stem[:, 3]) == 0  # trimap filter starts at zero
    assert torch.equal(state["blocks.5.depthwise.0.weight"], source["_blocks.5._depthwise_conv.weight"])
    assert "blocks.0.expand.0.weight" not in state  # block 0 has no expansion
    # Each folded affine map equals the BatchNorm in inference mode.
    x = torch.randn(2, 96, 5, 5)
    bn = [source["_blocks.1._bn0." + k] for k in ("running_mean", "running_var", "weight", "bias")]
    want = F.batch_norm(x, *bn, training=False, eps=IMAGENET_BN_EPS)
    got = x * state["blocks.1.expand.1.weight"].view(1, -1, 1, 1) + state["blocks.1.expand.1.bias"].view(1, -1, 1, 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # In place, through a file like the wheel's; extra input channels also start at zero.
    g5 = build_generator("efficientnet_lite0", in_channels=5)
    torch.save(source, tmp_path / "lite0.pth")
    assert init_encoder_from_imagenet(g5, tmp_path / "lite0.pth") == len(state)
    assert torch.count_nonzero(g5.encoder.stem[0].weight[:, 3:]) == 0
    assert torch.equal(g5.encoder.stem[0].weight[:, :3], source["_conv_stem.weight"])


def test_imagenet_mapping_errors_name_the_problem():
    from training.pretrained import encoder_state_from_imagenet, init_encoder_from_imagenet

    source = _fake_imagenet_state()
    del source["_blocks.7._project_conv.weight"]
    with pytest.raises(KeyError, match=r"_blocks\.7\._project_conv\.weight"):
        encoder_state_from_imagenet(build_generator("efficientnet_lite0").encoder, source)
    with pytest.raises(ValueError, match="has no pretrained encoder"):
        init_encoder_from_imagenet(build_generator("tiny"))


# ------------------------------------------------------------------ time budget


def test_scale_schedule_keeps_shares():
    base = load_config(None, {"steps": 200000, "warmup_steps": 1000, "adv_start_step": 5000, "val_every": 2000,
                              "ckpt_every": 1000})
    s = scale_schedule(base, 4000)
    assert (s.steps, s.warmup_steps, s.adv_start_step, s.val_every, s.ckpt_every) == (4000, 20, 100, 40, 20)
    tiny = scale_schedule(base, 10)
    assert tiny.warmup_steps >= 1 and tiny.val_every >= 1
    off = scale_schedule(load_config(None, {"steps": 100, "adv_start_step": 10**9, "val_every": 0}), 50)
    assert off.adv_start_step > off.steps and off.val_every == 0


def test_budget_planner_fits_steps_to_the_deadline():
    p = BudgetPlanner(deadline=100.0, probe_steps=5)
    assert p.observe(0, 0.0) == 0  # first observation: starts the clock
    assert p.observe(3, 3.0) == 0  # still probing
    assert p.observe(5, 5.0) == 100  # 1 step/s, 95 s left
    p.reserve_s = 10.0
    assert p.observe(10, 10.0, replan=False) == 100  # not a re-plan step
    assert p.observe(20, 20.0) == 90  # 1 step/s, 80 s left after the reserve
    assert p.observe(30, 20.5) <= int(90 * 1.25)  # a burst is capped
    assert p.observe(40, 100.0) == 40  # deadline passed: this step is the last


def test_time_budget_run_ends_on_time_with_the_schedule_completed(tmp_path):
    from training.train import Trainer

    cfg = load_config(TINY, {"steps": 100000, "warmup_steps": 1000, "val_every": 5000, "ckpt_every": 0,
                             "log_every": 2, "threads": 1, "time_budget_s": 6.0, "out_dir": str(tmp_path / "run"),
                             "adv_start_step": 30000})
    trainer = Trainer(cfg)
    start = time.time()
    trainer.run(progress=False)
    wall = time.time() - start
    assert wall < 6.0 * 1.5 + 2.0  # the final validation and save included
    assert trainer.step == trainer.cfg.steps and trainer.step > 2
    assert lr_factor(trainer.step, trainer.cfg) == pytest.approx(cfg.min_lr_ratio)  # cosine ran to its end
    assert trainer.cfg.warmup_steps == max(1, round(1000 * trainer.step / 100000))
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert int(rows[-1]["step"]) == trainer.step and rows[-1]["val_sad"] != ""


# ------------------------------------------------------------------ batch reuse


def test_reuse_variants_swap_backgrounds_and_keep_alpha():
    n, h, w = 3, 8, 10
    gen = torch.Generator().manual_seed(0)
    batch = {"alpha": torch.rand(n, 1, h, w, generator=gen), "fg": torch.rand(n, 3, h, w, generator=gen),
             "bg": torch.rand(n, 3, h, w, generator=gen), "trimap": torch.full((n, 1, h, w), 0.5),
             "image": torch.rand(n, 3, h, w, generator=gen)}
    out = list(reuse_variants(batch, 4, torch.Generator().manual_seed(1)))
    assert len(out) == 4 and out[0] is batch
    for v in out[1:]:
        flipped = not torch.equal(v["alpha"], batch["alpha"])
        unflip = {k: t.flip(-1) for k, t in v.items()} if flipped else v
        assert torch.equal(unflip["alpha"], batch["alpha"]) and torch.equal(unflip["fg"], batch["fg"])
        for i in range(n):  # never the sample's own background
            assert not torch.equal(unflip["bg"][i], batch["bg"][i])
        torch.testing.assert_close(v["image"], v["alpha"] * v["fg"] + (1 - v["alpha"]) * v["bg"])
    again = list(reuse_variants(batch, 4, torch.Generator().manual_seed(1)))
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(out, again))


# ------------------------------------------------------------------ DDP


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(out: Path, steps: int, procs: int, resume: Path | None = None) -> dict[str, torch.Tensor]:
    args = ["-m", "training", "--config", str(TINY), "--out", str(out), "--steps", str(steps), "--no-progress",
            "--threads", "1", "--batch-size", "4", "--set", "val_every=0", "--set", "adv_start_step=1000",
            "--set", "ckpt_every=0"]
    if resume is not None:
        args += ["--resume", str(resume)]
    if procs > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_addr",
               "127.0.0.1", "--master_port", str(_free_port())] + args
    else:
        cmd = [sys.executable] + args
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return torch.load(out / "last.pt", map_location="cpu", weights_only=False)


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_and_resume(tmp_path):
    """2-process gloo DDP == 1 process on the same global batch (4 = 2 x 2), and a DDP run resumed
    halfway equals the uninterrupted DDP run."""
    single = _train(tmp_path / "single", 3, 1)
    ddp = _train(tmp_path / "ddp", 3, 2)
    assert single["step"] == ddp["step"] == 3 and single["samples"] == ddp["samples"] == 12
    for k, a in single["generator"].items():
        torch.testing.assert_close(ddp["generator"][k], a, rtol=1e-4, atol=1e-5, msg=k)
    half = _train(tmp_path / "half", 2, 2)
    assert half["loaded"] == 8
    resumed = _train(tmp_path / "half", 3, 2, resume=tmp_path / "half" / "last.pt")
    for k, a in ddp["generator"].items():
        torch.testing.assert_close(resumed["generator"][k], a, rtol=1e-5, atol=1e-6, msg=k)
    rows = list(csv.DictReader(open(tmp_path / "ddp" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]  # rank 0 alone logs
