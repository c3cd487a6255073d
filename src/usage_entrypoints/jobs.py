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


def sync_job(lock_token: str) -> dict[str, object]:
    """RQ job: the full sync, releasing the unique lock that dispatched it."""
    from rq import get_current_job  # noqa: PLC0415 - only the RQ path needs rq

    container = process_container()
    job = get_current_job()
    # `retries_left` is 0 on the last of the job's tries.
    last_try = job is None or not job.retries_left
    return run_unique(
        lambda: full_sync(container.sync_all(), container.run_history()),
        container.lock(),
        lock_token,
        last_try=last_try,
    )


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
