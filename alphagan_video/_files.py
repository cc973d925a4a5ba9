"""Facts about a file read without loading it: its sha256, and the JSON header of a
``.safetensors`` file (tensor table and ``__metadata__``). The one place either is read; used by
the farm (segment and output digests), the checkpoint loader and the command line (``info``).
No torch, no safetensors package."""
from __future__ import annotations

import hashlib
import json
import os
import struct
from typing import Union

PathLike = Union[str, "os.PathLike[str]"]

#: Block size of ``sha256_file``'s reads.
READ_BLOCK = 1 << 20
#: Largest header ``safetensors_header`` accepts (the format's own limit is 100 MB).
MAX_HEADER_BYTES = 100 * 2**20


def sha256_file(path: PathLike) -> str:
    """Hex sha256 of the file at ``path``, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(READ_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def safetensors_header(path: PathLike) -> dict:
    """The JSON header of the ``.safetensors`` file at ``path`` (a little-endian u64 length, then
    that many bytes of JSON); its string metadata is under ``"__metadata__"``.

    Raises:
        OSError: the file cannot be read (FileNotFoundError when it does not exist).
        ValueError: the header size is implausible or the header is not JSON.
        struct.error: the file is shorter than the 8-byte length.
    """
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        if not 2 <= size <= MAX_HEADER_BYTES:
            raise ValueError("bad header size")
        return json.loads(fh.read(size))


__all__ = ["MAX_HEADER_BYTES", "READ_BLOCK", "safetensors_header", "sha256_file"]
