"""The tick for RQ's own scheduler: `rq cron usage_entrypoints.rq_cron -u $USAGE_SYNC_REDIS_URL`.

`rq cron` loads a configuration module and keeps the schedule it registers,
so the registration happens when this module is imported; nothing else in the
project imports it. The queue is `USAGE_SYNC_QUEUE` (default `usage-sync`).
`rq cron` reads cron strings in the local timezone, which does not matter for
an every-minute entry: the tick itself reads the minute in
`USAGE_SYNC_TIMEZONE`.
"""

from __future__ import annotations

import os

from rq.cron import register

from usage_entrypoints.jobs import tick_job

register(
    tick_job,
    queue_name=os.environ.get("USAGE_SYNC_QUEUE", "").strip() or "usage-sync",
    cron="* * * * *",
    job_timeout=60,
    result_ttl=600,
    name="usage-sync tick",
)
