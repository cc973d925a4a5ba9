"""The writer package's public pieces (issue 13): the output plan table, the one atomic publish
(``_atomic.StagedFile``), ``concat_segments`` (stream-copy joins with a source's audio, timecode
and tags), config <-> JSON for any nesting, the one frame-range parser, the farm's worker
command templates and the direction of the farm's imports."""
from __future__ import annotations

import ast
import dataclasses
import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Optional

import av
import numpy as np
import pytest

from alphagan_video._atomic import StagedFile, parse_temp_name
from alphagan_video.cli import user_message, worker_commands
from alphagan_video.config import MaskConfig, ModelConfig, OutputConfig, PipelineConfig
from alphagan_video.config_json import UnknownFieldsError, config_from_dict, config_to_dict, iter_config_fields
from alphagan_video.errors import InputMediaError, OutputError, ParameterError
from alphagan_video.frame_range import parse_frame_range
from alphagan_video.io import RemuxSource, SourceMetadata, concat_segments, open_input, open_output
from alphagan_video.io.writer import (
    CODEC_CHOICES,
    OUTPUT_TABLE,
    codecs_for,
    describe_output,
    kind_content,
    plan_output,
)
from alphagan_video.types import OutputBatch
from tests.media import make_video

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the plan table

def test_every_table_row_is_what_plan_output_picks():
    for row in OUTPUT_TABLE:
        assert row.codec in CODEC_CHOICES
        color, alpha = {"rgba": (True, True), "matte": (False, True), "color": (True, False)}[row.layout]
        plan = plan_output(f"out{row.suffix}", OutputConfig(codec=row.codec), has_color=color, has_alpha=alpha)
        assert (plan.encoder, plan.pix_fmt, plan.label, plan.layout) == (row.encoder, row.pix_fmt, row.label, row.layout)
        assert plan.options == dict(row.options)
    keys = [(r.suffix, r.codec, r.layout) for r in OUTPUT_TABLE]
    assert len(keys) == len(set(keys)), "one row per (extension, codec, layout)"


def test_defaults_targets_and_refusals_come_from_the_table():
    # The first codec of an (extension, layout) is its default.
    assert describe_output("o.mov", OutputConfig()) == "ProRes 4444 (prores_ks), straight alpha, yuva444p10le"
    assert describe_output("o.mov", OutputConfig(kind="alpha")).startswith("ProRes 422 HQ (prores_ks), matte")
    assert codecs_for(".mov", "matte")[0] == "prores422hq"
    assert plan_output("o_%04d.exr", OutputConfig()).target == "sequence"
    assert plan_output("o.exr", OutputConfig()).premultiplied
    assert plan_output("o.mkv", OutputConfig(kind="foreground")).target == "video"
    assert kind_content("alpha") == (False, True) and kind_content("composite") == (True, False)
    with pytest.raises(OutputError, match=r"^codec 'ffv1' cannot write colour \+ alpha into \.mov; codecs for "
                                          r"\.mov: prores4444, prores4444xq, prores_aw, png$"):
        plan_output("o.mov", OutputConfig(codec="ffv1"))
    with pytest.raises(OutputError, match=r"\.mp4 \(H\.264\) has no alpha channel"):
        plan_output("o.mp4", OutputConfig())
    with pytest.raises(OutputError, match=r"unknown output codec 'vp9'"):
        plan_output("o.mov", OutputConfig(codec="vp9"))


# --------------------------------------------------------------------------- atomic publish

def test_staged_file_publishes_by_rename_and_discards_on_error(tmp_path):
    target = tmp_path / "out.mov"
    staged = StagedFile(target, ".mov", name="out")
    assert os.path.dirname(staged.tmp) == str(tmp_path) and staged.tmp.endswith(".mov")
    assert parse_temp_name(os.path.basename(staged.tmp)) is not None  # stale-temporary cleanup finds it
    Path(staged.tmp).write_bytes(b"new")
    staged.publish()
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["out.mov"]

    staged = StagedFile(target)
    Path(staged.tmp).write_bytes(b"newer")
    with pytest.raises(FileExistsError):
        staged.publish(replace=False)
    staged.discard()
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["out.mov"]

    with pytest.raises(KeyboardInterrupt):
        with StagedFile(tmp_path / "other.mov") as staged:
            Path(staged.tmp).write_bytes(b"half")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["out.mov"]


# --------------------------------------------------------------------------- concat_segments

def _write(path, info, frames, *, overwrite=False):
    """Frames ``frames`` of a deterministic RGBA ramp into ``path`` with the input's pts."""
    h, w = info.height, info.width
    with open_input(info.path) as reader:
        batches = [b for b in reader.iter_batches(len(frames), start=frames[0], stop=frames[-1] + 1)]
    with open_output(str(path), info, OutputConfig(overwrite=overwrite, copy_audio=False), has_color=True,
                     has_alpha=True, frame_range=(frames[0], frames[-1])) as writer:
        for batch in batches:
            n = len(batch.index)
            color = np.stack([np.full((h, w, 3), (i + 1) / 16, np.float32) for i in batch.index])
            alpha = np.stack([np.linspace(0, 1, w, dtype=np.float32)[None].repeat(h, 0) for _ in range(n)])
            writer.write(OutputBatch(color, alpha, list(batch.pts), list(batch.index), batch.time_base))


def _packets(path):
    with av.open(str(path)) as c:
        return [(p.pts, bytes(p)) for p in c.demux(c.streams.video[0]) if p.size]


def test_concat_segments_equals_one_encode_and_carries_source_metadata(tmp_path):
    clip = make_video(str(tmp_path / "in.mp4"), frames=6, audio_streams=1)
    with open_input(clip.path) as reader:
        info = reader.info
    _write(tmp_path / "full.mov", info, range(6))
    _write(tmp_path / "a.mov", info, range(0, 3))
    _write(tmp_path / "b.mov", info, range(3, 6))
    meta = SourceMetadata(timecode="01:00:00:00", tags={"title": "shot 10"})
    out = tmp_path / "joined.mov"
    report = concat_segments([tmp_path / "a.mov", tmp_path / "b.mov"], out,
                             RemuxSource(meta, 0, clip.path))
    assert report.frames == 6 and report.audio_streams == 1 and report.timecode == "01:00:00:00"
    assert _packets(out) == _packets(tmp_path / "full.mov")
    with av.open(str(out)) as c:
        assert c.metadata.get("title") == "shot 10" and len(c.streams.audio) == 1
    # Out of order: refused, and neither the output nor a temporary is left.
    bad = tmp_path / "bad.mov"
    with pytest.raises(InputMediaError, match=r"overlapping or out-of-order segments"):
        concat_segments([tmp_path / "b.mov", tmp_path / "a.mov"], bad)
    assert not bad.exists() and not [n for n in os.listdir(tmp_path) if n.startswith(".")]
    # An output that exists is replaced only with overwrite.
    with pytest.raises(OutputError, match=r"output appeared while assembling"):
        concat_segments([tmp_path / "a.mov"], out)
    assert report.frames == len(_packets(out))


# --------------------------------------------------------------------------- config <-> JSON

@dataclass(frozen=True)
class _Leaf:
    path: Optional[Path] = None
    pair: tuple[float, float] = (0.0, 1.0)


@dataclass(frozen=True)
class _Middle:
    leaf: _Leaf = field(default_factory=_Leaf)
    points: tuple[tuple[float, float, int], ...] = ()


@dataclass(frozen=True)
class _Top:
    middle: _Middle = field(default_factory=_Middle)
    flag: bool = True


def test_config_json_round_trips_any_nesting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _Top(_Middle(_Leaf(Path("rel/x.bin"), (2.0, 3.0)), ((1.0, 2.0, 1),)), flag=False)
    data = config_to_dict(cfg)
    assert data == {"middle": {"leaf": {"path": str(tmp_path / "rel/x.bin"), "pair": [2.0, 3.0]},
                               "points": [[1.0, 2.0, 1]]}, "flag": False}
    back = config_from_dict(json.loads(json.dumps(data)), _Top)
    assert back == dataclasses.replace(cfg, middle=dataclasses.replace(
        cfg.middle, leaf=_Leaf(tmp_path / "rel/x.bin", (2.0, 3.0))))
    with pytest.raises(UnknownFieldsError, match=r"config \[middle\.leaf\] has unknown fields \['colour'\]") as err:
        config_from_dict({"middle": {"leaf": {"colour": 1}}}, _Top)
    assert err.value.section == "middle.leaf" and err.value.fields == ["colour"]
    names = [name for name, _, _ in iter_config_fields(cfg)]
    assert names == ["middle.leaf.path", "middle.leaf.pair", "middle.points", "flag"]


def test_pipeline_config_round_trips(tmp_path):
    cfg = PipelineConfig(
        mask=MaskConfig(source="sam", box=(1.0, 2.0, 30.0, 40.0), points=((5.0, 6.0, 1),),
                        prompts_json=tmp_path / "p.json", chroma_key=(0.1, 0.8, 0.2)),
        model=ModelConfig(checkpoint=tmp_path / "g.safetensors", batch_size=3),
        output=OutputConfig(kind="alpha", codec="png"),
    )
    assert config_from_dict(json.loads(json.dumps(config_to_dict(cfg)))) == cfg


# --------------------------------------------------------------------------- frame ranges

def test_one_frame_range_parser_for_the_cli_and_the_farm():
    assert parse_frame_range("3-7") == (3, 7) and parse_frame_range(" 4-4 ") == (4, 4)
    assert parse_frame_range("9", single=True) == (9, 9)
    with pytest.raises(ParameterError) as err:
        parse_frame_range("9")
    assert err.value.param == "frames"
    assert user_message(err.value) == "--frames '9': expected A-B with 0-based frame numbers, e.g. 0-99"
    with pytest.raises(ParameterError) as err:
        parse_frame_range("5-2", single=True)
    assert user_message(err.value) == "--frames '5-2': expected 0 <= A <= B"


# --------------------------------------------------------------------------- farm

def test_worker_commands_are_built_by_the_cli_and_filled_by_the_farm(tmp_path):
    from alphagan_video.farm import FarmJob
    from alphagan_video.farm.openjd import openjd_template

    commands = worker_commands(["python", "-m", "alphagan_video"])
    assert commands.chunk_argv("J", "4-7") == ["python", "-m", "alphagan_video", "farm", "chunk", "J", "--frames", "4-7"]
    assert commands.assemble_argv("J") == ["python", "-m", "alphagan_video", "farm", "assemble", "--job", "J"]
    job = FarmJob(str(tmp_path / "in.mp4"), str(tmp_path / "o.mov"), 12, 4, 0, PipelineConfig(), "0" * 64,
                  str(tmp_path / "o.mov.alphagan-job.json"))
    template = openjd_template(job, commands=commands, template_dir=str(tmp_path))
    matte, assemble = template["steps"]
    assert matte["script"]["actions"]["onRun"] == {
        "command": "python",
        "args": ["-m", "alphagan_video", "farm", "chunk", "{{Param.JobFile}}", "--frames", "{{Task.Param.Frame}}"]}
    assert assemble["script"]["actions"]["onRun"] == {
        "command": "python", "args": ["-m", "alphagan_video", "farm", "assemble", "--job", "{{Param.JobFile}}"]}


def _farm_imports(name: str) -> set[str]:
    """Modules of ``alphagan_video.farm`` that ``farm/NAME.py`` imports at module level."""
    tree = ast.parse((REPO / "alphagan_video" / "farm" / f"{name}.py").read_text(encoding="utf-8"))
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("alphagan_video.farm."):
            found.add(node.module.rsplit(".", 1)[1])
    return found


def test_farm_imports_point_one_way():
    assert _farm_imports("files") == set()
    assert _farm_imports("prepass") == {"files"}
    assert "prepass" not in _farm_imports("job") and _farm_imports("job") <= {"files"}
    assert _farm_imports("assemble") <= {"files", "job"}


@pytest.mark.parametrize("name", ["seq_%d_%d.png", "seq_%s_%04d.png", "seq_%04d%.png", "seq_%0999999999d.exr"])
def test_invalid_sequence_patterns_are_refused_before_anything_runs(tmp_path, small_clip, name):
    """Issue 28 item 5: ``-o seq_%d_%d.png`` raised TypeError (exit 1) when the first frame was
    named. A pattern takes exactly one frame-number field (``%%`` for a literal %): anything else is
    an OutputError from the plan, so the CLI exits 2 in its preflight with one line, nothing written."""
    from tests.e2e import assert_clean_failure, cli

    with pytest.raises(OutputError, match=r"output pattern .*a sequence pattern takes one frame-number field"):
        plan_output(str(tmp_path / name), OutputConfig())
    out = tmp_path / "out"
    out.mkdir()
    assert_clean_failure(cli(small_clip.path, "-o", out / name, "-q"), 2, "output pattern", name, out_dir=out)


def test_valid_sequence_patterns_still_plan_as_sequences_or_images(tmp_path):
    for name, target in (("m_%04d.png", "sequence"), ("m%%_%d.png", "sequence"), ("f%5d.exr", "sequence"),
                         ("still.png", "image"), ("100%.png", "image")):
        assert plan_output(str(tmp_path / name), OutputConfig()).target == target, name
