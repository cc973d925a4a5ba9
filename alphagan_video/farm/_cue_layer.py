"""OpenCue layer class for matting chunks (imported only when pyoutline is installed).

pyoutline's stock ``Shell`` layer runs its command once per frame of a chunk; a matting chunk
must run once per chunk (one model load, one warm-up, one segment), so this layer runs
``alphagan-video farm chunk JOB --frames FIRST-LAST`` once with the chunk's own range. Render
nodes unpickle it from the outline session, so it lives in the installed package.
"""
from __future__ import annotations

import outline.layer


class MatteChunks(outline.layer.Layer):
    """A layer whose frames are chunked matting tasks. Args: ``executable`` (list of str),
    ``job_file`` (the job manifest path); plus the usual ``range``/``chunk``/``cores``/``gpus``."""

    def __init__(self, name, **args):
        super().__init__(name, **args)
        self.require_arg("executable")
        self.require_arg("job_file")

    def _execute(self, frames):
        frames = [int(f) for f in frames]
        command = list(self.get_arg("executable")) + [
            "farm", "chunk", str(self.get_arg("job_file")), "--frames", f"{min(frames)}-{max(frames)}",
        ]
        self.system(command, frame=frames[0])
