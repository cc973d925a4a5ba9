from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from alphagan_video.errors import CheckpointError, UserInputError
from alphagan_video.model import (
    DEFAULT_WEIGHTS_PATH,
    GENERATOR_VARIANTS,
    AlphaGANGenerator,
    GeneratorMeta,
    build_discriminator,
    build_generator,
    load_generator,
    save_generator,
)
from alphagan_video.model import checkpoint as checkpoint_module


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(norm: str = "gn", seed: int = 0) -> AlphaGANGenerator:
    torch.manual_seed(seed)
    return build_generator("tiny", norm).eval()


def _inputs(b: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(b, 3, h, w, generator=g)
    trimap = torch.randint(0, 3, (b, 1, h, w), generator=g).float() / 2
    return image, trimap


def _randomise_norms(model: nn.Module, seed: int = 1) -> None:
    # Freshly built generators have zero-initialised residual norms and a near-zero head;
    # randomising affine parameters makes outputs input-dependent enough to compare.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)


# ---------------------------------------------------------------- generator


@pytest.mark.parametrize("hw", [(1, 1), (7, 5), (63, 47), (47, 63), (64, 48), (33, 100)])
@pytest.mark.parametrize("batch", [1, 3])
def test_tiny_generator_any_size(hw, batch):
    model = _tiny()
    image, trimap = _inputs(batch, *hw)
    with torch.no_grad():
        alpha = model(image, trimap)
    assert alpha.shape == (batch, 1, *hw)
    assert alpha.dtype == torch.float32
    assert torch.isfinite(alpha).all()
    assert alpha.min() >= 0 and alpha.max() <= 1


def test_generator_output_in_unit_range_even_when_saturated():
    model = _tiny()
    _randomise_norms(model)
    with torch.no_grad():
        model.decoder.head.weight.mul_(1e4)  # force saturated logits
        alpha = model(*_inputs(2, 40, 30))
    assert alpha.min() >= 0 and alpha.max() <= 1
    assert alpha.min() < 0.01 and alpha.max() > 0.99


def test_generator_eval_is_deterministic_and_seeded_builds_match():
    a, b = _tiny(seed=3), _tiny(seed=3)
    _randomise_norms(a)
    _randomise_norms(b)
    image, trimap = _inputs(2, 37, 29)
    with torch.no_grad():
        out1, out2, out3 = a(image, trimap), a(image, trimap), b(image, trimap)
    assert torch.equal(out1, out2)
    assert torch.equal(out1, out3)
    # The output depends on the trimap and the image.
    with torch.no_grad():
        assert not torch.allclose(a(image, 1 - trimap), out1)
        assert not torch.allclose(a(image.flip(-1), trimap), out1)


@pytest.mark.parametrize("norm, cls", [("gn", nn.GroupNorm), ("bn", nn.BatchNorm2d)])
def test_gn_and_bn_builds(norm, cls):
    model = build_generator("tiny", norm)
    assert model.norm == norm
    kinds = {type(m) for m in model.modules() if isinstance(m, (nn.GroupNorm, nn.BatchNorm2d))}
    assert kinds == {cls}
    model.train()
    # BN in training mode at batch size 1 works too (the image-pooling branch has no norm).
    alpha = model(*_inputs(1, 32, 32))
    alpha.mean().backward()
    assert model.encoder.conv1.weight.grad is not None
    assert model.encoder.conv1.weight.grad.abs().sum() > 0


def test_paper_resnet50_variant_builds_and_runs():
    torch.manual_seed(0)
    model = build_generator("resnet50").eval()
    spec = GENERATOR_VARIANTS["resnet50"]
    assert spec.block == "bottleneck" and spec.layers == (3, 4, 6, 3) and spec.output_stride == 16
    assert model.encoder.conv1.in_channels == 4
    assert model.encoder.out_channels == 2048
    # Atrous: layer4 keeps stride 1 and dilates instead.
    assert model.encoder.layer4[0].conv2.stride == (1, 1)
    assert model.encoder.layer4[1].conv2.dilation == (2, 2)
    atrous_convs = [branch[0] for branch in model.aspp.branches[1:]]
    assert [conv.dilation for conv in atrous_convs] == [(6, 6), (12, 12), (18, 18)]
    with torch.no_grad():
        alpha = model(*_inputs(1, 64, 64))
    assert alpha.shape == (1, 1, 64, 64)
    assert 20e6 < model.num_parameters() < 60e6


def test_parameter_budgets():
    assert build_generator("resnet18").num_parameters() <= 12_500_000  # <= 25 MB in fp16
    assert 5_000 <= build_generator("tiny").num_parameters() <= 100_000
    assert set(GENERATOR_VARIANTS) >= {"resnet50", "resnet34", "resnet18", "tiny"}


def test_max_unpool_uses_the_stem_pooling_indices():
    model = _tiny()
    _randomise_norms(model)
    seen: dict[str, torch.Tensor] = {}
    model.encoder.maxpool.register_forward_hook(lambda m, i, o: seen.__setitem__("pool_indices", o[1]))

    def unpool_hook(module, inputs, output):
        seen["unpool_indices"] = inputs[1]
        seen["unpool_output"] = output

    model.decoder.unpool.register_forward_hook(unpool_hook)
    with torch.no_grad():
        model(*_inputs(2, 48, 64))
    assert torch.equal(seen["pool_indices"], seen["unpool_indices"])
    out = seen["unpool_output"]  # (B, stem, H/2, W/2): non-zero only where the max-pool picked
    b, c, h, w = out.shape
    picked = torch.zeros(b, c, h * w, dtype=torch.bool)
    picked.scatter_(2, seen["pool_indices"].flatten(2), True)
    assert not (out.flatten(2)[~picked] != 0).any()
    assert (out != 0).any()


def test_decoder_keeps_autocast_features_low_precision_with_the_same_result(monkeypatch):
    """Under bf16 autocast the decoder concatenates in the features' dtype (no float32 copy of
    the full-resolution stack) and gives bit for bit what promoting to float32 and letting the
    next convolution cast back gave."""
    from alphagan_video.model import generator as generator_module

    model = _tiny()
    _randomise_norms(model)
    inputs = _inputs(2, 48, 64)
    cats: list[torch.dtype] = []
    lean = generator_module._cat_features

    def spy(features, other):
        out = lean(features, other)
        cats.append(out.dtype)
        return out

    monkeypatch.setattr(generator_module, "_cat_features", spy)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = model(*inputs)
    assert cats and all(d == torch.bfloat16 for d in cats)

    class PromotingUnpool(nn.Module):  # max_unpool2d as autocast runs it: float32
        def __init__(self, unpool):
            super().__init__()
            self.unpool = unpool

        def forward(self, x, indices, output_size):
            return self.unpool(x.float(), indices, output_size=output_size)

    monkeypatch.setattr(generator_module, "_cat_features", lambda a, b: torch.cat([a, b], dim=1))
    model.decoder.unpool = PromotingUnpool(model.decoder.unpool)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        promoted = model(*inputs)
    assert torch.equal(got, promoted)


def test_extra_input_channels():
    torch.manual_seed(0)
    model = build_generator("tiny", in_channels=5).eval()
    image, trimap = _inputs(1, 20, 24)
    with torch.no_grad():
        assert model(image, trimap, torch.rand(1, 1, 20, 24)).shape == (1, 1, 20, 24)
    with pytest.raises(UserInputError, match="takes 1 extra input channel"):
        model(image, trimap)
    with pytest.raises(UserInputError, match="takes no extra input channels"):
        _tiny()(image, trimap, torch.rand(1, 1, 20, 24))


def test_generator_input_errors():
    model = _tiny()
    image, trimap = _inputs(1, 16, 16)
    with pytest.raises(UserInputError, match=r"image: expected \(B,3,H,W\), got \(3, 16, 16\)"):
        model(image[0], trimap)
    with pytest.raises(UserInputError, match=r"trimap: expected \(B,1,H,W\), got \(1, 3, 16, 16\)"):
        model(image, image)
    with pytest.raises(UserInputError, match=r"trimap shape \(1, 1, 8, 16\) does not match image shape"):
        model(image, trimap[..., :8, :])
    with pytest.raises(UserInputError, match="expected a float tensor in \\[0, 1\\], got dtype torch.uint8"):
        model((image * 255).byte(), trimap)


def test_build_errors():
    with pytest.raises(UserInputError, match="unknown generator variant 'resnet101'; use one of efficientnet_lite0, resnet18"):
        build_generator("resnet101")
    with pytest.raises(UserInputError, match="unknown norm 'in'; use one of gn, bn"):
        build_generator("tiny", "in")
    with pytest.raises(UserInputError, match="in_channels must be >= 4"):
        build_generator("tiny", in_channels=3)


# ---------------------------------------------------------------- discriminator


def test_discriminator_shapes_and_receptive_field():
    torch.manual_seed(0)
    disc = build_discriminator(base_width=8)
    composite, trimap = torch.rand(2, 3, 64, 48), torch.rand(2, 1, 64, 48)
    assert disc(composite, trimap).shape == (2, 1, 6, 4)
    assert disc(torch.cat([composite, trimap], 1)).shape == (2, 1, 6, 4)
    assert build_discriminator(norm="bn", base_width=8)(torch.rand(1, 4, 320, 320)).shape == (1, 1, 38, 38)
    # 70x70 receptive field: one output logit depends on exactly a 70x70 input window
    # (eval-mode BatchNorm is per-pixel affine; GroupNorm statistics would span the image).
    x = torch.rand(1, 4, 160, 160, requires_grad=True)
    build_discriminator(norm="bn", base_width=8).eval()(x)[0, 0, 9, 9].backward()
    rows = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 3)) > 0).flatten()
    cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1, 2)) > 0).flatten()
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_discriminator_errors():
    expected = r"expected \(B,4,H,W\) input \(composite \+ trimap\), got \(1, 3, 64, 64\)"
    with pytest.raises(UserInputError, match=expected):
        build_discriminator(base_width=8)(torch.rand(1, 3, 64, 64))
    with pytest.raises(UserInputError, match="unknown norm 'ln'"):
        build_discriminator(norm="ln")


# ---------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
@pytest.mark.parametrize("norm", ["gn", "bn"])
def test_save_load_round_trip_fp32_is_exact(tmp_path, suffix, norm):
    model = _tiny(norm)
    _randomise_norms(model)
    if norm == "bn":
        model.encoder.bn1.running_mean.add_(0.25)  # buffers travel too
    path = save_generator(model, tmp_path / f"g{suffix}", extra={"step": "123"})
    loaded, meta = load_generator(path)
    assert isinstance(meta, GeneratorMeta)
    assert (meta.variant, meta.norm, meta.in_channels, meta.extra) == ("tiny", norm, 4, {"step": "123"})
    assert meta.path == path and len(meta.sha256) == 12
    assert not loaded.training
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    image, trimap = _inputs(1, 31, 45)
    with torch.no_grad():
        assert torch.equal(loaded(image, trimap), model(image, trimap))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_fp16_storage_is_smaller_and_upcast_on_load(tmp_path, suffix):
    model = _tiny()
    _randomise_norms(model)
    full = save_generator(model, tmp_path / f"full{suffix}")
    half = save_generator(model, tmp_path / f"half{suffix}", fp16=True)
    assert half.stat().st_size < 0.7 * full.stat().st_size
    loaded, _ = load_generator(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    image, trimap = _inputs(1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(image, trimap), model(image, trimap), atol=5e-3)


def test_load_strips_wrapper_prefixes_and_accepts_bare_state_dicts(tmp_path):
    model = _tiny()
    _randomise_norms(model)
    wrapped = {f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}
    torch.save({"variant": "tiny", "norm": "gn", "state_dict": wrapped}, tmp_path / "wrapped.pt")
    loaded, meta = load_generator(tmp_path / "wrapped.pt")
    assert meta.variant == "tiny"
    assert torch.equal(loaded.encoder.conv1.weight, model.encoder.conv1.weight)
    # A bare state dict needs variant=; norm is inferred (no running stats -> GroupNorm).
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    loaded, meta = load_generator(tmp_path / "bare.pt", variant="tiny")
    assert (meta.variant, meta.norm, meta.extra) == ("tiny", "gn", {})
    with pytest.raises(CheckpointError, match=r"does not say which generator variant it holds; pass model.variant") as info:
        load_generator(tmp_path / "bare.pt")
    from alphagan_video.cli import user_message

    assert "holds; pass --variant on the command line or variant= in Python (one of " in user_message(info.value)


def test_save_unwraps_dataparallel_style_wrappers(tmp_path):
    class Wrapper(nn.Module):
        def __init__(self, module: nn.Module):
            super().__init__()
            self.module = module

    model = _tiny()
    path = save_generator(Wrapper(model), tmp_path / "w.safetensors")
    from safetensors.torch import load_file

    assert all(not k.startswith("module.") for k in load_file(str(path)))
    loaded, _ = load_generator(path)
    assert torch.equal(loaded.decoder.head.weight, model.decoder.head.weight)


def test_load_error_missing_file(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointError, match=r"checkpoint file not found: .*nope\.safetensors"):
        load_generator(missing)


def test_load_error_missing_default_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_module, "DEFAULT_WEIGHTS_PATH", tmp_path / "alphagan_default.safetensors")
    with pytest.raises(CheckpointError, match=r"shipped generator weights are missing: .*model.checkpoint PATH"):
        load_generator()
    assert DEFAULT_WEIGHTS_PATH.name == "alphagan_default.safetensors"
    assert DEFAULT_WEIGHTS_PATH.parent.name == "weights"


@pytest.mark.parametrize("name", ["junk.safetensors", "junk.pt", "junk.bin"])
def test_load_error_corrupt_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match=rf"cannot read checkpoint .*{name}: not a "):
        load_generator(path)


def test_load_error_truncated_files(tmp_path):
    model = _tiny()
    for suffix in (".safetensors", ".pt"):
        good = save_generator(model, tmp_path / f"good{suffix}")
        bad = tmp_path / f"truncated{suffix}"
        bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        with pytest.raises(CheckpointError, match=rf"cannot read checkpoint .*truncated\{suffix}"):
            load_generator(bad)


def test_load_error_mismatched_architecture_names_keys(tmp_path):
    state = dict(_tiny().state_dict())
    del state["decoder.head.weight"]
    state["decoder.extra_layer.weight"] = torch.zeros(3)
    state["encoder.conv1.weight"] = torch.zeros(8, 4, 3, 3)
    torch.save({"variant": "tiny", "norm": "gn", "state_dict": state}, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError) as info:
        load_generator(tmp_path / "odd.pt")
    message = str(info.value)
    assert "odd.pt does not fit generator variant 'tiny'" in message
    assert "1 missing keys: decoder.head.weight" in message
    assert "1 unexpected keys: decoder.extra_layer.weight" in message
    assert "encoder.conv1.weight: file (8, 4, 3, 3) vs model (8, 4, 7, 7)" in message
    assert "\n" not in message
    # Norm given in metadata ("gn") but the weights are BatchNorm ones: running stats are named.
    bn_state = build_generator("tiny", "bn").state_dict()
    torch.save({"variant": "tiny", "norm": "gn", "state_dict": bn_state}, tmp_path / "bn_as_gn.pt")
    with pytest.raises(CheckpointError, match=r"bn_as_gn\.pt does not fit .*unexpected keys: .*running_mean"):
        load_generator(tmp_path / "bn_as_gn.pt")
    # Without metadata the norm is inferred from the running stats and the load succeeds.
    torch.save(bn_state, tmp_path / "bn_bare.pt")
    assert load_generator(tmp_path / "bn_bare.pt", variant="tiny")[1].norm == "bn"


def test_load_error_conflicting_variant(tmp_path):
    path = save_generator(_tiny(), tmp_path / "tiny.safetensors")
    with pytest.raises(CheckpointError, match=r"holds variant 'tiny' but variant 'resnet18' was requested"):
        load_generator(path, variant="resnet18")
    loaded, meta = load_generator(path, variant="tiny")  # agreeing variant is fine
    assert meta.variant == "tiny"


def test_save_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"unknown checkpoint extension '\.onnx'"):
        save_generator(_tiny(), tmp_path / "g.onnx")
    with pytest.raises(CheckpointError, match="expects an AlphaGANGenerator, got Linear"):
        save_generator(nn.Linear(2, 2), tmp_path / "g.safetensors")
    with pytest.raises(CheckpointError, match="extra metadata key 'variant' is reserved"):
        save_generator(_tiny(), tmp_path / "g.safetensors", extra={"variant": "x"})
    assert not list(tmp_path.iterdir())


def test_cpu_precision_policy_bf16_only_where_native_and_never_with_no_amp():
    from alphagan_video.device import autocast_for, cpu_has_fast_bf16

    cpu = torch.device("cpu")
    with autocast_for(cpu, enabled=False):
        assert not torch.is_autocast_enabled("cpu")
    with autocast_for(cpu, enabled=True):
        assert torch.is_autocast_enabled("cpu") == cpu_has_fast_bf16()
        if cpu_has_fast_bf16():
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16
            # A tiny generator still returns alpha in [0, 1] under bf16 autocast.
            model = build_generator("tiny").eval()
            with torch.inference_mode():
                out = model(torch.rand(1, 3, 32, 32), torch.full((1, 1, 32, 32), 0.5))
            assert out.dtype in (torch.bfloat16, torch.float32)
            assert 0.0 <= float(out.float().min()) and float(out.float().max()) <= 1.0


# ------------------------------------------------------------------ the ResNet blocks without torchvision


def test_the_model_package_does_not_import_torchvision():
    """Importing torchvision.models costs ~170 MB of resident memory for four small definitions;
    the generator defines its ResNet blocks itself (model/generator.py). Static: no module of the
    model package imports torchvision."""
    import ast
    from pathlib import Path

    import alphagan_video.model as package

    offenders = []
    for path in sorted(Path(package.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n.split(".")[0] == "torchvision"]
    assert not offenders


@pytest.mark.parametrize("block", ["BasicBlock", "Bottleneck"])
@pytest.mark.parametrize("stride,downsample", [(1, False), (2, True)])
def test_resnet_blocks_match_torchvision(block, stride, downsample):
    """Same submodule names (checkpoints and ImageNet weights map unchanged) and, with the same
    weights, the same output as torchvision's blocks."""
    resnet = pytest.importorskip("torchvision.models.resnet")
    from torch import nn

    from alphagan_video.model import generator as ours

    inplanes, planes = 16, 8
    out_ch = planes * getattr(ours, block).expansion

    def make(module):
        torch.manual_seed(0)
        down = nn.Sequential(module.conv1x1(inplanes, out_ch, stride), nn.GroupNorm(4, out_ch)) \
            if downsample or inplanes != out_ch else None
        return getattr(module, block)(inplanes, planes, stride, down,
                                      norm_layer=lambda c: nn.GroupNorm(4, c)).eval()

    mine, theirs = make(ours), make(resnet)
    assert list(mine.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(mine.state_dict())
    x = torch.randn(2, inplanes, 12, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(mine(x), theirs(x))
