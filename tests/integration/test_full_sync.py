"""The full sync on the original app's schema, against emulated panels of every type."""

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from original_rows import (
    TEST_APP_KEY,
    fetch_row,
    insert_config,
    insert_panel,
    insert_reseller,
)
from panel_support import closed_port_url

from usage_adapters.sql.meta import LAST_COUNTER_KEY, SETTLED_KEY
from usage_entrypoints.container import build_container
from usage_sandbox.emulator import PanelEmulator

MIB = 1024**2
ADMIN, PASSWORD, KEY = "admin", "pw-SECRET-1", "key-SECRET-2"


@attrs.define
class Fleet:
    """One running emulator per panel type."""

    eylandoo: PanelEmulator
    marzban: PanelEmulator
    marzneshin: PanelEmulator
    xui: PanelEmulator


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    """Emulators of all four panel types, each with a few users."""
    emulators = {
        kind: PanelEmulator(kind, username=ADMIN, password=PASSWORD, api_key=KEY)
        for kind in ("eylandoo", "marzban", "marzneshin", "xui")
    }
    for emulator in emulators.values():
        emulator.start()
    try:
        yield Fleet(**emulators)
    finally:
        for emulator in emulators.values():
            emulator.close()


def panel(db, emulator: PanelEmulator | None, kind: str, url: str | None = None) -> int:
    """A panels row for `emulator` (or a dead URL), credentials encrypted by the app."""
    return insert_panel(
        db.engine,
        panel_type=kind,
        url=url or (emulator.url if emulator else closed_port_url()),
        username=ADMIN,
        password=PASSWORD,
        api_token=KEY if kind == "eylandoo" else None,
    )


def run_sync(db, tmp_path: Path) -> dict:
    """One full sync through the real container; its summary."""
    container = build_container(
        {
            "USAGE_SYNC_DATABASE_URL": db.url,
            "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
            "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
            "USAGE_SYNC_HTTP_TIMEOUT": "3",
            "USAGE_SYNC_LOG_FILE": str(tmp_path / "sync.log"),
        }
    )
    try:
        return container.sync_all()().as_dict()
    finally:
        container.shutdown_resources()


class TestFullSync:
    """One run syncs everything it should, and nothing else, whatever fails."""

    def test_every_type_of_reseller_and_panel(
        self, original_db, fleet: Fleet, tmp_path: Path
    ) -> None:
        """Four panel types, a dead panel, bad data and a counter reset, in one run."""
        db = original_db
        ids = {kind: panel(db, getattr(fleet, kind), kind) for kind in attrs.fields_dict(Fleet)}
        dead = panel(db, None, "marzban")
        active = insert_reseller(db.engine, type="traffic", status="active")
        other = insert_reseller(db.engine, type="traffic", status="active")
        suspended = insert_reseller(
            db.engine, type="traffic", status="suspended", traffic_used_bytes=5
        )
        plan = insert_reseller(db.engine, type="plan", status="active", traffic_used_bytes=7)

        def config(reseller: int, kind: str, name: str, **kw) -> int:
            return insert_config(
                db.engine,
                reseller_id=reseller,
                external_username=name,
                panel_type=kind,
                panel_id=kw.pop("panel_id", ids.get(kind)),
                **kw,
            )

        for kind in ("eylandoo", "marzban", "marzneshin", "xui"):
            getattr(fleet, kind).users.add(f"{kind}-user", total=100 * MIB)
        fleet.marzban.users.add("reset-user", total=30 * MIB)
        fleet.marzban.users.add("other-user", total=2 * MIB)
        fleet.eylandoo.users.add("suspended-user", total=999 * MIB)
        fleet.eylandoo.users.add("plan-user", total=999 * MIB)
        fleet.marzban.users.add("disabled-user", total=999 * MIB)

        ok = {kind: config(active, kind, f"{kind}-user") for kind in ids}
        reset = config(
            active,
            "marzban",
            "reset-user",
            usage_bytes=80 * MIB,
            meta={LAST_COUNTER_KEY: 80 * MIB, SETTLED_KEY: 10 * MIB},
        )
        on_dead_panel = config(active, "marzban", "ghost", panel_id=dead, usage_bytes=3 * MIB)
        missing_on_panel = config(active, "marzneshin", "nobody", usage_bytes=4 * MIB)
        bad_meta = config(active, "marzban", "marzban-user", meta='"not an object"')
        no_name = config(active, "xui", "x", panel_user_id=None)
        disabled = config(active, "marzban", "disabled-user", status="disabled", usage_bytes=1)
        deleted = config(
            active,
            "marzban",
            "marzban-user",
            usage_bytes=50 * MIB,
            deleted_at="2025-11-05 00:00:00",
        )
        config(other, "marzban", "other-user")
        untouched = [
            config(suspended, "eylandoo", "suspended-user"),
            config(plan, "eylandoo", "plan-user"),
        ]

        summary = run_sync(db, tmp_path)

        usage = lambda cid: fetch_row(db.engine, "reseller_configs", cid)["usage_bytes"]  # noqa: E731
        assert all(usage(cid) == 100 * MIB for cid in ok.values())
        assert usage(reset) == 30 * MIB
        assert usage(on_dead_panel) == 3 * MIB
        assert usage(missing_on_panel) == 4 * MIB
        assert usage(disabled) == 1
        assert usage(deleted) == 50 * MIB
        assert [usage(cid) for cid in untouched] == [0, 0]
        assert summary["resets"] == 1
        assert summary["failed"] == 3  # dead panel, missing user, malformed meta
        assert summary["skipped"] == 1  # no panel username
        assert summary["updated"] == 6  # the four types, the reset, the other reseller

        resellers = lambda rid: fetch_row(db.engine, "resellers", rid)["traffic_used_bytes"]  # noqa: E731
        # 4 x 100 MiB, the reset config (30 now + 90 settled), the untouched; not the deleted.
        expected = 400 * MIB + 30 * MIB + 90 * MIB + 3 * MIB + 4 * MIB + 0 + 0 + 1
        assert resellers(active) == expected
        assert resellers(other) == 2 * MIB
        assert (resellers(suspended), resellers(plan)) == (5, 7)

        # One login per panel per run, shared by all of that panel's configs.
        assert fleet.marzban.counts.logins == 1
        assert fleet.marzneshin.counts.logins == 1
        assert fleet.xui.counts.logins == 1
        del no_name, bad_meta

    def test_reset_keeps_the_reseller_total(
        self, original_db, fleet: Fleet, tmp_path: Path
    ) -> None:
        """A counter reset on the panel between two runs never lowers the reseller's total."""
        db = original_db
        panel_id = panel(db, fleet.marzneshin, "marzneshin")
        reseller = insert_reseller(db.engine)
        insert_config(
            db.engine,
            reseller_id=reseller,
            external_username="u",
            panel_type="marzneshin",
            panel_id=panel_id,
        )
        fleet.marzneshin.users.add("u", total=500 * MIB)
        run_sync(db, tmp_path)
        before = fetch_row(db.engine, "resellers", reseller)["traffic_used_bytes"]
        fleet.marzneshin.users.reset_counter("u")
        fleet.marzneshin.users.add_traffic("u", download=20 * MIB)
        summary = run_sync(db, tmp_path)
        after = fetch_row(db.engine, "resellers", reseller)["traffic_used_bytes"]
        assert before == 500 * MIB
        assert after == 520 * MIB
        assert summary["resets"] == 1
