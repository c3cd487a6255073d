"""The full sync, step by step as the original job: read the work, ask each panel once,
apply the ledger, write the changed rows, update the resellers' totals.

The run reads what it needs in a few queries, asks each panel once for all of
its users (its listing where it has one; single reads for the rest), with the
panels worked on concurrently, applies the usage ledger in memory, and writes
only the rows whose usage changed, in batches of guarded updates. Reseller
totals are computed from the rows already read. Whatever goes wrong with one
config or one panel is logged and counted, and the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

import attrs

from usage_core.errors import SupersededReadingError, UsageSyncError
from usage_core.ledger import LedgerState, LedgerStep, StepKind, advance
from usage_core.log import NOTICE, ctx
from usage_core.model import PanelType, SyncWork
from usage_core.plan import PanelJob, Target, Unread, UnreadConfig, plan_sync
from usage_core.ports import (
    Clock,
    ConfigRepository,
    PanelClients,
    PanelRepository,
    ResellerRepository,
)
from usage_core.quota import changed_totals
from usage_core.readings import CounterReading, HardFailure, UsageResult
from usage_core.recording import log_fetch_result, log_kept_usage, log_reset, record_counter
from usage_core.summary import FailedConfig, SyncSummary
from usage_core.targets import PanelDirectory

logger = logging.getLogger(__name__)

# Called with the summary so far each time a panel's configs are counted.
Progress = Callable[[SyncSummary], None]
WRITE_BATCH = 5000
# Shared rather than built for every config that has no other result.
_PANEL_FAILED = HardFailure("the panel failed")
_NO_RESULT = HardFailure("no result for this user")


@attrs.define
class SyncAllUsage:
    """Sync the usage of every active config of every active traffic reseller."""

    configs: ConfigRepository
    resellers: ResellerRepository
    panels: PanelRepository
    clients: PanelClients
    clock: Clock
    # Exceptions that must end the run rather than count as one failed config,
    # such as a job runner's timeout, which is an ordinary Exception subclass.
    abort_on: tuple[type[BaseException], ...] = ()
    max_parallel_panels: int = 8

    def __call__(
        self,
        progress: Progress | None = None,
        *,
        panel_ids: frozenset[int] | None = None,
        update_totals: bool = True,
    ) -> SyncSummary:
        """Run one full sync; `progress(summary)` is called as each panel's configs finish.

        With `panel_ids`, only those panels' configs are synced (one job of a
        fan-out); `update_totals=False` leaves reseller totals to a final job.
        """
        summary = SyncSummary(started_at=self.clock.now())
        logger.log(NOTICE, "Starting reseller usage sync")
        directory = PanelDirectory(self.panels.all())
        only = directory.owned_by(panel_ids) if panel_ids is not None else None
        work = SyncWork(self.resellers.synced(), self.configs.synced_items(only))
        summary.resellers = len(work.resellers)
        for reseller in work.resellers:
            logger.info("Syncing usage for reseller %s", reseller.id)
        plan = plan_sync(work, directory, panel_ids)
        summary.configs = plan.configs
        summary.eylandoo_configs_processed = plan.eylandoo_configs
        summary.panels = len(plan.jobs)
        for unread in plan.unread:
            _log_unread(unread)
            if unread.why.outcome == "failed":
                config = unread.config
                why = config.problem or unread.why.value
                summary.fail(unread.type_name, FailedConfig(config.id, config.panel_id, why))
            else:
                summary.count(unread.type_name, unread.why.outcome)
        after: dict[int, LedgerState] = {}
        for job, results in self._fetch(plan.jobs):
            after.update(self._apply(job, results, summary))
            if progress is not None:
                progress(summary)
        if update_totals:
            self._update_totals(work, after, summary)
        summary.finished_at = self.clock.now()
        logger.info("Reseller usage sync summary", extra=ctx(**summary.as_dict()))
        logger.log(
            NOTICE,
            "Reseller usage sync completed",
            extra=ctx(eylandoo_configs_processed=summary.eylandoo_configs_processed),
        )
        return summary

    def panels_with_work(self) -> list[int]:
        """The ids of the panels that have configs to sync, for a fan-out."""
        work = SyncWork(self.resellers.synced(), self.configs.synced_items())
        plan = plan_sync(work, PanelDirectory(self.panels.all()))
        return sorted(job.panel.id for job in plan.jobs)

    def refresh_totals(self) -> SyncSummary:
        """Recompute every synced reseller's total from the database."""
        summary = SyncSummary(started_at=self.clock.now())
        work = SyncWork(self.resellers.synced(), self.configs.synced_items())
        summary.resellers = len(work.resellers)
        self._update_totals(work, {}, summary)
        summary.finished_at = self.clock.now()
        return summary

    # -- fetching -----------------------------------------------------------------

    def _fetch_panel(self, job: PanelJob) -> dict[str, UsageResult]:
        if job.panel.problem:
            return dict.fromkeys((t.username for t in job.targets), HardFailure(job.panel.problem))
        session = self.clients.open(job.panel)
        try:
            return session.fetch_many([t.username for t in job.targets])
        finally:
            session.close()

    def _fetch(
        self, jobs: list[PanelJob]
    ) -> Iterator[tuple[PanelJob, dict[str, UsageResult] | None]]:
        """Each panel's results as soon as they arrive; None when the panel failed as a whole."""
        if not jobs:
            return
        workers = max(1, min(self.max_parallel_panels, len(jobs)))
        with ThreadPoolExecutor(workers, thread_name_prefix="usage-sync-panel") as pool:
            futures: dict[Future[dict[str, UsageResult]], PanelJob] = {
                pool.submit(self._fetch_panel, job): job for job in jobs
            }
            for future in as_completed(futures):
                job = futures[future]
                try:
                    yield job, future.result()
                except Exception as exc:
                    if isinstance(exc, self.abort_on):
                        raise
                    logger.exception(
                        "Failed to fetch usage from panel %s",
                        job.panel.id,
                        extra=ctx(panel_id=job.panel.id),
                    )
                    yield job, None

    # -- recording ----------------------------------------------------------------

    def _apply(
        self, job: PanelJob, results: dict[str, UsageResult] | None, summary: SyncSummary
    ) -> dict[int, LedgerState]:
        """Apply one panel's readings through the ledger; the states now stored."""
        steps: list[tuple[Target, LedgerStep]] = []
        found: dict[str, UsageResult]
        if results is None:
            found = dict.fromkeys((target.username for target in job.targets), _PANEL_FAILED)
        else:
            found = {
                target.username: results.get(target.username, _NO_RESULT) for target in job.targets
            }
        panel_down = _panel_wide_failure(job, found)
        for target in job.targets:
            config = target.item.config
            result = found[target.username]
            # The original logged each config's usage for Eylandoo only.
            eylandoo = target.type_name == PanelType.EYLANDOO
            log_fetch_result(
                target.label,
                target.username,
                config.id,
                job.panel,
                result,
                success_level=logging.INFO if eylandoo else logging.DEBUG,
                # A panel that failed as a whole is one line (below), not one per config.
                failure_level=logging.DEBUG if panel_down else logging.WARNING,
            )
            read = isinstance(result, CounterReading)
            summary.panel_read(job.panel.id, target.type_name, ok=read)
            if not isinstance(result, CounterReading):
                summary.fail(target.type_name, FailedConfig(config.id, job.panel.id, result.reason))
                continue
            snapshot = target.item.snapshot
            state = snapshot.state
            if (
                result.bytes == state.last_counter
                and result.lifetime_bytes == state.last_lifetime
                and not snapshot.stale
            ):
                # The counter the ledger last applied, again: `advance` would change nothing.
                summary.count(target.type_name, "unchanged")
                continue
            step = advance(
                state,
                result.bytes,
                may_reset=result.has_usage_field,
                lifetime=result.lifetime_bytes,
            )
            if step.ignored_drop:
                log_kept_usage(config.id, step)
            if step.changed or snapshot.stale:
                steps.append((target, step))
            else:
                summary.count(target.type_name, "unchanged")
        return self._write(steps, summary, job.panel.id)

    def _write(
        self, steps: list[tuple[Target, LedgerStep]], summary: SyncSummary, panel_id: int
    ) -> dict[int, LedgerState]:
        stored: dict[int, LedgerState] = {}
        for start in range(0, len(steps), WRITE_BATCH):
            batch = steps[start : start + WRITE_BATCH]
            try:
                written = self.configs.save_ledgers(
                    [(target.item.snapshot, step.after) for target, step in batch]
                )
            except Exception as exc:
                if isinstance(exc, self.abort_on):
                    raise
                _log_failure(exc, "Failed to write a batch of %s configs", len(batch))
                reason = str(exc) if isinstance(exc, UsageSyncError) else type(exc).__name__
                for target, _ in batch:
                    failure = FailedConfig(target.item.config.id, panel_id, reason)
                    summary.fail(target.type_name, failure)
                continue
            for target, step in batch:
                config_id = target.item.config.id
                landed: LedgerStep | None = step
                if config_id not in written:
                    landed = self._retry(target, step, summary, panel_id)
                if landed is not None:
                    self._count_step(target, landed, summary)
                    stored[config_id] = landed.after
        return stored

    def _retry(
        self, target: Target, step: LedgerStep, summary: SyncSummary, panel_id: int
    ) -> LedgerStep | None:
        """A row changed under the batch write: re-read and apply it on its own."""
        config = target.item.config
        try:
            retried = record_counter(
                self.configs,
                config.id,
                step.counter,
                target.item.snapshot.state.last_counter,
                lifetime=step.lifetime,
            )
        except SupersededReadingError as exc:
            logger.warning(str(exc), extra=ctx(config_id=config.id))
            summary.count(target.type_name, "skipped")
            return None
        except UsageSyncError as exc:
            logger.error("Error syncing config %s: %s", config.id, exc)
            summary.fail(target.type_name, FailedConfig(config.id, panel_id, str(exc)))
            return None
        if retried is None:
            summary.count(target.type_name, "skipped")
        return retried

    def _count_step(self, target: Target, step: LedgerStep, summary: SyncSummary) -> None:
        if not step.changed:
            summary.count(target.type_name, "unchanged")
            return
        summary.count(target.type_name, "updated")
        if step.kind is StepKind.RESET:
            summary.resets += 1
            log_reset(target.item.config.id, step)

    # -- totals -------------------------------------------------------------------

    def _update_totals(
        self, work: SyncWork, stored: dict[int, LedgerState], summary: SyncSummary
    ) -> None:
        changed = changed_totals(work, stored)
        if not changed:
            return
        used = {reseller.id: reseller.used_bytes for reseller in work.resellers}
        for reseller_id, total in changed.items():
            logger.info(
                "Reseller %s usage updated",
                reseller_id,
                extra=ctx(
                    reseller_id=reseller_id,
                    old_traffic_used_bytes=used[reseller_id],
                    new_traffic_used_bytes=total,
                ),
            )
        try:
            self.resellers.set_used_bytes(changed)
        except Exception as exc:
            if isinstance(exc, self.abort_on):
                raise
            _log_failure(exc, "Failed to store the totals of %s resellers", len(changed))
            return
        summary.resellers_updated = len(changed)


def _panel_wide_failure(job: PanelJob, found: dict[str, UsageResult]) -> bool:
    """Log one line when every config of a panel failed for one reason; True then."""
    failures = [r for r in found.values() if isinstance(r, HardFailure)]
    reasons = {failure.reason for failure in failures}
    if len(job.targets) < 2 or len(failures) < len(found) or len(reasons) != 1:
        return False
    (reason,) = reasons
    logger.warning(
        "Panel %s failed for all its %s configs: %s",
        job.panel.id,
        len(job.targets),
        reason,
        extra=ctx(panel_id=job.panel.id, panel_url=job.panel.display_url, reason=reason),
    )
    return True


def _log_failure(exc: Exception, message: str, *args: object) -> None:
    """Log a failed write: a store error by its one-line reason, anything else with its traceback.

    A store error's cause is the driver's exception, whose text holds the statement
    and its parameters (other rows' `meta`); the reason names the problem alone.
    """
    if isinstance(exc, UsageSyncError):
        logger.error(f"{message}: %s", *args, exc, extra=ctx(error=str(exc)))
    else:
        logger.exception(message, *args)


def _log_unread(unread: UnreadConfig) -> None:
    config = unread.config
    if unread.why is Unread.BAD_ROW:
        logger.error(
            "Error syncing config %s: %s",
            config.id,
            config.problem,
            extra=ctx(config_id=config.id),
        )
    elif unread.why is Unread.NO_PANEL:
        where = f"panel_id: {config.panel_id}" if config.panel_id else "panel_id: null"
        logger.warning(
            "No panel found for config %s (%s, type: %s)",
            config.id,
            where,
            config.panel_type,
            extra=ctx(config_id=config.id),
        )
    else:
        logger.warning(
            "%s usage fetch skipped: empty username",
            unread.label,
            extra=ctx(config_id=config.id),
        )
