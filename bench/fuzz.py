"""Hostile-user fuzzing of the CLI (issue 14), the long version of tests/test_fuzz.py.

    python bench/fuzz.py --cases 300 [--seed 14] [--jobs 1] [--timeout 120] [--keep DIR]

Builds a seeded corpus and runs every case as its own process (``python -m alphagan_video``),
polling the child's resident memory every few ms, then prints one table row per category:

    cases | exit-code violations | tracebacks | hangs | files left | inputs modified | runs > 4 GB RSS | peak RSS

Categories (about half the cases are mutants, the rest split over the others):
- mutant-mp4 / mutant-mov / mutant-png: seeded byte mutants of an H.264+AAC mp4, a ProRes .mov,
  a PNG (tests/fuzz_corpus.py); must exit 0 or 2;
- hostile-size / hostile-media: 16000x16000 PNG and PNG-in-MOV, 60000x40000 y4m, codec-less
  audio: exit 2, small RSS;
- paths: /proc, missing folders, OUTPUT a folder or existing, odd names, input a folder ...: exit 2;
- options: out-of-range and malformed option values (bands, batch sizes, budgets, ranges, keys): 2;
- checkpoint: NaN/Inf weights, garbage, truncated, a malicious pickle (must not run), a folder: 2;
- farm-job: malformed job files through ``farm chunk`` and ``farm assemble --job`` (a valid job with
  one field broken: NaN/list/out-of-range config fields, missing fields, a wrong settings digest, a
  chunk off the plan); finished-job reruns (must exit 0 "already complete" and touch nothing);
- chunk-repeat: the same ``farm chunk`` made again must be the same bytes as the first time;
- pipe-stdout: ``pipe`` onto ``/dev/full`` or a closed stdout: exit 2, one line;
- pipe: absurd sizes and bands, truncated frames, bad rates: 2;
- signals: SIGINT / SIGTERM at seeded moments of a valid run: 130 / 143 (0 if it finished first);
- enospc: a tiny tmpfs in a private mount namespace (``unshare``; skipped where refused): 2;
- side-files: ``--json-report`` onto INPUT, onto OUTPUT, a folder, ``/proc``, a 300-byte name, a
  missing folder; a farm ``--template`` onto INPUT: exit 2, nothing written, INPUT unchanged;
- same-file: OUTPUT == INPUT (same path, through a symlink, a hard link; ``--overwrite`` given),
  OUTPUT onto a ``file:`` mask: exit 2, every input byte for byte as before ("inputs modified").

"files left" counts anything beside OUTPUT in the output folder (OUTPUT itself only after exit 0),
anything left in the run's private $TMPDIR, and, for farm reruns, any file touched. A hang is a run
still alive after --timeout seconds (killed). Exit status of this script: 0 when every column of
violations is 0.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fuzz_corpus import (  # noqa: E402
    hostile_cases, make_bases, make_mp4, mutant_cases, png_with_size,
)

RSS_LIMIT = 4 * 2**30
FAST = ["--no-refine", "--mask", "chroma", "-q"]


@dataclass
class Run:
    name: str
    category: str
    argv: list
    out_dir: Path
    allowed: frozenset
    output: Optional[str] = None          # the file allowed in out_dir after exit 0
    signal_at: Optional[tuple[int, float]] = None
    wrapper: Optional[list] = None        # e.g. unshare ... sh -c
    stdin: Optional[bytes] = None
    check: Optional[Callable[["Result"], list]] = None  # extra checks -> problems
    setup: Optional[Callable[[], None]] = None  # runs right before the process starts
    note: str = ""


@dataclass
class Result:
    run: Run
    code: int = 0
    stderr: str = ""
    seconds: float = 0.0
    peak_rss: int = 0
    hang: bool = False
    problems: list = field(default_factory=list)


def _rss_of_tree(pid: int) -> int:
    """Resident bytes of ``pid`` and its children (VmRSS), 0 once gone."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            pass
    return total


def execute(run: Run, timeout: float, env: dict) -> Result:
    res = Result(run)
    tmpdir = Path(tempfile.mkdtemp(prefix="fuzz-tmp-"))
    run_env = dict(env, TMPDIR=str(tmpdir))
    argv = [sys.executable, "-m", "alphagan_video", *map(str, run.argv)]
    if run.wrapper:
        argv = [*run.wrapper[:-1], run.wrapper[-1].replace("{CMD}", " ".join(_quote(a) for a in argv))]
    if run.setup is not None:
        run.setup()
    before = set(os.listdir(run.out_dir)) if run.out_dir.is_dir() else set()
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if run.stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=run_env)
    if run.stdin is not None:
        try:
            proc.stdin.write(run.stdin)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
    err_chunks: list[bytes] = []

    def drain():
        for chunk in iter(lambda: proc.stderr.read(4096), b""):
            err_chunks.append(chunk)

    import threading

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    sent = False
    while proc.poll() is None:
        now = time.monotonic() - started
        res.peak_rss = max(res.peak_rss, _rss_of_tree(proc.pid))
        if run.signal_at and not sent and now >= run.signal_at[1]:
            proc.send_signal(run.signal_at[0])
            sent = True
        if now > timeout:
            res.hang = True
            proc.kill()
            break
        time.sleep(0.005)
    proc.wait()
    reader.join(5)
    # A process killed by signal N before its handler was installed (interpreter start-up) reports -N
    # here; a shell reports 128 + N, the same 130 / 143 the CLI exits with itself.
    res.code = 128 - proc.returncode if proc.returncode < 0 else proc.returncode
    res.seconds = time.monotonic() - started
    res.stderr = b"".join(err_chunks).decode(errors="replace")
    if res.code not in run.allowed and not res.hang:
        res.problems.append(f"exit {res.code} not in {sorted(run.allowed)}")
    if "Traceback" in res.stderr:
        res.problems.append("traceback")
    left = sorted(os.listdir(run.out_dir)) if run.out_dir.is_dir() else []
    expected = [run.output] if (res.code == 0 and run.output) else []
    extra = [n for n in left if n not in expected and n not in before]
    if "FUZZ-LEFT" in res.stderr:
        extra.append(res.stderr.split("FUZZ-LEFT", 1)[1].strip().splitlines()[0])
    if extra:
        res.problems.append(f"files left {extra}")
    leftovers = sorted(os.listdir(tmpdir))
    if leftovers:
        res.problems.append(f"left in $TMPDIR {leftovers}")
    shutil.rmtree(tmpdir, ignore_errors=True)
    if run.check is not None:
        res.problems += run.check(res)
    return res


def _quote(a: str) -> str:
    import shlex

    return shlex.quote(str(a))


# ----------------------------------------------------------------------------- corpus

def build(root: Path, n: int, seed: int, checkpoint: str) -> list[Run]:
    rng = random.Random(seed)
    runs: list[Run] = []
    counter = [0]

    def out(name: str) -> Path:
        counter[0] += 1
        d = root / "out" / f"{counter[0]:04d}-{name}"
        d.mkdir(parents=True)
        return d

    bases = make_bases(str(root / "bases"))
    n_mut = max(3, n * 55 // 100)
    for c in mutant_cases(bases, str(root / "mutants"), n_mut, seed):
        d = out(c.name)
        runs.append(Run(c.name, c.category, [c.input, "-o", d / c.output, "--checkpoint", checkpoint, *FAST], d,
                        frozenset({0, 2}), c.output, note=c.note))
    for c in hostile_cases(str(root / "hostile")):
        d = out(c.name)
        runs.append(Run(c.name, c.category, [c.input, "-o", d / c.output, "--checkpoint", checkpoint, *FAST], d,
                        frozenset({2}), c.output, note=c.note))
    mp4, png = bases["mp4"], bases["png"]
    rest = max(0, n - len(runs))

    # paths
    def paths(i: int) -> Run:
        d = out(f"path{i}")
        kind = i % 10
        if kind == 0:
            argv = [mp4, "-o", "/proc/out.mov"]
        elif kind == 1:
            argv = [mp4, "-o", d / "missing" / "o.mov"]
        elif kind == 2:
            (d / "o.mov").mkdir()
            return Run(f"path{i}", "paths", [mp4, "-o", d / "o.mov", *FAST], d, frozenset({2}), "o.mov",
                       check=lambda r, d=d: [] if (d / "o.mov").is_dir() else ["folder replaced"])
        elif kind == 3:
            (d / "o.mov").write_bytes(b"keep")
            return Run(f"path{i}", "paths", [mp4, "-o", d / "o.mov", *FAST], d, frozenset({2}), "o.mov",
                       check=lambda r, d=d: [] if (d / "o.mov").read_bytes() == b"keep" else ["OUTPUT replaced"])
        elif kind == 4:
            argv = [root / "nope.mp4", "-o", d / "o.mov"]
        elif kind == 5:
            argv = [root / "bases", "-o", d / "o.mov"]
        elif kind == 6:
            argv = [str(root / "bases" / "x_%04d.png"), "-o", d / "o.mov"]
        elif kind == 7:
            argv = [mp4, "-o", d / ("\u00e9\u00df" * 60 + ".mov")]
            return Run(f"path{i}", "paths", [*argv, "--checkpoint", checkpoint, *FAST], d, frozenset({0, 2}),
                       argv[-1].name)
        elif kind == 8:
            argv = [mp4, "-o", d / ("x" * 300 + ".mov")]
        else:
            argv = [mp4, "-o", d / "o.%04d.txt"]
        return Run(f"path{i}", "paths", [*argv, "--checkpoint", checkpoint, *FAST], d, frozenset({2}))

    bad_options = [["--trimap-band", "100000"], ["--trimap-band", "1e3"], ["--trimap-band", "-5"],
                   ["--batch-size", "0"], ["--batch-size", "-3"], ["--max-pixels", "0"], ["--max-pixels", "abc"],
                   ["--max-pixels", "100"], ["--temporal-strength", "2"], ["--temporal-strength", "nan"],
                   ["--frames", "5-2"], ["--frames", "abc"], ["--mask", "nonsense"], ["--mask", "file:/nonexistent"],
                   ["--mask", "plate:" + str(root)], ["--chroma-key", "9,9"], ["--box", "1,2,3"],
                   ["--output-kind", "rgba", "--codec", "h264"], ["--codec", "ffv1"], ["--context", "-2"],
                   ["--mask", "sam"], ["--trimap", "/nonexistent.png"], ["--background", "/nonexistent.png",
                                                                       "--output-kind", "composite"]]

    # (--trimap-band 0 is no bad option: a binary trimap, exit 0.)

    def options(i: int) -> Run:
        d = out(f"opt{i}")
        extra = bad_options[i % len(bad_options)]
        argv = [mp4, "-o", d / "o.mov", "--checkpoint", checkpoint, "--no-refine", "-q"]
        if "--mask" not in extra:
            argv += ["--mask", "chroma"]
        return Run(f"opt{i}:{' '.join(extra)[:30]}", "options", [*argv, *extra], d, frozenset({2}))

    import torch
    from safetensors.torch import save_file

    from alphagan_video.model import build_generator

    ck = root / "ckpt"
    ck.mkdir(exist_ok=True)
    marker = root / "PWNED"

    def checkpoints(i: int) -> Run:
        d = out(f"ckpt{i}")
        kind = i % 7
        path = ck / f"c{i}.safetensors"
        if kind in (0, 1):
            state = {k: v.clone() for k, v in build_generator("tiny").state_dict().items()}
            floats = [k for k, v in state.items() if v.is_floating_point()]
            state[floats[rng.randrange(len(floats))]].view(-1)[0] = float("nan") if kind == 0 else float("-inf")
            save_file(state, str(path), metadata={"format": "alphagan-video-generator", "variant": "tiny", "norm": "gn"})
        elif kind == 2:
            path.write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
        elif kind == 3:
            data = Path(checkpoint).read_bytes()
            path.write_bytes(data[: rng.randrange(8, len(data))])
        elif kind == 4:
            path = ck / f"c{i}.pt"

            class Evil:
                def __reduce__(self):
                    return (os.system, (f"touch {marker}",))
            torch.save({"state_dict": {"x": Evil()}}, str(path))
        elif kind == 5:
            path.write_bytes(b"")
        else:
            path = ck / f"dir{i}.safetensors"
            path.mkdir()
        return Run(f"ckpt{i}", "checkpoint", [mp4, "-o", d / "o.mov", "--checkpoint", path, *FAST], d,
                   frozenset({2}), check=lambda r: ["malicious pickle executed"] if marker.exists() else [])

    farm_root = root / "farm"
    farm_root.mkdir(exist_ok=True)
    # A complete, valid job for the base mp4 (its settings digest verifies): each farm-job case
    # breaks one field of it.
    from alphagan_video.config import MaskConfig, ModelConfig, PipelineConfig, RefineConfig
    from alphagan_video.config_json import config_to_dict
    from alphagan_video.farm.job import settings_digest

    job_cfg = PipelineConfig(mask=MaskConfig(source="chroma", chroma_key=(0.1176, 0.7804, 0.1569), chroma_tolerance=0.02),
                             model=ModelConfig(checkpoint=Path(checkpoint)), refine=RefineConfig(enabled=False))
    valid_job = {"format": "alphagan-video-job", "version": 1, "input": str(mp4), "output": "out.mov",
                 "frame_count": 6, "chunk_size": 4, "context": 0, "config": config_to_dict(job_cfg),
                 "settings_sha256": settings_digest(str(mp4), job_cfg, 0)}
    nan = float("nan")
    farm_mutations = [
        ("chunk_size", "abc"), ("chunk_size", None), ("chunk_size", 0), ("chunk_size", -4),
        ("output", "../../x.mov"), ("output", "/tmp/elsewhere/x.mov"), ("frame_count", 1e30),
        ("config", {"model": None}), ("input", None), ("version", 99),
        # issue 28 item 9: malformed config fields, missing fields, a wrong digest, a chunk off the plan
        ("config", {}), ("config.model.batch_size", nan), ("config.model.batch_size", -1),
        ("config.output.codec", ["prores4444"]), ("config.output.codec", nan), ("config.trimap.band_px", [5]),
        ("config.mask.box", [nan, 1, 20, 30]), ("config.mask.box", [1, 2]), ("config.mask.chroma_key", [nan, 0, 0]),
        ("config.mask.chroma_key", [[0.1], 0.7, 0.2]), ("config.refine.expand", nan),
        ("config.temporal.strength", 7), ("settings_sha256", "0" * 64), ("off-plan", None),
    ]

    def farm(i: int) -> Run:
        kind = i % 12
        d = out(f"farm{i}")
        if kind == 11:  # rerun of a finished job: exit 0 "already complete", nothing touched
            # Made right before the rerun (setup), so that code or settings changed meanwhile (a
            # live working tree) cannot make it a job "with other settings".
            shot = farm_root / f"done{i}"
            args = ["farm", "local", shot / "in.mp4", "-o", shot / "out.mov", "--chunk-size", "4", "--checkpoint",
                    checkpoint, "--no-temporal", "--no-refine", "--mask", "chroma"]
            state: dict = {}

            def setup(shot=shot, args=args, state=state):
                shot.mkdir()
                make_mp4(str(shot / "in.mp4"), frames=4, audio=False)
                subprocess.run([sys.executable, "-m", "alphagan_video", *map(str, args)], check=True,
                               capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO)))
                state["before"] = sorted((str(p), p.stat().st_mtime_ns) for p in shot.rglob("*"))

            def untouched(r, shot=shot, state=state):
                after = sorted((str(p), p.stat().st_mtime_ns) for p in shot.rglob("*"))
                problems = [] if after == state["before"] else ["finished job touched"]
                if "already complete" not in r.stderr:
                    problems.append("no 'already complete'")
                return problems
            return Run(f"farm{i}:rerun", "farm-job", args, d, frozenset({0}), check=untouched, setup=setup)
        job = d / "out.mov.alphagan-job.json"
        data = json.loads(json.dumps(valid_job))
        key, value = farm_mutations[(i // 12 * 11 + kind) % len(farm_mutations)]
        target, *path = key.split(".")
        if path:  # a field inside the config: "config.model.batch_size"
            node = data[target]
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
        elif key != "off-plan":
            data[key] = value
        job.write_text(json.dumps(data))  # NaN as the NaN token, which json.load accepts
        allowed = {job.name}
        frames = "1-5" if key == "off-plan" else "0-3"
        command = (["farm", "chunk", job, "--frames", frames] if i % 2 == 0 or key.startswith(("config", "off-plan"))
                   else ["farm", "assemble", "--job", job])
        if kind == 0 and i % 24 == 0:
            command = ["farm", "assemble", "--job", d]  # a folder as the job
        return Run(f"farm{i}:{key}={value!r}"[:40], "farm-job", command, d, frozenset({2}), output=None,
                   check=lambda r, d=d, allowed=allowed: ([] if set(os.listdir(d)) <= allowed else
                                                          [f"farm files {sorted(set(os.listdir(d)) - allowed)}"]))

    def pipe(i: int) -> Run:
        d = out(f"pipe{i}")
        kind = i % 7
        size, band, data, rate = "64x48", None, bytes(64 * 48 * 3 * 2), "25"
        if kind == 0:
            size = "100000x100000"
        elif kind == 1:
            size = "0x0"
        elif kind == 2:
            size = "abc"
        elif kind == 3:
            band = "100000"
        elif kind == 4:
            data = data[:-7]  # truncated last frame
        elif kind == 5:
            rate = "0"
        else:
            size = "65536x65536"
        argv = ["pipe", "--size", size, "--rate", rate, "--checkpoint", checkpoint, "--mask", "chroma",
                "--no-refine"] + (["--trimap-band", band] if band else [])
        # Runs that get past the checks key a black frame: chroma finds no screen (exit 2).
        return Run(f"pipe{i}", "pipe", argv, d, frozenset({2}), stdin=data)

    green = np.zeros((2, 48, 64, 3), np.uint8)
    green[..., 1] = 200
    green[:, 10:30, 20:40] = 128  # a grey square on a green screen: chroma keys it, frames get written

    def pipe_out(i: int) -> Run:
        """issue 28 item 7: stdout on a full device or closed: exit 2 with one line."""
        d = out(f"pipeout{i}")
        redirect = "> /dev/full" if (i // 20) % 2 == 0 else ">&-"  # i // 20: one turn of the schedule
        argv = ["pipe", "--size", "64x48", "--rate", "25", "--checkpoint", checkpoint, "--mask", "chroma",
                "--no-refine"]
        return Run(f"pipeout{i}:{redirect}", "pipe-stdout", argv, d, frozenset({2}), stdin=green.tobytes(),
                   wrapper=["sh", "-c", f"{{CMD}} {redirect}"],
                   check=lambda r: [] if "stdout" in r.stderr and "internal error" not in r.stderr
                   else ["no one-line stdout error"])

    chunk_jobs: dict = {}

    def chunk_repeat(i: int) -> Run:
        """issue 28 item 10: the same chunk, made again, is the same bytes as the first time."""
        d = out(f"chunkrep{i}")
        shot = farm_root / f"rep{i % 3}"
        job = shot / "out.mov.alphagan-job.json"
        segment = shot / "out.mov.alphagan-segments" / "seg_000000-000003.mov"
        record = segment.with_suffix(".json")

        def setup(shot=shot, job=job, segment=segment, record=record):
            if shot not in chunk_jobs:  # plan once, and make the reference segment once
                shot.mkdir(exist_ok=True)
                make_mp4(str(shot / "in.mp4"), frames=8, width=96, height=64, audio=False)
                env = dict(os.environ, PYTHONPATH=str(REPO))
                subprocess.run([sys.executable, "-m", "alphagan_video", "farm", "plan", shot / "in.mp4", "-o",
                                shot / "out.mov", "--chunk-size", "4", "--checkpoint", checkpoint, "--mask", "chroma"],
                               check=True, capture_output=True, env=env)
                subprocess.run([sys.executable, "-m", "alphagan_video", "farm", "chunk", job, "--frames", "0-3", "-q"],
                               check=True, capture_output=True, env=env)
                chunk_jobs[shot] = segment.read_bytes()
            segment.unlink(missing_ok=True)
            record.unlink(missing_ok=True)

        def same(r, shot=shot, segment=segment):
            if r.code != 0:
                return []
            return [] if segment.read_bytes() == chunk_jobs[shot] else ["differing repeated chunk"]

        return Run(f"chunkrep{i}", "chunk-repeat", ["farm", "chunk", job, "--frames", "0-3", "-q"], d, frozenset({0}),
                   setup=setup, check=same)

    long_clip = make_mp4(str(root / "long.mp4"), frames=240)

    def signals(i: int) -> Run:
        d = out(f"sig{i}")
        sig = signal.SIGINT if i % 2 == 0 else signal.SIGTERM
        delay = rng.uniform(0.05, 8.0)
        return Run(f"sig{i}:{sig.name}@{delay:.2f}s", "signals",
                   [long_clip, "-o", d / "o.mov", "--checkpoint", checkpoint, "--batch-size", "1", *FAST], d,
                   frozenset({0, 130 if sig == signal.SIGINT else 143}), "o.mov", signal_at=(sig, delay))

    unshare_ok = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"],
                                capture_output=True).returncode == 0
    big = make_mp4(str(root / "big.mp4"), frames=24, width=320, height=240)

    def enospc(i: int) -> Optional[Run]:
        if not unshare_ok:
            return None
        d = out(f"nospc{i}")
        size = ["16k", "48k", "64k", "128k"][i % 4]
        argv = [big, "-o", d / "o.mov", "--checkpoint", checkpoint, *FAST]
        wrapper = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                   f"mount -t tmpfs -o size={size} tmpfs {d} && {{CMD}}; rc=$?; "
                   f"[ -z \"$(ls -A {d})\" ] || echo FUZZ-LEFT $(ls -A {d}) >&2; exit $rc"]
        return Run(f"nospc{i}:{size}", "enospc", argv, d, frozenset({2}), wrapper=wrapper,
                   check=lambda r: [] if "disk is full" in r.stderr or r.code != 2 else [])

    def unchanged(*files: Path) -> Callable[["Result"], list]:
        """A check: every file in ``files`` is byte for byte what it was when the case was built."""
        before = {f: f.read_bytes() for f in files}
        return lambda r: [f"inputs modified: {f.name}" for f, data in before.items()
                          if not f.is_file() or f.read_bytes() != data]

    def side_files(i: int) -> Run:
        """issue 28 items 1 and 3: side files onto what the run reads or writes, or unwritable."""
        d = out(f"side{i}")
        src = d.parent / f"side{i}-in.mp4"  # beside the output folder: a run may only touch out_dir
        shutil.copy(mp4, src)
        kind = i % 7
        report = {0: src, 1: d / "o.mov", 2: d, 3: Path("/proc/x.json"), 4: d / ("x" * 300 + ".json"),
                  5: d / "missing" / "r.json"}.get(kind)
        if report is not None:
            argv = [src, "-o", d / "o.mov", "--json-report", report, "--checkpoint", checkpoint, *FAST]
        else:
            argv = ["farm", "openjd", src, "-o", d / "o.mov", "--template", src, "--checkpoint", checkpoint,
                    "--mask", "chroma"]
        return Run(f"side{i}:{kind}", "side-files", argv, d, frozenset({2}), check=unchanged(src))

    def same_file(i: int) -> Run:
        """issue 28 item 2: OUTPUT is a file the run reads, named directly or through a link."""
        d = out(f"same{i}")
        src = d / "in.mp4"
        shutil.copy(mp4, src)
        kind = i % 5
        extra: list = []
        if kind == 0:
            target = src
        elif kind == 1:
            target = d / "sym.mp4"
            target.symlink_to(src)
        elif kind == 2:
            target = d / "hard.mp4"
            os.link(src, target)
        elif kind == 3:  # the input named through the link, OUTPUT the file itself
            link = d / "hard.mp4"
            os.link(src, link)
            target, src = src, link
        else:
            mask = d / "mask.mp4"
            shutil.copy(mp4, mask)
            target = mask
            extra = ["--mask", f"file:{mask}"]
        files = sorted({p for p in d.iterdir() if not p.is_symlink()})
        argv = [src, "-o", target, "--overwrite", "--output-kind", "alpha", "--checkpoint", checkpoint,
                "--no-refine", "-q", *(extra or ["--mask", "chroma"])]
        # Files the case made are "before" the run (not "left"); any change to them is a violation.
        return Run(f"same{i}:{kind}", "same-file", argv, d, frozenset({2}), check=unchanged(*files))

    makers = [paths, options, checkpoints, farm, pipe, signals, enospc, pipe_out, chunk_repeat, side_files,
              same_file]
    weights = [3, 4, 2, 3, 2, 3, 1, 1, 1, 1, 1]
    schedule = [m for m, w in zip(makers, weights) for _ in range(w)]
    i = 0
    while rest > 0:
        made = schedule[i % len(schedule)](i)
        i += 1
        if made is not None:
            runs.append(made)
            rest -= 1
    return runs


# ----------------------------------------------------------------------------- report

def table(results: list[Result]) -> str:
    rows = defaultdict(list)
    for r in results:
        rows[r.run.category].append(r)
    head = ("category", "cases", "exit-code violations", "tracebacks", "hangs", "files left", "inputs modified",
            "runs > 4 GB RSS", "differing repeated chunks", "peak RSS MB", "max s")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total = defaultdict(int)
    for cat in sorted(rows):
        rs = rows[cat]
        vals = (len(rs),
                sum(any(p.startswith("exit ") for p in r.problems) for r in rs),
                sum("traceback" in r.problems for r in rs),
                sum(r.hang for r in rs),
                sum(any(("left" in p or "touched" in p or "replaced" in p or "farm files" in p) for p in r.problems)
                    for r in rs),
                sum(any(p.startswith("inputs modified") for p in r.problems) for r in rs),
                sum(r.peak_rss > RSS_LIMIT for r in rs),
                sum("differing repeated chunk" in r.problems for r in rs))
        for k, v in zip(head[1:], vals):
            total[k] += v
        peak = max(r.peak_rss for r in rs) / 2**20
        lines.append(f"| {cat} | " + " | ".join(map(str, vals)) + f" | {peak:.0f} | {max(r.seconds for r in rs):.1f} |")
    allpeak = max(r.peak_rss for r in results) / 2**20
    lines.append("| **all** | " + " | ".join(str(total[k]) for k in head[1:9])
                 + f" | {allpeak:.0f} | {max(r.seconds for r in results):.1f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--jobs", type=int, default=1, help="cases run at once")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds before a run counts as a hang")
    ap.add_argument("--keep", type=Path, default=None, help="build the corpus here and keep it")
    args = ap.parse_args()
    # The cases get SIGINT's default action even when this script was started with it ignored (a
    # background shell): exec resets a handled signal, not an ignored one. No ``preexec_fn``: it
    # runs Python in the forked child of a pool thread, which deadlocked there in PyAV's
    # thread-local scaler of the main thread (freed in the child, its slice threads gone).
    signal.signal(signal.SIGINT, signal.default_int_handler)

    root = args.keep or Path(tempfile.mkdtemp(prefix="alphagan-fuzz-"))
    root.mkdir(parents=True, exist_ok=True)
    import torch

    from alphagan_video.model import build_generator, save_generator

    torch.manual_seed(0)
    checkpoint = str(root / "tiny.safetensors")
    save_generator(build_generator("tiny"), checkpoint)
    runs = build(root, args.cases, args.seed, checkpoint)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    started = time.monotonic()
    results: list[Result] = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for n, res in enumerate(pool.map(lambda r: execute(r, args.timeout, env), runs), 1):
            results.append(res)
            flag = "  <-- " + "; ".join(res.problems) if res.problems or res.hang else ""
            print(f"[{n:4d}/{len(runs)}] {res.run.category:14s} {res.run.name[:42]:42s} exit {res.code:4d} "
                  f"{res.seconds:6.1f}s {res.peak_rss / 2**20:7.0f} MB{flag}", flush=True)
            if res.problems:
                print("        " + res.stderr.strip().replace("\n", "\n        ")[-600:], flush=True)
    print(f"\n{len(results)} cases, seed {args.seed}, {time.monotonic() - started:.0f} s\n")
    print(table(results))
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    bad = sum(bool(r.problems) or r.hang or r.peak_rss > RSS_LIMIT for r in results)
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
