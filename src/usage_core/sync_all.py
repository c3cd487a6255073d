"""The full sync: every active config of every active traffic reseller.

The run reads what it needs in a few queries, asks each panel once for all of
its users (its listing where it has one; single reads for the rest), with the
panels worked on concurrently, applies the usage ledger in memory, and writes
only the rows whose usage changed, in batches of guarded updates. Reseller
totals are computed from the rows already read. Whatever goes wrong with one
config or one panel is logged and counted, and the run goes on.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import datetime

import attrs

from usage_core.errors import SupersededReadingError, UsageSyncError
from usage_core.ledger import LedgerState, LedgerStep, StepKind, advance
from usage_core.log import NOTICE, ctx
from usage_core.model import ConfigFilter, Panel, PanelType, SyncItem, SyncWork
from usage_core.ports import Clock, ConfigRepository, PanelClients, PanelRepository, SyncStore
from usage_core.quota import reseller_total
from usage_core.readings import CounterReading, HardFailure, UsageResult
from usage_core.sync_one import log_fetch_result, record_counter
from usage_core.targets import effective_panel_type, panel_username

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
OUTCOMES = ("updated", "unchanged", "failed", "skipped")
WRITE_BATCH = 5000


@attrs.define
class SyncSummary:
    """What one full sync did, counted per panel type."""

    started_at: datetime
    finished_at: datetime | None = None
    resellers: int = 0
    configs: int = 0
    counts: dict[str, Counter[str]] = attrs.field(factory=lambda: defaultdict(Counter))
    resets: int = 0
    resellers_updated: int = 0
    eylandoo_configs_processed: int = 0
    panels: int = 0

    def count(self, panel_type: str, outcome: str, n: int = 1) -> None:
        """Count `n` configs' outcome under their panel type."""
        self.counts[panel_type][outcome] += n

    def total(self, outcome: str) -> int:
        """The number of configs with `outcome`, over every panel type."""
        return sum(counter[outcome] for counter in self.counts.values())

    @property
    def done(self) -> int:
        """Configs with an outcome so far."""
        return sum(self.total(outcome) for outcome in OUTCOMES)

    @property
    def duration_s(self) -> float:
        """Seconds the run took."""
        end = self.finished_at or self.started_at
        return (end - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form of the summary."""
        return {
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_s": round(self.duration_s, 3),
            "resellers": self.resellers,
            "configs": self.configs,
            "panels": self.panels,
            "fetched": self.total("updated") + self.total("unchanged"),
            **{outcome: self.total(outcome) for outcome in OUTCOMES},
            "resets": self.resets,
            "resellers_updated": self.resellers_updated,
            "per_panel_type": {
                panel_type: {outcome: counter[outcome] for outcome in OUTCOMES}
                for panel_type, counter in sorted(self.counts.items())
            },
            "eylandoo_configs_processed": self.eylandoo_configs_processed,
        }


@attrs.frozen
class _Target:
    item: SyncItem
    type_name: str
    label: str
    username: str


@attrs.define
class _PanelJob:
    panel: Panel
    targets: list[_Target] = attrs.field(factory=list)


def _resolver(panels: list[Panel]) -> Callable[[int | None, str], Panel | None]:
    by_id = {panel.id: panel for panel in panels}
    first_of_type: dict[str, Panel] = {}
    for panel in panels:
        first_of_type.setdefault(panel.panel_type, panel)

    def resolve(panel_id: int | None, panel_type: str) -> Panel | None:
        if panel_id is not None:
            return by_id.get(panel_id)
        return first_of_type.get(panel_type)

    return resolve


@attrs.define
class SyncAllUsage:
    """Sync the usage of every active config of every active traffic reseller."""

    store: SyncStore
    configs: ConfigRepository
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
        """Run one full sync; `progress(done, total)` is called as configs finish.

        With `panel_ids`, only those panels' configs are synced (one job of a
        fan-out); `update_totals=False` leaves reseller totals to a final job.
        """
        summary = SyncSummary(started_at=self.clock.now())
        logger.log(NOTICE, "Starting reseller usage sync")
        work = self.store.load_sync_work(self._filter(panel_ids))
        summary.resellers = len(work.resellers)
        for reseller in work.resellers:
            logger.info("Syncing usage for reseller %s", reseller.id)
        jobs = self._plan(work, summary, panel_ids)
        summary.panels = len(jobs)
        after: dict[int, LedgerState] = {}
        for job, results in self._fetch(jobs):
            after.update(self._apply(job, results, summary))
            if progress is not None:
                progress(summary.done, summary.configs)
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

    def _filter(self, panel_ids: frozenset[int] | None) -> ConfigFilter | None:
        """The configs a fan-out job for `panel_ids` may need, for the store to select."""
        if panel_ids is None:
            return None
        first_of_type: dict[str, int] = {}
        for panel in self.panels.all():
            first_of_type.setdefault(panel.panel_type, panel.id)
        types = frozenset(kind for kind, pid in first_of_type.items() if pid in panel_ids)
        return ConfigFilter(panel_ids, types)

    def panels_with_work(self) -> list[int]:
        """The ids of the panels that have configs to sync, for a fan-out."""
        work = self.store.load_sync_work()
        quiet = SyncSummary(started_at=self.clock.now())
        return sorted(job.panel.id for job in self._plan(work, quiet, None, log=False))

    def refresh_totals(self) -> SyncSummary:
        """Recompute every active traffic reseller's total from the database."""
        summary = SyncSummary(started_at=self.clock.now())
        work = self.store.load_sync_work()
        summary.resellers = len(work.resellers)
        self._update_totals(work, {}, summary)
        summary.finished_at = self.clock.now()
        return summary

    # -- planning ---------------------------------------------------------------

    def _plan(
        self,
        work: SyncWork,
        summary: SyncSummary,
        panel_ids: frozenset[int] | None,
        *,
        log: bool = True,
    ) -> list[_PanelJob]:
        say: Callable[..., None] = logger.log if log else _quiet
        resolve = _resolver(self.panels.all())
        jobs: dict[int, _PanelJob] = {}
        for item in work.items:
            config = item.config
            if config.status != "active":
                continue
            panel = resolve(config.panel_id, config.panel_type)
            if panel_ids is not None and (panel is None or panel.id not in panel_ids):
                # Another job of the fan-out owns this config.
                continue
            summary.configs += 1
            if config.problem:
                say(
                    logging.ERROR,
                    "Error syncing config %s: %s",
                    config.id,
                    config.problem,
                    extra=ctx(config_id=config.id),
                )
                summary.count(config.panel_type, "failed")
                continue
            if panel is None:
                where = f"panel_id: {config.panel_id}" if config.panel_id else "panel_id: null"
                say(
                    logging.WARNING,
                    "No panel found for config %s (%s, type: %s)",
                    config.id,
                    where,
                    config.panel_type,
                    extra=ctx(config_id=config.id),
                )
                summary.count(config.panel_type, "skipped")
                continue
            panel_type = effective_panel_type(config, panel)
            label = panel_type.label if panel_type else panel.panel_type
            type_name = panel_type.value if panel_type else panel.panel_type
            if panel_type is PanelType.EYLANDOO:
                summary.eylandoo_configs_processed += 1
            username = panel_username(config, panel_type)
            if not username:
                say(
                    logging.WARNING,
                    "%s usage fetch skipped: empty username",
                    label,
                    extra=ctx(config_id=config.id),
                )
                summary.count(type_name, "skipped")
                continue
            job = jobs.setdefault(panel.id, _PanelJob(panel))
            job.targets.append(_Target(item, type_name, label, username))
        return list(jobs.values())

    # -- fetching ---------------------------------------------------------------

    def _fetch_panel(self, job: _PanelJob) -> dict[str, UsageResult]:
        if job.panel.problem:
            return dict.fromkeys((t.username for t in job.targets), HardFailure(job.panel.problem))
        session = self.clients.open(job.panel)
        try:
            return session.fetch_many([t.username for t in job.targets])
        finally:
            session.close()

    def _fetch(
        self, jobs: list[_PanelJob]
    ) -> Iterator[tuple[_PanelJob, dict[str, UsageResult] | None]]:
        """Each panel's results as soon as they arrive; None when the panel failed as a whole."""
        if not jobs:
            return
        workers = max(1, min(self.max_parallel_panels, len(jobs)))
        with ThreadPoolExecutor(workers, thread_name_prefix="usage-sync-panel") as pool:
            futures: dict[Future[dict[str, UsageResult]], _PanelJob] = {
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

    # -- recording --------------------------------------------------------------

    def _apply(
        self, job: _PanelJob, results: dict[str, UsageResult] | None, summary: SyncSummary
    ) -> dict[int, LedgerState]:
        """Apply one panel's readings through the ledger; the states now stored."""
        steps: list[tuple[_Target, LedgerStep]] = []
        for target in job.targets:
            config = target.item.config
            result: UsageResult = (
                HardFailure("the panel failed")
                if results is None
                else results.get(target.username, HardFailure("no result for this user"))
            )
            # The original logged each config's usage for Eylandoo only.
            eylandoo = target.type_name == PanelType.EYLANDOO
            log_fetch_result(
                target.label,
                target.username,
                config.id,
                job.panel,
                result,
                success_level=logging.INFO if eylandoo else logging.DEBUG,
            )
            if not isinstance(result, CounterReading):
                summary.count(target.type_name, "failed")
                continue
            step = advance(target.item.snapshot.state, result.bytes)
            if step.kind is StepKind.RESET and not result.has_usage_field:
                logger.warning(
                    "Config %s: the panel reply had no usage field; keeping the stored usage "
                    "instead of treating 0 as a counter reset",
                    config.id,
                    extra=ctx(config_id=config.id),
                )
                step = LedgerStep(StepKind.UNCHANGED, result.bytes, step.before, step.before)
            if step.changed:
                steps.append((target, step))
            else:
                summary.count(target.type_name, "unchanged")
        return self._write(steps, summary)

    def _write(
        self, steps: list[tuple[_Target, LedgerStep]], summary: SyncSummary
    ) -> dict[int, LedgerState]:
        stored: dict[int, LedgerState] = {}
        for batch in _batches(steps, WRITE_BATCH):
            try:
                written = self.store.save_ledgers(
                    [(target.item.snapshot, step.after) for target, step in batch]
                )
            except Exception as exc:
                if isinstance(exc, self.abort_on):
                    raise
                logger.exception("Failed to write a batch of %s configs", len(batch))
                for target, _ in batch:
                    summary.count(target.type_name, "failed")
                continue
            for target, step in batch:
                config_id = target.item.config.id
                if config_id in written:
                    self._count_step(target, step, summary)
                    stored[config_id] = step.after
                else:
                    retried = self._retry(target, step, summary)
                    if retried is not None:
                        stored[config_id] = retried
        return stored

    def _retry(self, target: _Target, step: LedgerStep, summary: SyncSummary) -> LedgerState | None:
        """A row changed under the batch write: re-read and apply it on its own."""
        config = target.item.config
        try:
            retried = record_counter(
                self.configs, config.id, step.counter, target.item.snapshot.state.last_counter
            )
        except SupersededReadingError as exc:
            logger.warning(str(exc), extra=ctx(config_id=config.id))
            summary.count(target.type_name, "skipped")
            return None
        except UsageSyncError as exc:
            logger.error("Error syncing config %s: %s", config.id, exc)
            summary.count(target.type_name, "failed")
            return None
        if retried is None:
            summary.count(target.type_name, "skipped")
            return None
        self._count_step(target, retried, summary)
        return retried.after

    def _count_step(self, target: _Target, step: LedgerStep, summary: SyncSummary) -> None:
        if not step.changed:
            summary.count(target.type_name, "unchanged")
            return
        summary.count(target.type_name, "updated")
        if step.kind is StepKind.RESET:
            summary.resets += 1
            logger.log(
                NOTICE,
                "Panel counter reset detected for config %s: %s bytes moved to settled_usage_bytes",
                target.item.config.id,
                step.settled_now,
                extra=ctx(config_id=target.item.config.id, counter=step.counter),
            )

    # -- totals -----------------------------------------------------------------

    def _update_totals(
        self, work: SyncWork, stored: dict[int, LedgerState], summary: SyncSummary
    ) -> None:
        ledgers: dict[int, list[LedgerState]] = defaultdict(list)
        for item in work.items:
            state = stored.get(item.config.id, item.snapshot.state)
            ledgers[item.config.reseller_id].append(state)
        changed: dict[int, int] = {}
        for reseller in work.resellers:
            total = reseller_total(ledgers.get(reseller.id, []), reseller.forgiven_bytes)
            if total != reseller.used_bytes:
                changed[reseller.id] = total
                logger.info(
                    "Reseller %s usage updated",
                    reseller.id,
                    extra=ctx(
                        reseller_id=reseller.id,
                        old_traffic_used_bytes=reseller.used_bytes,
                        new_traffic_used_bytes=total,
                    ),
                )
        if not changed:
            return
        try:
            self.store.set_used_bytes_many(changed)
        except Exception as exc:
            if isinstance(exc, self.abort_on):
                raise
            logger.exception("Failed to store the totals of %s resellers", len(changed))
            return
        summary.resellers_updated = len(changed)


def _quiet(*_args: object, **_kwargs: object) -> None:
    """A logger stand-in for planning without log lines."""


def _batches(
    steps: list[tuple[_Target, LedgerStep]], size: int
) -> Iterable[list[tuple[_Target, LedgerStep]]]:
    for start in range(0, len(steps), size):
        yield steps[start : start + size]
