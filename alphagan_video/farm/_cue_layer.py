"""OpenCue layer class for matting chunks (imported only when pyoutline is installed).

pyoutline's stock ``Shell`` layer runs its command once per frame of a chunk; a matting chunk
must run once per chunk (one model load, one warm-up, one segment), so this layer runs its
command once with the chunk's own range in place of ``files.FRAMES_FIELD``. Render nodes
unpickle it from the outline session, so it lives in the installed package.
"""
from __future__ import annotations

import outline.layer

from alphagan_video.farm.files import FRAMES_FIELD


class MatteChunks(outline.layer.Layer):
    """A layer whose frames are chunked matting tasks. Args: ``command`` (list of str, with a
    ``FRAMES_FIELD`` argument that becomes ``"FIRST-LAST"``); plus the usual
    ``range``/``chunk``/``cores``/``gpus``."""

    def __init__(self, name, **args):
        super().__init__(name, **args)
        self.require_arg("command")

    def _execute(self, frames):
        frames = [int(f) for f in frames]
        span = f"{min(frames)}-{max(frames)}"
        command = [span if a == FRAMES_FIELD else str(a) for a in self.get_arg("command")]
        self.system(command, frame=frames[0])
