"""The sync-one use case: fetch one config's counter and record it."""

from __future__ import annotations

import logging

import attrs

from usage_core.errors import ConcurrentUpdateError, SupersededReadingError, UsageSyncError
from usage_core.ledger import LedgerStep, StepKind, advance
from usage_core.log import NOTICE, ctx
from usage_core.model import Panel, ResellerConfig
from usage_core.ports import (
    ConfigRepository,
    PanelClients,
    PanelRepository,
    ResellerRepository,
)
from usage_core.quota import reseller_total
from usage_core.readings import CounterReading, HardFailure, UsageResult
from usage_core.targets import effective_panel_type, panel_username, resolve_panel

logger = logging.getLogger(__name__)

LEDGER_WRITE_ATTEMPTS = 5


@attrs.frozen
class ResellerTotalUpdate:
    """A reseller's `traffic_used_bytes` before and after a refresh."""

    reseller_id: int
    previous: int
    current: int
    from_configs: int
    forgiven: int


@attrs.frozen
class SyncOneReport:
    """Everything `sync-one` learned and did for one config.

    `config` is None when the id is unknown. `failure` is set when no counter
    could be read (nothing was written); otherwise `reading` and `step` are.
    """

    config_id: int
    config: ResellerConfig | None = None
    panel: Panel | None = None
    username: str | None = None
    reading: CounterReading | None = None
    step: LedgerStep | None = None
    failure: HardFailure | None = None
    reseller: ResellerTotalUpdate | None = None

    @property
    def found(self) -> bool:
        """True when the config exists."""
        return self.config is not None

    @property
    def ok(self) -> bool:
        """True when a counter was read and recorded."""
        return self.found and self.failure is None


def fetch_usage(
    config: ResellerConfig,
    panel: Panel,
    clients: PanelClients,
) -> tuple[str, UsageResult]:
    """Fetch one config's counter from its resolved panel, with the seed's log lines."""
    panel_type = effective_panel_type(config, panel)
    if panel_type is not None and panel.panel_type != config.panel_type:
        logger.warning(
            "Config %s has panel_type %s but panel %s is %s; using the panel's type",
            config.id,
            config.panel_type,
            panel.id,
            panel.panel_type,
            extra=ctx(config_id=config.id, panel_id=panel.id),
        )
    label = panel_type.label if panel_type else config.panel_type
    username = panel_username(config, panel_type)
    if not username:
        logger.warning(
            "%s usage fetch skipped: empty username", label, extra=ctx(config_id=config.id)
        )
        return username, HardFailure("the config has no panel username")
    session = clients.open(panel)
    try:
        result = session.fetch_usage(username)
    finally:
        session.close()
    log_fetch_result(label, username, config.id, panel, result)
    return username, result


def log_fetch_result(
    label: str,
    username: str,
    config_id: int,
    panel: Panel,
    result: UsageResult,
    *,
    success_level: int = logging.INFO,
) -> None:
    """Log a fetch outcome in the original job's words."""
    if isinstance(result, CounterReading):
        if logger.isEnabledFor(success_level):
            logger.log(
                success_level,
                "%s usage for user %s: %s bytes",
                label,
                username,
                result.bytes,
                extra=ctx(config_id=config_id),
            )
    else:
        logger.warning(
            "%s usage fetch failed for user %s (hard failure)",
            label,
            username,
            extra=ctx(config_id=config_id, panel_url=panel.url, reason=result.reason),
        )


_UNSET: object = object()


def record_counter(
    configs: ConfigRepository,
    config_id: int,
    counter: int,
    seen_last_counter: int | object | None = _UNSET,
    *,
    may_reset: bool = True,
) -> LedgerStep | None:
    """Apply `counter` to the config's ledger with a guarded write.

    Re-reads and re-applies when a concurrent writer changed the row in
    between, so neither side's change is lost. None when the config is gone.

    `seen_last_counter` is the ledger's last counter as read before the panel
    was asked; when another sync has recorded a counter since, this reading is
    dropped with SupersededReadingError rather than risk mistaking it for a reset.

    With `may_reset` false (a reply that carried no usage field at all), a
    drop is not taken as a reset: the stored usage is kept, so that the next
    real counter does not count the same bytes twice.
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
        step = advance(snapshot.state, counter)
        if step.kind is StepKind.RESET and not may_reset:
            logger.warning(
                "Config %s: the panel reply had no usage field; keeping the stored usage "
                "instead of treating 0 as a counter reset",
                config_id,
                extra=ctx(config_id=config_id, last_counter=snapshot.state.last_counter),
            )
            return LedgerStep(StepKind.UNCHANGED, counter, snapshot.state, snapshot.state)
        if not step.changed or configs.save_ledger(snapshot, step.after):
            if step.kind is StepKind.RESET:
                logger.log(
                    NOTICE,
                    "Panel counter reset detected for config %s: %s bytes moved to "
                    "settled_usage_bytes",
                    config_id,
                    step.settled_now,
                    extra=ctx(
                        config_id=config_id,
                        previous_counter=snapshot.state.last_counter,
                        counter=counter,
                        settled_bytes=step.after.settled_bytes,
                    ),
                )
            return step
    msg = f"config {config_id}: usage changed under every one of {LEDGER_WRITE_ATTEMPTS} writes"
    raise ConcurrentUpdateError(msg)


def refresh_reseller_total(
    resellers: ResellerRepository, reseller_id: int
) -> ResellerTotalUpdate | None:
    """Recompute and store a reseller's `traffic_used_bytes` from its configs."""
    previous = resellers.used_bytes(reseller_id)
    if previous is None:
        return None
    ledgers = resellers.config_ledgers(reseller_id)
    forgiven = resellers.forgiven_bytes(reseller_id)
    from_configs = reseller_total(ledgers)
    current = reseller_total(ledgers, forgiven)
    if current != previous:
        resellers.set_used_bytes(reseller_id, current)
    return ResellerTotalUpdate(reseller_id, previous, current, from_configs, forgiven)


@attrs.define
class SyncOneConfig:
    """Fetch one config's usage from its panel, record it, refresh its reseller."""

    configs: ConfigRepository
    panels: PanelRepository
    resellers: ResellerRepository
    clients: PanelClients

    def locate(self, config_id: int) -> SyncOneReport:
        """The config and its resolved panel, before anything is fetched."""
        config = self.configs.get(config_id)
        if config is None:
            return SyncOneReport(config_id)
        if config.problem:
            return SyncOneReport(config_id, config, failure=HardFailure(config.problem))
        try:
            resolution = resolve_panel(config, self.panels)
        except UsageSyncError as exc:
            return SyncOneReport(config_id, config, failure=HardFailure(str(exc)))
        if resolution.panel is None:
            logger.warning(resolution.problem or "no panel", extra=ctx(config_id=config.id))
            return SyncOneReport(
                config_id, config, failure=HardFailure(resolution.problem or "no panel")
            )
        return SyncOneReport(config_id, config, panel=resolution.panel)

    def sync(self, located: SyncOneReport) -> SyncOneReport:
        """Fetch and record the counter of a config found by `locate`."""
        config, panel = located.config, located.panel
        if config is None or panel is None or located.failure is not None:
            return located
        username, result = fetch_usage(config, panel, self.clients)
        if isinstance(result, HardFailure):
            return attrs.evolve(located, username=username, failure=result)
        problem = f"config {config.id} was deleted during the sync"
        try:
            step = record_counter(
                self.configs,
                config.id,
                result.bytes,
                config.last_counter,
                may_reset=result.has_usage_field,
            )
        except UsageSyncError as exc:
            step, problem = None, str(exc)
        if step is None:
            logger.error(
                "Failed to record usage for config %s: %s",
                config.id,
                problem,
                extra=ctx(config_id=config.id),
            )
            failure = HardFailure(problem)
            return attrs.evolve(located, username=username, reading=result, failure=failure)
        reseller = self._refresh_reseller(config)
        return attrs.evolve(
            located, username=username, reading=result, step=step, reseller=reseller
        )

    def _refresh_reseller(self, config: ResellerConfig) -> ResellerTotalUpdate | None:
        try:
            reseller = refresh_reseller_total(self.resellers, config.reseller_id)
        except UsageSyncError as exc:
            logger.error(
                "Failed to update the aggregate of reseller %s: %s",
                config.reseller_id,
                exc,
                extra=ctx(reseller_id=config.reseller_id, config_id=config.id),
            )
            return None
        if reseller is not None:
            logger.info(
                "Manual config sync updated reseller aggregate",
                extra=ctx(
                    reseller_id=reseller.reseller_id,
                    config_id=config.id,
                    old_reseller_usage_bytes=reseller.previous,
                    total_from_configs=reseller.from_configs,
                    admin_forgiven_bytes=reseller.forgiven,
                    new_reseller_usage_bytes=reseller.current,
                ),
            )
        return reseller

    def __call__(self, config_id: int) -> SyncOneReport:
        """Locate, fetch and record in one go."""
        return self.sync(self.locate(config_id))
