"""The RQ job queue: the sync job with 2 tries and a 600 s timeout."""

from __future__ import annotations

import uuid

from redis import Redis
from rq import Queue, Retry
from rq.job import Dependency

from usage_core.dispatch import JOB_NAME, JOB_TIMEOUT_SECONDS, JOB_TRIES

RESULT_TTL_SECONDS = 3600
FAILURE_TTL_SECONDS = 7 * 24 * 3600


class RqJobQueue:
    """Queues the sync job, named by its import path, on one RQ queue."""

    def __init__(self, redis: Redis, queue_name: str, job_path: str) -> None:
        self.queue = Queue(queue_name, connection=redis)
        self._job_path = job_path

    def enqueue_sync(self, lock_token: str) -> str:
        """Queue one sync carrying the lock token it must release; the job id."""
        job = self.queue.enqueue(
            self._job_path,
            args=(lock_token,),
            job_id=f"{JOB_NAME}-{uuid.uuid4().hex}",
            job_timeout=JOB_TIMEOUT_SECONDS,
            retry=Retry(max=JOB_TRIES - 1),
            result_ttl=RESULT_TTL_SECONDS,
            failure_ttl=FAILURE_TTL_SECONDS,
            description=JOB_NAME,
        )
        return str(job.id)


class RqFanOut:
    """Queues one job per panel and a final job that depends on all of them."""

    def __init__(
        self, redis: Redis, queue_name: str, panel_job_path: str, finish_job_path: str
    ) -> None:
        self.queue = Queue(queue_name, connection=redis)
        self._panel_job = panel_job_path
        self._finish_job = finish_job_path

    def enqueue(self, panel_ids: list[int], lock_token: str) -> list[str]:
        """Queue the panel jobs and the final job carrying the lock token; their ids."""
        run = uuid.uuid4().hex[:12]
        common = {
            "job_timeout": JOB_TIMEOUT_SECONDS,
            "retry": Retry(max=JOB_TRIES - 1),
            "result_ttl": RESULT_TTL_SECONDS,
            "failure_ttl": FAILURE_TTL_SECONDS,
        }
        panel_jobs = [
            self.queue.enqueue(
                self._panel_job,
                args=(panel_id,),
                job_id=f"{JOB_NAME}-{run}-panel-{panel_id}",
                description=f"{JOB_NAME} panel {panel_id}",
                **common,
            )
            for panel_id in panel_ids
        ]
        final = self.queue.enqueue(
            self._finish_job,
            args=(lock_token,),
            job_id=f"{JOB_NAME}-{run}-totals",
            description=f"{JOB_NAME} reseller totals",
            # The totals run whatever became of each panel, as the single job does.
            depends_on=Dependency(jobs=panel_jobs, allow_failure=True) if panel_jobs else None,
            **common,
        )
        return [str(job.id) for job in [*panel_jobs, final]]
