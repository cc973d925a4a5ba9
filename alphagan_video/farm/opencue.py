"""OpenCue job from a farm job: a chunked matting layer and an assembly layer after it.

Built with ``opencue-pyoutline`` and serialised offline to OpenCue's job-spec XML (what
``cuerun`` sends to Cuebot); submitting needs a Cuebot (``outline.cuerun.launch``), which this
module does not contact. pyoutline keeps a per-job session directory (``outline.yaml``, read by
every render node through ``pycuerun``); unless ``OUTLINE_OUTLINE_SESSION_DIR`` is set it is put
beside the job file (``OUTPUT.alphagan-opencue``), i.e. on the same shared storage.
The layer commands pyoutline writes call its ``opencue_wrap_frame`` wrapper and ``pycuerun``
from this machine's pyoutline installation (``outline.cfg`` ``wrapper_dir``/``bin_dir``, or
``OUTLINE_OUTLINE_WRAPPER_DIR``/``OUTLINE_OUTLINE_BIN_DIR``): render nodes need pyoutline and
alphagan-video installed there too, as usual for pyoutline jobs.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

from alphagan_video.farm.files import FRAMES_FIELD, WorkerCommands, missing_extra
from alphagan_video.farm.job import FarmJob

SESSION_ENV = "OUTLINE_OUTLINE_SESSION_DIR"


def _import_outline(session_dir: str):
    if "outline" not in sys.modules:
        # pyoutline reads its configuration once, at import time.
        os.environ.setdefault(SESSION_ENV, session_dir)
    try:
        import outline
        import outline.cuerun
        import outline.modules.shell
        from alphagan_video.farm._cue_layer import MatteChunks
    except ImportError as exc:
        raise missing_extra("opencue-pyoutline", "alphagan-video farm opencue") from exc
    return outline, MatteChunks


def build_outline(
    job: FarmJob,
    *,
    commands: WorkerCommands,
    show: str = "testing",
    shot: str = "default",
    user: Optional[str] = None,
    cores: float = 2.0,
    gpus: int = 0,
    memory: Optional[str] = None,
    service: Optional[str] = None,
):
    """An ``outline.Outline`` with layers ``matte`` (range 0..N-1, chunk = job.chunk_size, the
    chunk command of ``commands`` once per chunk) and ``assemble`` (one frame, its assemble
    command, depends on all of ``matte``)."""
    outline, MatteChunks = _import_outline(job.output + ".alphagan-opencue")
    name = "alphagan_" + "".join(c if c.isalnum() else "_" for c in os.path.basename(job.output))
    kwargs = {"shot": shot, "show": show}
    if user:
        kwargs["user"] = user
    ol = outline.Outline(name, **kwargs)
    layer_args = {"range": f"0-{job.frame_count - 1}", "chunk": job.chunk_size, "cores": cores}
    if gpus:
        layer_args["gpus"] = gpus
    if memory:
        layer_args["memory"] = memory
    if service:
        layer_args["service"] = service
    matte = MatteChunks("matte", command=commands.chunk_argv(job.job_path, FRAMES_FIELD), **layer_args)
    ol.add_layer(matte)
    assemble = outline.modules.shell.ShellCommand(
        "assemble", command=commands.assemble_argv(job.job_path), cores=1
    )
    assemble.depend_all(matte)
    ol.add_layer(assemble)
    return ol


def serialize_outline(ol) -> str:
    """OpenCue job-spec XML of an outline (offline: no Cuebot contacted)."""
    import outline.cuerun

    return outline.cuerun.OutlineLauncher(ol).serialize()


__all__ = ["build_outline", "serialize_outline"]
