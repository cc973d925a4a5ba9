"""A fuzz test that stays (issue 14): a fixed-seed corpus of 60 mutants of three tiny generated
inputs (H.264+AAC .mp4, ProRes .mov, PNG) plus the hand-made hostile media of the issue.

Every case must exit 0 or 2, print no traceback, and leave nothing beside OUTPUT (OUTPUT itself
only on success). The corpus runs in-process through click's CliRunner (``--no-refine``,
``--mask chroma``, tiny generator: a few seconds in all); the hostile cases also run as real
subprocesses, where a traceback or a crash would be the real one. ``bench/fuzz.py`` is the long
version (hundreds of cases, one subprocess each, RSS polled).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from alphagan_video.cli import main
from tests.e2e import tiny_checkpoint  # noqa: F401 - fixture
from tests.fuzz_corpus import Case, hostile_cases, make_bases, mutant_cases

SEED = 14
COUNT = 60
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Case]:
    root = tmp_path_factory.mktemp("fuzz")
    bases = make_bases(str(root / "bases"))
    base_cases = [Case(f"base-{k}", "base", p, "out.png" if k == "png" else "out.mov") for k, p in bases.items()]
    return base_cases + mutant_cases(bases, str(root / "mutants"), COUNT, SEED) + hostile_cases(str(root / "hostile"))


def _args(case: Case, out: Path, checkpoint: str) -> list[str]:
    return [case.input, "-o", str(out / case.output), "--no-refine", "--mask", "chroma", "--checkpoint", checkpoint,
            "-q"]


def _check(case: Case, code: int, output: str, out: Path) -> list[str]:
    problems = []
    if code not in (0, 2):
        problems.append(f"exit {code}")
    if "Traceback" in output:
        problems.append("traceback")
    left = sorted(os.listdir(out))
    if left != ([case.output] if code == 0 else []):
        problems.append(f"left {left}")
    return [f"{case.name} ({case.note}): {', '.join(problems)}: {output.strip()[-300:]}"] if problems else []


def test_fuzz_corpus_exits_0_or_2_cleanly(corpus, tmp_path, tiny_checkpoint):
    runner = CliRunner()
    failures, codes = [], []
    for case in corpus:
        out = tmp_path / case.name
        out.mkdir()
        result = runner.invoke(main, _args(case, out, tiny_checkpoint), catch_exceptions=True)
        output = result.output
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            output += f"\nTraceback (escaped exception): {result.exception!r}"
        failures += _check(case, result.exit_code, output, out)
        codes.append(result.exit_code)
    assert not failures, "\n".join(failures)
    assert codes[:3] == [0, 0, 0], "the unmutated bases must succeed"
    assert codes.count(0) >= 10 and codes.count(2) >= 10, codes  # the corpus exercises both outcomes


def test_hostile_media_as_real_processes(corpus, tmp_path, tiny_checkpoint):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    failures = []
    for case in [c for c in corpus if c.category.startswith("hostile")]:
        out = tmp_path / case.name
        out.mkdir()
        done = subprocess.run([sys.executable, "-m", "alphagan_video", *_args(case, out, tiny_checkpoint)],
                              capture_output=True, text=True, timeout=120, env=env)
        failures += _check(case, done.returncode, done.stdout + done.stderr, out)
        if done.returncode != 2:
            failures.append(f"{case.name}: expected exit 2, got {done.returncode}")
    assert not failures, "\n".join(failures)
