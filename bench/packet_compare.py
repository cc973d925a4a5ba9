"""Byte-for-byte comparison of every output the front-ends write, between two checkouts.

A refactor that claims "same behaviour" proves it here: the same commands run against this
working tree and against another commit (checked out into a temporary git worktree), on the
same generated clips and the bundled sample clip, and every encoded packet (video and audio),
every image-sequence file and every raw ``pipe`` byte is hashed and compared.

    python bench/packet_compare.py --against main~3          # this tree vs. that commit
    python bench/packet_compare.py --record golden.json      # hashes of this tree only
    python bench/packet_compare.py --check golden.json       # this tree vs. recorded hashes

Prints one table row per case (packets compared, differing) and exits 1 when anything differs.
Cases cover every output kind and container, every mask source that runs without downloaded
weights, user and band trimaps, refine/temporal off, tiling, sequential vs overlapped stages,
frame ranges with context, 10-bit input, single images, ``pipe``, ``farm local`` and
``timeline`` (when opentimelineio is installed). Runs on the CPU in a few minutes per tree.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SAMPLE = "alphagan_video/data/sample_astronaut.mp4"


def make_media(d: Path) -> None:
    """Deterministic inputs for every case (made once, shared by both trees)."""
    import cv2
    import numpy as np
    from fractions import Fraction

    from tests.e2e import make_green_screen_video, mask_images, trimap_images, write_gray_sequence
    from tests.media import make_image, make_video

    clip = make_video(str(d / "clip.mp4"), width=96, height=64, frames=10, audio_streams=1)
    write_gray_sequence(d / "masks", mask_images(clip.mask))
    write_gray_sequence(d / "trimaps", trimap_images(clip.mask), pattern="t_%04d.png")
    make_green_screen_video(str(d / "green.mkv"), width=96, height=64, frames=8)
    make_video(str(d / "deep.mov"), width=80, height=48, frames=6, codec="prores_ks",
               pix_fmt="yuv422p10le", ten_bit=True)
    make_image(str(d / "still.png"), width=72, height=56)
    # The clip's background without the square: a clean plate.
    from tests.media import synth_frame

    rgb, mask = synth_frame(0, 96, 64)
    plate = rgb.copy()
    plate[mask > 0] = synth_frame(20, 96, 64)[0][mask > 0]
    cv2.imwrite(str(d / "plate.png"), plate[..., ::-1])
    raw = np.stack([synth_frame(i, 96, 64)[0] for i in range(6)])
    (d / "frames.rgb").write_bytes(raw.tobytes())
    make_video(str(d / "edit.mp4"), width=64, height=48, frames=24, rate=Fraction(24))
    m = np.zeros((48, 64), np.uint8)
    m[12:36, 16:48] = 255
    cv2.imwrite(str(d / "editmask.png"), m)
    (d / "cut.edl").write_text(
        "TITLE: cut\nFCM: NON-DROP FRAME\n\n"
        "001  AX       V     C        00:00:00:02 00:00:00:08 01:00:00:00 01:00:00:06\n"
        f"* FROM CLIP NAME: edit\n* FROM CLIP: {d / 'edit.mp4'}\n"
    )


def cases(media: Path) -> list[tuple[str, list[str], str]]:
    """(name, CLI arguments with {m} = media dir and {o} = output dir, output to hash)."""
    m = "{m}"
    return [
        ("sample_default", ["run", SAMPLE, "-o", "{o}/sample.mov"], "sample.mov"),
        ("file_mask_rgba_mov", ["run", f"{m}/clip.mp4", "-o", "{o}/a.mov", "--mask", f"file:{m}/masks/m_%04d.png"],
         "a.mov"),
        ("chroma_alpha_mkv", ["run", f"{m}/green.mkv", "-o", "{o}/b.mkv", "--mask", "chroma",
                              "--output-kind", "alpha"], "b.mkv"),
        ("band_composite_mp4", ["run", f"{m}/clip.mp4", "-o", "{o}/c.mp4", "--mask", f"file:{m}/masks/m_%04d.png",
                                "--trimap-band", "6", "--output-kind", "composite", "--background", "red"], "c.mp4"),
        ("person_foreground_png_seq", ["run", f"{m}/clip.mp4", "-o", "{o}/fg/f_%04d.png", "--no-temporal",
                                       "--output-kind", "foreground"], "fg"),
        ("exr_no_refine", ["run", f"{m}/clip.mp4", "-o", "{o}/exr/e.%04d.exr", "--no-refine",
                           "--mask", f"file:{m}/masks/m_%04d.png"], "exr"),
        ("user_trimap_png_mov", ["run", f"{m}/clip.mp4", "-o", "{o}/d.mov", "--trimap", f"{m}/trimaps/t_%04d.png",
                                 "--output-kind", "alpha", "--codec", "png"], "d.mov"),
        ("plate", ["run", f"{m}/clip.mp4", "-o", "{o}/p.mov", "--mask", f"plate:{m}/plate.png"], "p.mov"),
        ("frames_context", ["run", f"{m}/clip.mp4", "-o", "{o}/r.mov", "--mask", f"file:{m}/masks/m_%04d.png",
                            "--frames", "3-7", "--context", "3", "--batch-size", "2"], "r.mov"),
        ("sequential_tiling", ["run", f"{m}/clip.mp4", "-o", "{o}/s.mkv", "--no-overlap", "--tiling", "on",
                               "--mask", f"file:{m}/masks/m_%04d.png", "--output-kind", "alpha",
                               "--temporal-strength", "0.8"], "s.mkv"),
        ("ten_bit_prores", ["run", f"{m}/deep.mov", "-o", "{o}/t.mov", "--codec", "prores_aw"], "t.mov"),
        ("still_png", ["run", f"{m}/still.png", "-o", "{o}/still.png"], "still.png"),
        ("farm_local", ["farm", "local", f"{m}/clip.mp4", "-o", "{o}/farm.mov", "--chunk-size", "4",
                        "--mask", f"file:{m}/masks/m_%04d.png"], "farm.mov"),
        ("timeline_edl", ["timeline", f"{m}/cut.edl", "-o", "{o}/tl", "--edl-rate", "24",
                          "--mask", f"file:{m}/editmask.png"], "tl"),
    ]


#: Outputs that are text and may hold absolute paths of the output folder.
TEXT_SUFFIXES = (".otio", ".xml", ".edl", ".json")


def digest_media(path: Path) -> list[str]:
    """sha256 of every packet of every stream (containers) or of each file (sequences, PNGs)."""
    import av

    if path.is_dir():
        def content(p: Path) -> bytes:
            # Timelines name their per-clip files by absolute path: this tree's output folder
            # differs from the other tree's, so it is replaced by a placeholder.
            data = p.read_bytes()
            return data.replace(str(path.resolve()).encode(), b"<OUT>") if p.suffix in TEXT_SUFFIXES else data

        return [f"{p.relative_to(path)}:{hashlib.sha256(content(p)).hexdigest()[:16]}"
                for p in sorted(path.rglob("*")) if p.is_file()]
    if path.suffix in (".png", ".exr", ".rgb", ".raw"):
        return [hashlib.sha256(path.read_bytes()).hexdigest()[:16]]
    out = []
    with av.open(str(path)) as container:
        for packet in container.demux():
            if packet.size == 0:
                continue
            out.append(f"{packet.stream.index}:{packet.pts}:{packet.dts}:"
                       f"{hashlib.sha256(bytes(packet)).hexdigest()[:16]}")
    return out


def run_tree(tree: Path, media: Path, out_root: Path, only: Optional[set[str]]) -> dict[str, list[str]]:
    """Every case through ``python -m alphagan_video`` of ``tree``; -> {case: hashes}."""
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    results: dict[str, list[str]] = {}
    for name, args, target in cases(media):
        if only and name not in only:
            continue
        out = out_root / name
        out.mkdir(parents=True)
        for sequence in ("fg", "exr"):  # sequence patterns need their folder
            (out / sequence).mkdir()
        argv = [a.replace("{m}", str(media)).replace("{o}", str(out)) for a in args]
        if name == "sample_default":
            argv[1] = str(tree / SAMPLE)
        if argv[0] == "run":
            argv.append("--quiet")
        if name == "timeline_edl":
            try:
                import opentimelineio  # noqa: F401
            except ImportError:
                continue
        proc = subprocess.run([sys.executable, "-m", "alphagan_video", *argv], cwd=str(tree), env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            results[name] = [f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"]
            continue
        results[name] = digest_media(out / target)
    if not only or "pipe_raw" in only:
        results["pipe_raw"] = _pipe(tree, media, env)
    return results


def _pipe(tree: Path, media: Path, env: dict) -> list[str]:
    raw = (media / "frames.rgb").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "alphagan_video", "pipe", "--size", "96x64", "--rate", "24",
                           "--mask", f"file:{media}/masks/m_%04d.png", "--batch-size", "2"],
                          cwd=str(tree), env=env, input=raw, capture_output=True)
    if proc.returncode != 0:
        return [f"exit {proc.returncode}: {proc.stderr.decode(errors='replace').strip().splitlines()[-1:]}"]
    frame = 96 * 64 * 4
    return [hashlib.sha256(proc.stdout[i:i + frame]).hexdigest()[:16] for i in range(0, len(proc.stdout), frame)]


def compare(a: dict[str, list[str]], b: dict[str, list[str]]) -> int:
    """Print the table; return the number of cases that differ."""
    bad = 0
    print(f"| {'case':28s} | packets | differing | result |")
    print(f"|{'-' * 30}|---------|-----------|--------|")
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if x is None or y is None:
            print(f"| {name:28s} | {'-':>7} | {'-':>9} | only in one |")
            bad += 1
            continue
        differing = sum(1 for p, q in zip(x, y) if p != q) + abs(len(x) - len(y))
        ok = differing == 0 and not any(h.startswith("exit") for h in x)
        bad += not ok
        print(f"| {name:28s} | {len(x):7d} | {differing:9d} | {'same' if ok else 'DIFFERENT'} |")
        if not ok:
            for p, q in list(zip(x, y))[:3]:
                if p != q:
                    print(f"|   {p}  vs  {q}")
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="git commit to compare this working tree with")
    parser.add_argument("--record", type=Path, help="write this tree's hashes to a JSON file")
    parser.add_argument("--check", type=Path, help="compare this tree with hashes recorded earlier")
    parser.add_argument("--only", nargs="*", help="case names to run (default: all)")
    args = parser.parse_args()
    only = set(args.only) if args.only else None
    with tempfile.TemporaryDirectory(prefix="packet_compare_") as tmp:
        work = Path(tmp)
        (work / "media").mkdir()
        make_media(work / "media")
        started = time.perf_counter()
        here = run_tree(REPO, work / "media", work / "here", only)
        print(f"this tree: {len(here)} cases in {time.perf_counter() - started:.0f} s")
        if args.record:
            args.record.write_text(json.dumps(here, indent=1, sort_keys=True))
            print(f"recorded {args.record}")
        if args.check:
            return 1 if compare(json.loads(args.check.read_text()), here) else 0
        if args.against:
            other = work / "other"
            subprocess.run(["git", "worktree", "add", "--detach", "-q", str(other), args.against], cwd=REPO, check=True)
            try:
                # The shipped weights are the same file in both trees; the worktree has them from git.
                started = time.perf_counter()
                there = run_tree(other, work / "media", work / "there", only)
                print(f"{args.against}: {len(there)} cases in {time.perf_counter() - started:.0f} s")
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=REPO)
                shutil.rmtree(other, ignore_errors=True)
            return 1 if compare(there, here) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
