"""Lifetime counters end to end: a reset hidden by regrowth, over HTTP, on every database."""

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from original_rows import TEST_APP_KEY, fetch_row, insert_config, insert_panel, insert_reseller
from test_cli import usage_sync

from usage_adapters.sql.meta import LAST_COUNTER_KEY, LAST_LIFETIME_KEY, SETTLED_KEY
from usage_entrypoints.container import build_container
from usage_sandbox.emulator import PanelEmulator

ADMIN, PASSWORD = "admin", "pw-SECRET-1"
# The counter the first sync sees, in the reported scenario.
SYNCED = 5_972_593_704
TOKEN_PATHS = {"marzban": "/api/admin/token", "marzneshin": "/api/admins/token"}
USER_PATHS = {"marzban": "/api/user/{}", "marzneshin": "/api/users/{}"}


class PanelAdmin:
    """What a panel's admin does over its HTTP API: read a user, reset one, reset all."""

    def __init__(self, kind: str, emulator: PanelEmulator) -> None:
        self.kind = kind
        self.emulator = emulator
        form = {"username": ADMIN, "password": PASSWORD}
        reply = httpx.post(emulator.url + TOKEN_PATHS[kind], data=form, timeout=5)
        reply.raise_for_status()
        self.headers = {"Authorization": f"Bearer {reply.json()['access_token']}"}

    def user(self, username: str) -> dict:
        """The user object the panel serves."""
        reply = httpx.get(self._user_url(username), headers=self.headers, timeout=5)
        reply.raise_for_status()
        return reply.json()

    def reset(self, username: str) -> dict:
        """The panel's own reset route for one user; the user object it answers with."""
        reply = httpx.post(self._user_url(username) + "/reset", headers=self.headers, timeout=5)
        reply.raise_for_status()
        return reply.json()

    def reset_all(self) -> None:
        """The panel's "reset all users" route."""
        reply = httpx.post(self.emulator.url + "/api/users/reset", headers=self.headers, timeout=5)
        reply.raise_for_status()

    def grow(self, username: str, amount: int) -> None:
        """Traffic through the panel's nodes."""
        self.emulator.users.add_traffic(username, download=amount)

    def _user_url(self, username: str) -> str:
        return self.emulator.url + USER_PATHS[self.kind].format(username)


@pytest.fixture(params=["marzneshin", "marzban"])
def panel(request: pytest.FixtureRequest) -> Iterator[PanelAdmin]:
    """A Marzneshin or Marzban emulator whose user `u` has used 5,972,593,704 bytes."""
    with PanelEmulator(request.param, username=ADMIN, password=PASSWORD) as emulator:
        emulator.users.add("u", total=SYNCED)
        yield PanelAdmin(request.param, emulator)


class World:
    """One config of one reseller on the panel, synced by the real container."""

    def __init__(self, db, panel: PanelAdmin, tmp_path: Path) -> None:
        self.db = db
        self.env = {
            "USAGE_SYNC_DATABASE_URL": db.url,
            "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
            "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
            "USAGE_SYNC_HTTP_TIMEOUT": "5",
            "USAGE_SYNC_LOG_FILE": str(tmp_path / "sync.log"),
        }
        panel_id = insert_panel(
            db.engine,
            panel_type=panel.kind,
            url=panel.emulator.url,
            username=ADMIN,
            password=PASSWORD,
        )
        self.reseller = insert_reseller(db.engine)
        self.config = insert_config(
            db.engine,
            reseller_id=self.reseller,
            external_username="u",
            panel_type=panel.kind,
            panel_id=panel_id,
        )

    def sync(self) -> dict:
        """One full sync; its summary."""
        container = build_container(self.env)
        try:
            return container.sync_all()().as_dict()
        finally:
            container.shutdown_resources()

    def counted(self) -> int:
        """usage_bytes + meta.settled_usage_bytes of the config."""
        return self.usage() + self.meta().get(SETTLED_KEY, 0)

    def usage(self) -> int:
        """The config's usage_bytes."""
        return int(fetch_row(self.db.engine, "reseller_configs", self.config)["usage_bytes"])

    def meta(self) -> dict:
        """The config's meta document."""
        value = fetch_row(self.db.engine, "reseller_configs", self.config)["meta"]
        return value if isinstance(value, dict) else json.loads(value or "{}")

    def reseller_total(self) -> int:
        """The reseller's traffic_used_bytes."""
        return int(fetch_row(self.db.engine, "resellers", self.reseller)["traffic_used_bytes"])


class TestResetHiddenByRegrowth:
    """The reported case: +1,000, a reset on the panel, regrowth to 5,000 past the last counter."""

    def test_the_next_sync_counts_what_the_lifetime_says(
        self, original_db, panel: PanelAdmin, tmp_path: Path
    ) -> None:
        """usage + settled equals the panel's lifetime after the full sync; the reseller too."""
        world = World(original_db, panel, tmp_path)
        world.sync()
        assert world.meta()[LAST_LIFETIME_KEY] == SYNCED
        panel.grow("u", 1_000)
        assert panel.reset("u")["used_traffic"] == 0
        panel.grow("u", SYNCED + 5_000)
        served = panel.user("u")
        assert served["used_traffic"] == SYNCED + 5_000
        assert served["lifetime_used_traffic"] == 11_945_193_408

        summary = world.sync()

        assert summary["resets"] == 1
        assert world.counted() == served["lifetime_used_traffic"]
        assert world.reseller_total() == 11_945_193_408
        assert world.usage() == SYNCED + 5_000
        meta = world.meta()
        assert (meta[SETTLED_KEY], meta[LAST_COUNTER_KEY], meta[LAST_LIFETIME_KEY]) == (
            SYNCED + 1_000,
            SYNCED + 5_000,
            11_945_193_408,
        )
        # Nothing more to count until the panel moves again.
        again = world.sync()
        assert (again["unchanged"], again["updated"], again["resets"]) == (1, 0, 0)
        assert world.counted() == 11_945_193_408

    def test_sync_one_settles_it_and_reports_the_lifetime(
        self, original_db, panel: PanelAdmin, tmp_path: Path
    ) -> None:
        """`sync-one` settles the hidden reset and its `--json` carries the lifetime."""
        world = World(original_db, panel, tmp_path)
        assert usage_sync("sync-one", "--config", str(world.config), env=world.env).returncode == 0
        panel.grow("u", 1_000)
        panel.reset("u")
        panel.grow("u", SYNCED + 5_000)

        result = usage_sync("sync-one", "--config", str(world.config), "--json", env=world.env)

        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        assert document["usage"] == {
            "bytes": SYNCED + 5_000,
            "path": "used_traffic",
            "lifetime_bytes": 11_945_193_408,
        }
        assert document["ledger"]["kind"] == "reset"
        assert document["ledger"]["settled_now_bytes"] == SYNCED + 1_000
        assert world.counted() == panel.user("u")["lifetime_used_traffic"]
        panel.grow("u", 10)
        text = usage_sync("sync-one", "--config", str(world.config), env=world.env)
        assert "  Delta:    10 bytes (0.00 MB)\n" in text.stdout
        assert world.counted() == 11_945_193_418


class TestResetAll:
    """ "Reset all users": Marzban's lifetime drops with its reset logs, Marzneshin's stands."""

    def test_a_dropped_lifetime_falls_back_to_the_counter(
        self, original_db, panel: PanelAdmin, tmp_path: Path
    ) -> None:
        """Marzban: the counter alone decides after a reset-all; the next reset is caught again."""
        world = World(original_db, panel, tmp_path)
        world.sync()
        panel.grow("u", 1_000)
        panel.reset_all()
        panel.grow("u", 300)
        lifetime = panel.user("u")["lifetime_used_traffic"]
        world.sync()
        if panel.kind == "marzban":
            # The lifetime went to 0 with the reset logs: the 1,000 before the reset are
            # as unseen as without a lifetime, and the new lifetime is the new baseline.
            assert lifetime == 300
            assert world.counted() == SYNCED + 300
        else:
            assert lifetime == SYNCED + 1_300
            assert world.counted() == lifetime
        assert world.meta()[LAST_LIFETIME_KEY] == lifetime
        counted = world.counted()

        # Then +1,000, a single reset, and regrowth past the last counter (300 → 400).
        panel.grow("u", 1_000)
        panel.reset("u")
        panel.grow("u", 400)
        world.sync()

        assert world.counted() == counted + 1_400
        assert world.counted() - panel.user("u")["lifetime_used_traffic"] == counted - lifetime
