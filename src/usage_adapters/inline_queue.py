"""The embedded mode's job queue: the sync runs at once, in this process."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from usage_core.dispatch import JOB_NAME
from usage_core.errors import UsageSyncError
from usage_core.run import SyncRun

logger = logging.getLogger(__name__)


class InlineJobQueue:
    """Runs the job now, with its tries, like Laravel's `sync` queue driver."""

    def __init__(self, run: Callable[[], SyncRun]) -> None:
        self._run = run

    def enqueue_sync(self, lock_token: str) -> str:
        """Run the job; a failure on its last try is logged, not raised into the tick."""
        job_id = f"{JOB_NAME}-inline-{uuid.uuid4().hex[:12]}"
        try:
            self._run().with_tries(lock_token)
        except UsageSyncError as exc:  # the database or Redis: its reason in one line
            logger.error("%s %s failed on its last try: %s", JOB_NAME, job_id, exc)
        except Exception:
            logger.exception("%s %s failed on its last try", JOB_NAME, job_id)
        return job_id
