"""The full sync: every active config of every active traffic reseller.

Configs are grouped by panel so that each panel gets one session (one login)
per run, shared by all its configs. Whatever goes wrong with one config or one
panel is logged and counted, and the run goes on with the others.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime

import attrs

from usage_core.errors import SupersededReadingError
from usage_core.ledger import StepKind
from usage_core.log import NOTICE, ctx
from usage_core.model import Panel, PanelType, ResellerConfig
from usage_core.ports import (
    Clock,
    ConfigRepository,
    PanelClients,
    PanelRepository,
    PanelSession,
    ResellerRepository,
)
from usage_core.readings import CounterReading
from usage_core.sync_one import log_fetch_result, record_counter, refresh_reseller_total
from usage_core.targets import effective_panel_type, panel_username, resolve_panel

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
OUTCOMES = ("updated", "unchanged", "failed", "skipped")


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

    def count(self, panel_type: str, outcome: str) -> None:
        """Count one config's outcome under its panel type."""
        self.counts[panel_type][outcome] += 1

    def total(self, outcome: str) -> int:
        """The number of configs with `outcome`, over every panel type."""
        return sum(counter[outcome] for counter in self.counts.values())

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
    config: ResellerConfig
    type_name: str
    label: str
    username: str


@attrs.define
class SyncAllUsage:
    """Sync the usage of every active config of every active traffic reseller."""

    configs: ConfigRepository
    panels: PanelRepository
    resellers: ResellerRepository
    clients: PanelClients
    clock: Clock
    # Exceptions that must end the run rather than count as one failed config,
    # such as a job runner's timeout, which is an ordinary Exception subclass.
    abort_on: tuple[type[BaseException], ...] = ()

    def __call__(self, progress: Progress | None = None) -> SyncSummary:
        """Run one full sync; `progress(done, total)` is called after each config."""
        summary = SyncSummary(started_at=self.clock.now())
        logger.log(NOTICE, "Starting reseller usage sync")
        reseller_ids = self.resellers.active_traffic_resellers()
        summary.resellers = len(reseller_ids)
        work: list[ResellerConfig] = []
        for reseller_id in reseller_ids:
            logger.info("Syncing usage for reseller %s", reseller_id)
            work += self.configs.active_configs_of(reseller_id)
        summary.configs = len(work)
        groups = self._group_by_panel(work, summary)
        done = summary.total("skipped")
        for panel, targets in groups:
            done = self._sync_panel(panel, targets, summary, done, progress)
        for reseller_id in reseller_ids:
            self._refresh(reseller_id, summary)
        summary.finished_at = self.clock.now()
        logger.log(
            NOTICE,
            "Reseller usage sync completed",
            extra=ctx(eylandoo_configs_processed=summary.eylandoo_configs_processed),
        )
        logger.info("Reseller usage sync summary", extra=ctx(**summary.as_dict()))
        return summary

    def _group_by_panel(
        self, work: list[ResellerConfig], summary: SyncSummary
    ) -> list[tuple[Panel, list[_Target]]]:
        groups: dict[int, tuple[Panel, list[_Target]]] = {}
        for config in work:
            if config.problem:
                logger.error(
                    "Error syncing config %s: %s",
                    config.id,
                    config.problem,
                    extra=ctx(config_id=config.id),
                )
                summary.count(config.panel_type, "failed")
                continue
            try:
                resolution = resolve_panel(config, self.panels)
            except Exception:
                logger.exception(
                    "Failed to resolve the panel of config %s",
                    config.id,
                    extra=ctx(config_id=config.id),
                )
                summary.count(config.panel_type, "failed")
                continue
            panel = resolution.panel
            if panel is None:
                logger.warning(resolution.problem or "no panel", extra=ctx(config_id=config.id))
                summary.count(config.panel_type, "skipped")
                continue
            panel_type = effective_panel_type(config, panel)
            label = panel_type.label if panel_type else panel.panel_type
            type_name = panel_type.value if panel_type else panel.panel_type
            if panel_type is PanelType.EYLANDOO:
                summary.eylandoo_configs_processed += 1
            username = panel_username(config, panel_type)
            if not username:
                logger.warning(
                    "%s usage fetch skipped: empty username",
                    label,
                    extra=ctx(config_id=config.id),
                )
                summary.count(type_name, "skipped")
                continue
            groups.setdefault(panel.id, (panel, []))[1].append(
                _Target(config, type_name, label, username)
            )
        return list(groups.values())

    def _sync_panel(
        self,
        panel: Panel,
        targets: list[_Target],
        summary: SyncSummary,
        done: int,
        progress: Progress | None,
    ) -> int:
        session: PanelSession | None = None
        try:
            session = self.clients.open(panel)
        except Exception:
            logger.exception("Failed to open a session with panel %s", panel.id)
        for target in targets:
            if session is None:
                summary.count(target.type_name, "failed")
            else:
                self._sync_config(session, panel, target, summary)
            done += 1
            if progress is not None:
                progress(done, summary.configs)
        if session is not None:
            session.close()
        return done

    def _sync_config(
        self, session: PanelSession, panel: Panel, target: _Target, summary: SyncSummary
    ) -> None:
        config = target.config
        try:
            result = session.fetch_usage(target.username)
            log_fetch_result(target.label, target.username, config.id, panel, result)
            if not isinstance(result, CounterReading):
                summary.count(target.type_name, "failed")
                return
            step = record_counter(
                self.configs,
                config.id,
                result.bytes,
                config.last_counter,
                may_reset=result.has_usage_field,
            )
        except SupersededReadingError as exc:
            logger.warning(str(exc), extra=ctx(config_id=config.id))
            summary.count(target.type_name, "skipped")
            return
        except Exception as exc:
            if isinstance(exc, self.abort_on):
                raise
            # One bad config never stops the others, whatever went wrong.
            logger.exception(
                "Error syncing config %s: %s",  # the original job's wording
                config.id,
                exc,  # noqa: TRY401
                extra=ctx(config_id=config.id),
            )
            summary.count(target.type_name, "failed")
            return
        if step is None:
            summary.count(target.type_name, "skipped")
        elif step.changed:
            summary.count(target.type_name, "updated")
            summary.resets += step.kind is StepKind.RESET
        else:
            summary.count(target.type_name, "unchanged")

    def _refresh(self, reseller_id: int, summary: SyncSummary) -> None:
        try:
            update = refresh_reseller_total(self.resellers, reseller_id)
        except Exception:
            logger.exception(
                "Failed to update the usage of reseller %s",
                reseller_id,
                extra=ctx(reseller_id=reseller_id),
            )
            return
        if update is not None and update.current != update.previous:
            summary.resellers_updated += 1
            logger.info(
                "Reseller %s usage updated",
                reseller_id,
                extra=ctx(
                    reseller_id=reseller_id,
                    old_traffic_used_bytes=update.previous,
                    new_traffic_used_bytes=update.current,
                ),
            )
