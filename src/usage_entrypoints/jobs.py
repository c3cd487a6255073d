"""The job functions RQ runs, and the inline runner of the embedded mode.

RQ imports jobs by path, so these are plain module-level functions taking only
primitives. Each process builds its own container on first use: a forked work
horse never shares the parent's database connections.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from usage_core.dispatch import JOB_NAME, run_unique, run_with_tries
from usage_core.ports import Lock, RunHistory
from usage_core.sync_all import SyncAllUsage

if TYPE_CHECKING:
    from usage_entrypoints.container import Container

logger = logging.getLogger(__name__)

TICK_JOB = "usage_entrypoints.jobs.tick_job"
SYNC_JOB = "usage_entrypoints.jobs.sync_job"
SYNC_PANEL_JOB = "usage_entrypoints.jobs.sync_panel_job"
FINISH_SYNC_JOB = "usage_entrypoints.jobs.finish_sync_job"

_process_container: Container | None = None


def process_container() -> Container:
    """This process's container, built from the environment on first use."""
    global _process_container  # noqa: PLW0603 - one container per process, by design
    if _process_container is None:
        from usage_entrypoints.container import build_container  # noqa: PLC0415

        _process_container = build_container(os.environ)
    return _process_container


def full_sync(sync: SyncAllUsage, history: RunHistory) -> dict[str, object]:
    """Run one full sync and keep its summary as the last run's."""
    summary = sync().as_dict()
    history.record(summary)
    return summary


def tick_job() -> dict[str, object]:
    """RQ job: one scheduler tick at the current time."""
    container = process_container()
    return container.tick()(container.clock().now()).as_dict()


def _last_try() -> bool:
    from rq import get_current_job  # noqa: PLC0415 - only the RQ path needs rq

    job = get_current_job()
    # `retries_left` is 0 on the last of the job's tries.
    return job is None or not job.retries_left


def sync_job(lock_token: str) -> dict[str, object]:
    """RQ job: the full sync, releasing the unique lock that dispatched it.

    With fan-out on (`USAGE_SYNC_FANOUT=panel`) it only queues one job per panel
    and a final job for the reseller totals, which releases the lock instead.
    """
    container = process_container()
    last_try = _last_try()
    if container.settings().fanout:
        try:
            panel_ids = container.sync_all().panels_with_work()
            job_ids = container.fan_out().enqueue(panel_ids, lock_token)
        except BaseException:
            if last_try:
                container.lock().release(lock_token)
            raise
        logger.info("%s fanned out to %s panel jobs", JOB_NAME, len(panel_ids))
        return {"fanned_out_panels": panel_ids, "jobs": job_ids}
    return run_unique(
        lambda: full_sync(container.sync_all(), container.run_history()),
        container.lock(),
        lock_token,
        last_try=last_try,
    )


def sync_panel_job(panel_id: int) -> dict[str, object]:
    """RQ job of a fan-out: one panel's configs, unique per panel; no totals."""
    from usage_core.dispatch import JOB_TIMEOUT_SECONDS  # noqa: PLC0415

    container = process_container()
    lock = container.panel_lock(panel_id=panel_id)
    token = lock.acquire(JOB_TIMEOUT_SECONDS)
    if token is None:
        logger.info("Panel %s is still being synced by another job; skipping it", panel_id)
        return {"panel_id": panel_id, "skipped": "the panel's lock is held"}
    try:
        summary = container.sync_all()(panel_ids=frozenset({panel_id}), update_totals=False)
    finally:
        lock.release(token)
    return {"panel_id": panel_id, **summary.as_dict()}


def finish_sync_job(lock_token: str) -> dict[str, object]:
    """RQ job of a fan-out: the reseller totals once every panel job has ended."""
    from rq import get_current_job  # noqa: PLC0415

    container = process_container()

    def finish() -> dict[str, object]:
        job = get_current_job()
        parts = [] if job is None else [dep.return_value() for dep in job.fetch_dependencies()]
        summary = merge_summaries(
            [p for p in parts if isinstance(p, dict)],
            container.sync_all().refresh_totals().as_dict(),
        )
        container.run_history().record(summary)
        return summary

    return run_unique(finish, container.lock(), lock_token, last_try=_last_try())


def merge_summaries(
    panels: list[dict[str, object]], totals: dict[str, object]
) -> dict[str, object]:
    """One run summary from the panel jobs' summaries and the totals job's."""
    merged: dict[str, object] = dict(totals)
    for key in ("configs", "fetched", "updated", "unchanged", "failed", "skipped", "resets"):
        merged[key] = sum(int(str(p.get(key, 0) or 0)) for p in panels)
    merged["eylandoo_configs_processed"] = sum(
        int(str(p.get("eylandoo_configs_processed", 0) or 0)) for p in panels
    )
    merged["panels"] = len(panels)
    per_type: dict[str, dict[str, int]] = {}
    for part in panels:
        counts = part.get("per_panel_type")
        if isinstance(counts, dict):
            for panel_type, outcomes in counts.items():
                target = per_type.setdefault(panel_type, {})
                for outcome, n in outcomes.items():
                    target[outcome] = target.get(outcome, 0) + int(n)
    merged["per_panel_type"] = per_type
    starts = [str(p["started_at"]) for p in panels if p.get("started_at")]
    if starts:
        merged["started_at"] = min(starts)
    return merged


class InlineJobQueue:
    """The embedded mode's queue: runs the sync now, like Laravel's `sync` driver."""

    def __init__(self, sync: Callable[[], SyncAllUsage], lock: Lock, history: RunHistory) -> None:
        self._sync = sync
        self._lock = lock
        self._history = history

    def enqueue_sync(self, lock_token: str) -> str:
        """Run the job with its tries; failures are logged, not raised into the tick."""
        job_id = f"{JOB_NAME}-inline-{uuid.uuid4().hex[:12]}"
        try:
            run_with_tries(lambda: full_sync(self._sync(), self._history), self._lock, lock_token)
        except Exception:
            logger.exception("%s %s failed on its last try", JOB_NAME, job_id)
        return job_id
