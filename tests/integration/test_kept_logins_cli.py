"""Two `usage-sync sync` runs a minute apart log in once per panel, with the login kept in
the state directory or in Redis."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from original_rows import (
    PANEL_PASSWORD,
    TEST_APP_KEY,
    fetch_row,
    insert_config,
    insert_panel,
    insert_reseller,
)
from original_schema import OriginalDatabase
from redis_support import (
    QUEUE,
    RedisDb,
    app_env,
    claimed_redis_db,
    sqlite_app_db,
    usage_sync,
)

from usage_sandbox.emulator import PanelEmulator

ADMIN = "admin"


class Clock:
    """The panels' wall clock, moved on by the test."""

    def __init__(self) -> None:
        import time  # noqa: PLC0415 - only this clock reads it

        self.offset = 0.0
        self._time = time.time

    def __call__(self) -> float:
        return self._time() + self.offset


@pytest.fixture
def clock() -> Clock:
    """A clock the panels share; the test moves it a minute on between runs."""
    return Clock()


@pytest.fixture
def panels(clock: Clock) -> Iterator[dict[str, PanelEmulator]]:
    """One panel of each type that logs in (3x-ui v2 and v3), each with one user."""
    options = {"username": ADMIN, "password": PANEL_PASSWORD, "clock": clock}
    emulators = {
        "marzban": PanelEmulator("marzban", users={"u-marzban": 1_000}, **options),
        "marzneshin": PanelEmulator("marzneshin", users={"u-marzneshin": 2_000}, **options),
        "xui": PanelEmulator("xui", users={"u-xui": 3_000}, xui_version=2, **options),
        "xui-v3": PanelEmulator(
            "xui", users={"u-xui-v3": 4_000}, xui_version=3, base_path="/v3", **options
        ),
    }
    for emulator in emulators.values():
        emulator.start()
    try:
        yield emulators
    finally:
        for emulator in emulators.values():
            emulator.close()


@pytest.fixture
def app_db(tmp_path: Path, panels: dict[str, PanelEmulator]) -> Iterator[OriginalDatabase]:
    """A reseller with one config on each panel."""
    with sqlite_app_db(tmp_path / "app.sqlite") as db:
        insert_reseller(db.engine, id=1, traffic_total_bytes=50 * 1024**3)
        for number, (kind, emulator) in enumerate(panels.items(), start=1):
            panel_type = emulator.kind
            insert_panel(
                db.engine, id=number, panel_type=panel_type, url=emulator.url, username=ADMIN
            )
            insert_config(
                db.engine,
                id=number,
                reseller_id=1,
                panel_type=panel_type,
                panel_id=number,
                external_username=f"u-{kind}",
                usage_bytes=0,
            )
        yield db


def two_runs(env: dict[str, str], panels: dict[str, PanelEmulator], clock: Clock) -> None:
    """`usage-sync sync`, a minute on the panels' clock, `usage-sync sync` again."""
    for _ in range(2):
        result = usage_sync("sync", env=env)
        assert result.returncode == 0, result.stdout + result.stderr
        clock.offset += 60
    for kind, emulator in panels.items():
        assert (kind, emulator.counts.logins, emulator.counts.rejected) == (kind, 1, 0)


def test_two_runs_log_in_once_with_the_state_directory(
    tmp_path: Path, app_db: OriginalDatabase, panels: dict[str, PanelEmulator], clock: Clock
) -> None:
    """Embedded mode: one login per panel over two runs; owner-only files, no token in logs."""
    env = {
        "USAGE_SYNC_DATABASE_URL": app_db.url,
        "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
        "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
        "USAGE_SYNC_LOG_FILE": str(tmp_path / "usage-sync.log"),
        "USAGE_SYNC_LOG_LEVEL": "DEBUG",
    }
    two_runs(env, panels, clock)
    for number in (1, 2, 3, 4):
        usage = fetch_row(app_db.engine, "reseller_configs", number)["usage_bytes"]
        assert usage == number * 1_000
    kept = sorted((tmp_path / "state" / "logins").iterdir())
    assert [path.name for path in kept] == ["panel-1", "panel-2", "panel-3", "panel-4"]
    log = (tmp_path / "usage-sync.log").read_text(encoding="utf-8")
    for path in kept:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for emulator in panels.values():
        for token in emulator.issued_tokens():  # bearer tokens, session ids, CSRF tokens
            assert token not in log
            assert all(token.encode() not in path.read_bytes() for path in kept)


def test_two_runs_log_in_once_with_redis(
    tmp_path: Path, app_db: OriginalDatabase, panels: dict[str, PanelEmulator], clock: Clock
) -> None:
    """Redis mode: one login per panel over two runs; the logins live in Redis, sealed."""
    redis_db: RedisDb
    with claimed_redis_db() as redis_db:
        env = app_env(redis_db.url, app_db.url, tmp_path)
        env.pop("USAGE_SYNC_APP_KEY")  # the sealing key is then kept in Redis
        insert_panels_plain(app_db)
        two_runs(env, panels, clock)
        keys = sorted(key.decode() for key in redis_db.client.keys(f"usage-sync:{QUEUE}:login*"))
        assert keys == [f"usage-sync:{QUEUE}:login-key"] + [
            f"usage-sync:{QUEUE}:login:{number}" for number in (1, 2, 3, 4)
        ]
        for number, emulator in enumerate(panels.values(), start=1):
            stored = redis_db.client.get(f"usage-sync:{QUEUE}:login:{number}")
            assert isinstance(stored, bytes)
            assert all(token.encode() not in stored for token in emulator.issued_tokens())
            assert 0 < redis_db.client.ttl(f"usage-sync:{QUEUE}:login:{number}") <= 24 * 3600
        assert not (tmp_path / "state" / "logins").exists()


def insert_panels_plain(db: OriginalDatabase) -> None:
    """Store the panels' passwords as plain text (rows from before the app encrypted them)."""
    with db.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE panels SET password = ?", (PANEL_PASSWORD,))


def test_forgotten_logins_are_bought_again(
    tmp_path: Path, app_db: OriginalDatabase, panels: dict[str, PanelEmulator], clock: Clock
) -> None:
    """`usage-sync logins forget` empties the store: the next run logs in to each panel again."""
    env = {
        "USAGE_SYNC_DATABASE_URL": app_db.url,
        "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
        "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
    }
    two_runs(env, panels, clock)
    one = usage_sync("logins", "forget", "--panel", "2", env=env)
    assert (one.returncode, one.stdout) == (0, "forgot the kept logins of 1 panel\n")
    assert sorted(p.name for p in (tmp_path / "state" / "logins").iterdir()) == [
        "panel-1",
        "panel-3",
        "panel-4",
    ]
    every = usage_sync("logins", "forget", env=env)
    assert (every.returncode, every.stdout) == (0, "forgot the kept logins of 4 panels\n")
    assert list((tmp_path / "state" / "logins").iterdir()) == []
    assert usage_sync("sync", env=env).returncode == 0
    assert [emulator.counts.logins for emulator in panels.values()] == [2, 2, 2, 2]
