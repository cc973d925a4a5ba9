"""The parts of plugins/resolve/alphagan_matte.py that need no running Resolve.

The Resolve calls themselves (Timeline.Export, AddClipMattesToMediaPool, ImportTimelineFromFile)
cannot run here; everything they are fed is computed by the pure functions tested below, on
timelines written by OpenTimelineIO and by the real ``alphagan-video timeline`` command.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shlex
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

otio = pytest.importorskip("opentimelineio", reason="the otio extra (opentimelineio) is not installed")

from alphagan_video.cli import main  # noqa: E402
from alphagan_video.model import build_generator, save_generator  # noqa: E402
from tests.media import make_video  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "plugins" / "resolve" / "alphagan_matte.py"
RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
torch.set_num_threads(1)


@pytest.fixture(scope="module")
def am():
    spec = importlib.util.spec_from_file_location("alphagan_matte", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # must not try to reach Resolve on import
    return module


def _timeline(d: Path) -> "otio.schema.Timeline":
    """V1: a(2..6) b(0..3) a(10..13) missing(0..2); V2: gap b(4..7); A1: audio of a."""
    def clip(name, path, start, dur):
        ref = otio.schema.ExternalReference(target_url=Path(path).as_uri() if os.path.isabs(path) else path,
                                            available_range=TR(RT(0, 24), RT(16, 24)))
        return otio.schema.Clip(name=name, media_reference=ref, source_range=TR(RT(start, 24), RT(dur, 24)))

    tl = otio.schema.Timeline(name="edit")
    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v1.extend([clip("a1", str(d / "a.mp4"), 2, 5), clip("b1", str(d / "b.mp4"), 0, 4),
               clip("a2", str(d / "a.mp4"), 10, 4), clip("lost", str(d / "lost.mov"), 0, 3)])
    v2 = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    v2.extend([otio.schema.Gap(source_range=TR(RT(0, 24), RT(3, 24))), clip("b2", str(d / "b.mp4"), 4, 4)])
    a1 = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    a1.append(clip("snd", str(d / "a.mp4"), 0, 10))
    tl.tracks.extend([v1, v2, a1])
    return tl


def test_command_line_and_settings(am):
    argv = am.build_timeline_command(["/opt/av/bin/alphagan-video"], "/tmp/t.otio", "/mattes", handles=8,
                                     output_kind="alpha", extra_args=["--mask", "chroma"],
                                     timeline_out="/mattes/x.otio")
    assert argv == ["/opt/av/bin/alphagan-video", "timeline", "/tmp/t.otio", "-o", "/mattes", "--handles", "8",
                    "--output-kind", "alpha", "--ext", ".mov", "--overwrite", "-q",
                    "--timeline-out", "/mattes/x.otio", "--mask", "chroma"]
    assert am.find_cli({"ALPHAGAN_VIDEO_CLI": "/v/bin/python -m alphagan_video"}) == ["/v/bin/python", "-m",
                                                                                     "alphagan_video"]
    assert am.find_cli({}, which=lambda name: "/usr/bin/" + name) == ["/usr/bin/alphagan-video"]
    with pytest.raises(RuntimeError, match=r"alphagan-video was not found on PATH.*ALPHAGAN_VIDEO_CLI"):
        am.find_cli({}, which=lambda name: None)
    s = am.settings_from_env({"ALPHAGAN_HANDLES": "4", "ALPHAGAN_EXTRA_ARGS": "--device cuda --mask 'file:/a b.mov'",
                              "ALPHAGAN_IMPORT_TIMELINE": "0"})
    assert s == {"handles": 4, "output_kind": "alpha", "extra_args": ["--device", "cuda", "--mask", "file:/a b.mov"],
                 "import_timeline": False, "output_dir": None}
    with pytest.raises(RuntimeError, match=r"ALPHAGAN_HANDLES='x': expected a whole number"):
        am.settings_from_env({"ALPHAGAN_HANDLES": "x"})
    with pytest.raises(RuntimeError, match=r"ALPHAGAN_OUTPUT_KIND='composite': expected alpha or rgba"):
        am.settings_from_env({"ALPHAGAN_OUTPUT_KIND": "composite"})
    assert am.default_output_dir("My: Project", "Cut/1", home="/h") == os.path.join(
        "/h", "alphagan-mattes", "My_ Project", "Cut_1")
    with pytest.raises(RuntimeError, match=r"Resolve is not reachable"):
        am.run_in_resolve(None, environ={})


def test_keep_only_selected_media_keeps_timing(am, tmp_path):
    tl = _timeline(tmp_path)
    otio.adapters.write_to_file(tl, str(tmp_path / "edit.otio"))
    doc = json.loads((tmp_path / "edit.otio").read_text())
    filtered, kept = am.keep_only_media(doc, [str(tmp_path / "b.mp4")])
    assert kept == 2
    (tmp_path / "sel.otio").write_text(json.dumps(filtered))
    back = otio.adapters.read_from_file(str(tmp_path / "sel.otio"))  # still a valid OTIO file
    assert back.duration() == tl.duration()
    assert [c.name for c in back.video_tracks()[0].find_clips()] == ["b1"]
    assert [c.name for c in back.video_tracks()[1].find_clips()] == ["b2"]
    assert [c.name for c in back.audio_tracks()[0].find_clips()] == ["snd"]  # audio untouched
    for ta, tb in zip(tl.tracks, back.tracks):
        assert [i.range_in_parent() for i in ta] == [i.range_in_parent() for i in tb]
    assert doc["tracks"]["children"][0]["children"][0]["OTIO_SCHEMA"].startswith("Clip.")  # input not modified


def test_results_of_the_real_timeline_command_map_to_source_clips(am, tmp_path):
    make_video(str(tmp_path / "a.mp4"), frames=16, rate=Fraction(24))
    make_video(str(tmp_path / "b.mp4"), frames=16, rate=Fraction(24))
    mask = np.zeros((48, 64), np.uint8)
    mask[12:36, 16:48] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    torch.manual_seed(0)
    save_generator(build_generator("tiny"), tmp_path / "tiny.safetensors")
    otio.adapters.write_to_file(_timeline(tmp_path), str(tmp_path / "edit.otio"))

    argv = am.build_timeline_command(["alphagan-video"], tmp_path / "edit.otio", tmp_path / "m", handles=1,
                                     extra_args=shlex.split(f"--checkpoint {tmp_path / 'tiny.safetensors'} "
                                                            f"--mask file:{tmp_path / 'mask.png'} --no-refine "
                                                            "--device cpu --no-temporal"),
                                     timeline_out=tmp_path / "m" / "out.otio")
    result = CliRunner().invoke(main, argv[1:], catch_exceptions=False)
    assert result.exit_code == 0, result.output

    results, skipped = am.parse_matte_timeline(json.loads((tmp_path / "m" / "out.otio").read_text()))
    assert [r.name for r in results] == ["a1", "b1", "a2", "b2"]
    assert skipped == [("lost", f"media file {tmp_path / 'lost.mov'} not found")]
    assert [r.frames for r in results] == [(1, 7), (0, 4), (9, 14), (3, 8)]  # +-1 handle, clamped to 0..15
    assert all(os.path.isfile(r.matte_path) for r in results)

    groups, unmatched = am.group_mattes_by_source(results, {str(tmp_path / "a.mp4"): "item A",
                                                            str(tmp_path / "./b.mp4"): "item B"})
    assert groups == [("item A", [results[0].matte_path, results[2].matte_path]),
                      ("item B", [results[1].matte_path, results[3].matte_path])]
    assert unmatched == []
    groups, unmatched = am.group_mattes_by_source(results, {str(tmp_path / "a.mp4"): "item A"})
    assert [r.name for r in unmatched] == ["b1", "b2"]


def test_url_to_path(am):
    assert am.url_to_path("file:///Volumes/Media/A%20001.mov") == "/Volumes/Media/A 001.mov"
    assert am.url_to_path("clip.mov", "/edits") == os.path.join("/edits", "clip.mov")
    assert am.url_to_path("https://x/y.mov") is None and am.url_to_path("") is None
