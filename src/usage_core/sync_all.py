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
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, as_completed

import attrs

from usage_core.errors import SupersededReadingError, UsageSyncError
from usage_core.ledger import (
    LedgerState,
    LedgerStep,
    StepKind,
    advance,
    advance_fields,
    kept_drop,
)
from usage_core.log import NOTICE, Line, ctx
from usage_core.model import PanelType, ResellerUsage, SyncWork
from usage_core.plan import (
    NO_BYTES,
    PanelJob,
    ReadRow,
    Target,
    TargetGroup,
    Unread,
    UnreadConfig,
    plan_sync,
)
from usage_core.ports import (
    Clock,
    ConfigRepository,
    NewLedger,
    PanelClients,
    PanelRepository,
    ResellerRepository,
)
from usage_core.quota import changed_totals, reseller_sums, summed_into
from usage_core.readings import CounterReading, HardFailure, UsageResult
from usage_core.recording import (
    log_fetch_result,
    log_kept_usage,
    log_readings,
    log_reset,
    record_counter,
)
from usage_core.summary import FailedConfig, SyncSummary
from usage_core.targets import PanelDirectory, panel_for

logger = logging.getLogger(__name__)

# Called with the summary so far each time a panel's configs are counted.
Progress = Callable[[SyncSummary], None]
WRITE_BATCH = 5000
# Shared rather than built for every config that has no other result.
_PANEL_FAILED = HardFailure("the panel failed")
_NO_RESULT = HardFailure("no result for this user")


@attrs.frozen
class SyncPart:
    """What one job of a fan-out did, and the sums its reseller totals need.

    Attributes:
        reseller_sums: Usage plus settled bytes of every config the job read
            (any status), by reseller id, after its writes.
    """

    summary: SyncSummary
    reseller_sums: dict[int, int]


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

    def __call__(self, progress: Progress | None = None) -> SyncSummary:
        """Run one full sync; `progress(summary)` is called as each panel's configs finish."""
        summary, resellers, sums = self._sync(progress)
        self._update_totals(resellers, sums, summary)
        return self._finished(summary)

    def sync_part(self, panel_ids: frozenset[int]) -> SyncPart:
        """One job of a fan-out: those panels' configs, and their sums for the totals.

        The totals themselves are left to the fan-out's final job (`totals_of_parts`).
        """
        summary, _, sums = self._sync(None, panel_ids)
        return SyncPart(self._finished(summary), sums)

    def panels_with_work(self) -> list[int]:
        """The ids of the panels that active configs resolve to, for a fan-out.

        Asked of the store as distinct panel keys: no config row is read here.
        """
        directory = PanelDirectory(self.panels.all())
        panels = (panel_for(*key, directory) for key in self.configs.active_panel_keys())
        return sorted({panel.id for panel in panels if panel is not None})

    def totals_of_parts(self, sums: Mapping[int, int], covered: frozenset[int]) -> SyncSummary:
        """A fan-out's reseller totals: its panel jobs' `sums`, plus the configs no job read.

        `covered` names the panels whose jobs' sums are in `sums`; only the other
        configs are read here, so that the run reads each row once. With nothing
        covered, every total is recomputed from the database.
        """
        summary = SyncSummary(started_at=self.clock.now())
        resellers = self.resellers.synced()
        summary.resellers = len(resellers)
        rest = PanelDirectory(self.panels.all()).owned_by(covered).complement() if covered else None
        items = self.configs.synced_items(rest)
        self._update_totals(resellers, reseller_sums(items, sums), summary)
        summary.finished_at = self.clock.now()
        return summary

    def _sync(
        self, progress: Progress | None, panel_ids: frozenset[int] | None = None
    ) -> tuple[SyncSummary, list[ResellerUsage], dict[int, int]]:
        """Read, fetch, apply and write; the summary, the resellers and their configs' sums.

        With `panel_ids`, only the configs that those panels own. The rows are
        summed and planned as they are read, so that what is held is the plan's
        columns, not the rows; each panel's go once it is applied.
        """
        summary = SyncSummary(started_at=self.clock.now())
        logger.log(NOTICE, "Starting reseller usage sync")
        directory = PanelDirectory(self.panels.all())
        only = directory.owned_by(panel_ids) if panel_ids is not None else None
        resellers = self.resellers.synced()
        summary.resellers = len(resellers)
        for reseller in resellers:
            logger.info("Syncing usage for reseller %s", reseller.id)
        # Usage plus settled bytes as read, to which each write adds what it moved.
        sums: dict[int, int] = {}
        items = summed_into(sums, self.configs.synced_items(only))
        plan = plan_sync(SyncWork(resellers, items), directory, panel_ids)
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
        jobs = plan.jobs
        del plan
        for job, results in self._fetch(jobs):
            for reseller_id, added in self._apply(job, results, summary).items():
                sums[reseller_id] = sums.get(reseller_id, 0) + added
            # The panel's rows and readings go now, not when the next panel's arrive.
            del job, results
            if progress is not None:
                progress(summary)
        return summary, resellers, sums

    def _finished(self, summary: SyncSummary) -> SyncSummary:
        summary.finished_at = self.clock.now()
        logger.info("Reseller usage sync summary", extra=ctx(**summary.as_dict()))
        logger.log(
            NOTICE,
            "Reseller usage sync completed",
            extra=ctx(eylandoo_configs_processed=summary.eylandoo_configs_processed),
        )
        return summary

    # -- fetching -----------------------------------------------------------------

    def _fetch_panel(self, job: PanelJob) -> dict[str, UsageResult]:
        if job.panel.problem:
            return dict.fromkeys(job.usernames, HardFailure(job.panel.problem))
        session = self.clients.open(job.panel)
        try:
            return session.fetch_many(job.usernames)
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
            # Held by their futures alone: a panel's rows go once it is applied.
            jobs.clear()
            for future in as_completed(futures):
                job = futures.pop(future)
                results = self._results_of(job, future)
                del future  # it holds the readings too
                yield job, results
                del job, results

    def _results_of(
        self, job: PanelJob, future: Future[dict[str, UsageResult]]
    ) -> dict[str, UsageResult] | None:
        """The panel's results; None, logged, when its fetch raised."""
        try:
            return future.result()
        except Exception as exc:
            if isinstance(exc, self.abort_on):
                raise
            logger.exception(
                "Failed to fetch usage from panel %s",
                job.panel.id,
                extra=ctx(panel_id=job.panel.id),
            )
            return None

    # -- recording ----------------------------------------------------------------

    def _apply(
        self, job: PanelJob, results: dict[str, UsageResult] | None, summary: SyncSummary
    ) -> Counter[int]:
        """Apply one panel's readings through the ledger; the bytes added, by reseller.

        A panel may have a quarter of a million configs: they are applied and
        logged a batch at a time, and written once a batch's worth of writes is
        pending, so that no more than about two batches' writes and one batch's
        log lines are held at once.
        """
        missing = _PANEL_FAILED if results is None else _NO_RESULT
        found = results or {}
        panel = job.panel
        failed: list[tuple[Target, HardFailure]] = []
        outcomes: Counter[tuple[str, str]] = Counter()
        added: Counter[int] = Counter()
        writes: list[_Write] = []
        for group in job.groups:
            for start in range(0, len(group), WRITE_BATCH):
                writes += _advance(group, start, found, missing, failed=failed, outcomes=outcomes)
                # Written once a batch's worth is pending: few rows change in most runs.
                if len(writes) >= WRITE_BATCH:
                    added.update(self._write(writes, summary, panel.id))
                    writes = []
        added.update(self._write(writes, summary, panel.id))
        for (type_name, outcome), n in outcomes.items():
            summary.count(type_name, outcome, n)
        summary.panel_read(
            panel.id,
            job.groups[0].type_name if job.groups else panel.type_name,
            read=job.size - len(failed),
            failed=len(failed),
        )
        self._fail_reads(job, failed, summary)
        return added

    def _fail_reads(
        self, job: PanelJob, failed: list[tuple[Target, HardFailure]], summary: SyncSummary
    ) -> None:
        """Log and count the configs whose reading failed."""
        if not failed:
            return
        # A panel that failed as a whole is one line, not one per config.
        panel_down = _panel_wide_failure(job, failed)
        level = logging.DEBUG if panel_down else logging.WARNING
        for target, failure in failed:
            log_fetch_result(
                target.label,
                target.username,
                target.config_id,
                job.panel,
                failure,
                failure_level=level,
            )
            summary.fail(
                target.type_name, FailedConfig(target.config_id, job.panel.id, failure.reason)
            )

    def _write(self, writes: list[_Write], summary: SyncSummary, panel_id: int) -> Counter[int]:
        """Write the changed ledgers in batches; the bytes added to each reseller's configs."""
        added: Counter[int] = Counter()
        for start in range(0, len(writes), WRITE_BATCH):
            batch = writes[start : start + WRITE_BATCH]
            try:
                written = self.configs.save_ledgers([(write.read, write) for write in batch])
            except Exception as exc:
                if isinstance(exc, self.abort_on):
                    raise
                _log_failure(exc, "Failed to write a batch of %s configs", len(batch))
                reason = str(exc) if isinstance(exc, UsageSyncError) else type(exc).__name__
                for write in batch:
                    failure = FailedConfig(write.read.config_id, panel_id, reason)
                    summary.fail(write.type_name, failure)
                continue
            updated: Counter[str] = Counter()
            for write in batch:
                read = write.read
                if read.config_id in written:
                    added[read.reseller_id] += _bytes_added(read, write)
                    if not write.changed:
                        summary.count(write.type_name, "unchanged")
                        continue
                    updated[write.type_name] += 1
                    if write.kind is StepKind.RESET:
                        summary.resets += 1
                        log_reset(read.config_id, write.step())
                    continue
                landed = self._retry(write, summary, panel_id)
                if landed is not None:
                    self._count_step(write, landed, summary)
                    added[read.reseller_id] += _bytes_added(read, landed.after)
            for type_name, n in updated.items():
                summary.count(type_name, "updated", n)
        return added

    def _retry(self, write: _Write, summary: SyncSummary, panel_id: int) -> LedgerStep | None:
        """A row changed under the batch write: re-read and apply it on its own."""
        read, reading, type_name = write.read, write.reading, write.type_name
        config_id = read.config_id
        try:
            retried = record_counter(
                self.configs,
                config_id,
                reading.bytes,
                read.last_counter,
                may_reset=reading.has_usage_field,
                lifetime=reading.lifetime_bytes,
            )
        except SupersededReadingError as exc:
            logger.warning(str(exc), extra=ctx(config_id=config_id))
            summary.count(type_name, "skipped")
            return None
        except UsageSyncError as exc:
            logger.error("Error syncing config %s: %s", config_id, exc)
            summary.fail(type_name, FailedConfig(config_id, panel_id, str(exc)))
            return None
        if retried is None:
            summary.count(type_name, "skipped")
        return retried

    def _count_step(self, write: _Write, step: LedgerStep, summary: SyncSummary) -> None:
        if not step.changed:
            summary.count(write.type_name, "unchanged")
            return
        summary.count(write.type_name, "updated")
        if step.kind is StepKind.RESET:
            summary.resets += 1
            log_reset(write.read.config_id, step)

    # -- totals -------------------------------------------------------------------

    def _update_totals(
        self, resellers: list[ResellerUsage], sums: Mapping[int, int], summary: SyncSummary
    ) -> None:
        changed = changed_totals(resellers, sums)
        if not changed:
            return
        used = {reseller.id: reseller.used_bytes for reseller in resellers}
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


def _advance(
    group: TargetGroup,
    start: int,
    found: dict[str, UsageResult],
    missing: HardFailure,
    *,
    failed: list[tuple[Target, HardFailure]],
    outcomes: Counter[tuple[str, str]],
) -> list[_Write]:
    """Apply the readings of a batch of `group` (from `start`) and log them; the writes.

    A full sync does this for every config, so the ledger runs on the item's
    plain values and objects are built only for the rows that change. Configs
    without a reading go to `failed`; unchanged ones are counted in `outcomes`.
    """
    # The original logged each config's usage for Eylandoo only (at INFO); the
    # others' lines are DEBUG. Written as one record per batch (`log_readings`).
    eylandoo_lines: list[Line] | None = [] if logger.isEnabledFor(logging.INFO) else None
    other_lines: list[Line] | None = [] if logger.isEnabledFor(logging.DEBUG) else None
    writes: list[_Write] = []
    eylandoo = PanelType.EYLANDOO.value
    type_name, label = group.type_name, group.label
    lines = eylandoo_lines if type_name == eylandoo else other_lines
    stop = start + WRITE_BATCH
    unchanged = 0
    rows = zip(
        group.usernames[start:stop],
        group.ids[start:stop],
        group.counters[start:stop],
        group.lifetimes[start:stop],
        group.stale[start:stop],
        strict=True,
    )
    for index, (username, config_id, last_counter, last_lifetime, stale) in enumerate(rows, start):
        result = found.get(username, missing)
        if not isinstance(result, CounterReading):
            failed.append((Target(config_id, type_name, label, username), result))
            continue
        if lines is not None:
            lines.append(((label, username, result.bytes), {"config_id": config_id}))
        counter, lifetime = result.bytes, result.lifetime_bytes
        if (
            counter == last_counter
            and (NO_BYTES if lifetime is None else lifetime) == last_lifetime
            and not stale
        ):
            # The counter the ledger last applied, again: nothing would change.
            unchanged += 1
            continue
        read = group.row(index)
        write = _moved(read, type_name, result)
        if write is None:
            unchanged += 1
        else:
            writes.append(write)
    if unchanged:
        outcomes[(type_name, "unchanged")] += unchanged
    log_readings(logging.INFO, eylandoo_lines or ())
    log_readings(logging.DEBUG, other_lines or ())
    return writes


def _moved(read: ReadRow, type_name: str, reading: CounterReading) -> _Write | None:
    """The write of a row that `reading` moves, or whose stale keys need writing; else None."""
    counter, may_reset = reading.bytes, reading.has_usage_field
    kind, usage, settled, last_counter, last_lifetime = advance_fields(
        read.usage_bytes,
        read.settled_bytes,
        read.last_counter,
        read.last_lifetime,
        counter,
        may_reset=may_reset,
        lifetime=reading.lifetime_bytes,
    )
    same = (
        usage == read.usage_bytes
        and settled == read.settled_bytes
        and last_counter == read.last_counter
        and last_lifetime == read.last_lifetime
    )
    if kept_drop(read.usage_bytes, read.last_counter, counter, may_reset=may_reset):
        log_kept_usage(read.config_id, advance(read.state, counter, may_reset=False))
    if same and not read.stale:
        return None
    return _Write(
        read, type_name, reading, kind, usage, settled, last_counter, last_lifetime, not same
    )


def _bytes_added(read: ReadRow, after: NewLedger) -> int:
    """What writing `after` adds to the config's total as read (usage plus settled)."""
    return after.usage_bytes + after.settled_bytes - read.usage_bytes - read.settled_bytes


@attrs.define(eq=False)
class _Write:
    """A config whose ledger a reading moved, or whose stale keys are written back.

    It holds the ledger's fields after the reading as plain values, and is
    what the store writes (a `NewLedger`): a first sync has one per config.
    """

    read: ReadRow
    type_name: str
    reading: CounterReading
    kind: StepKind
    usage_bytes: int
    settled_bytes: int
    last_counter: int | None
    last_lifetime: int | None
    # False when only stale keys are written back.
    changed: bool

    def step(self) -> LedgerStep:
        """The ledger step, for the log line of a reset."""
        after = LedgerState(
            self.usage_bytes, self.settled_bytes, self.last_counter, self.last_lifetime
        )
        reading = self.reading
        return LedgerStep(
            self.kind, reading.bytes, self.read.state, after, lifetime=reading.lifetime_bytes
        )


def _panel_wide_failure(job: PanelJob, failed: list[tuple[Target, HardFailure]]) -> bool:
    """Log one line when every config of a panel failed for one reason; True then."""
    reasons = {failure.reason for _, failure in failed}
    size = job.size
    if size < 2 or len(failed) < size or len(reasons) != 1:
        return False
    (reason,) = reasons
    logger.warning(
        "Panel %s failed for all its %s configs: %s",
        job.panel.id,
        size,
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
