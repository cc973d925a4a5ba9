"""Paths a run writes never land on paths it reads, nor on each other (links included)."""
from __future__ import annotations

import os

import pytest

from alphagan_video.errors import OutputError, UserInputError
from alphagan_video.io.collisions import RunPath, check_no_collisions, check_writable_file, find_collisions


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "in.mp4"
    path.write_bytes(b"source bytes")
    return path


def test_distinct_paths_pass(tmp_path, source):
    check_no_collisions([RunPath("INPUT", source)],
                        [RunPath("OUTPUT", tmp_path / "o.mov"), RunPath("json_report", tmp_path / "r.json")])


def test_report_onto_input_is_refused(tmp_path, source):
    with pytest.raises(OutputError, match=r"json_report .*in\.mp4 is the same file as INPUT .*which this run reads"):
        check_no_collisions([RunPath("INPUT", source)],
                            [RunPath("OUTPUT", tmp_path / "o.mov"), RunPath("json_report", source)])
    assert source.read_bytes() == b"source bytes"


def test_report_onto_output_is_refused(tmp_path, source):
    out = tmp_path / "o.mov"
    with pytest.raises(OutputError, match="json_report .*o.mov is the same file as OUTPUT"):
        check_no_collisions([RunPath("INPUT", source)],
                            [RunPath("OUTPUT", out), RunPath("json_report", tmp_path / "." / "o.mov")])


def test_output_equal_to_input_through_symlink_and_hard_link(tmp_path, source):
    sym = tmp_path / "link.mp4"
    sym.symlink_to(source)
    hard = tmp_path / "hard.mp4"
    os.link(source, hard)
    for out in (source, sym, hard):
        with pytest.raises(UserInputError, match="which this run reads"):
            check_no_collisions([RunPath("INPUT", source)], [RunPath("OUTPUT", out)])
    # The other way round: the input named through the link.
    with pytest.raises(OutputError, match="which this run reads"):
        check_no_collisions([RunPath("INPUT", hard)], [RunPath("OUTPUT", source)])


def test_find_collisions_lists_every_pair(tmp_path, source):
    mask = tmp_path / "mask.png"
    mask.write_bytes(b"m")
    pairs = find_collisions([RunPath("INPUT", source), RunPath("mask", mask)],
                            [RunPath("OUTPUT", mask), RunPath("json_report", mask)])
    assert [(w.role, o.role) for w, o in pairs] == [("OUTPUT", "mask"), ("json_report", "mask"),
                                                     ("json_report", "OUTPUT")]


def test_writable_file_checks(tmp_path):
    check_writable_file(RunPath("json_report", tmp_path / "r.json"))
    assert os.listdir(tmp_path) == []  # the probe is gone
    with pytest.raises(OutputError, match="is a folder"):
        check_writable_file(RunPath("json_report", tmp_path))
    with pytest.raises(OutputError, match="longer than the 255"):
        check_writable_file(RunPath("json_report", tmp_path / ("x" * 300 + ".json")))
    with pytest.raises(OutputError, match="does not exist"):
        check_writable_file(RunPath("json_report", tmp_path / "missing" / "r.json"))
    with pytest.raises(OutputError, match="cannot create a file in /proc"):
        check_writable_file(RunPath("json_report", "/proc/x.json"))
