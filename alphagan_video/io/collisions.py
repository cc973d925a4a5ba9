"""Which files a run reads and writes, checked against each other before anything runs.

A run must never write onto a file it reads (the source clip, a mask, a plate, a checkpoint)
nor write two of its outputs onto one file (OUTPUT and ``json_report``). "The same file" is the
same device and inode -- a symlink or a hard link to the source is the source -- and, for paths
that do not exist yet, the same fully resolved path.

Pure checks on path names and ``os.stat``; nothing is created or removed here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Union

from alphagan_video.errors import OutputError

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class RunPath:
    """One path of a run with its role as the user named it (``"INPUT"``, ``"OUTPUT"``, ``"json_report"``).

    ``path`` may be a file, a folder (image sequences read or written) or a ``%04d`` pattern:
    for a pattern the folder it expands in stands in for the file identity, and a collision is
    then only a same-pattern (same resolved text) collision."""

    role: str
    path: PathLike


def _identity(path: PathLike) -> tuple:
    """(device, inode) of an existing path (links followed), else ("path", resolved text)."""
    text = os.fspath(path)
    try:
        st = os.stat(text)
    except (OSError, ValueError):
        return ("path", os.path.realpath(os.path.abspath(text)))
    return ("inode", st.st_dev, st.st_ino)


def _describe(item: RunPath) -> str:
    return f"{item.role} {os.fspath(item.path)}"


def find_collisions(reads: Iterable[RunPath], writes: Iterable[RunPath]) -> list[tuple[RunPath, RunPath]]:
    """Every (write, other) pair where a written path is a read path or another written path.

    Returns pairs in the order the writes are given; empty when the run is safe."""
    reads, writes = list(reads), list(writes)
    read_ids = [(_identity(r.path), r) for r in reads]
    found = []
    seen: list[tuple[tuple, RunPath]] = []
    for w in writes:
        ident = _identity(w.path)
        for rid, r in read_ids:
            if rid == ident:
                found.append((w, r))
        for sid, s in seen:
            if sid == ident:
                found.append((w, s))
        seen.append((ident, w))
    return found


def check_no_collisions(reads: Iterable[RunPath], writes: Iterable[RunPath]) -> None:
    """Raise ``OutputError`` (exit 2) naming the first written path that is a read path or
    another written path -- through symlinks and hard links too;
    overwriting what the run reads destroys the source (``output.overwrite`` never allows it)."""
    writes = list(writes)
    collisions = find_collisions(reads, writes)
    if not collisions:
        return
    w, other = collisions[0]
    if any(other is x for x in writes):
        raise OutputError(f"{_describe(w)} is the same file as {_describe(other)}: "
                          f"give them different names")
    raise OutputError(f"{_describe(w)} is the same file as {_describe(other)}, which this run reads: "
                      f"write to another path (output.overwrite never replaces an input)")


#: Longest file name (bytes) most file systems take (ext4, APFS, NTFS in UTF-16 units).
NAME_MAX = 255


def check_writable_file(item: RunPath) -> None:
    """Raise ``OutputError`` unless a plain file can be created at ``item.path``: its folder exists
    and takes new files, the name fits ``NAME_MAX``, and the path is not a folder. Creates and
    removes one probe file in the folder (the only way to know a folder such as ``/proc`` or a
    read-only mount refuses new files)."""
    path = Path(os.fspath(item.path))
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise OutputError(f"{_describe(item)}: the file name is {len(os.fsencode(path.name))} bytes, "
                          f"longer than the {NAME_MAX} a file system takes: use a shorter name")
    if os.path.isdir(path):
        raise OutputError(f"{_describe(item)} is a folder: give a file name")
    folder = path.parent
    if not os.path.isdir(folder):
        raise OutputError(f"{_describe(item)}: folder {folder} does not exist: create it first")
    probe: Optional[str] = None
    from alphagan_video._atomic import temp_name

    try:
        probe = os.path.join(folder, temp_name(path.name, ".probe"))
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"{_describe(item)}: cannot create a file in {folder} "
                          f"({exc.strerror or exc}): choose a writable folder") from None
    finally:
        if probe is not None:
            try:
                os.remove(probe)
            except OSError:
                pass
