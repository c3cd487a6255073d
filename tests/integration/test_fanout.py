"""Fan-out by panel: one job per panel plus a totals job, on one worker or many."""

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from db_state import database_state
from original_rows import insert_config, insert_panel, insert_reseller, insert_setting
from redis_support import (
    RedisDb,
    app_env,
    background,
    claimed_redis_db,
    lock_key,
    restored_logging,
    restored_signal_handlers,
    script,
    sqlite_app_db,
    usage_sync,
    wait_for,
)
from rq import Queue, SimpleWorker

from usage_adapters.sql.configs import SqlConfigRepository
from usage_adapters.sql.meta import LAST_COUNTER_KEY
from usage_core.model import ConfigFilter, SyncItem
from usage_sandbox.emulator import PanelEmulator

MIB = 1024**2
KINDS = ("eylandoo", "marzban", "marzneshin", "xui")
QUEUE_NAME = "usage-sync-test"


@pytest.fixture
def panels() -> Iterator[dict[str, PanelEmulator]]:
    """One emulated panel of each type, 30 users each."""
    emulators = {
        kind: PanelEmulator(kind, users={f"{kind}-{i}": (i + 1) * MIB for i in range(30)})
        for kind in KINDS
    }
    for emulator in emulators.values():
        emulator.start()
    try:
        yield emulators
    finally:
        for emulator in emulators.values():
            emulator.close()


@pytest.fixture
def template(tmp_path: Path, panels: dict[str, PanelEmulator]) -> Path:
    """An app database with 120 configs over two resellers and four panels."""
    path = tmp_path / "template.sqlite"
    with sqlite_app_db(path) as db:
        ids = {
            kind: insert_panel(
                db.engine,
                panel_type=kind,
                url=emulator.url,
                username="admin",
                password="emulator-password",
                api_token="emulator-api-key" if kind == "eylandoo" else None,
            )
            for kind, emulator in panels.items()
        }
        resellers = [insert_reseller(db.engine), insert_reseller(db.engine)]
        for kind in KINDS:
            for i in range(30):
                meta = {LAST_COUNTER_KEY: 50 * MIB} if i == 0 else None
                insert_config(
                    db.engine,
                    reseller_id=resellers[i % 2],
                    external_username=f"{kind}-{i}",
                    panel_type=kind,
                    panel_id=ids[kind] if i % 3 else None,
                    usage_bytes=50 * MIB if i == 0 else 0,
                    meta=meta,
                )
        insert_setting(db.engine, "reseller.usage_sync_interval_minutes", "1")
    return path


def prepared(template: Path, tmp_path: Path, name: str, redis: RedisDb, *, fanout: bool) -> dict:
    """A copy of the template database and the env of a run on it."""
    work = tmp_path / name
    work.mkdir()
    shutil.copy(template, work / "app.sqlite")
    env = app_env(redis.url, f"sqlite:///{work / 'app.sqlite'}", work)
    env["USAGE_SYNC_QUEUE"] = QUEUE_NAME
    env["USAGE_SYNC_FANOUT"] = "panel" if fanout else "off"
    return env


def dispatch(env: dict[str, str], minute: int) -> None:
    """One tick at a dispatch minute of 10:xx (each run its own: a minute is dispatched once)."""
    now = f"2026-11-24T10:{minute:02d}:00+00:00"
    result = usage_sync("tick", "--now", now, "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["dispatched"] is True


def run_in_process(env: dict[str, str], redis: RedisDb, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drain the queue with one in-process SimpleWorker."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with restored_logging(), restored_signal_handlers():
        SimpleWorker([Queue(QUEUE_NAME, connection=redis.client)], connection=redis.client).work(
            burst=True
        )


class TestFanOut:
    """The fanned-out run ends in the same database state as the single job."""

    def test_one_worker_many_workers_and_no_fanout_agree(
        self, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Single job, fan-out on one worker, fan-out on three forked workers: one end state."""
        with claimed_redis_db() as redis:
            single = prepared(template, tmp_path, "single", redis, fanout=False)
            dispatch(single, 0)
            run_in_process(single, redis, monkeypatch)
            reference = database_state(
                Path(single["USAGE_SYNC_DATABASE_URL"].removeprefix("sqlite:///"))
            )

            one = prepared(template, tmp_path, "one", redis, fanout=True)
            dispatch(one, 1)
            run_in_process(one, redis, monkeypatch)
            assert redis.client.get(lock_key(QUEUE_NAME)) is None

            many = prepared(template, tmp_path, "many", redis, fanout=True)
            dispatch(many, 2)
            with contextlib.ExitStack() as stack:
                workers = [
                    stack.enter_context(
                        background(
                            [script("usage-sync"), "worker", "--burst"],
                            env=many,
                            output=tmp_path / f"worker-{i}.log",
                        )
                    )
                    for i in range(3)
                ]
                wait_for(
                    lambda: all(w.process.poll() is not None for w in workers) or None,
                    timeout=60,
                    what="the burst workers to finish",
                )
            history = json.loads(redis.client.get(f"usage-sync:{QUEUE_NAME}:last-run") or "{}")

        for env in (one, many):
            path = Path(env["USAGE_SYNC_DATABASE_URL"].removeprefix("sqlite:///"))
            assert database_state(path) == reference
        updated = [c for c, (usage, _) in reference["configs"].items() if usage]
        assert len(updated) == 120
        assert history["panels"] == 4
        assert history["configs"] == 120
        assert history["resets"] == 4

    def test_a_fanned_out_run_reads_each_config_row_once(
        self, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Dispatch reads no config row, each panel job its own, the totals job none again."""
        read: list[int] = []
        synced_items = SqlConfigRepository.synced_items

        def counted(
            self: SqlConfigRepository, only: ConfigFilter | None = None
        ) -> Iterator[SyncItem]:
            for item in synced_items(self, only):
                read.append(item.id)
                yield item

        monkeypatch.setattr(SqlConfigRepository, "synced_items", counted)
        with claimed_redis_db() as redis:
            env = prepared(template, tmp_path, "once", redis, fanout=True)
            dispatch(env, 3)
            run_in_process(env, redis, monkeypatch)
            history = json.loads(redis.client.get(f"usage-sync:{QUEUE_NAME}:last-run") or "{}")
        path = Path(env["USAGE_SYNC_DATABASE_URL"].removeprefix("sqlite:///"))
        configs = database_state(path)["configs"]
        assert sorted(read) == sorted(configs)
        assert (history["panels"], history["configs"], history["resellers_updated"]) == (4, 120, 2)
