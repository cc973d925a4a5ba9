"""Open Job Description template (AWS Deadline Cloud's job format) for a farm job.

Two steps: ``Matte`` -- a ``CHUNK[INT]`` task parameter ``Frame`` over ``0-(N-1)`` with the
``TASK_CHUNKING`` extension (contiguous chunks of ``chunk_size`` frames; the scheduler passes
each task its range as ``"A-B"``) running the chunk command of ``WorkerCommands`` -- and
``Assemble``, after all of ``Matte``, running its assemble command.
The chunk size is the job's own (``defaultTaskCount``), so the scheduler's ranges are the job's
plan; a range off that grid is refused by the chunk runner (``farm.job.check_on_plan``), one
spanning several whole chunks is fine, and assembly picks verified segments that tile the clip.

Run it locally with ``openjd run template.json --step Assemble --run-dependencies``
(``pip install openjd-cli``); submit to Deadline Cloud as a job bundle (``deadline bundle
submit DIR`` with the template as ``DIR/template.json``). Shared storage between workers is
assumed (segments and the job file live next to the output).
"""
from __future__ import annotations

import os
from typing import Optional

from alphagan_video.farm.files import WorkerCommands
from alphagan_video.farm.job import FarmJob

SPECIFICATION_VERSION = "jobtemplate-2023-09"


def openjd_template(
    job: FarmJob,
    *,
    commands: WorkerCommands,
    gpus: int = 0,
    cpus: int = 0,
    template_dir: Optional[str] = None,
) -> dict:
    """The job template as a dict (``json.dump`` it). ``commands``: what a worker runs for a chunk
    and for the assembly (``cli.worker_commands``). gpus/cpus > 0 add host requirements
    (``amount.worker.gpu`` / ``amount.worker.vcpu``).

    The ``JobFile`` parameter (type PATH, so farms can map it between mounts) defaults to the
    job file relative to ``template_dir`` (OpenJD requires relative PATH defaults, joined to the
    template's directory); None = the current directory (``... > template.json`` here).
    Override it with ``-p JobFile=/abs/path/OUT.alphagan-job.json``.
    """
    chunk = commands.chunk_argv("{{Param.JobFile}}", "{{Task.Param.Frame}}")
    assemble_argv = commands.assemble_argv("{{Param.JobFile}}")
    matte = {
        "name": "Matte",
        "parameterSpace": {
            "taskParameterDefinitions": [{
                "name": "Frame",
                "type": "CHUNK[INT]",
                "range": f"0-{job.frame_count - 1}",
                "chunks": {"defaultTaskCount": job.chunk_size, "rangeConstraint": "CONTIGUOUS"},
            }],
        },
        "script": {"actions": {"onRun": {"command": chunk[0], "args": chunk[1:]}}},
    }
    amounts = []
    if gpus:
        amounts.append({"name": "amount.worker.gpu", "min": gpus})
    if cpus:
        amounts.append({"name": "amount.worker.vcpu", "min": cpus})
    if amounts:
        matte["hostRequirements"] = {"amounts": amounts}
    assemble = {
        "name": "Assemble",
        "dependencies": [{"dependsOn": "Matte"}],
        "script": {"actions": {"onRun": {
            "command": assemble_argv[0], "args": assemble_argv[1:],
        }}},
    }
    return {
        "specificationVersion": SPECIFICATION_VERSION,
        "extensions": ["TASK_CHUNKING"],
        "name": f"alphagan-video {os.path.basename(job.output)}",
        "parameterDefinitions": [{
            "name": "JobFile",
            "type": "PATH",
            "objectType": "FILE",
            "dataFlow": "INOUT",
            "default": os.path.relpath(job.job_path, template_dir or os.getcwd()),
            "description": "alphagan-video job manifest (settings, frame count, chunk size)",
        }],
        "steps": [matte, assemble],
    }


__all__ = ["openjd_template"]
