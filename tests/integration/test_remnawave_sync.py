"""Remnawave panels end to end: `sync-one` and `sync` on every database, and a counter
reset followed by regrowth between two syncs, which its lifetime counter recovers."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from original_rows import TEST_APP_KEY, fetch_row, insert_config, insert_panel, insert_reseller
from test_cli import usage_sync

from usage_sandbox.emulator import EmulatedUser, PanelEmulator

API_TOKEN = "rw-token-SECRET-31"
ALICE = 5_972_593_704
BOB = 3 * 1024**2


@pytest.fixture
def remnawave() -> Iterator[PanelEmulator]:
    """A Remnawave panel with alice (about 5.97 GB) and bob (3 MiB)."""
    users = [EmulatedUser("alice", download=ALICE), EmulatedUser("bob", download=BOB)]
    with PanelEmulator("remnawave", users=users, api_key=API_TOKEN) as panel:
        yield panel


@pytest.fixture
def rows(original_db, remnawave: PanelEmulator, tmp_path: Path):
    """A panel stored as `other` naming `remnawave`, two configs on it, and the env."""
    engine = original_db.engine
    insert_panel(
        engine,
        id=3,
        name="Remnawave",
        panel_type="other",
        url=remnawave.url,
        username=None,
        password=None,
        api_token=API_TOKEN,
        extra={"usage_sync_panel_type": "remnawave"},
    )
    insert_reseller(engine, id=45, traffic_total_bytes=50 * 1024**3)
    # The configs' own types are values the app can store; the panel's `extra` decides.
    for config_id, name in ((1, "alice"), (2, "bob")):
        insert_config(
            engine,
            id=config_id,
            reseller_id=45,
            external_username=f"{name}-ext",
            panel_type="marzban",
            panel_id=3,
            panel_user_id=name,
            usage_bytes=0,
        )
    log_file = tmp_path / "usage-sync.log"
    env = {
        "USAGE_SYNC_DATABASE_URL": original_db.url,
        "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
        "USAGE_SYNC_LOG_FILE": str(log_file),
        "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
    }
    return original_db, env, log_file


def counted(engine: Any, config_id: int) -> int:
    """`usage_bytes` plus `meta.settled_usage_bytes`: everything the config has been charged."""
    row = fetch_row(engine, "reseller_configs", config_id)
    meta = row["meta"] if isinstance(row["meta"], dict) else json.loads(row["meta"] or "{}")
    return int(row["usage_bytes"]) + int(meta.get("settled_usage_bytes", 0))


def reset_on_the_panel(panel: PanelEmulator, username: str) -> None:
    """The panel's own reset route, as its admin would call it."""
    reply = httpx.post(
        f"{panel.url}/api/users/{panel.users.id_of(username)}/actions/reset-traffic",
        headers={
            "Authorization": f"Bearer {API_TOKEN}",
            "X-Forwarded-For": "127.0.0.1",
            "X-Forwarded-Proto": "https",
        },
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["response"]["userTraffic"]["usedTrafficBytes"] == 0


class TestRemnawaveEndToEnd:
    """`sync-one` and `sync` read Remnawave through the type the panel row names."""

    def test_sync_one(self, rows, remnawave: PanelEmulator) -> None:
        """The config is read from the by-username route and its usage written."""
        db, env, log_file = rows
        result = usage_sync("sync-one", "--config", "1", env=env)
        assert result.returncode == 0, result.stderr
        assert "  Panel Type: remnawave\n" in result.stdout
        assert f"📊 Usage: {ALICE} bytes" in result.stdout
        assert fetch_row(db.engine, "reseller_configs", 1)["usage_bytes"] == ALICE
        assert remnawave.seen_usernames == ["alice"]
        assert API_TOKEN not in log_file.read_text(encoding="utf-8")

    def test_sync(self, rows, remnawave: PanelEmulator) -> None:
        """The full sync reads both configs from the stream listing and writes the total."""
        db, env, log_file = rows
        result = usage_sync("sync", "--json", env=env)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert (summary["configs"], summary["updated"], summary["failed"]) == (2, 2, 0)
        assert fetch_row(db.engine, "reseller_configs", 1)["usage_bytes"] == ALICE
        assert fetch_row(db.engine, "reseller_configs", 2)["usage_bytes"] == BOB
        assert fetch_row(db.engine, "resellers", 45)["traffic_used_bytes"] == ALICE + BOB
        # The `total` probe, then the one stream page: both users are wanted.
        assert remnawave.counts.list_pages == 2
        assert remnawave.counts.logins == 0
        log = log_file.read_text(encoding="utf-8")
        assert "Remnawave read as listing: 2 users wanted of 2" in log
        assert "Remnawave users listed: 2 users in 1 page" in log

    @pytest.mark.parametrize("command", ["sync", "sync-one"])
    def test_reset_and_regrowth_between_syncs_loses_nothing(
        self, rows, remnawave: PanelEmulator, command: str
    ) -> None:
        """Synced; +1,000; reset on the panel; regrowth past the old value; nothing is lost."""
        db, env, _ = rows
        args = ("sync-one", "--config", "1") if command == "sync-one" else ("sync",)
        assert usage_sync(*args, env=env).returncode == 0
        assert counted(db.engine, 1) == ALICE
        remnawave.users.add_traffic("alice", download=1_000)
        reset_on_the_panel(remnawave, "alice")
        remnawave.users.add_traffic("alice", download=ALICE + 5_000)
        result = usage_sync(*args, env=env)
        assert result.returncode == 0, result.stderr
        # The counter alone (old + 5,000) would show growth of 5,000; the lifetime shows all.
        lifetime = remnawave.users.get("alice").lifetime  # type: ignore[union-attr]
        assert lifetime == 2 * ALICE + 6_000
        assert counted(db.engine, 1) == lifetime
        bob = BOB if command == "sync" else 0
        assert fetch_row(db.engine, "resellers", 45)["traffic_used_bytes"] == lifetime + bob
