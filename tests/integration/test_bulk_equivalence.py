"""The bulk full sync ends where syncing each config on its own ends, whatever the listings do."""

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from db_state import database_state
from original_rows import TEST_APP_KEY, insert_config, insert_panel, insert_reseller
from redis_support import sqlite_app_db

from usage_adapters.sql.meta import LAST_COUNTER_KEY
from usage_entrypoints.container import build_container
from usage_sandbox.emulator import Fault, PanelEmulator

MIB = 1024**2
KINDS = ("eylandoo", "marzban", "marzneshin", "xui")
USERS = 250


@pytest.fixture
def panels() -> Iterator[dict[str, PanelEmulator]]:
    """One emulated panel of each type with 250 users, listings paged by 40."""
    emulators = {
        kind: PanelEmulator(kind, users={f"{kind}-{i:03d}": (i + 1) * MIB for i in range(USERS)})
        for kind in KINDS
    }
    for emulator in emulators.values():
        emulator.start()
    try:
        yield emulators
    finally:
        for emulator in emulators.values():
            emulator.close()


def seeded(path: Path, panels: dict[str, PanelEmulator]) -> None:
    """Two active traffic resellers with every user's config; some counters were reset."""
    with sqlite_app_db(path) as db:
        resellers = [insert_reseller(db.engine), insert_reseller(db.engine)]
        for kind, emulator in panels.items():
            panel_id = insert_panel(
                db.engine,
                panel_type=kind,
                url=emulator.url,
                username="admin",
                password="emulator-password",
                api_token="emulator-api-key" if kind == "eylandoo" else None,
                extra={"sync_page_size": 40, "sync_concurrency": 3},
            )
            for i in range(USERS):
                # Every 25th config saw a larger counter before: the panel reset it since.
                before = (i + 500) * MIB if i % 25 == 0 else 0
                insert_config(
                    db.engine,
                    reseller_id=resellers[i % 2],
                    external_username=f"{kind}-{i:03d}",
                    panel_type=kind,
                    panel_id=panel_id,
                    usage_bytes=before,
                    meta={LAST_COUNTER_KEY: before, "settled_usage_bytes": 7} if before else None,
                )


def make_listings_misbehave(panels: dict[str, PanelEmulator]) -> None:
    """Missing users, a failed page, and users leaving while the listing is paged."""
    for kind in KINDS:
        panels[kind].omit_from_listing([f"{kind}-{i:03d}" for i in range(0, USERS, 17)])
    panels["marzban"].set_list_fault(3, Fault.http_status(500))
    for n in range(10):
        panels["marzneshin"].users.add(f"0-extra-{n}", total=MIB)

    def users_leave(page: int) -> None:
        # Users sorting first leave while the listing is paged: each later page
        # shifts by one, and one user per page would be missed by the listing.
        if page > 1:
            panels["marzneshin"].users.remove(f"0-extra-{page - 2}")

    panels["marzneshin"].set_list_hook(users_leave)


def container_for(path: Path, workdir: Path) -> Any:
    """The real container on one database file."""
    return build_container(
        {
            "USAGE_SYNC_DATABASE_URL": f"sqlite:///{path}",
            "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
            "USAGE_SYNC_STATE_DIR": str(workdir / "state"),
            "USAGE_SYNC_LOG_FILE": str(workdir / "sync.log"),
        }
    )


class TestBulkEquivalence:
    """Bulk listings and single reads give one database state."""

    def test_bulk_sync_equals_per_config_sync(
        self, panels: dict[str, PanelEmulator], tmp_path: Path
    ) -> None:
        """Omitted users, a failing page, shifting pages and resets: same end state."""
        template = tmp_path / "template.sqlite"
        seeded(template, panels)
        bulk_db, single_db = tmp_path / "bulk.sqlite", tmp_path / "single.sqlite"
        shutil.copy(template, bulk_db)
        shutil.copy(template, single_db)
        make_listings_misbehave(panels)

        bulk = container_for(bulk_db, tmp_path / "bulk")
        try:
            summary = bulk.sync_all()()
        finally:
            bulk.shutdown_resources()

        single = container_for(single_db, tmp_path / "single")
        try:
            sync_one = single.sync_one()
            for config_id in database_state(single_db)["configs"]:
                assert sync_one(config_id).ok
        finally:
            single.shutdown_resources()

        assert database_state(bulk_db) == database_state(single_db)
        assert summary.total("updated") == 4 * USERS
        assert summary.resets == 4 * len(range(0, USERS, 25))
        assert summary.total("failed") == 0
