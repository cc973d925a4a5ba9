"""Issue 13: the CLI's options and choice lists come from one table or registry each, and library
errors name parameters that the CLI shows as flags."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import get_args

import click
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from alphagan_video import cli as cli_module
from alphagan_video.cli import options as cli_options
from alphagan_video.config import OUTPUT_KINDS, TILING_MODES, MaskConfig, OutputKind
from alphagan_video.errors import CheckpointError, DeviceError, ParameterError
from alphagan_video.io.writer import CODEC_CHOICES
from alphagan_video.masks import MASK_SOURCES, MASK_SPEC_FORMS, SAM_MODELS, parse_mask_spec
from alphagan_video.model import GENERATOR_VARIANTS
from tests.e2e import cli, error_lines, tiny_checkpoint  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[1]


def _option(command: click.Command, flag: str) -> click.Option:
    for param in command.params:
        if isinstance(param, click.Option) and flag in param.opts:
            return param
    raise AssertionError(f"{command.name} has no {flag}")


def _commands() -> dict[str, click.Command]:
    group = cli_module.main
    return {name: group.commands[name] for name in ("run", "pipe", "timeline")}


# ----------------------------------------------------------------------------- choice lists

def test_choice_lists_are_the_registries():
    run = cli_module.main.commands["run"]
    assert tuple(_option(run, "--codec").type.choices) == tuple(CODEC_CHOICES)
    assert "exr" in _option(run, "--codec").type.choices  # missing before issue 13
    assert tuple(_option(run, "--variant").type.choices) == tuple(GENERATOR_VARIANTS)
    assert tuple(_option(run, "--output-kind").type.choices) == OUTPUT_KINDS == get_args(OutputKind)
    assert tuple(_option(run, "--tiling").type.choices) == TILING_MODES
    assert tuple(_option(run, "--sam-model").type.choices) == SAM_MODELS
    assert MASK_SPEC_FORMS == ("person", "sam", "chroma", "plate:PATH", "file:PATH")
    assert {parse_mask_spec(form.replace("PATH", "x")).name for form in MASK_SPEC_FORMS} == set(MASK_SOURCES)
    assert _option(run, "--mask").help == "Coarse mask: person (default) | sam | chroma | plate:PATH | file:PATH."
    assert MaskConfig().source == "person"


@pytest.mark.parametrize("args", [("--codec", "exr"), ("--variant", "efficientnet_lite0")])
def test_registry_choices_are_accepted(tmp_path, args):
    """Values the library supports pass the command line (the run then fails on the missing input)."""
    result = cli(tmp_path / "missing.mp4", "-o", tmp_path / "out.%04d.exr", *args)
    assert result.exit_code == 2
    assert error_lines(result) and "input not found" in error_lines(result)[0], result.output
    assert "Invalid value" not in result.output


def test_unknown_mask_source_lists_the_registry(tmp_path):
    result = cli(tmp_path / "missing.mp4", "-o", tmp_path / "o.mov", "--mask", "rotoscope")
    assert error_lines(result) == ["alphagan-video: error: --mask 'rotoscope': unknown mask source; use one of "
                                   "person, sam, chroma, plate:PATH, file:PATH"]


def test_masks_and_model_registry_import_without_torch(tmp_path):
    """The CLI reads these registries before torch is loaded (fail fast, ``info``)."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('torch was imported')\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}")
    code = ("import alphagan_video.cli, alphagan_video.masks as m, alphagan_video.model.registry as r; "
            "s = m.parse_mask_spec('plate:x.png'); print((s.name, s.arg), sorted(r.GENERATOR_VARIANTS)[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "('plate', 'x.png') efficientnet_lite0"


# ----------------------------------------------------------------------------- front-end options

def test_front_end_options_come_from_one_table():
    for name, command in _commands().items():
        for key in ("quiet", "debug") + (("max_pixels",) if name != "timeline" else ()):
            decls, attrs = cli_options._FRONTEND_OPTIONS[key]
            option = _option(command, next(d for d in decls if d.startswith("--")))
            assert option.name == key and set(option.opts) == {d for d in decls if d.startswith("-")}
            assert option.is_flag == bool(attrs.get("is_flag", False))
    run, timeline = cli_module.main.commands["run"], cli_module.main.commands["timeline"]
    assert _option(run, "--json-report").help == "Write what was done as JSON."
    assert _option(timeline, "--json-report").help == "Write the per-clip results as JSON."
    with pytest.raises(ValueError, match="unknown option names"):
        cli_options._frontend_options("quite")


def _pipe(tiny_checkpoint, tmp_path, *extra: str):
    w, h, n = 32, 24, 3
    mask = np.zeros((h, w), np.uint8)
    mask[6:18, 8:24] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    frames = np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8).tobytes()
    args = ["pipe", "--size", f"{w}x{h}", "--rate", "25", "--checkpoint", tiny_checkpoint,
            "--mask", f"file:{tmp_path / 'mask.png'}", "--no-refine", "--no-temporal", "--device", "cpu",
            "--batch-size", "2", *extra]
    result = CliRunner().invoke(cli_module.main, args, input=frames)
    assert result.exit_code == 0, result.output
    assert len(result.stdout_bytes) == n * w * h * 4  # rgba out
    return result


def test_pipe_quiet_silences_the_progress_output(tiny_checkpoint, tmp_path):
    loud = _pipe(tiny_checkpoint, tmp_path, "--progress")
    assert "alphagan-video pipe: 3 frame(s)" in loud.stderr
    quiet = _pipe(tiny_checkpoint, tmp_path, "--progress", "--quiet")
    assert quiet.stderr == ""
    assert quiet.stdout_bytes == loud.stdout_bytes


# ----------------------------------------------------------------------------- parameters -> flags

def test_user_message_shows_parameters_as_flags():
    assert cli_module.user_message(ParameterError.about("model.batch_size", 0, "must be at least 1")) == \
        "--batch-size 0: must be at least 1"
    exc = DeviceError.about("model.device", "cuda", "CUDA is not available on this machine; use model.device cpu "
                                                    "or auto")
    assert str(exc).startswith("model.device cuda: ")
    assert cli_module.user_message(exc) == \
        "--device cuda: CUDA is not available on this machine; use --device cpu or auto"
    named = CheckpointError.naming("weights missing: /w/model.checkpoint.pt; pass them with model.checkpoint PATH",
                                   "model.checkpoint")
    assert cli_module.user_message(named) == "weights missing: /w/model.checkpoint.pt; pass them with --checkpoint PATH"
    # A parameter the error does not name as the user's fix stays as it is (a job file's field).
    plain = ParameterError("job file j.json: config model.batch_size is '4', expected a int")
    assert cli_module.user_message(plain) == str(plain)
    with pytest.raises(Exception) as info:
        parse_mask_spec("file")
    assert cli_module.user_message(info.value) == "--mask 'file': file needs a path; use --mask file:PATH"


def test_every_parameter_flag_is_a_cli_flag():
    from tests.test_architecture import cli_flags

    assert set(cli_module.PARAMETER_FLAGS.values()) <= cli_flags()
