"""What `usage-sync sync` shows on a terminal (a real pseudo-terminal) and writes to its log:
one bar with per-panel-type counts, a summary, and one line for a panel that is down."""

from __future__ import annotations

import json
import os
import pty
import re
import socket
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from original_rows import TEST_APP_KEY, insert_config, insert_panel, insert_reseller
from redis_support import script, sqlite_app_db, subprocess_env, usage_sync

from usage_entrypoints.exit_codes import ExitCode
from usage_sandbox.emulator import EmulatedUser, PanelEmulator

API_KEY = "eyl-console-key"
HEALTHY, DEAD = 12, 20
DEAD_PANEL_ID = 2


@dataclass(frozen=True)
class World:
    """A database with configs on a healthy Eylandoo panel and on a panel nobody serves."""

    env: dict[str, str]
    log_file: Path


@pytest.fixture
def world(tmp_path: Path, unused_port: int) -> Iterator[World]:
    """`HEALTHY` configs on an emulated Eylandoo panel, `DEAD` on a closed port."""
    users = [EmulatedUser(f"e{i}", upload=i * 1000, download=0) for i in range(HEALTHY)]
    with (
        PanelEmulator("eylandoo", users=users, api_key=API_KEY) as panel,
        sqlite_app_db(tmp_path / "app.sqlite") as db,
    ):
        insert_panel(
            db.engine,
            id=1,
            name="eyl",
            panel_type="eylandoo",
            url=panel.url,
            username=None,
            password=None,
            api_token=API_KEY,
        )
        insert_panel(
            db.engine,
            id=DEAD_PANEL_ID,
            name="gone",
            panel_type="marzban",
            url=f"http://127.0.0.1:{unused_port}",
            username="admin",
            password="pw",
        )
        insert_reseller(db.engine, id=1, traffic_total_bytes=10**12)
        for i in range(HEALTHY):
            insert_config(
                db.engine,
                id=100 + i,
                reseller_id=1,
                external_username=f"e{i}",
                panel_type="eylandoo",
                panel_id=1,
                usage_bytes=0,
                traffic_limit_bytes=10**11,
            )
        for i in range(DEAD):
            insert_config(
                db.engine,
                id=200 + i,
                reseller_id=1,
                external_username=f"m{i}",
                panel_user_id=f"m{i}",
                panel_type="marzban",
                panel_id=DEAD_PANEL_ID,
                usage_bytes=0,
                traffic_limit_bytes=10**11,
            )
        env = {
            "USAGE_SYNC_DATABASE_URL": db.url,
            "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
            "USAGE_SYNC_STATE_DIR": str(tmp_path / "state"),
        }
        yield World(env, tmp_path / "usage-sync.log")


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def on_a_terminal(*args: str, env: Mapping[str, str]) -> tuple[int, str]:
    """Run `usage-sync ARGS` with stdout and stderr on a pseudo-terminal; (exit code, screen)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [script("usage-sync"), *args],
        env={**subprocess_env(env), "COLUMNS": "160"},
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return process.wait(60), b"".join(chunks).decode("utf-8", "replace")


def lines_of(screen: str) -> list[str]:
    """The lines a person sees: each carriage return redraws the line it is on."""
    return [line.rsplit("\r", 1)[-1] for line in screen.replace("\r\n", "\n").split("\n")]


class TestTerminal:
    """On a terminal: the bar, per-panel-type counts, the summary, no per-config lines."""

    def test_one_bar_and_no_per_config_lines(self, world: World) -> None:
        """The run draws one bar ending at 100 % with each type's counts; exit 1 (some failed)."""
        code, screen = on_a_terminal("sync", env=world.env)
        assert code == ExitCode.SOME_FAILED, screen
        seen = lines_of(screen)
        bars = [line for line in seen if "Syncing" in line]
        assert len(bars) == 1, seen
        assert "100%" in bars[0], bars
        assert f"eylandoo {HEALTHY} ok" in bars[0], bars
        assert f"marzban 0 ok, {DEAD} failed" in bars[0], bars
        assert f"{HEALTHY + DEAD} configs in" in screen
        assert "usage fetch failed for user" not in screen
        assert "Eylandoo usage for user" not in screen
        assert re.search(f"Panel {DEAD_PANEL_ID} failed for all its {DEAD} configs", screen)
        assert "Traceback" not in screen

    def test_verbose_shows_per_config_lines(self, world: World) -> None:
        """`-v` lets each config's lines through as well."""
        code, screen = on_a_terminal("sync", "-v", env=world.env)
        assert code == ExitCode.SOME_FAILED, screen
        assert screen.count("Eylandoo usage for user") == HEALTHY

    def test_log_file_keeps_every_line(self, world: World) -> None:
        """With a log file the terminal shows the bar, the file every config's line."""
        env = {**world.env, "USAGE_SYNC_LOG_FILE": str(world.log_file)}
        code, screen = on_a_terminal("sync", env=env)
        assert code == ExitCode.SOME_FAILED, screen
        assert "Eylandoo usage for user" not in screen
        log = world.log_file.read_text(encoding="utf-8")
        assert log.count("Eylandoo usage for user") == HEALTHY


class TestNotATerminal:
    """Output to a pipe behaves as before: log lines on stderr, the summary on stdout."""

    def test_dead_panel_is_one_line(self, world: World) -> None:
        """A panel that is down is one warning, not one per config; the others sync."""
        done = usage_sync("sync", env=world.env)
        assert done.returncode == ExitCode.SOME_FAILED, done.stderr
        about_dead = [
            line for line in done.stderr.splitlines() if "127.0.0.1" in line and ".WARNING:" in line
        ]
        assert len(about_dead) == 1, about_dead
        assert f"Panel {DEAD_PANEL_ID} failed for all its {DEAD} configs" in about_dead[0]
        assert "usage fetch failed for user m" not in done.stderr
        assert done.stderr.count("Eylandoo usage for user") == HEALTHY
        assert f"{HEALTHY} fetched" in done.stdout

    def test_json_lists_failed_configs(self, world: World) -> None:
        """`sync --json` names each failed config with its panel and reason."""
        done = usage_sync("sync", "--json", env=world.env)
        assert done.returncode == ExitCode.SOME_FAILED, done.stderr
        summary = json.loads(done.stdout)
        failed = summary["failed_configs"]
        assert sorted(item["id"] for item in failed) == [200 + i for i in range(DEAD)]
        assert {item["panel"] for item in failed} == {DEAD_PANEL_ID}
        assert all("could not reach the panel" in item["reason"] for item in failed), failed
        assert summary["failed_configs_not_listed"] == 0
