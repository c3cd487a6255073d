"""Recording a reading: the guarded write of one ledger, and the log lines every path shares."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from usage_core.errors import ConcurrentUpdateError, SupersededReadingError
from usage_core.ledger import LedgerStep, StepKind, advance
from usage_core.log import NOTICE, Line, ctx, log_each
from usage_core.model import Panel
from usage_core.ports import ConfigRepository
from usage_core.readings import CounterReading, UsageResult

logger = logging.getLogger(__name__)

LEDGER_WRITE_ATTEMPTS = 5

_UNSET: object = object()


READ_LINE = "%s usage for user %s: %s bytes"


def log_readings(level: int, lines: Sequence[Line]) -> None:
    """Log `log_fetch_result`'s line for each of many readings, as one record (see `log_each`).

    Each line's arguments are the panel's label, the username and the counter;
    its context, the config id.
    """
    log_each(logger, level, READ_LINE, lines)


def log_fetch_result(
    label: str,
    username: str,
    config_id: int,
    panel: Panel,
    result: UsageResult,
    *,
    success_level: int = logging.INFO,
    failure_level: int = logging.WARNING,
) -> None:
    """Log a fetch outcome in the original job's words."""
    if isinstance(result, CounterReading):
        if logger.isEnabledFor(success_level):
            logger.log(
                success_level,
                READ_LINE,
                label,
                username,
                result.bytes,
                extra=ctx(config_id=config_id),
            )
    elif logger.isEnabledFor(failure_level):
        logger.log(
            failure_level,
            "%s usage fetch failed for user %s (hard failure)",
            label,
            username,
            extra=ctx(config_id=config_id, panel_url=panel.display_url, reason=result.reason),
        )


def log_kept_usage(config_id: int, step: LedgerStep) -> None:
    """Say that a reply without usage fields was not taken as a reset."""
    logger.warning(
        "Config %s: the panel reply had no usage field; keeping the stored usage "
        "instead of treating 0 as a counter reset",
        config_id,
        extra=ctx(config_id=config_id, last_counter=step.before.last_counter),
    )


def log_reset(config_id: int, step: LedgerStep) -> None:
    """Say that a counter reset moved usage into `settled_usage_bytes`."""
    context: dict[str, object] = {
        "config_id": config_id,
        "previous_counter": step.before.last_counter,
        "counter": step.counter,
        "settled_bytes": step.after.settled_bytes,
    }
    if step.lifetime is not None and step.before.last_lifetime is not None:
        context |= {"previous_lifetime": step.before.last_lifetime, "lifetime": step.lifetime}
    logger.log(
        NOTICE,
        "Panel counter reset detected for config %s: %s bytes moved to settled_usage_bytes",
        config_id,
        step.settled_now,
        extra=ctx(**context),
    )


def record_counter(
    configs: ConfigRepository,
    config_id: int,
    counter: int,
    seen_last_counter: int | object | None = _UNSET,
    *,
    may_reset: bool = True,
    lifetime: int | None = None,
) -> LedgerStep | None:
    """Apply `counter` to the config's ledger with a guarded write.

    Re-reads and re-applies when a concurrent writer changed the row in
    between, so neither side's change is lost. None when the config is gone.

    `seen_last_counter` is the ledger's last counter as read before the panel
    was asked; when another sync has recorded a counter since, this reading is
    dropped with SupersededReadingError rather than risk mistaking it for a reset.
    With `may_reset` false, a drop is not taken as a reset; `lifetime` is the
    panel's lifetime counter read with `counter` (see `ledger.advance`).
    """
    for _ in range(LEDGER_WRITE_ATTEMPTS):
        snapshot = configs.load_ledger(config_id)
        if snapshot is None:
            return None
        if seen_last_counter is not _UNSET and snapshot.state.last_counter != seen_last_counter:
            msg = (
                f"config {config_id}: another sync recorded counter "
                f"{snapshot.state.last_counter} while this one fetched {counter}; "
                "this reading was not applied"
            )
            raise SupersededReadingError(msg)
        step = advance(snapshot.state, counter, may_reset=may_reset, lifetime=lifetime)
        if step.ignored_drop:
            log_kept_usage(config_id, step)
        if not (step.changed or snapshot.stale) or config_id in configs.save_ledgers(
            [(snapshot, step.after)]
        ):
            if step.kind is StepKind.RESET:
                log_reset(config_id, step)
            return step
        logger.info(
            "Config %s changed while its usage was being written; retrying",
            config_id,
            extra=ctx(config_id=config_id),
        )
    msg = f"config {config_id}: usage changed under every one of {LEDGER_WRITE_ATTEMPTS} writes"
    raise ConcurrentUpdateError(msg)
