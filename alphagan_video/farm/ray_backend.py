"""Ray backend: a farm job's chunks as Ray tasks, then assembly on the driver.

For "one user, a few GPU boxes": ``ray start --head`` on one machine, ``ray start`` joining it
on the others, then ``run_ray(job, address="auto")`` (the CLI's ``farm ray`` command).
``address="local"`` starts a private single-machine Ray. Every node must see the same paths
(shared storage), as with any farm. Each task asks for ``num_gpus``/``num_cpus``; Ray sets
``CUDA_VISIBLE_DEVICES`` so the task's ``auto`` device picks its GPU. A task whose worker
dies (node lost, OOM kill, SIGKILL) is retried up to ``max_retries`` times; a retried or rerun
chunk skips its segment when a verified one exists (the job manifest), so nothing is redone.
Errors from bad input or options are not retried (they would fail again).
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

from alphagan_video.farm.files import FarmError, FarmUsageError, missing_extra
from alphagan_video.farm.job import FarmJob


def _chunk_task(job_path: str, first: int, last: int) -> dict:
    """Runs on a Ray worker: the chunk (or its verified segment) -> the record as a dict."""
    from alphagan_video.farm.job import run_chunk
    from alphagan_video.farm.job_file import load_job

    record, ran = run_chunk(load_job(job_path), first, last)
    return {**record.to_dict(), "ran": ran}


def run_ray(
    job: FarmJob,
    *,
    address: str = "auto",
    num_gpus: float = 0,
    num_cpus: float = 1,
    max_retries: int = 3,
    init_kwargs: Optional[dict] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> list[dict]:
    """Run every chunk of ``job`` as a Ray task; returns the segment records (dicts with ``ran``).

    address: ``auto`` (an existing cluster, as ``ray.init(address="auto")``), ``local`` (start a
    private Ray on this machine, bound to 127.0.0.1; reused if this process already started
    one), or ``HOST:PORT`` / ``ray://HOST:10001``. Does not shut Ray down if it was running.
    """
    try:
        import ray
    except ImportError as exc:
        raise missing_extra("ray", "alphagan-video farm ray") from exc
    started = False
    if not ray.is_initialized():
        kwargs = dict(init_kwargs or {})
        kwargs.setdefault("include_dashboard", False)
        kwargs.setdefault("log_to_driver", False)
        kwargs.setdefault("logging_level", logging.WARNING)
        try:
            if address == "local":
                kwargs.setdefault("_node_ip_address", "127.0.0.1")
                ray.init(**kwargs)
            else:
                ray.init(address=address, **kwargs)
        except ConnectionError as exc:
            raise FarmUsageError.about(
                "address", address, f"no Ray cluster reachable ({exc}); start one with 'ray start --head' "
                "or use address local"
            ) from None
        started = True
    try:
        task = ray.remote(_chunk_task).options(
            num_gpus=num_gpus, num_cpus=num_cpus, max_retries=max_retries, retry_exceptions=False,
        )
        chunks = job.chunks()
        pending = {task.remote(job.job_path, a, b): (a, b) for a, b in chunks}
        results: dict[tuple[int, int], dict] = {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                span = pending.pop(ref)
                try:
                    results[span] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    for other in pending:
                        ray.cancel(other)
                    cause = exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
                    raise FarmError(f"chunk {span[0]}-{span[1]} failed on Ray: {cause}") from None
                except ray.exceptions.RayError as exc:
                    raise FarmError(
                        f"chunk {span[0]}-{span[1]} failed on Ray after {max_retries} retries: {exc}; "
                        "rerun the job (finished segments are kept)"
                    ) from None
                if progress is not None:
                    progress(len(results), len(chunks))
        return [results[span] for span in chunks]
    finally:
        if started and address == "local":
            ray.shutdown()


__all__ = ["run_ray"]
