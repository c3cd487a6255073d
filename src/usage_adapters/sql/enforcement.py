"""What quota enforcement reads and writes in the app's tables.

A transition (a reseller's status, its configs' statuses and markers, one
`reseller_config_events` row and one `audit_logs` row per change, and the
remote operation each config still owes its panel) is written in one
transaction, guarded on the statuses it was decided from. The remote
operation waits in the config's own `meta`, under `usage_sync_remote_op`:
the outbox travels with the row it is about, needs no table of its own, and
a later transition replaces it atomically. Every `meta` change is an atomic
JSON update of named keys; the app's other keys are never rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Text, cast, insert, select, update

from usage_adapters.sql import tables as t
from usage_adapters.sql.engine import dialect_of
from usage_adapters.sql.errors import translated
from usage_adapters.sql.meta import json_update, meta_text_guard, parse_meta
from usage_core.enforcement.rules import (
    ConfigAction,
    ConfigChange,
    Decision,
    EnforcedConfig,
    Markers,
    Reason,
    RemoteOp,
    ResellerAction,
    ResellerState,
    Suspension,
)
from usage_core.errors import StoreError
from usage_core.log import ctx
from usage_core.model import ResellerConfig

logger = logging.getLogger(__name__)

OUTBOX_KEY = "usage_sync_remote_op"
USER_AGENT = "usage-sync"
# The app's markers of a config disabled with its reseller (HEAD's job and enforcer).
QUOTA_MARKERS = (
    "disabled_by_reseller_suspension",
    "disabled_by_reseller_suspension_reason",
    "disabled_by_reseller_suspension_at",
)
WINDOW_MARKER = "suspended_by_time_window"
OWNER_MARKER = "disabled_by_reseller_id"
DISABLED_AT_MARKER = "disabled_at"
ALL_MARKERS = (*QUOTA_MARKERS, WINDOW_MARKER, OWNER_MARKER, DISABLED_AT_MARKER)
# Audit actions that record a reseller's suspension, in the app's versions.
SUSPENSION_ACTIONS = (
    "reseller_suspended",
    "reseller_suspended_by_enforcement",
    "reseller_time_window_suspended",
)
# The app's observer writes this beside every status change; it says nothing of why.
_OBSERVER_REASON = "audit_reseller_status_changed"
_TRUTHY = (True, 1, "1", "true")

_r, _c = t.resellers.c, t.reseller_configs.c
_META_TEXT = cast(_c.meta, Text).label("meta_text")


def _truthy(value: object) -> bool:
    """The app's marker test: true, 1, "1" or "true" (7d607d9)."""
    return value in _TRUTHY and value is not False


def _markers(meta: Mapping[str, object]) -> Markers:
    owner = meta.get(OWNER_MARKER)
    return Markers(
        by_quota=_truthy(meta.get(QUOTA_MARKERS[0])),
        by_window=_truthy(meta.get(WINDOW_MARKER)),
        reseller_id=owner if isinstance(owner, int) and not isinstance(owner, bool) else None,
    )


def _op(value: object) -> RemoteOp | None:
    if not isinstance(value, dict) or not isinstance(value.get("connects"), bool):
        return None
    attempts = value.get("attempts")
    event_id, audit_id = value.get("event_id"), value.get("audit_id")
    last_error = value.get("last_error")
    return RemoteOp(
        connects=value["connects"],
        reason=str(value.get("reason") or ""),
        attempts=attempts if isinstance(attempts, int) else 0,
        last_error=last_error if isinstance(last_error, str) else None,
        event_id=event_id if isinstance(event_id, int) else None,
        audit_id=audit_id if isinstance(audit_id, int) else None,
        queued_at=str(value.get("queued_at") or ""),
    )


def _op_json(op: RemoteOp) -> dict[str, object]:
    return {
        "connects": op.connects,
        "reason": op.reason,
        "attempts": op.attempts,
        "last_error": op.last_error,
        "event_id": op.event_id,
        "audit_id": op.audit_id,
        "queued_at": op.queued_at,
    }


def _when(value: object) -> datetime | None:
    """A timestamp column as a naive datetime (SQLite may hand back text)."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _config(row: Any) -> EnforcedConfig | None:
    """A config row for enforcement; None (logged) when its `meta` cannot be read."""
    try:
        meta = parse_meta(row.id, row.meta_text)
    except StoreError as exc:
        logger.error(
            "%s; enforcement leaves config %s as it is", exc, row.id, extra=ctx(config_id=row.id)
        )
        return None
    config = ResellerConfig(
        id=row.id,
        reseller_id=row.reseller_id,
        status=row.status,
        panel_type=row.panel_type,
        panel_id=row.panel_id,
        panel_user_id=row.panel_user_id,
        external_username=row.external_username,
        usage_bytes=int(row.usage_bytes or 0),
        traffic_limit_bytes=int(row.traffic_limit_bytes or 0),
    )
    return EnforcedConfig(config, _when(row.expires_at), _markers(meta), _op(meta.get(OUTBOX_KEY)))


_CONFIG_QUERY = select(
    _c.id,
    _c.reseller_id,
    _c.status,
    _c.panel_type,
    _c.panel_id,
    _c.panel_user_id,
    _c.external_username,
    _c.usage_bytes,
    _c.traffic_limit_bytes,
    _c.expires_at,
    _META_TEXT,
).where(_c.deleted_at.is_(None))


class SqlEnforcementStore:
    """The `EnforcementStore` port over the app's tables."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = dialect_of(engine)

    # -- reading -----------------------------------------------------------------

    @translated
    def enforced_resellers(self) -> list[ResellerState]:
        """Every `traffic` reseller that is active or suspended, in id order."""
        query = (
            select(
                _r.id,
                _r.type,
                _r.status,
                _r.traffic_total_bytes,
                _r.traffic_used_bytes,
                _r.window_starts_at,
                _r.window_ends_at,
            )
            .where(_r.type == "traffic", _r.status.in_(("active", "suspended")))
            .order_by(_r.id)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
            how = self._suspensions(conn, [int(r.id) for r in rows if r.status == "suspended"])
        return [
            ResellerState(
                id=int(row.id),
                type=row.type,
                status=row.status,
                total_bytes=None
                if row.traffic_total_bytes is None
                else int(row.traffic_total_bytes),
                used_bytes=int(row.traffic_used_bytes or 0),
                window_starts_at=_when(row.window_starts_at),
                window_ends_at=_when(row.window_ends_at),
                suspension=how.get(int(row.id), Suspension.MANUAL)
                if row.status == "suspended"
                else None,
            )
            for row in rows
        ]

    @translated
    def configs_of(
        self, reseller_ids: Sequence[int], status: str | None = None
    ) -> dict[int, list[EnforcedConfig]]:
        """The non-deleted configs of these resellers (only those in `status` when given)."""
        found: dict[int, list[EnforcedConfig]] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(list(reseller_ids)):
                query = _CONFIG_QUERY.where(_c.reseller_id.in_(chunk))
                if status is not None:
                    query = query.where(_c.status == status)
                for row in conn.execute(query.order_by(_c.id)):
                    config = _config(row)
                    if config is not None:
                        found.setdefault(config.config.reseller_id, []).append(config)
        return found

    def _suspensions(self, conn: Connection, reseller_ids: list[int]) -> dict[int, Suspension]:
        """Who suspended each reseller, by its latest suspension record with a reason."""
        a = t.audit_logs.c
        latest: dict[int, tuple[int, str]] = {}
        for chunk in _chunks(reseller_ids):
            query = select(a.id, a.target_id, a.reason).where(
                a.target_type == "reseller",
                a.target_id.in_(chunk),
                a.action.in_(SUSPENSION_ACTIONS),
            )
            for row in conn.execute(query):
                reason = row.reason or ""
                if reason == _OBSERVER_REASON:
                    continue
                target = int(row.target_id)
                if target not in latest or row.id > latest[target][0]:
                    latest[target] = (int(row.id), reason)
        return {
            rid: Suspension.AUTOMATIC
            if "quota" in reason or "window" in reason
            else Suspension.MANUAL
            for rid, (_, reason) in latest.items()
        }

    @translated
    def pending_operations(self) -> list[tuple[EnforcedConfig, RemoteOp]]:
        """Every config with a queued remote operation."""
        query = _CONFIG_QUERY.where(cast(_c.meta, Text).like(f"%{OUTBOX_KEY}%")).order_by(_c.id)
        found = []
        with self._engine.connect() as conn:
            for row in conn.execute(query):
                config = _config(row)
                if config is not None and config.pending is not None:
                    found.append((config, config.pending))
        return found

    # -- writing -----------------------------------------------------------------

    @translated
    def apply(
        self, decision: Decision, operations: Mapping[int, RemoteOp | None], now: datetime
    ) -> bool:
        """One reseller's decision, in one transaction guarded on the statuses read."""
        reseller = decision.reseller
        with self._engine.begin() as conn:
            if decision.action is not None and not self._reseller(conn, decision, now):
                conn.rollback()
                return False
            for change in decision.configs:
                op = operations.get(change.config.id)
                if not self._config_change(conn, reseller.id, change, op, now):
                    conn.rollback()
                    return False
        return True

    def _reseller(self, conn: Connection, decision: Decision, now: datetime) -> bool:
        reseller = decision.reseller
        suspend = decision.action is ResellerAction.SUSPEND
        new_status = "suspended" if suspend else "active"
        changed = conn.execute(
            update(t.resellers)
            .where(_r.id == reseller.id, _r.status == reseller.status)
            .values(status=new_status, updated_at=now)
        ).rowcount
        if changed != 1:
            return False
        ends = reseller.window_ends_at
        self._audit(
            conn,
            action="reseller_suspended" if suspend else "reseller_activated",
            target_type="reseller",
            target_id=reseller.id,
            reason=str(decision.reason),
            meta={
                "traffic_used_bytes": reseller.used_bytes,
                "traffic_total_bytes": reseller.total_bytes,
                "window_ends_at": ends.isoformat(sep=" ") if ends else None,
            },
            now=now,
        )
        return True

    def _config_change(
        self,
        conn: Connection,
        reseller_id: int,
        change: ConfigChange,
        op: RemoteOp | None,
        now: datetime,
    ) -> bool:
        config = change.config.config
        enabling = change.action is ConfigAction.ENABLE
        remote = {
            "remote_success": False,
            "attempts": 0,
            "last_error": "queued" if op is not None else "No panel configured",
            "panel_id": config.panel_id,
            "panel_type_used": self._panel_type(conn, config.panel_id),
        }
        event_id = self._insert(
            conn,
            t.reseller_config_events,
            reseller_config_id=config.id,
            type="auto_enabled" if enabling else "auto_disabled",
            meta={"reason": str(change.reason), **remote},
            created_at=now,
            updated_at=now,
        )
        audit_id = self._audit(
            conn,
            action="config_auto_enabled" if enabling else "config_auto_disabled",
            target_type="config",
            target_id=config.id,
            reason=str(change.reason),
            meta=remote,
            now=now,
        )
        values: dict[str, object] = {}
        remove: list[str] = []
        stamp = now.isoformat(sep=" ")
        if change.reason is Reason.QUOTA:
            values |= dict.fromkeys(QUOTA_MARKERS[:1], True)
            values |= {QUOTA_MARKERS[1]: str(change.reason), QUOTA_MARKERS[2]: stamp}
        if change.reason is Reason.WINDOW:
            values[WINDOW_MARKER] = True
        if change.reason in (Reason.QUOTA, Reason.WINDOW):
            values |= {OWNER_MARKER: reseller_id, DISABLED_AT_MARKER: stamp}
        if enabling:
            remove += ALL_MARKERS
        if op is None:
            remove.append(OUTBOX_KEY)
        else:
            queued = RemoteOp(
                op.connects,
                op.reason,
                event_id=event_id,
                audit_id=audit_id,
                queued_at=op.queued_at,
            )
            values[OUTBOX_KEY] = _op_json(queued)
        changed = conn.execute(
            update(t.reseller_configs)
            .where(
                _c.id == config.id,
                _c.status == config.status,
                _c.deleted_at.is_(None),
            )
            .values(
                status=change.action.status,
                disabled_at=None if enabling else now,
                updated_at=now,
                meta=json_update(self._dialect, _c.meta, values, tuple(remove)),
            )
        ).rowcount
        return changed == 1

    @translated
    def finish_operation(
        self, config_id: int, op: RemoteOp, *, success: bool, cancelled: str | None = None
    ) -> bool:
        """Record `op`'s outcome on the config's outbox and its transition's records."""
        with self._engine.begin() as conn:
            row = conn.execute(
                select(_META_TEXT).where(_c.id == config_id, _c.deleted_at.is_(None))
            ).first()
            if row is None:
                return False
            try:
                current = _op(parse_meta(config_id, row.meta_text).get(OUTBOX_KEY))
            except StoreError:
                return False
            same = current is not None and (current.queued_at, current.event_id) == (
                op.queued_at,
                op.event_id,
            )
            if not same:
                return False
            done = success or cancelled is not None
            values = {} if done else {OUTBOX_KEY: _op_json(op)}
            remove = (OUTBOX_KEY,) if done else ()
            changed = conn.execute(
                update(t.reseller_configs)
                .where(_c.id == config_id, meta_text_guard(self._dialect) == (row.meta_text or ""))
                .values(meta=json_update(self._dialect, _c.meta, values, remove))
            ).rowcount
            if changed != 1:
                return False
            outcome = {
                "remote_success": success,
                "attempts": op.attempts,
                "last_error": cancelled if cancelled is not None else op.last_error,
            }
            for table, row_id in (
                (t.reseller_config_events, op.event_id),
                (t.audit_logs, op.audit_id),
            ):
                if row_id is not None:
                    conn.execute(
                        update(table)
                        .where(table.c.id == row_id)
                        .values(meta=json_update(self._dialect, table.c.meta, outcome))
                    )
        return True

    # -- helpers -----------------------------------------------------------------

    def _audit(
        self,
        conn: Connection,
        *,
        action: str,
        target_type: str,
        target_id: int,
        reason: str,
        meta: Mapping[str, object],
        now: datetime,
    ) -> int:
        return self._insert(
            conn,
            t.audit_logs,
            action=action,
            actor_type=None,
            actor_id=None,
            target_type=target_type,
            target_id=target_id,
            reason=reason,
            user_agent=USER_AGENT,
            meta=dict(meta),
            created_at=now,
            updated_at=now,
        )

    @staticmethod
    def _insert(conn: Connection, table: Any, **values: object) -> int:
        key = conn.execute(insert(table).values(**values)).inserted_primary_key
        return int(key[0]) if key else 0

    @staticmethod
    def _panel_type(conn: Connection, panel_id: int | None) -> str | None:
        if panel_id is None:
            return None
        value = conn.execute(select(t.panels.c.panel_type).where(t.panels.c.id == panel_id)).first()
        return None if value is None else str(value[0])


def _bytes_or_none(value: object) -> int | None:
    return None if value is None else int(str(value))


def _chunks(ids: list[int], size: int = 1000) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]
