"""The sync-one use case: fetch one config's counter and record it."""

from __future__ import annotations

import logging

import attrs

from usage_core.errors import UsageSyncError
from usage_core.ledger import LedgerStep
from usage_core.log import ctx
from usage_core.model import Panel, ResellerConfig
from usage_core.ports import (
    ConfigRepository,
    PanelClients,
    PanelRepository,
    ResellerRepository,
)
from usage_core.quota import reseller_total
from usage_core.readings import CounterReading, HardFailure, UsageResult
from usage_core.recording import log_fetch_result, record_counter
from usage_core.targets import effective_panel_type, panel_username, resolve_panel

logger = logging.getLogger(__name__)


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
    if panel_type is not None and panel.type_name != config.panel_type:
        logger.warning(
            "Config %s has panel_type %s but panel %s is %s; using the panel's type",
            config.id,
            config.panel_type,
            panel.id,
            panel.type_name,
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


def refresh_reseller_total(
    configs: ConfigRepository, resellers: ResellerRepository, reseller_id: int
) -> ResellerTotalUpdate | None:
    """Recompute and store a reseller's `traffic_used_bytes` from its configs."""
    stored = resellers.usage_of(reseller_id)
    if stored is None:
        return None
    ledgers = configs.ledgers_of(reseller_id)
    from_configs = reseller_total(ledgers)
    current = reseller_total(ledgers, stored.forgiven_bytes)
    if current != stored.used_bytes:
        resellers.set_used_bytes({reseller_id: current})
    return ResellerTotalUpdate(
        reseller_id, stored.used_bytes, current, from_configs, stored.forgiven_bytes
    )


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
                lifetime=result.lifetime_bytes,
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
            reseller = refresh_reseller_total(self.configs, self.resellers, config.reseller_id)
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
