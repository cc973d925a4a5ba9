"""All-or-nothing file writes: a temporary file beside the target, fsync, then ``os.replace``.

Used for everything a reader may open while it is being (re)written: generator checkpoints,
training checkpoints, farm job manifests and segment records (``atomic_write``), and for every
file a muxer or encoder writes (the video writer's outputs and the farm assembly's, through
``StagedFile``): the one way this package publishes a file.

Every temporary this package writes beside a target is named by ``temp_name``: hidden, with the writing process's PID, a random token and
the marker ``alphagan@HOST``. A process killed with SIGKILL cannot remove its temporary;
``remove_stale_temporaries`` (called by the CLI before each run into a folder) deletes those whose
process, on this host, is gone.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
from typing import IO, Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

#: The marker in every temporary's name (followed by ``@HOST``).
TEMP_MARKER = "alphagan"

_TEMP_RE = re.compile(
    r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-(?P<token>[0-9a-f]{8,16})-" + TEMP_MARKER
    + r"@(?P<host>[A-Za-z0-9_]+)(?P<suffix>(?:\.[A-Za-z0-9]+)*)$"
)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname() or "localhost")[:64] or "localhost"


def temp_name(name: str, suffix: str = "") -> str:
    """Hidden temporary name for ``name`` in the same folder: ``.NAME.tmp-PID-TOKEN-alphagan@HOST SUFFIX``.

    ``suffix`` (e.g. ``".mov"``) ends the name so muxers pick the format from it."""
    rest = f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{TEMP_MARKER}@{_host()}{suffix}"
    # File names are limited to 255 bytes: shorten NAME so that any legal OUTPUT name has a temporary.
    room = max(1, 255 - 1 - len(rest.encode()))
    name = os.fsencode(name)[:room].decode("utf-8", "ignore") or "x"
    return f".{name}{rest}"


def parse_temp_name(name: str) -> Optional[tuple[int, str]]:
    """(pid, host) of a name made by ``temp_name``, else None."""
    m = _TEMP_RE.match(name)
    return (int(m.group("pid")), m.group("host")) if m else None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else (or cannot tell): keep its files
    return True


def remove_stale_temporaries(directory: PathLike) -> list[tuple[str, int]]:
    """Delete temporaries (``temp_name``) in ``directory`` left by processes of this host that are gone.

    Files and folders (sequence temporaries) alike. Temporaries of running processes and of
    other hosts (a shared farm folder) are kept. Returns [(path, pid), ...] of what was removed;
    a folder that cannot be listed gives []."""
    import shutil

    directory = os.fspath(directory) or "."
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    host = _host()
    removed = []
    for name in sorted(names):
        parsed = parse_temp_name(name)
        if parsed is None or parsed[1] != host or _process_alive(parsed[0]):
            continue
        path = os.path.join(directory, name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError:
            continue
        removed.append((path, parsed[0]))
    return removed


class StagedFile:
    """A temporary file beside ``path`` that becomes ``path`` only by ``publish``.

    ``tmp`` is ``temp_name(name, suffix)`` in ``path``'s folder (same file system, so the rename
    is atomic; ``suffix`` such as ``".mov"`` lets muxers pick the format from the name; ``name``
    defaults to ``path``'s base name). Nothing is created here: the caller writes ``tmp``.
    ``discard`` removes it; used as a context manager, an exception in the block (Ctrl-C
    included) discards it and propagates, so nothing is left behind.
    """

    def __init__(self, path: PathLike, suffix: str = "", *, name: Optional[str] = None) -> None:
        self.path = os.fspath(path)
        directory, base = os.path.split(self.path)
        self.tmp: Optional[str] = os.path.join(directory, temp_name(base if name is None else name, suffix))

    def publish(self, *, replace: bool = True) -> None:
        """Rename ``tmp`` over ``path``. replace False: raise FileExistsError (the temporary kept,
        for the caller's ``discard``) when ``path`` appeared meanwhile."""
        if self.tmp is None:
            raise ValueError(f"{self.path}: nothing staged to publish")
        if not replace and os.path.exists(self.path):
            raise FileExistsError(self.path)
        os.replace(self.tmp, self.path)
        self.tmp = None

    def discard(self) -> None:
        """Remove the temporary if it exists. Idempotent."""
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.tmp)
            self.tmp = None

    def __enter__(self) -> "StagedFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            with contextlib.suppress(OSError):
                self.discard()


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", *, encoding: Optional[str] = None) -> Iterator[IO]:
    """Open a new temporary file beside ``path`` for writing; on a clean exit make it ``path``.

    The temporary file is ``temp_name(<name>, ".tmp")`` in ``path``'s directory (same file system, so the
    rename is atomic) and is created with the usual permissions (0o666 minus the umask), like a
    plain ``open(path, "w")``. When the ``with`` block ends normally the file is flushed, fsynced
    and renamed over ``path``: readers see the old content or the new, never a part. When the block
    raises (Ctrl-C included) the temporary file is removed, ``path`` is untouched and the exception
    propagates. The directory must exist.

    Args:
        path: the file to write.
        mode: ``"wb"`` (bytes) or ``"w"`` (text).
        encoding: text encoding for ``mode="w"``.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write: mode {mode!r} is not supported; use 'wb' or 'w'")
    staged = StagedFile(path, ".tmp")
    # O_EXCL: never share a temporary with a concurrent writer; 0o666: the umask applies.
    fd = os.open(staged.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    with staged:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        staged.publish()
