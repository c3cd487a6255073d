#!/usr/bin/env python3
"""Benchmark of a full sync: N configs on four emulated panels, side by side with the
original strategy (one login and one GET per config, sequentially).

Run from the project root: `python bench/sync_bench.py --configs 100000`. See
docs/performance.md for the figures and what they mean.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import io
import json
import multiprocessing
import os
import pstats
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FinishedJobRegistry
from sqlalchemy import create_engine, event, insert, select, text, update
from sqlalchemy.engine import URL, Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from floor import download_listings, run_floor
from original_strategy import run_original_strategy
from usage_adapters.sql import tables as t
from usage_adapters.sql.engine import create_store_engine
from usage_adapters.sql.meta import COUNTED_KEY, LAST_COUNTER_KEY, SETTLED_KEY
from usage_entrypoints.collector import rare_collections
from usage_entrypoints.container import build_container
from usage_sandbox.emulator import EmulatedUser, PanelEmulator

KINDS = ("eylandoo", "marzban", "marzneshin", "xui")
ADMIN, PASSWORD, API_KEY = "admin", "bench-password", "bench-api-key"
FILL_CHUNK = 20_000
OUTCOMES = ("updated", "unchanged", "failed", "skipped", "resets")
MAX_REPORTED_WRONG = 10


def upload_of(i: int) -> int:
    """The emulated upload counter of user number `i` (deterministic)."""
    return (i * 37 + 11) % 50_000_000


def download_of(i: int) -> int:
    """The emulated download counter of user number `i` (deterministic)."""
    return (i * 101 + 7) % 900_000_000 + 1


def username(kind: str, i: int) -> str:
    """The panel username of user number `i` on a panel of `kind`."""
    return f"{kind}-user-{i:07d}"


# -- the emulators, in a process group of their own so that they share neither the
# -- sync's memory figure nor its interpreter lock, and their CPU is counted apart

CHANGED_EVERY = 10  # the changed run: every tenth user of each panel used more traffic
CHANGED_BY = 1_000_000


def changed(i: int) -> bool:
    """Whether user number `i` used more traffic before the changed run."""
    return i % CHANGED_EVERY == 0


def _process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _emulators_main(conn: Connection, per_kind: int, latency_s: float) -> None:
    os.setpgid(0, 0)
    began = time.perf_counter()
    emulators = {}
    for kind in KINDS:
        users = [
            EmulatedUser(username(kind, i), upload=upload_of(i), download=download_of(i))
            for i in range(per_kind)
        ]
        emulators[kind] = PanelEmulator(
            kind,
            users=users,
            username=ADMIN,
            password=PASSWORD,
            api_key=API_KEY,
            latency_s=latency_s,
        )
        emulators[kind].start()
    conn.send(
        {
            "urls": {kind: e.url for kind, e in emulators.items()},
            "start_s": time.perf_counter() - began,
        }
    )
    cpu_since = _process_cpu_s()
    while True:
        command = conn.recv()
        if command == "stats":
            conn.send(
                {
                    "cpu_s": _process_cpu_s() - cpu_since,
                    "panels": {
                        kind: {
                            "counts": dataclasses.asdict(e.counts),
                            "server": dataclasses.asdict(e.stats()),
                        }
                        for kind, e in emulators.items()
                    },
                }
            )
        elif command == "reset":
            for e in emulators.values():
                e.reset_counts()
            cpu_since = _process_cpu_s()
            conn.send("ok")
        elif command == "change":
            for kind, e in emulators.items():
                for i in range(0, per_kind, CHANGED_EVERY):
                    e.users.add_traffic(username(kind, i), download=CHANGED_BY)
            conn.send("ok")
        else:
            for e in emulators.values():
                e.close()
            conn.send("stopped")
            return


class Emulators:
    """The emulator process: URLs, request counts and its own CPU, changes, stop."""

    def __init__(self, per_kind: int, latency_s: float) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_emulators_main, args=(child, per_kind, latency_s), daemon=True
        )
        self.process.start()
        ready = self._conn.recv()
        self.urls: dict[str, str] = ready["urls"]
        self.start_s: float = ready["start_s"]

    def stats(self) -> dict[str, Any]:
        """Process CPU seconds and each panel's counts since the last reset."""
        self._conn.send("stats")
        return self._conn.recv()

    def reset(self) -> None:
        """Zero the counts and the CPU figure."""
        self._conn.send("reset")
        self._conn.recv()

    def change(self) -> None:
        """Every tenth user of each panel uses `CHANGED_BY` more bytes."""
        self._conn.send("change")
        self._conn.recv()

    def stop(self) -> None:
        """Stop serving; the process group is ended if it does not leave by itself."""
        try:
            self._conn.send("stop")
            self._conn.recv()
        except (OSError, EOFError):
            pass
        self.process.join(10)
        if self.process.is_alive() and self.process.pid:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.join(10)


# -- the database


def prepare_database(url: str) -> str:
    """Create the database named in `url` when the server lacks it; the usable URL."""
    engine = create_store_engine(url, create_sqlite_file=True)
    parsed = engine.url
    engine.dispose()
    if parsed.get_backend_name() == "sqlite":
        return parsed.render_as_string(hide_password=False)
    name = parsed.database
    # The server without the database (URL.set ignores None), to create it.
    server = URL.create(
        parsed.drivername,
        username=parsed.username,
        password=parsed.password,
        host=parsed.host,
        port=parsed.port,
        database="postgres" if parsed.get_backend_name() == "postgresql" else None,
    )
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if parsed.get_backend_name() == "postgresql":
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        else:
            conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
    admin.dispose()
    return make_url(parsed.render_as_string(hide_password=False)).render_as_string(
        hide_password=False
    )


def fill_database(
    url: str,
    urls: dict[str, str],
    configs: int,
    resellers: int,
    *,
    over_quota: float = 0.0,
    settings: dict[str, str] | None = None,
) -> float:
    """Fresh tables holding `configs` configs over `resellers` resellers; seconds taken.

    The first `over_quota` share of the resellers gets a 1 MiB quota, which the
    sync puts them over; the others never come near theirs.
    """
    started = time.perf_counter()
    engine = create_store_engine(url, create_sqlite_file=True)
    ours = [
        t.audit_logs,
        t.reseller_config_events,
        t.reseller_configs,
        t.resellers,
        t.panels,
        t.settings,
        t.users,
    ]
    t.metadata.drop_all(engine, tables=ours)
    t.metadata.create_all(engine, tables=list(reversed(ours)))
    now = datetime(2026, 11, 24, 10, 0)
    with engine.begin() as conn:
        conn.execute(
            insert(t.users),
            [{"id": 1, "name": "admin", "email": "admin@example.test", "password": "x"}],
        )
        conn.execute(
            insert(t.panels),
            [
                {
                    "id": n + 1,
                    "name": f"{kind} panel",
                    "url": urls[kind],
                    "panel_type": kind,
                    "username": ADMIN,
                    "password": PASSWORD,
                    "api_token": API_KEY if kind == "eylandoo" else None,
                    "is_active": True,
                }
                for n, kind in enumerate(KINDS)
            ],
        )
        conn.execute(
            insert(t.resellers),
            [
                {
                    "id": r + 1,
                    "user_id": None,
                    "type": "traffic",
                    "status": "active",
                    "traffic_total_bytes": 1024**2 if r < over_quota * resellers else 10**15,
                    "traffic_used_bytes": 0,
                }
                for r in range(resellers)
            ],
        )
        if settings:
            conn.execute(insert(t.settings), [{"key": k, "value": v} for k, v in settings.items()])
    rows: list[dict[str, Any]] = []
    for c in range(configs):
        kind, i = KINDS[c % 4], c // 4
        name = username(kind, i)
        rows.append(
            {
                "id": c + 1,
                "reseller_id": c % resellers + 1,
                "external_username": name,
                "traffic_limit_bytes": 50 * 1024**3,
                "usage_bytes": 0,
                "expires_at": now,
                "status": "active",
                "panel_type": kind,
                "panel_user_id": name,
                "panel_id": KINDS.index(kind) + 1,
                "created_by": 1,
            }
        )
        if len(rows) == FILL_CHUNK:
            with engine.begin() as conn:
                conn.execute(insert(t.reseller_configs), rows)
            rows = []
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(t.reseller_configs), rows)
    engine.dispose()
    return time.perf_counter() - started


def expected_counter(config_id: int, after_change: bool = False) -> int:
    """The panel counter the config with `config_id` must end with (usage and ledger)."""
    i = (config_id - 1) // 4
    grown = CHANGED_BY if after_change and changed(i) else 0
    return upload_of(i) + download_of(i) + grown


@dataclasses.dataclass
class Verification:
    """What the database holds against what the panels say, after a sync."""

    configs: int = 0
    good_configs: int = 0
    resellers: int = 0
    good_resellers: int = 0
    wrong_rows: int = 0
    wrong: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every config and every reseller total as expected (and at least one config)."""
        return bool(self.configs) and not self.wrong_rows

    def note(self, problem: str) -> None:
        """Count one wrong row; the first few are kept word for word."""
        self.wrong_rows += 1
        if len(self.wrong) < MAX_REPORTED_WRONG:
            self.wrong.append(problem)

    def as_dict(self) -> dict[str, Any]:
        """The figures for the report."""
        return {
            "ok": self.ok,
            "configs": f"{self.good_configs}/{self.configs}",
            "resellers": f"{self.good_resellers}/{self.resellers}",
            "wrong_rows": self.wrong_rows,
            "wrong": self.wrong,
        }


def verify(url: str, after_change: bool = False) -> Verification:
    """Check every config's usage and ledger keys, and every reseller's total."""
    engine = create_store_engine(url)
    result = Verification()
    expected_totals: dict[int, int] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                t.reseller_configs.c.id,
                t.reseller_configs.c.reseller_id,
                t.reseller_configs.c.usage_bytes,
                t.reseller_configs.c.meta,
            )
        )
        for row in rows:
            result.configs += 1
            counter = expected_counter(row.id, after_change)
            expected_totals[row.reseller_id] = expected_totals.get(row.reseller_id, 0) + counter
            problem = _config_problem(row.usage_bytes, row.meta, counter)
            if problem:
                result.note(f"config {row.id}: {problem}")
            else:
                result.good_configs += 1
        for row in conn.execute(select(t.resellers.c.id, t.resellers.c.traffic_used_bytes)):
            result.resellers += 1
            expected = expected_totals.get(row.id, 0)
            if row.traffic_used_bytes == expected:
                result.good_resellers += 1
            else:
                result.note(
                    f"reseller {row.id}: traffic_used_bytes {row.traffic_used_bytes}, "
                    f"expected {expected}"
                )
    engine.dispose()
    return result


def _config_problem(usage: int, meta: Any, counter: int) -> str | None:
    """What is wrong with one config's usage and ledger keys, or None."""
    if usage != counter:
        return f"usage_bytes {usage}, expected {counter}"
    document = json.loads(meta) if isinstance(meta, str) else meta
    if not isinstance(document, dict):
        return f"meta is {meta!r}, expected the ledger keys"
    for key in (LAST_COUNTER_KEY, COUNTED_KEY):
        if document.get(key) != counter:
            return f"meta.{key} {document.get(key)!r}, expected {counter}"
    if document.get(SETTLED_KEY, 0) != 0:
        return f"meta.{SETTLED_KEY} {document[SETTLED_KEY]!r}, expected none"
    return None


CORRUPTIONS = ("usage", "ledger", "total")


def corrupt_one_row(url: str, what: str, configs: int) -> str:
    """Tamper with one config's usage or ledger key, or one reseller's total; which."""
    engine = create_store_engine(url)
    victim = configs // 2 + 1
    c = t.reseller_configs.c
    with engine.begin() as conn:
        if what == "usage":
            conn.execute(
                update(t.reseller_configs)
                .where(c.id == victim)
                .values(usage_bytes=c.usage_bytes + 1)
            )
            name = f"config {victim}"
        elif what == "ledger":
            meta = conn.execute(select(c.meta).where(c.id == victim)).scalar_one()
            document = dict(json.loads(meta) if isinstance(meta, str) else meta or {})
            document[LAST_COUNTER_KEY] = int(document.get(LAST_COUNTER_KEY) or 0) + 1
            conn.execute(update(t.reseller_configs).where(c.id == victim).values(meta=document))
            name = f"config {victim}"
        else:
            r = t.resellers.c
            conn.execute(
                update(t.resellers)
                .where(r.id == 1)
                .values(traffic_used_bytes=r.traffic_used_bytes + 1)
            )
            name = "reseller 1"
    engine.dispose()
    return name


# -- the measured runs, each in a fresh process so that its peak RSS and CPU are its own


def _count_statements() -> dict[str, int]:
    counts = {"statements": 0, "rows": 0}

    def count(_conn: Any, _cursor: Any, _sql: str, params: Any, _ctx: Any, many: bool) -> None:
        counts["statements"] += 1
        counts["rows"] += len(params) if many else 1

    event.listen(Engine, "before_cursor_execute", count)
    return counts


def _rss_mb(field: str = "VmHWM") -> float:
    """This process's peak (VmHWM) or current (VmRSS) resident set, in MB.

    Read from /proc because `ru_maxrss` survives `exec`: a child started by a large
    benchmark process would report the parent's size as its own.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_ours(env: dict[str, str], launched: float, profile: str | None) -> dict[str, Any]:
    """Child process: one full sync through the real container."""
    os.environ.update(env)
    counts = _count_statements()
    container = build_container(os.environ)
    sync = container.sync_all()
    profiler = cProfile.Profile() if profile else None
    # Start-up: the interpreter, the imports and the container, up to the sync's first step.
    startup = {"startup_s": time.time() - launched, "startup_cpu_s": time.process_time()}
    rss_before = _rss_mb("VmRSS")
    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    with rare_collections():
        summary = sync()
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    enforced: dict[str, Any] = {}
    if env.get("USAGE_SYNC_BENCH_ENFORCE") == "1":
        # The enforcement pass that follows every sync, timed on its own.
        began = time.perf_counter()
        report = container.enforce()().as_dict()
        report.pop("transitions")
        enforced = {"enforce_s": time.perf_counter() - began, "enforcement": report}
    container.shutdown_resources()
    result: dict[str, Any] = {
        "wall_s": wall,
        "cpu_s": cpu,
        **startup,
        "rss_before_mb": rss_before,
        "peak_rss_mb": _rss_mb(),
        "summary": summary.as_dict(),
        **enforced,
        **counts,
    }
    if profiler and profile:
        profiler.dump_stats(profile)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
        result["profile_top"] = text.getvalue()
    return result


def run_floor_child(payload: dict[str, Any]) -> dict[str, Any]:
    """Child process: the floor's steps on the live data, rolled back."""
    result = run_floor(
        payload["database_url"], payload["urls"], payload["users"], (ADMIN, PASSWORD, API_KEY)
    )
    return {**result, "peak_rss_mb": _rss_mb()}


def run_worker(env: dict[str, str]) -> dict[str, Any]:
    """Child process: one RQ burst worker; its peak RSS and statements."""
    os.environ.update(env)
    counts = _count_statements()
    redis = Redis.from_url(env["USAGE_SYNC_REDIS_URL"])
    Worker([Queue(env["USAGE_SYNC_QUEUE"], connection=redis)], connection=redis).work(
        burst=True, logging_level="WARNING"
    )
    return {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        **counts,
    }


def child(mode: str, payload: dict[str, Any], profile: str | None = None) -> dict[str, Any]:
    """Run `mode` in a fresh interpreter; its JSON result."""
    args = [sys.executable, __file__, f"--_child={mode}", "--_payload", json.dumps(payload)]
    args += ["--_launched", repr(time.time())]
    if profile:
        args += ["--profile", profile]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {mode} run failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_workers(env: dict[str, str], workers: int) -> dict[str, Any]:
    """Dispatch one fanned-out run and drain it with `workers` burst workers."""
    redis = Redis.from_url(env["USAGE_SYNC_REDIS_URL"])
    redis.flushdb()
    started, cpu = time.perf_counter(), _children_cpu_s()
    script = Path(sys.executable).with_name("usage-sync")
    tick = subprocess.run(
        [str(script), "tick", "--now", "2026-11-24T10:00:00+00:00", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if tick.returncode != 0 or not json.loads(tick.stdout)["dispatched"]:
        raise SystemExit(f"the tick did not dispatch:\n{tick.stdout}\n{tick.stderr}")
    args = [sys.executable, __file__, "--_child=worker", "--_payload", json.dumps(env)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    results = [json.loads(p.communicate()[0].splitlines()[-1]) for p in procs]
    wall = time.perf_counter() - started
    summary = json.loads(redis.get(f"usage-sync:{env['USAGE_SYNC_QUEUE']}:last-run") or "{}")
    return {
        "jobs": fan_out_jobs(Queue(env["USAGE_SYNC_QUEUE"], connection=redis)),
        "wall_s": wall,
        # The tick, the workers and their work horses, start-ups included.
        "cpu_s": _children_cpu_s() - cpu,
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        "statements": sum(r["statements"] for r in results),
        "rows": sum(r["rows"] for r in results),
        "summary": summary,
    }


def requests_of(stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per panel: logins, list pages, single GETs, all requests."""
    return {
        kind: {
            "logins": s["counts"]["logins"],
            "list_pages": s["counts"]["list_pages"],
            "single_gets": s["counts"]["user_gets"],
            "requests": s["counts"]["requests"],
        }
        for kind, s in stats["panels"].items()
    }


def emulator_figures(stats: dict[str, Any]) -> dict[str, Any]:
    """The emulator process's own CPU seconds, and what each panel sent."""
    return {
        "cpu_s": round(stats["cpu_s"], 3),
        "mb_sent": {
            kind: round(s["server"]["bytes_sent"] / 1e6, 2) for kind, s in stats["panels"].items()
        },
    }


def ratio(ours: float, floor: float) -> float | None:
    """ours / floor, None without a floor."""
    return round(ours / floor, 2) if floor > 0 else None


def _rounded(figures: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {key: round(figures[key], 3) for key in keys if key in figures}


def measure_run(
    scenario: str,
    args: argparse.Namespace,
    env: dict[str, str],
    url: str,
    emulators: Emulators,
) -> dict[str, Any]:
    """The floor, then our sync, on the same data and warm emulators; both figures.

    With `--repeat K`, K floors and K syncs alternate, each sync on the database as
    it was before the first (restored from a copy), and the median of each is kept:
    on a shared machine one measurement can be a fifth off either way.
    """
    # Warm the emulators: every listing reply built and cached before anything is timed.
    download_listings(emulators.urls, -(-args.configs // 4), (ADMIN, PASSWORD, API_KEY))
    emulators.reset()
    before = _copy_database(url) if args.repeat > 1 else None
    attempts: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]] = []
    for attempt in range(args.repeat):
        if attempt and before is not None:
            _restore_database(url, before)
        floor = child(
            "floor", {"database_url": url, "urls": emulators.urls, "users": -(-args.configs // 4)}
        )
        floor_emulators = emulators.stats()
        emulators.reset()
        if args.workers:
            ours = run_workers(env, args.workers)
        else:
            profile = f"{args.profile}.{scenario}" if args.profile and not attempt else None
            ours = child("ours", env, profile)
        attempts.append((floor, floor_emulators, ours, emulators.stats()))
        emulators.reset()
    if before is not None:
        before.unlink()
    floor, floor_emulators, _, _ = _median(attempts, lambda a: a[0]["cpu_s"])
    _, _, ours, stats = _median(attempts, lambda a: a[2]["cpu_s"])
    run: dict[str, Any] = {
        "ours": {
            **_rounded(
                ours,
                (
                    "wall_s",
                    "cpu_s",
                    "startup_s",
                    "startup_cpu_s",
                    "rss_before_mb",
                    "peak_rss_mb",
                    "enforce_s",
                ),
            ),
            "statements": ours["statements"],
            "statement_rows": ours["rows"],
            "summary": {k: ours["summary"].get(k) for k in OUTCOMES},
        },
        "floor": {
            **_rounded(floor, ("wall_s", "cpu_s", "peak_rss_mb")),
            "rows": floor["rows"],
            "writes": floor["writes"],
            "steps": {
                step: _rounded(figures, ("wall_s", "cpu_s"))
                for step, figures in floor["steps"].items()
            },
        },
        "cpu_ratio": ratio(ours["cpu_s"], floor["cpu_s"]),
        "wall_ratio": ratio(ours["wall_s"], floor["wall_s"]),
        "configs_per_s": round(args.configs / ours["wall_s"]),
        "requests": requests_of(stats),
        "emulators": emulator_figures(stats),
        "floor_emulators": emulator_figures(floor_emulators),
    }
    if "enforce_s" in ours:
        run["enforcement"] = ours["enforcement"]
        run["enforce_share_of_sync"] = round(ours["enforce_s"] / ours["wall_s"], 4)
        run["remote_writes_per_panel"] = {
            kind: int(s["counts"].get("writes", 0)) for kind, s in stats["panels"].items()
        }
    if "jobs" in ours:
        run["fan_out"] = ours["jobs"]
    if "profile_top" in ours:
        run["profile_top"] = ours["profile_top"]
    if args.repeat > 1:
        run["repeats"] = {
            "ours_cpu_s": [round(a[2]["cpu_s"], 3) for a in attempts],
            "floor_cpu_s": [round(a[0]["cpu_s"], 3) for a in attempts],
            "ours_wall_s": [round(a[2]["wall_s"], 3) for a in attempts],
            "floor_wall_s": [round(a[0]["wall_s"], 3) for a in attempts],
        }
    return run


def _median(items: list[Any], key: Callable[[Any], float]) -> Any:
    """The item with the median key (the lower middle one of an even count)."""
    return sorted(items, key=key)[(len(items) - 1) // 2]


def _sqlite_file(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


def _copy_database(url: str) -> Path:
    """A copy of the SQLite database file, to run again from."""
    source = _sqlite_file(url)
    copy = source.with_name(source.name + ".before")
    shutil.copyfile(source, copy)
    return copy


def _restore_database(url: str, copy: Path) -> None:
    """Put the copied database file back, as the first attempt found it."""
    shutil.copyfile(copy, _sqlite_file(url))


def measure_baseline(url: str, n: int, emulators: Emulators) -> dict[str, Any]:
    """The original strategy on the same N configs: wall and CPU, and its requests."""
    emulators.reset()
    engine = create_engine(url)
    cpu = time.process_time()
    base = run_original_strategy(engine, n, (ADMIN, PASSWORD, API_KEY))
    cpu = time.process_time() - cpu
    engine.dispose()
    stats = emulators.stats()
    return {
        "configs": base["configs"],
        "wall_s": round(base["wall_s"], 3),
        "cpu_s": round(cpu, 3),
        "ms_per_config": round(base["wall_s"] / base["configs"] * 1000, 3),
        "requests": requests_of(stats),
        "emulators": emulator_figures(stats),
    }


SCENARIOS = ("first", "changed", "unchanged")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; a differing --baseline-configs is refused."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", type=int, default=100_000, help="configs to sync (N)")
    parser.add_argument("--resellers", type=int, default=None, help="resellers (default N/100)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per-request latency")
    parser.add_argument("--database-url", default=None, help="default: an SQLite file in /tmp")
    parser.add_argument("--workers", type=int, default=0, help="RQ workers (fan-out); 0: inline")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument(
        "--runs",
        default=None,
        help="comma-separated runs among first,changed,unchanged (default all three; "
        "first alone with --enforce)",
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also run the original strategy on the same N configs (slow: ~25 ms a config)",
    )
    parser.add_argument(
        "--baseline-configs",
        type=int,
        default=0,
        help="kept for old command lines: must equal --configs (same as --baseline)",
    )
    parser.add_argument(
        "--profile", default=None, help="write a cProfile of each run to PATH.<run>"
    )
    parser.add_argument("--log-level", default="INFO", help="USAGE_SYNC_LOG_LEVEL of the run")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--enforce",
        action="store_true",
        help="time the quota enforcement pass after the sync",
    )
    parser.add_argument(
        "--over-quota",
        type=float,
        default=0.0,
        help="share of resellers put over quota (with --enforce)",
    )
    parser.add_argument(
        "--remote-rate",
        type=float,
        default=3.0,
        help="remote operations a second per panel (usage_sync.remote_operations_per_second)",
    )
    parser.add_argument(
        "--corrupt-one-row",
        choices=CORRUPTIONS,
        default=None,
        help="after the last sync, tamper with one config's usage or ledger key, or one "
        "reseller's total, to check that verification catches it (the run then exits 1)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="floors and syncs measured per run, the medians kept (default 3 on the "
        "SQLite default, where the database is restored between them; 1 otherwise)",
    )
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_payload", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_launched", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_configs:
        if args.baseline_configs != args.configs:
            parser.error(
                "the baseline runs at the same N as ours: drop --baseline-configs "
                "or make it equal to --configs"
            )
        args.baseline = True
    sqlite = args.database_url is None or args.database_url.startswith("sqlite:///")
    if args.repeat is None:
        args.repeat = 3 if sqlite and not args.workers and not args.enforce else 1
    if args.repeat < 1 or (args.repeat > 1 and (not sqlite or args.workers or args.enforce)):
        parser.error("--repeat above 1 needs an SQLite file database, inline, without --enforce")
    default_runs = "first" if args.enforce else ",".join(SCENARIOS)
    args.runs = [run.strip() for run in (args.runs or default_runs).split(",") if run.strip()]
    unknown = [run for run in args.runs if run not in SCENARIOS]
    if unknown or not args.runs or len(set(args.runs)) != len(args.runs):
        parser.error(f"--runs takes each of {', '.join(SCENARIOS)} at most once")
    return args


def measure(
    args: argparse.Namespace,
    url: str,
    env: dict[str, str],
    emulators: Emulators,
    fill_s: float,
) -> dict[str, Any]:
    """Each run beside its floor and verified, then the baseline; the report."""
    n, resellers = args.configs, args.resellers or max(1, args.configs // 100)
    ok = True
    report: dict[str, Any] = {
        "configs": n,
        "resellers": resellers,
        "latency_ms": args.latency_ms,
        "database": url.split(":", maxsplit=1)[0],
        "workers": args.workers,
        "fill_s": round(fill_s, 2),
        "emulators_start_s": round(emulators.start_s, 2),
        "runs": {},
    }
    after_change = False
    for scenario in args.runs:
        if scenario == "changed":
            emulators.change()
            after_change = True
        run = measure_run(scenario, args, env, url, emulators)
        if args.corrupt_one_row and scenario == args.runs[-1]:
            report["corrupted"] = corrupt_one_row(url, args.corrupt_one_row, n)
        verification = verify(url, after_change)
        run["verified"] = verification.as_dict()
        ok = ok and verification.ok
        report["runs"][scenario] = run
    if args.baseline:
        report["baseline"] = measure_baseline(url, n, emulators)
        ours = report["runs"][args.runs[0]]["ours"]
        report["baseline"] |= {
            "against": args.runs[0],
            "speedup_wall": ratio(report["baseline"]["wall_s"], ours["wall_s"]),
            "speedup_cpu": ratio(report["baseline"]["cpu_s"], ours["cpu_s"]),
        }
    report["ok"] = ok
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args._child:
        payload = json.loads(args._payload)
        if args._child == "ours":
            result = run_ours(payload, args._launched, args.profile)
        elif args._child == "floor":
            result = run_floor_child(payload)
        else:
            result = run_worker(payload)
        print(json.dumps(result))
        return 0

    n = args.configs
    resellers = args.resellers or max(1, n // 100)
    workdir = Path(tempfile.mkdtemp(prefix="usage-sync-bench-"))
    url = prepare_database(args.database_url or f"sqlite:///{workdir / 'bench.sqlite'}")
    emulators = Emulators(-(-n // 4), args.latency_ms / 1000)
    try:
        rate = {"usage_sync.remote_operations_per_second": str(args.remote_rate)}
        if args.over_quota:
            # The benchmark's users are light; without a grace 1 MiB is well past.
            rate |= {
                "reseller.auto_disable_grace_bytes": "0",
                "reseller.auto_disable_grace_percent": "0",
            }
        fill_s = fill_database(
            url, emulators.urls, n, resellers, over_quota=args.over_quota, settings=rate
        )
        # The product's own defaults (timeouts, budgets, concurrency): none is set here.
        env = {
            "USAGE_SYNC_DATABASE_URL": url,
            "USAGE_SYNC_STATE_DIR": str(workdir / "state"),
            "USAGE_SYNC_LOG_FILE": str(workdir / "sync.log"),
            "USAGE_SYNC_LOG_LEVEL": args.log_level,
            "NO_PROXY": "127.0.0.1,localhost",
            "USAGE_SYNC_BENCH_ENFORCE": "1" if args.enforce else "0",
        }
        if args.workers:
            env |= {
                "USAGE_SYNC_REDIS_URL": args.redis_url,
                "USAGE_SYNC_FANOUT": "panel",
                "USAGE_SYNC_QUEUE": "usage-sync-bench",
            }
        report = measure(args, url, env, emulators, fill_s)
    finally:
        emulators.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    if not report["ok"]:
        for scenario, run in report["runs"].items():
            checked = run["verified"]
            if not checked["ok"]:
                print(
                    f"VERIFICATION FAILED after the {scenario} run: {checked['wrong_rows']} "
                    "wrong rows: " + "; ".join(checked["wrong"]),
                    file=sys.stderr,
                )
        return 1
    return 0


def _requests_line(requests: dict[str, dict[str, int]]) -> str:
    return ", ".join(
        f"{kind} {r['logins']}+{r['list_pages']}+{r['single_gets']}" for kind, r in requests.items()
    )


def fan_out_jobs(queue: Queue) -> dict[str, Any]:
    """Each finished job of a fan-out: its wall and CPU seconds, as the job measured them.

    With its panels' jobs spread over machines, a run takes the dispatch, the
    slowest machine's panel jobs and the totals job: `two_machines_s` is that
    wall time with the panel jobs split between two machines, longest first.
    """
    jobs: dict[str, dict[str, float]] = {}
    registry = FinishedJobRegistry(queue=queue)
    for job in Job.fetch_many(registry.get_job_ids(), connection=queue.connection):
        result = job.return_value() if job is not None else None
        if job is None or not isinstance(result, dict) or "job_cpu_s" not in result:
            continue
        if "panel_id" in result:
            name = f"panel {result['panel_id']}"
        else:
            name = "dispatch" if "fanned_out_panels" in result else "totals"
        if job.ended_at is None or job.started_at is None:
            continue
        wall = (job.ended_at - job.started_at).total_seconds()
        jobs[name] = {"wall_s": round(wall, 3), "cpu_s": result["job_cpu_s"]}
    machines = [0.0, 0.0]
    panels = sorted((j["wall_s"] for n, j in jobs.items() if n.startswith("panel")), reverse=True)
    for wall in panels:
        machines[machines.index(min(machines))] += wall
    around = sum(jobs.get(name, {}).get("wall_s", 0.0) for name in ("dispatch", "totals"))
    return {"per_job": jobs, "two_machines_s": round(around + max(machines), 3)}


def print_report(report: dict[str, Any]) -> None:
    """The figures as a few readable lines."""
    print(
        f"{report['configs']} configs, {report['resellers']} resellers, "
        f"{report['latency_ms']:.0f} ms latency, {report['database']}, "
        f"workers={report['workers'] or 'inline'}; emulators started in "
        f"{report['emulators_start_s']:.1f} s, database filled in {report['fill_s']:.1f} s"
    )
    print(
        f"  {'run':<10}{'wall':>9}{'CPU':>9}{'floor CPU':>11}{'ratio':>7}{'floor wall':>12}"
        f"{'wall ratio':>11}{'peak RSS':>10}{'SQL':>6}{'emul. CPU':>11}  verified"
    )
    for scenario, run in report["runs"].items():
        ours, floor, checked = run["ours"], run["floor"], run["verified"]
        emulators_cpu = run["emulators"]["cpu_s"]
        print(
            f"  {scenario:<10}{ours['wall_s']:>8.2f}s{ours['cpu_s']:>8.2f}s"
            f"{floor['cpu_s']:>10.2f}s{_times(run['cpu_ratio']):>7}"
            f"{floor['wall_s']:>11.2f}s{_times(run['wall_ratio']):>11}"
            f"{ours['peak_rss_mb']:>7.0f} MB{ours['statements']:>6}{emulators_cpu:>10.2f}s"
            f"  {checked['configs']} configs, {checked['resellers']} resellers"
            + ("" if checked["ok"] else " FAILED")
        )
    for scenario, run in report["runs"].items():
        ours, floor = run["ours"], run["floor"]
        startup = (
            f"start-up {ours['startup_s']:.2f} s ({ours['startup_cpu_s']:.2f} CPU-s), "
            f"RSS {ours['rss_before_mb']:.0f} MB before the sync; "
            if "startup_s" in ours
            else ""
        )
        steps = ", ".join(f"{step} {f['cpu_s']:.2f}" for step, f in floor["steps"].items())
        print(f"  {scenario}: {startup}summary {ours['summary']}")
        if "repeats" in run:
            repeats = run["repeats"]
            print(
                f"    medians of {len(repeats['ours_cpu_s'])}: CPU-s ours "
                + " / ".join(f"{v:.2f}" for v in repeats["ours_cpu_s"])
                + ", floor "
                + " / ".join(f"{v:.2f}" for v in repeats["floor_cpu_s"])
            )
        print(
            f"    requests (logins+pages+singles): {_requests_line(run['requests'])}; "
            f"{ours['statements']} statements ({ours['statement_rows']} rows)"
        )
        print(
            f"    floor CPU-s by step: {steps}; {floor['writes']} of {floor['rows']} rows written; "
            f"emulators {run['floor_emulators']['cpu_s']:.2f} CPU-s serving it"
        )
        if "fan_out" in run:
            jobs = run["fan_out"]["per_job"]
            print(
                "    fan-out jobs (wall s / CPU-s): "
                + ", ".join(f"{n} {j['wall_s']:.2f}/{j['cpu_s']:.2f}" for n, j in jobs.items())
                + f"; panel jobs split over two machines: {run['fan_out']['two_machines_s']:.2f} s"
            )
        for problem in run["verified"]["wrong"]:
            print(f"    wrong: {problem}")
        if "enforce_s" in ours:
            _print_enforcement(ours["enforce_s"], run)
        if "profile_top" in run:
            print(run["profile_top"])
    if report.get("corrupted"):
        print(f"  tampered with on purpose after the last sync: {report['corrupted']}")
    if "baseline" in report:
        base = report["baseline"]
        ours = report["runs"][base["against"]]["ours"]
        print(
            f"  original strategy (one client, a login and a GET per config): "
            f"{base['configs']} configs in {base['wall_s']:.2f} s, {base['cpu_s']:.2f} CPU-s "
            f"({base['ms_per_config']} ms/config); ours ({base['against']} run) "
            f"{ours['wall_s']:.3f} s, {ours['cpu_s']:.3f} CPU-s: "
            f"{base['speedup_wall']}x less wall, {base['speedup_cpu']}x less CPU"
        )
        print(
            f"    requests: {_requests_line(base['requests'])}; "
            f"emulators {base['emulators']['cpu_s']:.2f} CPU-s"
        )


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def _print_enforcement(enforce_s: float, run: dict[str, Any]) -> None:
    e, ours = run["enforcement"], run["ours"]
    print(
        f"    enforcement pass: {enforce_s:.2f} s "
        f"({run['enforce_share_of_sync']:.1%} of the sync): {e['suspended']} resellers "
        f"suspended, {e['disabled']} configs disabled; remote: {e['remote_done']} done, "
        f"{e['remote_failed']} failed, {e['remote_pending']} pending"
    )
    writes = run["remote_writes_per_panel"]
    if e["remote_done"] and writes:
        busiest = max(writes, key=writes.__getitem__)
        print(
            f"    writes per panel {writes}; the busiest ({busiest}) took "
            f"{writes[busiest] / ours['enforce_s']:.1f} operations/s over the pass"
        )


if __name__ == "__main__":
    raise SystemExit(main())
