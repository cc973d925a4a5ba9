"""All-or-nothing file writes: a temporary file beside the target, fsync, then ``os.replace``.

Used for everything a reader may open while it is being (re)written: generator checkpoints,
training checkpoints, farm job manifests and segment records.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from typing import IO, Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb", *, encoding: Optional[str] = None) -> Iterator[IO]:
    """Open a new temporary file beside ``path`` for writing; on a clean exit make it ``path``.

    The temporary file is ``.<name>.<random>.tmp`` in ``path``'s directory (same file system, so the
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
    directory, name = os.path.split(os.fspath(path))
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never share a temporary with a concurrent writer; 0o666: the umask applies.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
