"""``alphagan-video timeline``: OTIO / FCP XML / EDL in, per-clip mattes + a matching timeline out."""
from __future__ import annotations

import json
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

otio = pytest.importorskip("opentimelineio", reason="the otio extra (opentimelineio) is not installed")

from alphagan_video.cli import main  # noqa: E402
from alphagan_video.errors import InputMediaError  # noqa: E402
from alphagan_video.model import build_generator, save_generator  # noqa: E402
from alphagan_video.timeline import (  # noqa: E402
    ClipPlan, file_frame_range, plan_clips, read_edit, safe_name, url_to_path,
)
from tests.media import make_video  # noqa: E402

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
torch.set_num_threads(1)
RATE = 24


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """A 24-frame 64x48 clip, a coarse mask image and a tiny checkpoint in one directory."""
    d = tmp_path_factory.mktemp("otio")
    torch.manual_seed(0)
    save_generator(build_generator("tiny"), d / "tiny.safetensors")
    make_video(str(d / "a.mp4"), frames=24, rate=Fraction(RATE))
    mask = np.zeros((48, 64), np.uint8)
    mask[12:36, 16:48] = 255
    cv2.imwrite(str(d / "mask.png"), mask)  # one coarse mask for every frame: content-independent
    return d


def _ref(url: str) -> "otio.schema.ExternalReference":
    return otio.schema.ExternalReference(target_url=url, available_range=TR(RT(0, RATE), RT(24, RATE)))


def _edit(d, with_transition: bool = True) -> "otio.schema.Timeline":
    """V1: A(1..5) [transition] B(15..20) gap(3) missing(0..3); V2: gap(2) A2(10..13); A1: audio clip."""
    tl = otio.schema.Timeline(name="cut")
    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v1.append(otio.schema.Clip(name="A one", media_reference=_ref((d / "a.mp4").as_uri()),
                               source_range=TR(RT(1, RATE), RT(5, RATE))))
    if with_transition:
        v1.append(otio.schema.Transition(in_offset=RT(1, RATE), out_offset=RT(2, RATE)))
    v1.append(otio.schema.Clip(name="B", media_reference=_ref("a.mp4"),  # relative to the edit's directory
                               source_range=TR(RT(15, RATE), RT(6, RATE))))
    v1.append(otio.schema.Gap(source_range=TR(RT(0, RATE), RT(3, RATE))))
    v1.append(otio.schema.Clip(name="gone", media_reference=_ref(str(d / "nothere.mov")),
                               source_range=TR(RT(0, RATE), RT(4, RATE))))
    v2 = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    v2.append(otio.schema.Gap(source_range=TR(RT(0, RATE), RT(2, RATE))))
    v2.append(otio.schema.Clip(name="A/two", media_reference=_ref(str(d / "a.mp4")),
                               source_range=TR(RT(10, RATE), RT(4, RATE))))
    a1 = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    a1.append(otio.schema.Clip(name="sound", media_reference=_ref(str(d / "a.mp4")),
                               source_range=TR(RT(0, RATE), RT(12, RATE))))
    tl.tracks.extend([v1, v2, a1])
    return tl


def _run(*args) -> "object":
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _common(d) -> list:
    return ["--checkpoint", d / "tiny.safetensors", "--mask", f"file:{d / 'mask.png'}", "--trimap-band", "6", "--no-refine",
            "--device", "cpu", "--batch-size", "4", "-q"]


def _same_timing(a, b) -> None:
    assert b.duration() == a.duration()
    assert len(b.tracks) == len(a.tracks)
    for ta, tb in zip(a.tracks, b.tracks):
        assert [type(i).__name__ for i in ta] == [type(i).__name__ for i in tb]
        for ia, ib in zip(ta, tb):
            assert ib.range_in_parent() == ia.range_in_parent()
            if isinstance(ia, otio.schema.Clip):
                assert ib.source_range == ia.source_range


def test_otio_round_trip_timing_handles_and_missing_media(media):
    d = media
    otio.adapters.write_to_file(_edit(d), str(d / "cut.otio"))
    out = d / "out_otio"
    result = _run("timeline", d / "cut.otio", "-o", out, "--handles", 3, "--json-report", d / "r.json", *_common(d))
    assert result.exit_code == 0, result.output
    assert "skipped clip 'gone' (track 0): media file" in result.output and "not found" in result.output

    original = otio.adapters.read_from_file(str(d / "cut.otio"))
    new = otio.adapters.read_from_file(str(out / "cut.alphagan.otio"))
    _same_timing(original, new)
    clips = {c.name: c for c in new.find_clips()}
    assert clips["sound"].media_reference.target_url == str(d / "a.mp4")  # audio tracks untouched
    assert clips["sound"].metadata.get("alphagan") is None
    assert isinstance(clips["gone"].media_reference, otio.schema.MissingReference)
    assert clips["gone"].metadata["alphagan"]["status"] == "skipped"

    # visible range +- handles, clamped to the media [0, 23]:
    #   A one: 1..5 widened by the transition's out_offset 2 -> 1..7, handles -> 0..10
    #   B: 15..20 widened by in_offset 1 -> 14..20, handles -> 11..23
    #   A/two: 10..13 -> 7..16
    expected = {"A one": (0, 10), "B": (11, 23), "A/two": (7, 16)}
    report = json.loads((d / "r.json").read_text())
    assert {c["name"]: tuple(c["frames"]) for c in report["clips"] if c["status"] == "ok"} == expected
    for name, (first, last) in expected.items():
        ref = clips[name].media_reference
        assert ref.available_range == TR(RT(first, RATE), RT(last - first + 1, RATE))
        # the clip's source range lies inside the new media
        assert ref.available_range.contains(clips[name].source_range)
        path = url_to_path(ref.target_url)
        assert path.startswith(str(out)) and list(clips[name].metadata["alphagan"]["frames"]) == [first, last]
        with av.open(path) as c:
            frames = list(c.decode(video=0))
        assert len(frames) == last - first + 1
        assert "yuva" in frames[0].format.name  # RGBA ProRes 4444
        # the matte keeps the source's timestamps: its first frame sits at the available_range start
        assert frames[0].time * RATE == pytest.approx(first, abs=1e-6)
    assert safe_name("A/two") in str(url_to_path(clips["A/two"].media_reference.target_url))


def test_fcp_xml_in_and_out(media):
    d = media
    tl = _edit(d, with_transition=False)
    otio.adapters.write_to_file(tl, str(d / "cut.xml"))
    out = d / "out_xml"
    result = _run("timeline", d / "cut.xml", "-o", out, "--timeline-out", out / "mattes.xml",
                  "--output-kind", "alpha", *_common(d))
    assert result.exit_code == 0, result.output
    original = otio.adapters.read_from_file(str(d / "cut.xml"))
    new = otio.adapters.read_from_file(str(out / "mattes.xml"))
    _same_timing(original, new)
    b = next(c for c in new.find_clips() if c.name == "B")
    # XML carries the new media's start as its timecode: frame 15, the first processed frame
    assert b.media_reference.available_range.start_time == RT(15, RATE)
    path = url_to_path(b.media_reference.target_url)
    with av.open(path) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 6 and frames[0].time * RATE == pytest.approx(15, abs=1e-6)


def test_edl_plans_and_all_missing_exits_2(media, tmp_path):
    d = media
    edit = _edit(d, with_transition=False)
    del edit.tracks[1:]  # CMX 3600 holds one video track
    otio.adapters.write_to_file(edit, str(d / "cut.edl"), style="avid")
    tl = read_edit(d / "cut.edl", edl_rate=RATE)
    plans = plan_clips(tl, d, handles=2)
    by_name = {p.name: p for p in plans}
    assert by_name["B"].media_path == str(d / "a.mp4") and by_name["B"].skip_reason is None
    # EDLs carry no available range: no upper clamp at plan time (the decoder stops at the end)
    assert (by_name["B"].first_time, by_name["B"].last_time) == (13.0, 22.0)
    assert by_name["gone"].skip_reason.endswith("not found")

    edl = tmp_path / "offline.edl"
    edl.write_text("TITLE: offline\n\n001  AX       V     C        00:00:00:00 00:00:00:04 00:00:00:00 00:00:00:04\n"
                   f"* FROM CLIP NAME:  lost\n* FROM CLIP: {tmp_path / 'lost.mov'}\n")
    result = _run("timeline", edl, "-o", tmp_path / "o", *_common(d))
    assert result.exit_code == 2
    assert "skipped clip 'lost'" in result.output
    assert "no clip of" in result.output and "could be processed" in result.output


def test_pure_helpers_and_errors(tmp_path):
    assert url_to_path("file:///a/b%20c.mov") == "/a/b c.mov"
    assert url_to_path("file://localhost/a/b.mov") == "/a/b.mov"
    assert url_to_path("b.mov", "/edits") == "/edits/b.mov"
    assert url_to_path("/abs/b.mov", "/edits") == "/abs/b.mov"
    assert url_to_path("https://example.com/x.mov") is None and url_to_path(None) is None
    assert safe_name("Shot 10 / take:2") == "Shot_10_take_2" and safe_name("///") == "clip"
    # timecode-based media (starts at 01:00:00:00 = 86400 frames at 24): source frame 86410 is file frame 10
    plan = ClipPlan(track=0, number=0, name="x", source_url=None, media_path=None, rate=24.0,
                    first_time=86410.0, last_time=86419.0, media_start=None)
    assert file_frame_range(plan, 86400.0, Fraction(24)) == (10, 19)
    assert file_frame_range(plan, 86400.0, Fraction(48)) == (20, 38)  # media at twice the timeline rate
    with pytest.raises(InputMediaError, match=r"nothing.otio: edit file not found"):
        read_edit(tmp_path / "nothing.otio")
    (tmp_path / "bad.otio").write_text("{ not json")
    with pytest.raises(InputMediaError, match=r"bad.otio: cannot read the edit"):
        read_edit(tmp_path / "bad.otio")
    from alphagan_video.cli import user_message

    with pytest.raises(ValueError) as err:
        plan_clips(otio.schema.Timeline(), None, handles=-1)
    assert user_message(err.value) == "--handles -1: must be 0 or more"  # the CLI's words
