"""The RQ job queue: the sync job with 2 tries and a 600 s timeout."""

from __future__ import annotations

import uuid

from redis import Redis
from rq import Queue, Retry

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
