"""Database connections cut mid-write: the failure stays confined to what was being written,
nothing is applied in part or counted twice, and the next run converges.

On MariaDB and PostgreSQL another transaction holds a lock the sync's statement needs, so
that the statement is caught waiting inside its transaction (in a batch UPDATE, the rows
before the locked one have already changed); the sync's backend connection is then killed
with `KILL` / `pg_terminate_backend`, and only then is the lock released. The lock makes the
moment certain however fast or loaded the machine, and the sync runs as the real
`usage-sync sync` process, so its exit code and stderr are the user's. On SQLite another
connection holds the write lock past the busy timeout.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fault_support import FaultWorld, fault_world
from original_schema import OriginalDatabase
from redis_support import script, subprocess_env
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.pool import NullPool

from usage_adapters.sql.meta import LAST_COUNTER_KEY
from usage_entrypoints.container import Container
from usage_entrypoints.settings import Settings

pytestmark = pytest.mark.timeout(120)

SERVERS = ["mariadb", "postgresql"]
PER_PANEL = 20
CUT_PANEL = "marzban"
# How the store names a connection killed under it, on either server.
# A panel's read is done: its listing, or its users read by name.
READ_DONE = re.compile(r" users (listed|read by name): ")
LOST = r"(lost the connection to the server|the server terminated the connection): \S"


# -- runs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """What a `usage-sync sync --json` process left behind."""

    returncode: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, Any]:
        """The run's JSON summary; the run must have happened, exiting 1 when configs failed."""
        assert self.returncode in (0, 1), self.stderr
        document: dict[str, Any] = json.loads(self.stdout)
        assert self.returncode == (1 if document["failed"] else 0), document
        return document


@contextmanager
def sync_process(world: FaultWorld, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`usage-sync sync --json` started in the background, its output going to files."""
    env = world.env(USAGE_SYNC_STATE_DIR=str(tmp_path / "state"))
    with (tmp_path / "sync.out").open("wb") as out, (tmp_path / "sync.err").open("wb") as err:
        process = subprocess.Popen(
            [script("usage-sync"), "sync", "--json"],
            env=subprocess_env(env),
            stdout=out,
            stderr=err,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)


def stderr_so_far(tmp_path: Path) -> str:
    """What the background sync has logged so far."""
    return (tmp_path / "sync.err").read_text(encoding="utf-8")


def finished(process: subprocess.Popen[bytes], tmp_path: Path) -> Finished:
    """Wait for the process; its exit code and output."""
    returncode = process.wait(60)
    stdout = (tmp_path / "sync.out").read_text(encoding="utf-8")
    return Finished(returncode, stdout, stderr_so_far(tmp_path))


def assert_clean(stderr: str) -> None:
    """Errors are one-line reasons: no traceback, no statement or parameters from the driver."""
    assert "Traceback" not in stderr, stderr
    assert "[SQL:" not in stderr, stderr


@contextmanager
def app_container(world: FaultWorld, tmp_path: Path) -> Iterator[Container]:
    """The composition root the CLI builds for this world, its resources shut down after."""
    env = world.env(USAGE_SYNC_STATE_DIR=str(tmp_path / "state"))
    container = Container(settings=Settings.from_env(env))
    try:
        yield container
    finally:
        container.shutdown_resources()


def sync_in_process(world: FaultWorld, tmp_path: Path) -> dict[str, Any]:
    """One full sync in this process, the run `usage-sync sync` makes (no process start-up)."""
    with app_container(world, tmp_path) as container:
        return container.sync_run().now()


# -- the invariants ------------------------------------------------------------------------


def configs_of(world: FaultWorld, kind: str) -> list[int]:
    """The ids of the configs on the `kind` panel, in id order."""
    return sorted(cid for cid, (k, _) in world.configs.items() if k == kind)


def expected_totals(world: FaultWorld) -> dict[int, int]:
    """reseller id -> Σ(usage + settled) of its configs, as the database holds them now."""
    with world.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, reseller_id FROM reseller_configs"))
        owner = {int(row.id): int(row.reseller_id) for row in rows}
    totals: dict[int, int] = defaultdict(int)
    for config_id, (usage, settled, _) in world.ledgers().items():
        totals[owner[config_id]] += usage + settled
    return {rid: totals[rid] for rid in world.resellers}


def assert_untouched(world: FaultWorld, config_ids: list[int]) -> None:
    """These configs are as the app left them: no usage, no counter, the app's key alone."""
    ledgers = world.ledgers()
    for config_id in config_ids:
        usage, settled, meta = ledgers[config_id]
        assert (usage, settled) == (0, 0), (config_id, usage, settled)
        assert meta == {"note": f"keep-{config_id}"}, (config_id, meta)


def assert_written(world: FaultWorld, config_ids: list[int]) -> None:
    """These configs hold exactly their users' use, once, with the app's key kept."""
    ledgers = world.ledgers()
    for config_id in config_ids:
        usage, settled, meta = ledgers[config_id]
        assert meta.get("note") == f"keep-{config_id}", (config_id, meta)
        assert usage + settled == world.lifetime(config_id), (config_id, usage, settled)
        assert meta.get(LAST_COUNTER_KEY) == world.panel_counter(config_id), (config_id, meta)


def converge(world: FaultWorld, tmp_path: Path, *, updated: int) -> None:
    """The next normal run writes what the cut one did not; after growth, so does the one after."""
    summary = sync_in_process(world, tmp_path)
    assert (summary["failed"], summary["updated"]) == (0, updated), summary
    world.assert_converged()
    assert world.reseller_totals() == expected_totals(world)

    world.grow()
    summary = sync_in_process(world, tmp_path)
    assert (summary["failed"], summary["updated"]) == (0, len(world.configs)), summary
    world.assert_converged()
    assert world.reseller_totals() == expected_totals(world)


# -- MariaDB and PostgreSQL: the sync's backend connection killed --------------------------

Hold = Callable[[Connection, OriginalDatabase, FaultWorld], None]


def hold_config_row(conn: Connection, _db: OriginalDatabase, world: FaultWorld) -> None:
    """Lock a config in the middle of one panel's batch: the rows before it change, then the
    UPDATE waits."""
    row = configs_of(world, CUT_PANEL)[PER_PANEL // 2]
    conn.execute(text("SELECT id FROM reseller_configs WHERE id = :i FOR UPDATE"), {"i": row})


def hold_reseller_row(conn: Connection, _db: OriginalDatabase, world: FaultWorld) -> None:
    """Lock the third of four resellers: the totals of the first two change, then it waits."""
    row = world.resellers[2]
    conn.execute(text("SELECT id FROM resellers WHERE id = :i FOR UPDATE"), {"i": row})


def hold_configs_table(conn: Connection, db: OriginalDatabase, _world: FaultWorld) -> None:
    """Lock the whole configs table: the sync reads the resellers, then waits for the configs."""
    if db.backend == "mariadb":
        conn.exec_driver_sql("LOCK TABLES reseller_configs WRITE")
    else:
        conn.exec_driver_sql("LOCK TABLE reseller_configs IN ACCESS EXCLUSIVE MODE")


def waiting(admin: Connection, db: OriginalDatabase, statement: str) -> int | None:
    """The backend id of a connection whose statement LIKE `statement` waits for a lock."""
    if db.backend == "mariadb":
        query = (
            "SELECT ID FROM information_schema.PROCESSLIST "
            "WHERE DB = DATABASE() AND INFO LIKE :q AND (STATE LIKE 'Waiting for table%' "
            "OR ID IN (SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX "
            "WHERE trx_state = 'LOCK WAIT'))"
        )
    else:
        query = (
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE :q"
        )
    found = admin.execute(text(query), {"q": statement}).scalar()
    return None if found is None else int(found)


def kill(admin: Connection, db: OriginalDatabase, backend_id: int) -> None:
    """Cut that backend connection, as an operator, a proxy or a failover would."""
    if db.backend == "mariadb":
        admin.exec_driver_sql(f"KILL CONNECTION {int(backend_id)}")
    else:
        assert admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend_id}).scalar()


def cut_sync(
    world: FaultWorld, db: OriginalDatabase, tmp_path: Path, hold: Hold, statement: str
) -> Finished:
    """`usage-sync sync --json` whose connection is killed while `statement` waits on `hold`."""
    # Each connection its own, never pooled: closing the holder ends its locks.
    admins = create_engine(db.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    holders = create_engine(db.url, poolclass=NullPool)
    try:
        with admins.connect() as admin, holders.connect() as holder:
            hold(holder, db, world)
            with sync_process(world, tmp_path) as process:
                deadline = time.monotonic() + 30
                while (victim := waiting(admin, db, statement)) is None:
                    assert process.poll() is None, finished(process, tmp_path)
                    assert time.monotonic() < deadline, f"nothing waited: {statement}"
                    # InnoDB refreshes INNODB_TRX only when it was not read for 0.1 s.
                    time.sleep(0.15)
                kill(admin, db, victim)
                # Released only after the kill: nothing of that statement can land.
                holder.close()
                return finished(process, tmp_path)
    finally:
        admins.dispose()
        holders.dispose()


@pytest.mark.parametrize("original_db", SERVERS, indirect=True)
def test_config_batch_cut(original_db: OriginalDatabase, tmp_path: Path) -> None:
    """A batch of usage writes killed mid-statement is rolled back whole: that panel's configs
    fail, the others are written, the totals match what was stored, and later runs converge."""
    with fault_world(original_db.engine, original_db.url, per_panel=PER_PANEL) as world:
        done = cut_sync(world, original_db, tmp_path, hold_config_row, "UPDATE reseller_configs %")
        assert_clean(done.stderr)
        # Confined: the run goes on and succeeds, counting the batch as failed.
        summary = done.summary()
        assert (summary["failed"], summary["updated"]) == (PER_PANEL, 3 * PER_PANEL), summary
        failed_batch = f"ERROR: Failed to write a batch of {PER_PANEL} configs: {LOST}"
        assert re.search(failed_batch, done.stderr), done.stderr
        cut = configs_of(world, CUT_PANEL)
        assert_untouched(world, cut)
        assert_written(world, [cid for cid in world.configs if cid not in cut])
        world.assert_never_over()
        assert world.reseller_totals() == expected_totals(world)

        converge(world, tmp_path, updated=PER_PANEL)


@pytest.mark.parametrize("original_db", SERVERS, indirect=True)
def test_totals_update_cut(original_db: OriginalDatabase, tmp_path: Path) -> None:
    """The resellers' totals update killed mid-statement leaves every total as it was and the
    usage written; the next run stores the totals."""
    with fault_world(original_db.engine, original_db.url, per_panel=PER_PANEL) as world:
        before = world.reseller_totals()
        done = cut_sync(world, original_db, tmp_path, hold_reseller_row, "UPDATE resellers %")
        assert_clean(done.stderr)
        summary = done.summary()
        assert (summary["failed"], summary["updated"]) == (0, len(world.configs)), summary
        assert summary["resellers_updated"] == 0, summary
        failed_totals = f"ERROR: Failed to store the totals of 4 resellers: {LOST}"
        assert re.search(failed_totals, done.stderr), done.stderr
        world.assert_converged()
        assert world.reseller_totals() == before

        converge(world, tmp_path, updated=0)


@pytest.mark.parametrize("original_db", SERVERS, indirect=True)
def test_read_cut_fails_the_run(original_db: OriginalDatabase, tmp_path: Path) -> None:
    """A connection killed while the run reads its work fails the whole run: exit 2, one line
    naming the database problem, nothing written; the next run converges."""
    with fault_world(original_db.engine, original_db.url, per_panel=PER_PANEL) as world:
        before = world.reseller_totals()
        # PostgreSQL reads the configs through a server-side cursor: `DECLARE … FOR SELECT`.
        reading = "%SELECT reseller_configs.id%"
        done = cut_sync(world, original_db, tmp_path, hold_configs_table, reading)
        assert_clean(done.stderr)
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert re.search(f"^❌ Cannot use the database: {LOST}", done.stderr, re.M), done.stderr
        assert_untouched(world, sorted(world.configs))
        assert world.reseller_totals() == before

        converge(world, tmp_path, updated=len(world.configs))


# -- SQLite: another connection holds the write lock ---------------------------------------


@pytest.mark.parametrize("original_db", ["sqlite"], indirect=True)
def test_sqlite_writer_within_busy_timeout(original_db: OriginalDatabase, tmp_path: Path) -> None:
    """Another writer holding SQLite's write lock for a while makes the sync wait, not fail."""
    with fault_world(original_db.engine, original_db.url, per_panel=PER_PANEL) as world:
        holder = sqlite3.connect(original_db.name, isolation_level=None)
        try:
            # IMMEDIATE: the sync still reads; its first write waits for the lock.
            holder.execute("BEGIN IMMEDIATE")
            with sync_process(world, tmp_path) as process:
                deadline = time.monotonic() + 30
                # Every panel listed: the sync's first write is waiting now, or about to.
                while len(READ_DONE.findall(stderr_so_far(tmp_path))) < len(world.panels):
                    assert process.poll() is None, finished(process, tmp_path)
                    assert time.monotonic() < deadline, stderr_so_far(tmp_path)
                    time.sleep(0.05)
                time.sleep(0.5)
                assert process.poll() is None, finished(process, tmp_path)
                assert_untouched(world, sorted(world.configs))
                holder.execute("ROLLBACK")
                done = finished(process, tmp_path)
        finally:
            holder.close()
        assert_clean(done.stderr)
        summary = done.summary()
        assert (summary["failed"], summary["updated"]) == (0, len(world.configs)), summary
        world.assert_converged()
        assert world.reseller_totals() == expected_totals(world)


class OtherWriter:
    """A second SQLite connection that takes the write lock just before the sync's `nth`
    `UPDATE table` and gives it back once that write has failed for want of it."""

    def __init__(self, path: str, table: str, nth: int) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self._prefix = f"UPDATE {table} "
        self._nth = nth
        self._seen = 0
        self._since = 0.0
        self.holding = False
        self.held_s = 0.0

    def before_cursor_execute(self, *args: Any) -> None:
        """Take the lock before the `nth` matching statement reaches SQLite."""
        statement = args[2]
        if isinstance(statement, str) and statement.startswith(self._prefix):
            self._seen += 1
            if self._seen == self._nth:
                self._conn.execute("BEGIN EXCLUSIVE")
                self.holding, self._since = True, time.monotonic()

    def handle_error(self, _context: Any) -> None:
        """The held-off write gave up: let the lock go, so the run's later writes land."""
        if self.holding:
            self._conn.execute("ROLLBACK")
            self.holding, self.held_s = False, time.monotonic() - self._since

    def close(self) -> None:
        """Release the lock if still held, and close."""
        if self.holding:
            self._conn.execute("ROLLBACK")
        self._conn.close()


BUSY_TIMEOUT_MS = 250


def sync_beside(world: FaultWorld, tmp_path: Path, writer: OtherWriter) -> dict[str, Any]:
    """One full sync in this process with `writer` taking the lock under it.

    The store waits 30 s for SQLite's lock; this run's engine waits BUSY_TIMEOUT_MS, so
    that holding the lock past the timeout costs a fraction of a second.
    """
    with app_container(world, tmp_path) as container:
        engine: Engine = container.engine()

        def shorten(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

        event.listen(engine, "connect", shorten)
        event.listen(engine, "before_cursor_execute", writer.before_cursor_execute)
        event.listen(engine, "handle_error", writer.handle_error)
        return container.sync_run().now()


@pytest.mark.parametrize("original_db", ["sqlite"], indirect=True)
def test_sqlite_writer_past_busy_timeout_fails_one_batch(
    original_db: OriginalDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer holding SQLite's lock past the busy timeout fails one batch of usage writes,
    whole: the other panels are written, the totals match, and later runs converge."""
    with fault_world(original_db.engine, original_db.url, per_panel=PER_PANEL) as world:
        writer = OtherWriter(original_db.name, "reseller_configs", nth=2)
        try:
            summary = sync_beside(world, tmp_path, writer)
        finally:
            writer.close()
        assert writer.held_s >= BUSY_TIMEOUT_MS / 1000
        assert (summary["failed"], summary["updated"]) == (PER_PANEL, 3 * PER_PANEL), summary
        assert f"Failed to write a batch of {PER_PANEL} configs: database is locked" in caplog.text
        # The batch held off is one whole panel's (whichever answered second).
        untouched = sorted(cid for cid, (usage, _, _) in world.ledgers().items() if usage == 0)
        assert len(untouched) == PER_PANEL, untouched
        assert len({world.configs[cid][0] for cid in untouched}) == 1, untouched
        assert_untouched(world, untouched)
        assert_written(world, [cid for cid in world.configs if cid not in untouched])
        world.assert_never_over()
        assert world.reseller_totals() == expected_totals(world)

        converge(world, tmp_path, updated=PER_PANEL)


@pytest.mark.parametrize("original_db", ["sqlite"], indirect=True)
def test_sqlite_writer_past_busy_timeout_fails_the_totals(
    original_db: OriginalDatabase, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer holding SQLite's lock past the busy timeout fails the totals update, whole:
    the usage is written, every total stays as it was, and the next run stores them."""
    with fault_world(original_db.engine, original_db.url, per_panel=PER_PANEL) as world:
        before = world.reseller_totals()
        writer = OtherWriter(original_db.name, "resellers", nth=1)
        try:
            summary = sync_beside(world, tmp_path, writer)
        finally:
            writer.close()
        assert writer.held_s >= BUSY_TIMEOUT_MS / 1000
        assert (summary["failed"], summary["updated"]) == (0, len(world.configs)), summary
        assert summary["resellers_updated"] == 0, summary
        assert "Failed to store the totals of 4 resellers: database is locked" in caplog.text
        world.assert_converged()
        assert world.reseller_totals() == before

        converge(world, tmp_path, updated=0)
