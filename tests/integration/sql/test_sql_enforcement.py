"""`SqlEnforcementStore` over databases created with the original app's DDL."""

import json
from datetime import datetime

import attrs
from original_rows import (
    fetch_row,
    insert_audit_log,
    insert_config,
    insert_panel,
    insert_reseller,
    rows_of,
)
from sqlalchemy import text

from usage_adapters.sql.enforcement import OUTBOX_KEY, SqlEnforcementStore
from usage_core.enforcement.rules import (
    ConfigAction,
    ConfigChange,
    Decision,
    Markers,
    Reason,
    RemoteOp,
    ResellerAction,
    Suspension,
)

NOW = datetime(2025, 11, 5, 10, 30)


def meta_of(db, config_id: int) -> dict:
    """The config's meta, decoded."""
    value = fetch_row(db.engine, "reseller_configs", config_id)["meta"]
    return value if isinstance(value, dict) else json.loads(value or "{}")


def state_of(store: SqlEnforcementStore, reseller_id: int):
    """The reseller and its configs as the store reads them."""
    [reseller] = [r for r in store.enforced_resellers() if r.id == reseller_id]
    configs = store.configs_of([reseller_id]).get(reseller_id, [])
    return reseller, {c.id: c for c in configs}


class TestReading:
    """What enforcement reads: resellers, who suspended them, configs with markers."""

    def test_who_suspended_whom(self, original_db) -> None:
        """The latest suspension record with a reason decides; the observer's row does not."""
        db = original_db
        auto = insert_reseller(db.engine, status="suspended")
        manual = insert_reseller(db.engine, status="suspended")
        unknown = insert_reseller(db.engine, status="suspended")
        insert_audit_log(
            db.engine,
            action="reseller_suspended",
            target_type="reseller",
            target_id=auto,
            reason="reseller_quota_exhausted",
        )
        insert_audit_log(
            db.engine,
            action="reseller_suspended",
            target_type="reseller",
            target_id=auto,
            reason="audit_reseller_status_changed",
        )
        insert_audit_log(
            db.engine,
            action="reseller_suspended",
            target_type="reseller",
            target_id=manual,
            reason="reseller_window_expired",
        )
        insert_audit_log(
            db.engine,
            action="reseller_suspended",
            target_type="reseller",
            target_id=manual,
            reason="admin_action",
            actor_type="App\\Models\\User",
            actor_id=1,
        )
        insert_reseller(db.engine, type="plan")
        store = SqlEnforcementStore(db.engine)
        found = {r.id: r.suspension for r in store.enforced_resellers()}
        assert found == {
            auto: Suspension.AUTOMATIC,
            manual: Suspension.MANUAL,
            unknown: Suspension.MANUAL,
        }

    def test_markers_in_every_variant_the_app_wrote(self, original_db) -> None:
        """Markers stored as true, 1, "1" or "true" all read as set (the app's own variants)."""
        db = original_db
        reseller = insert_reseller(db.engine)
        ids = [
            insert_config(
                db.engine,
                reseller_id=reseller,
                status="disabled",
                meta={
                    "disabled_by_reseller_suspension": value,
                    "disabled_by_reseller_id": reseller,
                },
            )
            for value in (True, 1, "1", "true")
        ]
        window = insert_config(
            db.engine,
            reseller_id=reseller,
            status="disabled",
            meta={"suspended_by_time_window": True},
        )
        plain = insert_config(
            db.engine, reseller_id=reseller, meta={"disabled_by_reseller_suspension": False}
        )
        _, configs = state_of(SqlEnforcementStore(db.engine), reseller)
        assert all(configs[i].markers == Markers(by_quota=True, reseller_id=reseller) for i in ids)
        assert configs[window].markers == Markers(by_window=True)
        assert configs[plain].markers == Markers()


class TestApplying:
    """A decision is written in one transaction, as the app's own code would record it."""

    def test_suspension_with_records_markers_and_outbox(self, original_db) -> None:
        """Reseller suspended, configs disabled with markers, one event and audit row each."""
        db = original_db
        panel = insert_panel(db.engine, panel_type="marzneshin")
        reseller = insert_reseller(db.engine, traffic_total_bytes=1000, traffic_used_bytes=5000)
        on_panel = insert_config(
            db.engine,
            reseller_id=reseller,
            panel_id=panel,
            meta={"settled_usage_bytes": 7, "x": "ü"},
        )
        no_panel = insert_config(db.engine, reseller_id=reseller)
        store = SqlEnforcementStore(db.engine)
        state, configs = state_of(store, reseller)
        decision = Decision(
            state,
            ResellerAction.SUSPEND,
            Reason.QUOTA,
            tuple(
                ConfigChange(configs[i], ConfigAction.DISABLE, Reason.QUOTA)
                for i in (on_panel, no_panel)
            ),
        )
        op = RemoteOp(False, "reseller_quota_exhausted", queued_at="2025-11-05 10:30:00")
        assert store.apply(decision, {on_panel: op, no_panel: None}, NOW)

        assert fetch_row(db.engine, "resellers", reseller)["status"] == "suspended"
        row = fetch_row(db.engine, "reseller_configs", on_panel)
        assert row["status"] == "disabled"
        assert str(row["disabled_at"]).startswith("2025-11-05 10:30:00")
        meta = meta_of(db, on_panel)
        assert meta["settled_usage_bytes"] == 7
        assert meta["x"] == "ü"
        assert meta["disabled_by_reseller_suspension"] is True
        assert meta["disabled_by_reseller_suspension_reason"] == "reseller_quota_exhausted"
        assert meta["disabled_by_reseller_id"] == reseller
        assert meta[OUTBOX_KEY]["connects"] is False
        assert OUTBOX_KEY not in meta_of(db, no_panel)

        events = rows_of(db.engine, "reseller_config_events")
        assert [(e["reseller_config_id"], e["type"]) for e in events] == [
            (on_panel, "auto_disabled"),
            (no_panel, "auto_disabled"),
        ]
        assert events[0]["meta"]["reason"] == "reseller_quota_exhausted"
        assert events[0]["meta"]["panel_type_used"] == "marzneshin"
        assert events[1]["meta"]["last_error"] == "No panel configured"
        audits = rows_of(db.engine, "audit_logs")
        assert [(a["action"], a["target_type"], a["reason"]) for a in audits] == [
            ("reseller_suspended", "reseller", "reseller_quota_exhausted"),
            ("config_auto_disabled", "config", "reseller_quota_exhausted"),
            ("config_auto_disabled", "config", "reseller_quota_exhausted"),
        ]
        assert audits[0]["meta"]["traffic_used_bytes"] == 5000
        assert audits[0]["actor_id"] is None

        # The new state decides as a suspension enforcement made.
        state, configs = state_of(store, reseller)
        assert state.suspension is Suspension.AUTOMATIC
        assert configs[on_panel].markers.by_quota
        assert configs[on_panel].pending is not None

    def test_a_status_changed_underneath_writes_nothing(self, original_db) -> None:
        """When the app changed the reseller after it was read, the whole decision is dropped."""
        db = original_db
        reseller = insert_reseller(db.engine)
        config = insert_config(db.engine, reseller_id=reseller)
        store = SqlEnforcementStore(db.engine)
        state, configs = state_of(store, reseller)
        with db.engine.begin() as conn:
            conn.execute(
                text("UPDATE resellers SET status = 'suspended' WHERE id = :i"), {"i": reseller}
            )
        decision = Decision(
            state,
            ResellerAction.SUSPEND,
            Reason.QUOTA,
            (ConfigChange(configs[config], ConfigAction.DISABLE, Reason.QUOTA),),
        )
        assert not store.apply(decision, {config: None}, NOW)
        assert fetch_row(db.engine, "reseller_configs", config)["status"] == "active"
        assert rows_of(db.engine, "audit_logs") == []
        assert rows_of(db.engine, "reseller_config_events") == []

    def test_re_enable_clears_markers_and_finish_records_the_outcome(self, original_db) -> None:
        """Re-enabling removes every marker; the finished operation updates its records."""
        db = original_db
        panel = insert_panel(db.engine)
        reseller = insert_reseller(db.engine, status="suspended")
        config = insert_config(
            db.engine,
            reseller_id=reseller,
            panel_id=panel,
            status="disabled",
            meta={
                "disabled_by_reseller_suspension": "1",
                "disabled_by_reseller_suspension_reason": "reseller_quota_exhausted",
                "disabled_by_reseller_id": reseller,
                "note": "kept",
            },
        )
        store = SqlEnforcementStore(db.engine)
        state, configs = state_of(store, reseller)
        decision = Decision(
            state,
            ResellerAction.ACTIVATE,
            Reason.RECOVERED,
            (ConfigChange(configs[config], ConfigAction.ENABLE, Reason.RECOVERED),),
        )
        op = RemoteOp(True, "reseller_recovered", queued_at="2025-11-05 10:30:00")
        assert store.apply(decision, {config: op}, NOW)
        assert fetch_row(db.engine, "reseller_configs", config)["disabled_at"] is None
        meta = meta_of(db, config)
        assert set(meta) == {"note", OUTBOX_KEY}

        [(pending_config, pending)] = store.pending_operations()
        assert pending_config.id == config
        done = attrs.evolve(pending, attempts=1)
        assert store.finish_operation(config, done, success=True)
        assert set(meta_of(db, config)) == {"note"}
        [event] = rows_of(db.engine, "reseller_config_events")
        assert event["type"] == "auto_enabled"
        assert (event["meta"]["remote_success"], event["meta"]["attempts"]) == (True, 1)
        audits = rows_of(db.engine, "audit_logs", target_type="config")
        assert audits[0]["meta"]["remote_success"] is True
        assert store.pending_operations() == []
        assert not store.finish_operation(config, done, success=True)
