"""`SqlConfigRepository` over databases created with the original app's DDL."""

import contextlib
import itertools
import json
import threading

import pytest
from original_rows import fetch_row, insert_config, insert_panel, insert_reseller
from sqlalchemy import text

from usage_adapters.sql.configs import SqlConfigRepository
from usage_adapters.sql.meta import COUNTED_KEY, LAST_COUNTER_KEY, LAST_LIFETIME_KEY, SETTLED_KEY
from usage_adapters.sql.resellers import SqlResellerRepository
from usage_core.errors import StoreError, SupersededReadingError
from usage_core.ledger import LedgerState
from usage_core.model import ConfigFilter
from usage_core.recording import record_counter


def meta_of(db, config_id: int) -> dict:
    """The config's meta column, decoded."""
    value = fetch_row(db.engine, "reseller_configs", config_id)["meta"]
    return value if isinstance(value, dict) else json.loads(value or "{}")


class TestConfigs:
    """`SqlConfigRepository` reads configs and writes the ledger with a guarded update."""

    def test_get_reads_usage_fields_and_skips_deleted(self, original_db) -> None:
        """Settled bytes come from meta; soft-deleted configs are invisible."""
        reseller = insert_reseller(original_db.engine)
        live = insert_config(
            original_db.engine,
            reseller_id=reseller,
            external_username="u1",
            usage_bytes=500,
            meta={"settled_usage_bytes": 1234, "last_reset_at": "2025-11-04 10:00:00"},
        )
        gone = insert_config(
            original_db.engine,
            reseller_id=reseller,
            external_username="u2",
            deleted_at="2025-11-05 00:00:00",
        )
        repo = SqlConfigRepository(original_db.engine)
        config = repo.get(live)
        assert config is not None
        assert (config.usage_bytes, config.settled_bytes, config.last_counter) == (500, 1234, None)
        assert config.panel_user_id == "u1"
        assert repo.get(gone) is None

    def test_record_touches_only_our_keys(self, original_db) -> None:
        """A reset writes usage, settled and our counter key; other meta keys stay."""
        reseller = insert_reseller(original_db.engine)
        config_id = insert_config(
            original_db.engine,
            reseller_id=reseller,
            external_username="u1",
            usage_bytes=900,
            meta={"settled_usage_bytes": 100, "suspended_by_time_window": True, "note": "ü/x"},
        )
        repo = SqlConfigRepository(original_db.engine)
        step = record_counter(repo, config_id, 30)
        assert step is not None
        assert step.after == LedgerState(30, 1000, 30)
        row = fetch_row(original_db.engine, "reseller_configs", config_id)
        assert row["usage_bytes"] == 30
        meta = meta_of(original_db, config_id)
        assert meta == {
            "settled_usage_bytes": 1000,
            "suspended_by_time_window": True,
            "note": "ü/x",
            LAST_COUNTER_KEY: 30,
            COUNTED_KEY: 1030,
        }

    def test_the_lifetime_is_kept_beside_the_counter(self, original_db) -> None:
        """The lifetime is stored, settles a reset hidden by regrowth, is cleared when absent."""
        reseller = insert_reseller(original_db.engine)
        config_id = insert_config(
            original_db.engine,
            reseller_id=reseller,
            external_username="u",
            meta={"settled_usage_bytes": 0, "note": "kept"},
        )
        repo = SqlConfigRepository(original_db.engine)
        assert record_counter(repo, config_id, 1000, lifetime=1000) is not None
        assert meta_of(original_db, config_id)[LAST_LIFETIME_KEY] == 1000
        # +100, a reset, then regrowth to 1050: the lifetime grew by 1150.
        step = record_counter(repo, config_id, 1050, lifetime=2150)
        assert step is not None
        assert step.after == LedgerState(1050, 1100, 1050, 2150)
        assert meta_of(original_db, config_id) == {
            "settled_usage_bytes": 1100,
            "note": "kept",
            LAST_COUNTER_KEY: 1050,
            COUNTED_KEY: 2150,
            LAST_LIFETIME_KEY: 2150,
        }
        # A reading without a lifetime leaves none to compare the next one with.
        step = record_counter(repo, config_id, 1060)
        assert step is not None
        assert meta_of(original_db, config_id)[LAST_LIFETIME_KEY] is None
        snapshot = repo.load_ledger(config_id)
        assert snapshot is not None
        assert snapshot.state == LedgerState(1060, 1100, 1060, None)
        assert not snapshot.stale

    @pytest.mark.parametrize("stored", [None, "[]", "null"])
    def test_empty_meta_shapes(self, original_db, stored: str | None) -> None:
        """NULL, PHP's empty `[]` and JSON null are all an empty document."""
        reseller = insert_reseller(original_db.engine)
        config_id = insert_config(original_db.engine, reseller_id=reseller, external_username="u")
        if stored is not None:
            with original_db.engine.begin() as conn:
                conn.execute(
                    text("UPDATE reseller_configs SET meta = :m WHERE id = :i"),
                    {"m": stored, "i": config_id},
                )
        repo = SqlConfigRepository(original_db.engine)
        assert record_counter(repo, config_id, 42) is not None
        assert meta_of(original_db, config_id) == {LAST_COUNTER_KEY: 42, COUNTED_KEY: 42}

    def test_unchanged_counter_writes_nothing(self, original_db) -> None:
        """A counter equal to usage_bytes with no key yet leaves the row untouched."""
        reseller = insert_reseller(original_db.engine)
        config_id = insert_config(
            original_db.engine, reseller_id=reseller, external_username="u", usage_bytes=77
        )
        before = fetch_row(original_db.engine, "reseller_configs", config_id)
        assert record_counter(SqlConfigRepository(original_db.engine), config_id, 77) is not None
        assert fetch_row(original_db.engine, "reseller_configs", config_id) == before

    def test_guard_refuses_a_stale_snapshot(self, original_db) -> None:
        """A write from a snapshot taken before the app's reset is refused, then redone."""
        reseller = insert_reseller(original_db.engine)
        config_id = insert_config(
            original_db.engine,
            reseller_id=reseller,
            external_username="u",
            usage_bytes=1000,
            meta={LAST_COUNTER_KEY: 1000},
        )
        repo = SqlConfigRepository(original_db.engine)
        stale = repo.load_ledger(config_id)
        assert stale is not None
        # The app's "reset usage": usage into settled, usage 0, whole meta rewritten.
        with original_db.engine.begin() as conn:
            conn.execute(
                text("UPDATE reseller_configs SET usage_bytes = 0, meta = :m WHERE id = :i"),
                {
                    "m": json.dumps({"settled_usage_bytes": 1000, LAST_COUNTER_KEY: 1000}),
                    "i": config_id,
                },
            )
        assert repo.save_ledgers([(stale, LedgerState(1500, 0, 1500))]) == set()
        step = record_counter(repo, config_id, 1500)
        assert step is not None
        assert step.after == LedgerState(500, 1000, 1500)
        assert fetch_row(original_db.engine, "reseller_configs", config_id)["usage_bytes"] == 500

    def test_concurrent_syncs_never_fake_a_reset(self, original_db) -> None:
        """Two syncs reading one rising panel counter never record a reset or count twice."""
        reseller = insert_reseller(original_db.engine)
        config_id = insert_config(
            original_db.engine, reseller_id=reseller, external_username="u", usage_bytes=0
        )
        repo = SqlConfigRepository(original_db.engine)
        panel_counter = itertools.count(0, 97)
        panel_lock = threading.Lock()
        errors: list[BaseException] = []

        def sync() -> None:
            try:
                for _ in range(25):
                    config = repo.get(config_id)
                    assert config is not None
                    with panel_lock:
                        counter = next(panel_counter)
                    with contextlib.suppress(SupersededReadingError):
                        record_counter(repo, config_id, counter, config.last_counter)
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=sync) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        snapshot = repo.load_ledger(config_id)
        assert snapshot is not None
        assert snapshot.state.settled_bytes == 0
        assert snapshot.state.usage_bytes == snapshot.state.last_counter

    def test_malformed_meta_is_an_error_not_a_rewrite(self, original_db) -> None:
        """A meta that is not a JSON object is reported and left as it is."""
        reseller = insert_reseller(original_db.engine)
        config_id = insert_config(
            original_db.engine, reseller_id=reseller, external_username="u", meta='"text"'
        )
        repo = SqlConfigRepository(original_db.engine)
        config = repo.get(config_id)
        assert config is not None
        assert config.problem == f"config {config_id}: meta is a JSON str, not an object"
        with pytest.raises(StoreError, match=f"config {config_id}: meta"):
            repo.load_ledger(config_id)


class TestBulk:
    """A run's work is read in a few queries and written in guarded batches."""

    def test_load_sync_work(self, original_db_head) -> None:
        """Active traffic resellers, all their non-deleted configs, forgiveness included."""
        db = original_db_head
        keep = insert_reseller(db.engine, traffic_used_bytes=5, admin_forgiven_bytes=2)
        skip = insert_reseller(db.engine, status="suspended")
        active = insert_config(db.engine, reseller_id=keep, external_username="a")
        disabled = insert_config(
            db.engine, reseller_id=keep, external_username="b", status="disabled"
        )
        insert_config(db.engine, reseller_id=keep, external_username="c", deleted_at="2025-11-05")
        insert_config(db.engine, reseller_id=skip, external_username="d")
        resellers = SqlResellerRepository(db.engine).synced()
        items = list(SqlConfigRepository(db.engine).synced_items())
        assert [(r.id, r.used_bytes, r.forgiven_bytes) for r in resellers] == [(keep, 5, 2)]
        assert [i.config.id for i in items] == [active, disabled]

    def test_a_fan_out_reads_each_config_once(self, original_db) -> None:
        """A job's filter and the filter of the rest select every config exactly once."""
        db = original_db
        reseller = insert_reseller(db.engine)
        first = insert_panel(db.engine, panel_type="marzban")
        second = insert_panel(db.engine, panel_type="xui")
        ids = {
            "on first": insert_config(db.engine, reseller_id=reseller, panel_id=first),
            "marzban, no panel": insert_config(db.engine, reseller_id=reseller),
            "xui, no panel": insert_config(db.engine, reseller_id=reseller, panel_type="xui"),
            "on second, disabled": insert_config(
                db.engine, reseller_id=reseller, panel_id=second, status="disabled"
            ),
        }
        store = SqlConfigRepository(db.engine)
        job = ConfigFilter(frozenset({first}), frozenset({"marzban"}))
        for covered, rest in [
            (job, ["xui, no panel", "on second, disabled"]),
            (ConfigFilter(frozenset()), list(ids)),
        ]:
            selected = [i.id for i in store.synced_items(covered)]
            others = [i.id for i in store.synced_items(covered.complement())]
            assert others == sorted(ids[name] for name in rest)
            assert sorted(selected + others) == sorted(ids.values())
        assert store.active_panel_keys() == {(first, "marzban"), (None, "marzban"), (None, "xui")}

    def test_a_long_meta_read_again_guards_its_batch_write(self, original_db) -> None:
        """A row kept by its meta's hash is written when its meta is as read, and only then."""
        db = original_db
        reseller = insert_reseller(db.engine)
        long_meta = {"settled_usage_bytes": 7, "note": "n" * 40, LAST_COUNTER_KEY: 50}
        ids = [
            insert_config(
                db.engine, reseller_id=reseller, usage_bytes=50, meta={**long_meta, "n": i}
            )
            for i in range(4)
        ]
        store = SqlConfigRepository(db.engine)
        items = list(store.synced_items())
        assert all(type(item.version) is int for item in items)
        with db.engine.begin() as conn:
            # The app rewrites one row's meta, and deletes another, after the sync read them.
            conn.execute(
                text("UPDATE reseller_configs SET meta = :m WHERE id = :i"),
                {"m": json.dumps({**long_meta, "n": 1, "app": "changed"}), "i": ids[1]},
            )
            conn.execute(
                text("UPDATE reseller_configs SET deleted_at = '2026-11-27' WHERE id = :i"),
                {"i": ids[2]},
            )
        writes = [(item, LedgerState(80, 7, 80)) for item in items]
        assert store.save_ledgers(writes) == {ids[0], ids[3]}
        assert meta_of(db, ids[0]) == {**long_meta, "n": 0, LAST_COUNTER_KEY: 80, COUNTED_KEY: 87}
        assert meta_of(db, ids[1]) == {**long_meta, "n": 1, "app": "changed"}
        assert fetch_row(db.engine, "reseller_configs", ids[2])["usage_bytes"] == 50

    def test_batch_write_skips_rows_changed_underneath(self, original_db) -> None:
        """Rows still as read are written in one batch; a row the app changed is not."""
        db = original_db
        reseller = insert_reseller(db.engine)
        metas = [None, "[]", {"settled_usage_bytes": 7, "x": "y"}, {LAST_COUNTER_KEY: 50}]
        ids = [
            insert_config(
                db.engine, reseller_id=reseller, external_username=f"u{i}", usage_bytes=50, meta=m
            )
            for i, m in enumerate(metas)
        ]
        raced = insert_config(db.engine, reseller_id=reseller, external_username="r", usage_bytes=9)
        store = SqlConfigRepository(db.engine)
        items = list(store.synced_items())
        with db.engine.begin() as conn:
            conn.execute(
                text("UPDATE reseller_configs SET usage_bytes = 0 WHERE id = :i"), {"i": raced}
            )
        writes = []
        for item in items:
            reset = item.config.id == ids[3]
            after = (
                LedgerState(10, item.snapshot.state.settled_bytes + 50, 10)
                if reset
                else LedgerState(80, item.snapshot.state.settled_bytes, 80)
            )
            writes.append((item.snapshot, after))
        assert store.save_ledgers(writes) == set(ids)
        assert [fetch_row(db.engine, "reseller_configs", i)["usage_bytes"] for i in ids] == [
            80,
            80,
            80,
            10,
        ]
        assert meta_of(db, ids[0]) == {LAST_COUNTER_KEY: 80, COUNTED_KEY: 80}
        assert meta_of(db, ids[1]) == {LAST_COUNTER_KEY: 80, COUNTED_KEY: 80}
        assert meta_of(db, ids[2]) == {
            "settled_usage_bytes": 7,
            "x": "y",
            LAST_COUNTER_KEY: 80,
            COUNTED_KEY: 87,
        }
        assert meta_of(db, ids[3]) == {LAST_COUNTER_KEY: 10, SETTLED_KEY: 50, COUNTED_KEY: 60}
        assert fetch_row(db.engine, "reseller_configs", raced)["usage_bytes"] == 0
