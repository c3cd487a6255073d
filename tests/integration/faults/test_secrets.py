"""No secret leaks: every credential planted in the app's tables and settings, and every
token the panels hand out, stays out of every output, log file and Redis key.

One deployment (PostgreSQL with a password in its URL, Redis, four emulated panels with
credentials of their own, one panel URL with user-info) runs everything a user runs,
healthy and then failing, at DEBUG level, in text and JSON. Then every stdout, stderr,
log and state file, and every key and value of the Redis database (RQ's pickled and
compressed job payloads decompressed), is searched for every secret.
"""

from __future__ import annotations

import base64
import os
import secrets
import socket
import subprocess
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from original_rows import insert_config, insert_panel, insert_reseller, laravel_encrypt_string
from original_schema import OriginalDatabase
from redis import Redis
from redis_support import (
    QUEUE,
    RedisDb,
    background,
    claimed_redis_db,
    lock_key,
    script,
    usage_sync,
    wait_for,
)
from rq import Queue
from rq.registry import StartedJobRegistry
from sqlalchemy import make_url, text

from usage_sandbox.emulator import EmulatedUser, Fault, PanelEmulator, PanelKind

pytestmark = pytest.mark.timeout(240)

KINDS: tuple[PanelKind, ...] = ("eylandoo", "marzban", "marzneshin", "xui")
ADMIN = "admin"
MIB = 1024**2


def secret(label: str) -> str:
    """A fresh secret that no log line could contain by chance."""
    return f"{label}-{secrets.token_hex(10)}"


@dataclass
class Deployment:
    """The planted secrets, the panels, and every text the processes left behind."""

    db: OriginalDatabase
    redis: RedisDb
    workdir: Path
    panels: dict[PanelKind, PanelEmulator]
    panel_ids: dict[str, int]
    # config id of each panel's first user
    first_config: dict[str, int]
    secrets: dict[str, str]
    outputs: list[tuple[str, str]] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        """A process's variables: the password-bearing database URL, the APP_KEY, DEBUG logs."""
        url = make_url(self.db.url).set(password=self.secrets["database password"])
        return {
            "USAGE_SYNC_DATABASE_URL": url.render_as_string(hide_password=False),
            "USAGE_SYNC_APP_KEY": self.secrets["APP_KEY"],
            "USAGE_SYNC_REDIS_URL": self.redis.url,
            "USAGE_SYNC_QUEUE": QUEUE,
            "USAGE_SYNC_STATE_DIR": str(self.workdir / "state"),
            "USAGE_SYNC_TIMEZONE": "UTC",
            "USAGE_SYNC_LOG_LEVEL": "DEBUG",
            **extra,
        }

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`usage-sync ARGS`, its stdout and stderr kept for the search."""
        done = usage_sync(*args, env=env or self.env(), timeout=120)
        label = " ".join(args)
        self.outputs += [(f"{label} (stdout)", done.stdout), (f"{label} (stderr)", done.stderr)]
        return done


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def deployment(original_db: OriginalDatabase, tmp_path: Path) -> Iterator[Deployment]:
    """Four panels, each with credentials of its own, and two resellers, one over its quota."""
    planted = {
        "APP_KEY": "base64:" + base64.b64encode(os.urandom(32)).decode(),
        "database password": secret("db-pw"),
        "url user-info password": secret("ui-pw"),
        "redis password": secret("redis-pw"),
        "wrong eylandoo key": secret("wrong-key"),
        "wrong marzban password": secret("wrong-pw"),
        **{f"{kind} password": secret(f"{kind}-pw") for kind in KINDS},
        **{f"{kind} api_token": secret(f"{kind}-tok") for kind in KINDS},
    }
    with ExitStack() as stack, claimed_redis_db() as redis:
        panels = {
            kind: stack.enter_context(
                PanelEmulator(
                    kind,
                    # The third user, the tight reseller's, is far over the 50 MiB grace.
                    users=[
                        EmulatedUser(f"{kind}-{i}", upload=1000 * (i + 1), download=40**i * MIB)
                        for i in range(3)
                    ],
                    username=ADMIN,
                    password=planted[f"{kind} password"],
                    api_key=planted["eylandoo api_token"],
                    # 3x-ui v3 also hands out CSRF tokens.
                    xui_version=3,
                )
            )
            for kind in KINDS
        }
        engine = original_db.engine
        roomy = insert_reseller(engine, traffic_total_bytes=10**15)
        # Over its quota, so the sync's enforcement disables its configs on the panels.
        tight = insert_reseller(engine, traffic_total_bytes=1)
        panel_ids: dict[str, int] = {}
        first_config: dict[str, int] = {}
        for kind, panel in panels.items():
            url = panel.url
            if kind == "marzneshin":
                url = url.replace("//", f"//{ADMIN}:{planted['url user-info password']}@")
            panel_ids[kind] = insert_panel(
                engine,
                panel_type=kind,
                url=url,
                username=ADMIN,
                password=planted[f"{kind} password"],
                # Eylandoo's is its API key; the others' are read (and decrypted) all the same.
                api_token=planted[f"{kind} api_token"],
                app_key=planted["APP_KEY"],
            )
            for i in range(3):
                config_id = insert_config(
                    engine,
                    reseller_id=tight if i == 2 else roomy,
                    external_username=f"{kind}-{i}",
                    panel_type=kind,
                    panel_id=panel_ids[kind],
                )
                first_config.setdefault(kind, config_id)
        yield Deployment(original_db, redis, tmp_path, panels, panel_ids, first_config, planted)


def idle(redis: Redis) -> bool:
    """No job queued or running, and the unique lock free."""
    queue = Queue(QUEUE, connection=redis)
    return (
        queue.count == 0
        and StartedJobRegistry(queue=queue).count == 0
        and not redis.exists(lock_key())
    )


def raw(value: object) -> bytes:
    """A value as the client gave it (bytes: the connection does not decode)."""
    assert isinstance(value, bytes), value
    return value


def values_of(redis: Redis, key: bytes) -> list[bytes]:
    """Everything stored under `key`, whatever its type: members, fields and values."""
    kind = raw(redis.type(key)).decode()
    found: list[object]
    if kind == "string":
        found = [redis.get(key) or b""]
    elif kind == "hash":
        found = [part for pair in redis.hgetall(key).items() for part in pair]
    elif kind == "list":
        found = list(redis.lrange(key, 0, -1))
    elif kind == "set":
        found = list(redis.smembers(key))
    elif kind == "zset":
        found = list(redis.zrange(key, 0, -1))
    elif kind == "stream":
        entries: list[tuple[bytes, dict[bytes, bytes]]] = redis.xrange(key)  # type: ignore[assignment]
        found = [part for _, entry in entries for pair in entry.items() for part in pair]
    else:
        pytest.fail(f"Redis key {key!r} has a type the search does not read: {kind}")
    return [raw(value) for value in found]


def redis_contents(redis: Redis) -> list[tuple[str, bytes]]:
    """Every key and value of the database, compressed values also decompressed."""
    found: list[tuple[str, bytes]] = []
    for key in redis.scan_iter(count=1000):
        name = raw(key).decode(errors="replace")
        for part in [raw(key), *values_of(redis, raw(key))]:
            found.append((name, part))
            # RQ stores a job's call (function, args) as a zlib-compressed pickle.
            with suppress(zlib.error):
                found.append((f"{name} (decompressed)", zlib.decompress(part)))
    return found


# A password in the database URL needs a server that takes any: PostgreSQL's trust auth.
@pytest.mark.parametrize("original_db", ["postgresql"], indirect=True)
def test_no_secret_reaches_any_output_log_or_redis(deployment: Deployment) -> None:
    """Every command, a worker too, healthy then failing, text and JSON logs: no secret shows."""
    dep = deployment
    log_text, log_json = dep.workdir / "text.log", dep.workdir / "json.log"
    json_env = dep.env(USAGE_SYNC_LOG_FILE=str(log_json), USAGE_SYNC_LOG_FORMAT="json")
    worker_env = dep.env(USAGE_SYNC_LOG_FILE=str(log_text))
    # Whether each step went as planned, checked after the search (a leak matters most).
    went: list[tuple[str, bool]] = []

    def expect(step: str, done: subprocess.CompletedProcess[str], ok: bool) -> None:
        went.append((f"{step}: exit {done.returncode}\n{done.stdout}{done.stderr}", ok))

    # Healthy: every command, text and JSON logs, on stderr and in files.
    done = dep.run("sync")
    # The tight reseller's configs are disabled on their panels: the write routes ran.
    expect("sync", done, done.returncode == 0 and "remote: 0 done" not in done.stdout)
    done = dep.run("sync", "--json", env=json_env)
    expect("sync --json", done, done.returncode == 0)
    # The panel with user-info in its URL, and the one whose login sets a cookie and a CSRF token.
    done = dep.run("sync-one", "--config", str(dep.first_config["marzneshin"]))
    expect("sync-one", done, done.returncode == 0)
    done = dep.run("sync-one", "--config", str(dep.first_config["xui"]), "--json", env=json_env)
    expect("sync-one --json", done, done.returncode == 0)
    done = dep.run("schedule")
    expect("schedule", done, done.returncode == 0)
    done = dep.run("enforce", "--dry-run")
    expect("enforce --dry-run", done, done.returncode == 0)

    with background(
        [script("usage-sync"), "worker"], env=worker_env, output=dep.workdir / "worker.out"
    ) as worker:
        done = dep.run("tick", "--now", "2026-11-24T10:00:00+00:00", "--json", env=worker_env)
        expect("tick", done, '"dispatched": true' in done.stdout)
        wait_for(lambda: idle(dep.redis.client), timeout=60, what="the job", alive=worker)

        # Failing: a wrong API key (401), a wrong password (login refused), a panel
        # that is down, a panel whose login fails with 500; the worker runs it too.
        break_panels(dep)
        done = dep.run("tick", "--now", "2026-11-24T10:05:00+00:00", "--json", env=worker_env)
        expect("failing tick", done, '"dispatched": true' in done.stdout)
        wait_for(lambda: idle(dep.redis.client), timeout=60, what="the failing job", alive=worker)

    done = dep.run("sync")
    expect("failing sync", done, "0 fetched" in done.stdout)
    done = dep.run("sync-one", "--config", str(dep.first_config["marzban"]))
    expect("failing sync-one", done, done.returncode == 1)
    done = dep.run(
        "sync-one", "--config", str(dep.first_config["eylandoo"]), "--json", env=json_env
    )
    expect("failing sync-one --json", done, done.returncode == 1)
    # Redis and the database unreachable, each with a password in its URL.
    down = f"redis://:{dep.secrets['redis password']}@127.0.0.1:{closed_port()}/0"
    done = dep.run(
        "tick", "--now", "2026-11-24T10:10:00+00:00", env=dep.env(USAGE_SYNC_REDIS_URL=down)
    )
    expect("tick without Redis", done, done.returncode != 0)
    dead_db = make_url(dep.db.url).set(
        port=closed_port(), password=dep.secrets["database password"]
    )
    dead = {"USAGE_SYNC_DATABASE_URL": dead_db.render_as_string(hide_password=False)}
    done = dep.run("sync", env=dep.env(**dead))
    expect("sync without the database", done, done.returncode != 0)

    # What the panels handed out is secret too.
    for kind in ("marzban", "marzneshin", "xui"):
        issued = dep.panels[kind].issued_tokens()
        assert issued, f"{kind} issued no token: the search would prove nothing"
        for i, token in enumerate(issued):
            dep.secrets[f"{kind} issued token {i}"] = token
    user_info = f"{ADMIN}:{dep.secrets['url user-info password']}"
    dep.secrets["url user-info as basic auth"] = base64.b64encode(user_info.encode()).decode()
    dep.secrets["APP_KEY bytes"] = dep.secrets["APP_KEY"].removeprefix("base64:")

    texts = list(dep.outputs)
    for path in sorted(dep.workdir.rglob("*")):
        if path.is_file() and path.suffix != ".sqlite":
            texts.append((str(path.relative_to(dep.workdir)), path.read_text(errors="replace")))
    stored = redis_contents(dep.redis.client)

    # The search reads what it should: logs of both formats, the run summaries, RQ's jobs.
    corpus = "\n".join(text for _, text in texts)
    assert '"level": "debug"' in corpus
    assert "usage-sync.DEBUG:" in corpus
    assert "marzneshin-0" in corpus
    assert any(b"SyncResellerUsageJob" in value for _, value in stored)
    assert any(where.endswith("(decompressed)") and b"sync_job" in raw for where, raw in stored)

    leaks = [
        (what, where)
        for what, value in dep.secrets.items()
        for where, text in texts
        if value in text
    ]
    leaks += [
        (what, where)
        for what, value in dep.secrets.items()
        for where, raw in stored
        if value.encode() in raw
    ]
    assert leaks == [], leaks
    assert [step for step, ok in went if not ok] == []


def break_panels(dep: Deployment) -> None:
    """Eylandoo refuses the key, Marzban the password, Marzneshin's login fails, 3x-ui is down."""
    app_key = dep.secrets["APP_KEY"]
    xui = dep.panels["xui"]
    changes = (
        (
            "api_token",
            laravel_encrypt_string(dep.secrets["wrong eylandoo key"], app_key),
            "eylandoo",
        ),
        (
            "password",
            laravel_encrypt_string(dep.secrets["wrong marzban password"], app_key),
            "marzban",
        ),
        ("url", xui.url.replace(f":{xui.port}", f":{closed_port()}"), "xui"),
    )
    with dep.db.engine.begin() as conn:
        for column, value, kind in changes:
            conn.execute(
                text(f"UPDATE panels SET {column} = :value WHERE id = :id"),  # noqa: S608
                {"value": value, "id": dep.panel_ids[kind]},
            )
    dep.panels["marzneshin"].set_login_fault(Fault.http_status(500))
    # A restart, so that the token the healthy runs kept is refused and a login is needed.
    dep.panels["marzneshin"].invalidate_sessions()
