"""`EnforceQuotas`: one enforcement pass from what the database holds now."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import datetime, tzinfo

import attrs

from usage_core.enforcement.remote import RemoteOperations, RemoteTally
from usage_core.enforcement.rules import (
    ConfigAction,
    ConfigChange,
    Decision,
    EnforcedConfig,
    RemoteOp,
    ResellerAction,
    ResellerState,
    decide,
    reseller_may_change,
)
from usage_core.enforcement.settings import (
    EnforcementMode,
    EnforcementSettings,
    read_enforcement_settings,
)
from usage_core.log import NOTICE, ctx
from usage_core.ports import Clock, EnforcementStore, PanelLookup, SettingsRepository
from usage_core.targets import effective_panel_type, resolve_panel

logger = logging.getLogger(__name__)


@attrs.define
class EnforcementReport:
    """What one pass decided and did (or, in dry-run, would do)."""

    mode: str
    transitions: list[dict[str, object]] = attrs.field(factory=list)
    counts: Counter[str] = attrs.field(factory=Counter)
    remote: RemoteTally = attrs.field(factory=RemoteTally)
    pending_remote: int = 0
    skipped_resellers: int = 0

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form of the report."""
        return {
            "mode": self.mode,
            "suspended": self.counts["suspended"],
            "activated": self.counts["activated"],
            "disabled": self.counts["disabled"],
            "expired": self.counts["expired"],
            "enabled": self.counts["enabled"],
            "remote_done": self.remote.done,
            "remote_failed": self.remote.failed,
            "remote_cancelled": self.remote.cancelled,
            "remote_pending": self.pending_remote,
            "skipped_resellers": self.skipped_resellers,
            "transitions": self.transitions,
        }


_CONFIG_COUNT = {
    ConfigAction.DISABLE: "disabled",
    ConfigAction.EXPIRE: "expired",
    ConfigAction.ENABLE: "enabled",
}


@attrs.define
class EnforceQuotas:
    """Suspend and re-activate resellers, disable and re-enable configs, locally and remotely."""

    store: EnforcementStore
    settings: SettingsRepository
    panels: PanelLookup
    remote: RemoteOperations
    clock: Clock
    tz: tzinfo

    def __call__(self, *, dry_run: bool = False) -> EnforcementReport:
        """One pass; with `dry_run` (or the setting at `dry-run`) nothing is changed."""
        settings = read_enforcement_settings(self.settings)
        mode = EnforcementMode.DRY_RUN if dry_run else settings.mode
        report = EnforcementReport(mode.value)
        if mode is EnforcementMode.OFF:
            logger.info("Quota enforcement is off (%s)", "usage_sync.enforcement")
            return report
        now_local = self.clock.now().astimezone(self.tz).replace(tzinfo=None, microsecond=0)
        for reseller, configs in self._candidates(settings, now_local):
            decision = decide(reseller, configs, settings, now_local)
            if decision is None:
                continue
            operations = {
                c.config.id: self._operation(c, now_local.isoformat()) for c in decision.configs
            }
            if mode is EnforcementMode.ON and not self.store.apply(decision, operations, now_local):
                report.skipped_resellers += 1
                logger.warning(
                    "Reseller %s changed while enforcement applied its decision; "
                    "it is decided again on the next run",
                    reseller.id,
                    extra=ctx(reseller_id=reseller.id),
                )
                continue
            self._report(decision, operations, report, applied=mode is EnforcementMode.ON)
        if mode is EnforcementMode.ON:
            report.remote = self.remote(settings.remote_rate)
        pending = self.store.pending_operations()
        report.pending_remote = len(pending)
        if mode is EnforcementMode.DRY_RUN:
            for config, op in pending:
                report.transitions.append(
                    {
                        "config_id": config.id,
                        "queued_remote": "enable" if op.connects else "disable",
                        "attempts": op.attempts,
                        "last_error": op.last_error,
                    }
                )
        logger.log(NOTICE, "Quota enforcement completed", extra=ctx(**_headline(report)))
        return report

    def _candidates(
        self, settings: EnforcementSettings, now: datetime
    ) -> list[tuple[ResellerState, list[EnforcedConfig]]]:
        """Each reseller with the configs its decision needs, read as little as possible.

        A reseller whose own status changes needs all its configs; an active
        one that stays active needs only its disabled configs (markers to
        re-enable) and, when overrun is disallowed, its active ones (their own
        limits). In the common case, where nobody crosses a threshold, that is
        one read of the resellers and one of the few disabled configs.
        """
        resellers = self.store.enforced_resellers()
        changing = [r.id for r in resellers if reseller_may_change(r, settings, now)]
        staying = [r.id for r in resellers if r.status == "active" and r.id not in set(changing)]
        configs: dict[int, list[EnforcedConfig]] = defaultdict(list)
        for rid, found in self.store.configs_of(sorted(changing)).items():
            configs[rid] += found
        statuses = ["disabled"] if settings.allow_config_overrun else ["disabled", "active"]
        for status in statuses:
            for rid, found in self.store.configs_of(staying, status).items():
                configs[rid] += found
        return [(r, sorted(configs[r.id], key=lambda c: c.id)) for r in resellers]

    def _operation(self, change: ConfigChange, queued_at: str) -> RemoteOp | None:
        """The panel change a transition needs; None when no panel resolves."""
        if resolve_panel(change.config.config, self.panels).panel is None:
            return None
        return RemoteOp(change.action.connects, change.reason.value, queued_at=queued_at)

    def _report(
        self,
        decision: Decision,
        operations: dict[int, RemoteOp | None],
        report: EnforcementReport,
        *,
        applied: bool,
    ) -> None:
        reseller = decision.reseller
        if decision.action is not None:
            report.counts[
                "suspended" if decision.action is ResellerAction.SUSPEND else "activated"
            ] += 1
            report.transitions.append(
                {
                    "reseller_id": reseller.id,
                    "action": decision.action.value,
                    "reason": decision.reason.value if decision.reason else None,
                    "traffic_used_bytes": reseller.used_bytes,
                    "traffic_total_bytes": reseller.total_bytes,
                    "applied": applied,
                }
            )
            if applied:
                logger.info(
                    "Reseller %s %s: %s",
                    reseller.id,
                    "suspended" if decision.action is ResellerAction.SUSPEND else "re-activated",
                    decision.reason,
                    extra=ctx(
                        reseller_id=reseller.id,
                        traffic_used_bytes=reseller.used_bytes,
                        traffic_total_bytes=reseller.total_bytes,
                    ),
                )
        for change in decision.configs:
            report.counts[_CONFIG_COUNT[change.action]] += 1
            config = change.config.config
            op = operations.get(config.id)
            report.transitions.append(
                {
                    "config_id": config.id,
                    "reseller_id": reseller.id,
                    "action": change.action.value,
                    "reason": change.reason.value,
                    "from_status": config.status,
                    "to_status": change.action.status,
                    "panel_id": config.panel_id,
                    "remote_call": None if op is None else ("enable" if op.connects else "disable"),
                    "applied": applied,
                }
            )


def _headline(report: EnforcementReport) -> dict[str, object]:
    summary = report.as_dict()
    summary.pop("transitions")
    return summary


def describe_panel_type(change: ConfigChange, panels: PanelLookup) -> str | None:
    """The panel type a change's remote call goes to, for the app's `panel_type_used`."""
    panel = resolve_panel(change.config.config, panels).panel
    if panel is None:
        return None
    kind = effective_panel_type(change.config.config, panel)
    return kind.value if kind else panel.panel_type
