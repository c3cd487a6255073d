"""The embedded scheduler: a foreground loop that ticks at every minute."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from usage_core.dispatch import TickResult
from usage_core.errors import UsageSyncError
from usage_core.log import ctx
from usage_core.ports import Clock
from usage_entrypoints.collector import rare_collections

logger = logging.getLogger(__name__)

Tick = Callable[[datetime], TickResult]


def seconds_to_next_minute(now: datetime) -> float:
    """Seconds from `now` to the start of the next minute."""
    next_minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return (next_minute - now).total_seconds()


def run_loop(
    tick: Tick,
    clock: Clock,
    sleep: Callable[[float], object],
    should_stop: Callable[[], bool],
) -> int:
    """Tick now and then at the start of every minute until `should_stop()`; the ticks run.

    A tick that raises is logged (a usage-sync error in one line, anything else
    with its traceback) and the loop goes on; a minute that passes
    while a tick (and the job it ran inline) is busy is not caught up, as with
    Laravel's `schedule:run`.
    """
    ticks = 0
    last_minute: datetime | None = None
    while not should_stop():
        now = clock.now()
        minute = now.replace(second=0, microsecond=0)
        if minute != last_minute:
            last_minute = minute
            ticks += 1
            try:
                with rare_collections():
                    tick(now)
            except UsageSyncError as exc:  # the database or Redis, named in one line
                logger.error("Scheduler tick failed: %s", exc, extra=ctx(error=str(exc)))
            except Exception:
                logger.exception("Scheduler tick failed")
        if should_stop():
            break
        sleep(seconds_to_next_minute(clock.now()) + 0.01)
    return ticks
