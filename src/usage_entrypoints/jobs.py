"""The job functions RQ runs.

RQ imports jobs by path, so these are plain module-level functions taking only
primitives. Each job builds its own container from the environment and shuts
it down when it ends: a forked work horse never shares the parent's database
connections, and nothing is kept between jobs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from usage_core.dispatch import JOB_NAME, JOB_TIMEOUT_SECONDS
from usage_core.summary import PART_SUMS_KEY
from usage_entrypoints.collector import rare_collections
from usage_entrypoints.container import Container, build_container
from usage_entrypoints.job_names import FINISH_SYNC_JOB, SYNC_JOB, SYNC_PANEL_JOB, TICK_JOB

logger = logging.getLogger(__name__)

__all__ = ["FINISH_SYNC_JOB", "SYNC_JOB", "SYNC_PANEL_JOB", "TICK_JOB"]


@contextmanager
def job_container() -> Iterator[Container]:
    """A container for one job, built from this process's environment."""
    container = build_container(os.environ)
    try:
        with rare_collections():
            yield container
    finally:
        container.shutdown_resources()


def _last_try() -> bool:
    from rq import get_current_job  # noqa: PLC0415 - only the RQ path needs rq

    job = get_current_job()
    # `retries_left` is 0 on the last of the job's tries.
    return job is None or not job.retries_left


def tick_job() -> dict[str, object]:
    """RQ job: one scheduler tick at the current time."""
    with job_container() as container:
        return container.tick()(container.clock().now()).as_dict()


def sync_job(lock_token: str) -> dict[str, object]:
    """RQ job: the full sync, releasing the unique lock that dispatched it.

    With fan-out on (`USAGE_SYNC_FANOUT=panel`) it only queues one job per panel
    and a final job for the reseller totals, which releases the lock instead.
    """
    with job_container() as container:
        run = container.sync_run()
        last_try = _last_try()
        if not container.settings().fanout:
            return run.dispatched(lock_token, last_try=last_try)

        def fan_out() -> dict[str, object]:
            began = time.process_time()
            panel_ids = container.sync_all().panels_with_work()
            job_ids = container.fan_out().enqueue(panel_ids, lock_token)
            logger.info("%s fanned out to %s panel jobs", JOB_NAME, len(panel_ids))
            return _with_cpu({"fanned_out_panels": panel_ids, "jobs": job_ids}, began)

        return run.hand_over(lock_token, fan_out, last_try=last_try)


def sync_panel_job(panel_id: int) -> dict[str, object]:
    """RQ job of a fan-out: one panel's configs, unique per panel; no totals."""
    began = time.process_time()
    with job_container() as container:
        lock = container.panel_lock(panel_id=panel_id)
        token = lock.acquire(JOB_TIMEOUT_SECONDS)
        if token is None:
            logger.info("Panel %s is still being synced by another job; skipping it", panel_id)
            # Not "skipped": that key counts skipped configs when the parts are merged.
            return {"panel_id": panel_id, "not_run": "the panel's lock is held"}
        try:
            part = container.sync_all().sync_part(frozenset({panel_id}))
        finally:
            lock.release(token)
        # The sums go to the totals job, which then reads none of this panel's rows again.
        result = {"panel_id": panel_id, **part.summary.as_dict(), PART_SUMS_KEY: part.reseller_sums}
        return _with_cpu(result, began)


def finish_sync_job(lock_token: str) -> dict[str, object]:
    """RQ job of a fan-out: the reseller totals once every panel job has ended."""
    from rq import get_current_job  # noqa: PLC0415

    began = time.process_time()
    job = get_current_job()
    parts = [] if job is None else [dep.return_value() for dep in job.fetch_dependencies()]
    with job_container() as container:
        summary = container.sync_run().finish_fan_out(
            lock_token, [p for p in parts if isinstance(p, dict)], last_try=_last_try()
        )
    return _with_cpu(summary, began)


def _with_cpu(result: dict[str, object], began: float) -> dict[str, object]:
    """`result` with the CPU seconds its job's process spent since `began`.

    A fan-out's jobs run on any worker: this is what each of them cost, to compare.
    """
    return {**result, "job_cpu_s": round(time.process_time() - began, 3)}
