"""Breaks that fault injection found, each replayed end to end through the `usage-sync` CLI.

A garbage credential, counters outside 0..2^63-1, a reseller whose configs add up to
more than a BIGINT, a user listed twice with different counters, a panel URL with
user-info, and a swarm of ticks deciding for one minute while a worker runs the job.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from fault_support import KINDS, MIB, FaultWorld, fault_world
from original_rows import insert_config, insert_reseller
from original_schema import OriginalDatabase
from redis_support import (
    QUEUE,
    RedisDb,
    background,
    claimed_redis_db,
    lock_key,
    script,
    sqlite_app_db,
    subprocess_env,
    usage_sync,
    wait_for,
)
from rq import Queue
from rq.registry import FinishedJobRegistry, StartedJobRegistry
from sqlalchemy import text

from usage_sandbox.emulator import EmulatedUser, Fault, PanelEmulator
from usage_sandbox.emulator.marzban import marzban_user
from usage_sandbox.emulator.marzneshin import MarzneshinApp

pytestmark = pytest.mark.timeout(240)

# A Laravel payload whose MAC decodes to "éé": hmac.compare_digest refuses non-ASCII text.
NON_ASCII_MAC_PAYLOAD = (
    "eyJpdiI6ICJBQUFBQUFBQUFBQUFBQUFBQUFBQUFBPT0iLCAidmFsdWUiOiAiQUFBQUFBQUFBQUFBQUFBQUFBQUFBQT"
    "09IiwgIm1hYyI6ICJcdTAwZTlcdTAwZTkifQ=="
)
# The largest value of the app's BIGINT columns.
MAX_BYTES = 2**63 - 1
NOT_BASE64 = "%%% this is not base64 at all %%%"
DUE_MINUTE = "2026-11-24T10:00:00+00:00"


# -- helpers


def sync(
    world: FaultWorld, tmp_path: Path, *args: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    """`usage-sync sync ARGS` on the world, to completion."""
    env = world.env(USAGE_SYNC_STATE_DIR=str(tmp_path / "state"), **extra)
    return usage_sync("sync", *args, env=env, timeout=120)


def panel_ids(world: FaultWorld) -> dict[str, int]:
    """panel kind -> its `panels.id`."""
    with world.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, panel_type FROM panels"))
        return {str(row.panel_type): int(row.id) for row in rows}


def configs_of(world: FaultWorld, *users: str) -> frozenset[int]:
    """The ids of the configs of these panel users."""
    return frozenset(cid for cid, (_, name) in world.configs.items() if name in users)


def configs_on(world: FaultWorld, *kinds: str) -> frozenset[int]:
    """The ids of the configs on panels of these kinds."""
    return frozenset(cid for cid, (kind, _) in world.configs.items() if kind in kinds)


def set_panel_column(world: FaultWorld, kind: str, column: str, value: str) -> None:
    """Overwrite one column of the `kind` panel's row, as an admin editing the table would."""
    assert column in ("password", "url", "extra")
    with world.engine.begin() as conn:
        conn.execute(
            text(f"UPDATE panels SET {column} = :value WHERE panel_type = :kind"),  # noqa: S608
            {"value": value, "kind": kind},
        )


def assert_untouched(world: FaultWorld, config_ids: frozenset[int]) -> None:
    """These configs were never written: no usage, nothing settled, no counter recorded."""
    ledgers = world.ledgers()
    for config_id in config_ids:
        usage, settled, meta = ledgers[config_id]
        assert (usage, settled) == (0, 0), (config_id, usage, settled)
        assert meta == {"note": f"keep-{config_id}"}, (config_id, meta)


def user_item(panel: PanelEmulator, name: str, used_traffic: object) -> dict[str, object]:
    """The Marzban or Marzneshin user object of `name` with `used_traffic` replaced."""
    user = panel.users.get(name)
    assert user is not None
    user_id = panel.users.id_of(name)
    if panel.kind == "marzban":
        item = marzban_user(user, user_id)
    else:
        assert panel.kind == "marzneshin"
        item = MarzneshinApp.user_body(user, user_id)
    return {**item, "used_traffic": used_traffic}


def misreport(panel: PanelEmulator, name: str, used_traffic: object) -> None:
    """The panel shows `used_traffic` for `name` in its listing and in the single read."""
    body = user_item(panel, name, used_traffic)
    panel.set_list_item(name, body)
    panel.set_fault(name, Fault.reply(body))


# -- 1. a credential that does not decrypt


def test_garbage_credential_fails_its_panel_alone(tmp_path: Path) -> None:
    """A non-ASCII MAC and a non-base64 password fail their own panels; the others sync exactly."""
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=3) as world,
    ):
        set_panel_column(world, "marzban", "password", NON_ASCII_MAC_PAYLOAD)
        set_panel_column(world, "marzneshin", "password", NOT_BASE64)
        ids = panel_ids(world)

        done = sync(world, tmp_path, "--json")

        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        errors = [line for line in done.stderr.splitlines() if ".ERROR:" in line]
        assert any(f"panel {ids['marzban']}: password could not be read" in e for e in errors)
        assert any(f"panel {ids['marzneshin']}: password could not be read" in e for e in errors)
        per_type = json.loads(done.stdout)["per_panel_type"]
        assert per_type["marzban"]["failed"] == per_type["marzneshin"]["failed"] == 3
        assert per_type["eylandoo"]["updated"] == per_type["xui"]["updated"] == 3
        broken = configs_on(world, "marzban", "marzneshin")
        assert_untouched(world, broken)
        world.assert_converged(except_configs=broken)


# -- 2. counters beyond what a BIGINT holds


def test_counter_beyond_bigint_fails_its_config_alone(
    original_db: OriginalDatabase, tmp_path: Path
) -> None:
    """Counters of 2^63 and 1e20 fail their configs alone; a reseller's overflowing total clamps."""
    with fault_world(original_db.engine, original_db.url, per_panel=4) as world:
        panels = world.panels
        panels["eylandoo"].users.set_counter("eylandoo-0000", upload=0, download=2**63)
        panels["marzban"].users.set_counter("marzban-0000", upload=0, download=2**63)
        misreport(panels["marzban"], "marzban-0001", 1e20)
        misreport(panels["marzneshin"], "marzneshin-0002", 1e20)
        # Each half fits; their sum, the counter, does not.
        panels["xui"].users.set_counter("xui-0003", upload=2**62, download=2**62)
        bad = configs_of(
            world, "eylandoo-0000", "marzban-0000", "marzban-0001", "marzneshin-0002", "xui-0003"
        )
        # A reseller of its own whose two in-range configs add up to 2^63 + 2.
        big_reseller = insert_reseller(original_db.engine, traffic_total_bytes=MAX_BYTES)
        marzban_id = panel_ids(world)["marzban"]
        for name in ("big-a", "big-b"):
            panels["marzban"].users.put(EmulatedUser(name, download=2**62 + 1))
            config_id = insert_config(
                original_db.engine,
                reseller_id=big_reseller,
                external_username=name,
                panel_type="marzban",
                panel_id=marzban_id,
                meta={"note": "pending"},
            )
            with original_db.engine.begin() as conn:
                conn.execute(
                    text("UPDATE reseller_configs SET meta = :m WHERE id = :i"),
                    {"m": json.dumps({"note": f"keep-{config_id}"}), "i": config_id},
                )
            world.configs[config_id] = ("marzban", name)

        done = sync(world, tmp_path, "--json")

        assert done.returncode == 1, done.stdout + done.stderr
        assert "Traceback" not in done.stderr, done.stderr
        per_type = json.loads(done.stdout)["per_panel_type"]
        assert {kind: per_type[kind]["failed"] for kind in KINDS} == {
            "eylandoo": 1,
            "marzban": 2,
            "marzneshin": 1,
            "xui": 1,
        }
        hard = [line for line in done.stderr.splitlines() if "(hard failure)" in line]
        for name in (
            "eylandoo-0000",
            "marzban-0000",
            "marzban-0001",
            "marzneshin-0002",
            "xui-0003",
        ):
            assert any(f"user {name} " in line for line in hard), (name, hard)
        assert_untouched(world, bad)
        world.assert_converged(except_configs=bad)

        totals = world.reseller_totals()
        assert totals[big_reseller] == MAX_BYTES
        assert "more than a BIGINT holds" in done.stderr
        ledgers = world.ledgers()
        for reseller in world.resellers:
            with original_db.engine.connect() as conn:
                ids = conn.execute(
                    text("SELECT id FROM reseller_configs WHERE reseller_id = :r"), {"r": reseller}
                ).scalars()
                expected = sum(ledgers[i][0] + ledgers[i][1] for i in ids)
            assert 0 < totals[reseller] == expected, (reseller, totals[reseller], expected)


# -- 3. readings that are not counters, and users listed twice


def test_negative_reading_is_never_a_reset(tmp_path: Path) -> None:
    """Readings of -5 and -1.0 fail their configs, settle nothing; the real value is then exact."""
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=3) as world,
    ):
        done = sync(world, tmp_path)
        assert done.returncode == 0, done.stderr
        world.assert_converged()
        before = world.ledgers()
        world.grow()
        misreport(world.panels["marzban"], "marzban-0000", -5)
        misreport(world.panels["marzneshin"], "marzneshin-0001", -1.0)
        eylandoo = {"success": True, "username": "eylandoo-0002", "total_traffic_bytes": -5}
        world.panels["eylandoo"].set_list_item("eylandoo-0002", eylandoo)
        world.panels["eylandoo"].set_fault("eylandoo-0002", Fault.reply(eylandoo))
        negative = configs_of(world, "marzban-0000", "marzneshin-0001", "eylandoo-0002")

        done = sync(world, tmp_path)

        assert done.returncode == 1, done.stderr
        after = world.ledgers()
        for config_id in negative:
            assert after[config_id] == before[config_id], config_id
        assert " 0 counter resets" in done.stdout, done.stdout
        world.assert_converged(except_configs=negative)

        for panel in world.panels.values():
            panel.clear_faults()
        done = sync(world, tmp_path)
        assert done.returncode == 0, done.stderr
        world.assert_converged()
        assert all(world.ledgers()[i][1] == 0 for i in negative), "a negative reading settled bytes"


def test_user_listed_twice_is_read_singly(tmp_path: Path) -> None:
    """A user listed again on another page with another counter, six runs: every ledger exact."""
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=6) as world,
    ):
        paged = ("marzban", "marzneshin")
        for kind in paged:
            # Three pages of two users, fetched concurrently after the first; a listing
            # even where six wanted users would be read by name.
            extra = {
                "sync_page_size": 2,
                "sync_page_concurrency": 4,
                "usage_sync_read_strategy": "listing",
            }
            set_panel_column(world, kind, "extra", json.dumps(extra))
        for run in range(6):
            world.grow()
            # The duplicate alternates between a later and an earlier page, and between
            # a counter above the real one and one below it (which would read as a reset).
            shown, slot = ("0000", "0005") if run % 2 == 0 else ("0005", "0000")
            for kind in paged:
                panel = world.panels[kind]
                panel.clear_faults()
                user = panel.users.get(f"{kind}-{shown}")
                assert user is not None
                wrong = user.used + 50 * MIB if run // 2 % 2 == 0 else user.used // 2
                panel.set_list_item(f"{kind}-{slot}", user_item(panel, f"{kind}-{shown}", wrong))

            done = sync(world, tmp_path)

            assert done.returncode == 0, done.stderr
            world.assert_converged()
            assert all(settled == 0 for _, settled, _ in world.ledgers().values()), run
            for label in ("Marzban", "Marzneshin"):
                assert f"{label} listed 1 users twice with different counters" in done.stderr


# -- 6. a panel URL with user-info


def test_url_user_info_never_shows(tmp_path: Path) -> None:
    """`user:password@` in every panel URL: syncs work, and no password reaches logs or output."""
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=3) as world,
    ):
        passwords = {kind: f"ui-{kind}-Pw-4f1c9e" for kind in KINDS}
        for kind, panel in world.panels.items():
            set_panel_column(
                world, kind, "url", panel.url.replace("//", f"//u-{kind}:{passwords[kind]}@")
            )
            # A failing user, so the hard-failure lines that name the panel URL are written.
            panel.set_fault(f"{kind}-0001", Fault.http_status(500))
            panel.set_list_item(f"{kind}-0001", {"username": f"{kind}-0001"})
        failing = configs_of(world, *(f"{kind}-0001" for kind in KINDS))
        log_file = tmp_path / "json.log"
        debug = {"USAGE_SYNC_LOG_LEVEL": "DEBUG"}
        json_logs = {**debug, "USAGE_SYNC_LOG_FORMAT": "json", "USAGE_SYNC_LOG_FILE": str(log_file)}

        text_run = sync(world, tmp_path, **debug)
        world.grow()
        json_run = sync(world, tmp_path, "--json", **json_logs)
        runs = [text_run, json_run]
        env = world.env(USAGE_SYNC_STATE_DIR=str(tmp_path / "state"), **debug)
        # A bearer panel that answers, and a cookie panel whose user fails.
        one_by_one = ("marzban-0000", "xui-0001")
        for name in one_by_one:
            (config_id,) = configs_of(world, name)
            shown = usage_sync("sync-one", "--config", str(config_id), env=env)
            as_json = usage_sync(
                "sync-one", "--config", str(config_id), "--json", env={**env, **json_logs}
            )
            runs += [shown, as_json]
        outputs = [text for run in runs for text in (run.stdout, run.stderr)]
        outputs.append(log_file.read_text(encoding="utf-8"))
        # The lines that name the panel URL were written, in both formats.
        assert "panel_url" in text_run.stderr
        assert "panel_url" in outputs[-1]

        for kind, password in passwords.items():
            leaks = [i for i, output in enumerate(outputs) if password in output]
            assert leaks == [], f"the {kind} URL password shows in outputs {leaks}"
        assert not any(f"u-{kind}:" in output for kind in KINDS for output in outputs)

        # The panels need no basic auth: everything but the failing users synced, and
        # sync-one shows each panel's URL without its user-info.
        assert (text_run.returncode, json_run.returncode) == (1, 1), text_run.stderr
        world.assert_converged(except_configs=failing)
        for name, shown, as_json in zip(one_by_one, runs[2::2], runs[3::2], strict=True):
            url = world.panels[name.split("-")[0]].url
            assert f"URL: {url}\n" in shown.stdout, shown.stdout
            assert json.loads(as_json.stdout)["panel"]["url"] == url
            expected = 0 if name == "marzban-0000" else 1
            assert (shown.returncode, as_json.returncode) == (expected, expected), shown.stdout


# -- the unique dispatch: many ticks for one minute, a worker running the job


@pytest.fixture
def redis_db() -> Iterator[RedisDb]:
    """A Redis database of this test's own."""
    with claimed_redis_db() as claimed:
        yield claimed


def ticks(env: Mapping[str, str], count: int) -> list[dict[str, object]]:
    """`count` `usage-sync tick --now DUE_MINUTE --json` processes at once; their documents."""
    processes = [
        subprocess.Popen(
            [script("usage-sync"), "tick", "--now", DUE_MINUTE, "--json"],
            env=subprocess_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    documents = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        documents.append(json.loads(out))
    return documents


def idle(redis_db: RedisDb) -> bool:
    """No job queued or running and the unique lock free: every dispatched run is over."""
    queue = Queue(QUEUE, connection=redis_db.client)
    return (
        queue.count == 0
        and StartedJobRegistry(queue=queue).count == 0
        and not redis_db.client.exists(lock_key())
    )


def test_ticks_for_one_minute_give_one_run(redis_db: RedisDb, tmp_path: Path) -> None:
    """20 ticks at once, then 2 rounds of 5 after the run ended, all for 10:00: exactly one run."""
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=3) as world,
    ):
        log_file = tmp_path / "usage-sync.log"
        env = world.env(
            USAGE_SYNC_REDIS_URL=redis_db.url,
            USAGE_SYNC_QUEUE=QUEUE,
            USAGE_SYNC_STATE_DIR=str(tmp_path / "state"),
            USAGE_SYNC_LOG_FILE=str(log_file),
        )
        with background(
            [script("usage-sync"), "worker"], env=env, output=tmp_path / "worker.out"
        ) as worker:
            documents = ticks(env, 20)
            wait_for(lambda: idle(redis_db), timeout=60, what="the first run", alive=worker)
            world.assert_converged()
            for _ in range(2):
                # The run is over and its lock released: only the claimed minute stops these.
                documents += ticks(env, 5)
                wait_for(lambda: idle(redis_db), timeout=60, what="any later run", alive=worker)
            assert worker.process.poll() is None, worker.text()

        assert all(d["dispatch"] is True for d in documents)
        dispatched = [d for d in documents if d["dispatched"]]
        assert len(dispatched) == 1, [d["reason"] for d in documents]
        # Every run lists every panel once: the panels themselves count the runs.
        assert {kind: p.counts.list_pages for kind, p in world.panels.items()} == dict.fromkeys(
            KINDS, 1
        )
        queue = Queue(QUEUE, connection=redis_db.client)
        assert len(FinishedJobRegistry(queue=queue).get_job_ids()) == 1
        assert log_file.read_text(encoding="utf-8").count("Starting reseller usage sync") == 1
