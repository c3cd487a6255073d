#!/usr/bin/env python3
"""Benchmark of a full sync: N configs on four emulated panels, side by side with the
original strategy (one login and one GET per config, sequentially).

Run from the project root: `python bench/sync_bench.py --configs 100000`. See
docs/performance.md for the figures and what they mean.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import multiprocessing
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from redis import Redis
from rq import Queue, Worker
from sqlalchemy import create_engine, event, insert, select, text, update
from sqlalchemy.engine import URL, Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from original_strategy import run_original_strategy
from usage_adapters.sql import tables as t
from usage_adapters.sql.engine import create_store_engine
from usage_adapters.sql.meta import COUNTED_KEY, LAST_COUNTER_KEY, SETTLED_KEY
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


# -- the emulators, in a process of their own so that they neither share the
# -- sync's memory figure nor its interpreter lock


def _emulators_main(conn: Connection, per_kind: int, latency_s: float) -> None:
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
    conn.send({kind: e.url for kind, e in emulators.items()})
    while True:
        command = conn.recv()
        if command == "stats":
            conn.send(
                {
                    kind: {
                        "counts": dataclasses.asdict(e.counts),
                        "server": dataclasses.asdict(e.stats()),
                    }
                    for kind, e in emulators.items()
                }
            )
        elif command == "reset":
            for e in emulators.values():
                e.reset_counts()
            conn.send("ok")
        else:
            for e in emulators.values():
                e.close()
            conn.send("stopped")
            return


class Emulators:
    """The emulator process: URLs, request counts, stop."""

    def __init__(self, per_kind: int, latency_s: float) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_emulators_main, args=(child, per_kind, latency_s), daemon=True
        )
        self.process.start()
        self.urls: dict[str, str] = self._conn.recv()

    def stats(self) -> dict[str, Any]:
        self._conn.send("stats")
        return self._conn.recv()

    def reset(self) -> None:
        self._conn.send("reset")
        self._conn.recv()

    def stop(self) -> None:
        self._conn.send("stop")
        self._conn.recv()
        self.process.join(10)


# -- the database


def prepare_database(url: str) -> str:
    """Create the database named in `url` when the server lacks it; the usable URL."""
    engine = create_store_engine(url)
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
    engine = create_store_engine(url)
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


def expected_counter(config_id: int) -> int:
    """The panel counter the config with `config_id` must end with (usage and ledger)."""
    i = (config_id - 1) // 4
    return upload_of(i) + download_of(i)


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


def verify(url: str) -> Verification:
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
            counter = expected_counter(row.id)
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


# -- the measured runs, each in a fresh process so that its peak RSS is its own


def _count_statements() -> dict[str, int]:
    counts = {"statements": 0, "rows": 0}

    def count(_conn: Any, _cursor: Any, _sql: str, params: Any, _ctx: Any, many: bool) -> None:
        counts["statements"] += 1
        counts["rows"] += len(params) if many else 1

    event.listen(Engine, "before_cursor_execute", count)
    return counts


def run_ours(env: dict[str, str], profile: str | None) -> dict[str, Any]:
    """Child process: one full sync through the real container."""
    os.environ.update(env)
    counts = _count_statements()
    container = build_container(os.environ)
    sync = container.sync_all()
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    summary = sync()
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - started
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
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
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


def child(mode: str, env: dict[str, str], profile: str | None = None) -> dict[str, Any]:
    """Run `mode` in a fresh interpreter; its JSON result."""
    args = [sys.executable, __file__, f"--_child={mode}", "--_env", json.dumps(env)]
    if profile:
        args += ["--profile", profile]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {mode} run failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.splitlines()[-1])


def run_workers(env: dict[str, str], workers: int) -> dict[str, Any]:
    """Dispatch one fanned-out run and drain it with `workers` burst workers."""
    redis = Redis.from_url(env["USAGE_SYNC_REDIS_URL"])
    redis.flushdb()
    started = time.perf_counter()
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
    args = [sys.executable, __file__, "--_child=worker", "--_env", json.dumps(env)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(workers)]
    results = [json.loads(p.communicate()[0].splitlines()[-1]) for p in procs]
    wall = time.perf_counter() - started
    summary = json.loads(redis.get(f"usage-sync:{env['USAGE_SYNC_QUEUE']}:last-run") or "{}")
    return {
        "wall_s": wall,
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
        for kind, s in stats.items()
    }


def emulator_throughput(stats: dict[str, Any], wall: float) -> dict[str, dict[str, float]]:
    """Per panel: requests served, own CPU seconds building replies, MB sent."""
    return {
        kind: {
            "served": s["server"]["served"],
            "build_s": round(s["server"]["build_s"], 3),
            "build_share_of_wall": round(s["server"]["build_s"] / wall, 3) if wall else 0.0,
            "mb_sent": round(s["server"]["bytes_sent"] / 1e6, 2),
        }
        for kind, s in stats.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", type=int, default=100_000, help="configs to sync (N)")
    parser.add_argument("--resellers", type=int, default=None, help="resellers (default N/100)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per-request latency")
    parser.add_argument("--database-url", default=None, help="default: an SQLite file in /tmp")
    parser.add_argument("--workers", type=int, default=0, help="RQ workers (fan-out); 0: inline")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--baseline-configs", type=int, default=0, help="M for the original")
    parser.add_argument("--profile", default=None, help="write a cProfile of our run here")
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
        help="after the sync, tamper with one config's usage or ledger key, or one reseller's "
        "total, to check that verification catches it (the run then exits 1)",
    )
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_env", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._child:
        env = json.loads(args._env)
        result = run_ours(env, args.profile) if args._child == "ours" else run_worker(env)
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
        env = {
            "USAGE_SYNC_DATABASE_URL": url,
            "USAGE_SYNC_STATE_DIR": str(workdir / "state"),
            "USAGE_SYNC_LOG_FILE": str(workdir / "sync.log"),
            "USAGE_SYNC_LOG_LEVEL": args.log_level,
            "USAGE_SYNC_HTTP_TIMEOUT": "30",
            "NO_PROXY": "127.0.0.1,localhost",
            "USAGE_SYNC_BENCH_ENFORCE": "1" if args.enforce else "0",
        }
        emulators.reset()
        if args.workers:
            env |= {
                "USAGE_SYNC_REDIS_URL": args.redis_url,
                "USAGE_SYNC_FANOUT": "panel",
                "USAGE_SYNC_QUEUE": "usage-sync-bench",
            }
            ours = run_workers(env, args.workers)
        else:
            ours = child("ours", env, args.profile)
        stats = emulators.stats()
        corrupted = corrupt_one_row(url, args.corrupt_one_row, n) if args.corrupt_one_row else None
        verification = verify(url)
        report: dict[str, Any] = {
            "configs": n,
            "resellers": resellers,
            "latency_ms": args.latency_ms,
            "database": url.split(":")[0],
            "workers": args.workers,
            "fill_s": round(fill_s, 2),
            "wall_s": round(ours["wall_s"], 3),
            "configs_per_s": round(n / ours["wall_s"]),
            "peak_rss_mb": round(ours["peak_rss_mb"], 1),
            "statements": ours["statements"],
            "statement_rows": ours["rows"],
            "verified": verification.as_dict(),
            "corrupted": corrupted,
            "requests": requests_of(stats),
            "emulators": emulator_throughput(stats, ours["wall_s"]),
            "summary": {k: ours["summary"].get(k) for k in OUTCOMES},
        }
        if args.baseline_configs:
            emulators.reset()
            engine = create_engine(url)
            base = run_original_strategy(engine, args.baseline_configs, (ADMIN, PASSWORD, API_KEY))
            engine.dispose()
            ours_per = ours["wall_s"] / n
            base_per = base["wall_s"] / base["configs"]
            report |= {
                "baseline_configs": base["configs"],
                "baseline_wall_s": round(base["wall_s"], 3),
                "baseline_ms_per_config": round(base_per * 1000, 2),
                "ours_ms_per_config": round(ours_per * 1000, 4),
                "speedup": round(base_per / ours_per, 1),
                "baseline_requests": requests_of(emulators.stats()),
            }
        if "enforce_s" in ours:
            enforcement = ours["enforcement"]
            report["enforce_s"] = round(ours["enforce_s"], 3)
            report["enforce_share_of_sync"] = round(ours["enforce_s"] / ours["wall_s"], 4)
            report["enforcement"] = enforcement
            writes = {kind: c["writes"] for kind, c in stats_writes(emulators.stats()).items()}
            report["remote_writes_per_panel"] = writes
        if "profile_top" in ours:
            report["profile_top"] = ours["profile_top"]
    finally:
        emulators.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    if not verification.ok:
        print(
            f"VERIFICATION FAILED: {verification.wrong_rows} wrong rows: "
            + "; ".join(verification.wrong),
            file=sys.stderr,
        )
        return 1
    return 0


def stats_writes(stats: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Write requests (disable/enable and their reads) each emulator answered."""
    return {kind: {"writes": int(s["counts"].get("writes", 0))} for kind, s in stats.items()}


def print_report(report: dict[str, Any]) -> None:
    """The figures as a few readable lines."""
    print(
        f"{report['configs']} configs, {report['resellers']} resellers, "
        f"{report['latency_ms']:.0f} ms latency, {report['database']}, "
        f"workers={report['workers'] or 'inline'}"
    )
    print(
        f"  full sync: {report['wall_s']:.2f} s, {report['configs_per_s']} configs/s, "
        f"peak RSS {report['peak_rss_mb']:.0f} MB, {report['statements']} SQL statements "
        f"({report['statement_rows']} rows)"
    )
    print(f"  summary: {report['summary']}")
    if report.get("corrupted"):
        print(f"  tampered with on purpose after the sync: {report['corrupted']}")
    checked = report["verified"]
    print(
        f"  verified: configs (usage and ledger keys) {checked['configs']}, "
        f"reseller totals {checked['resellers']}" + ("" if checked["ok"] else " FAILED")
    )
    for problem in checked["wrong"]:
        print(f"    wrong: {problem}")
    for kind, r in report["requests"].items():
        e = report["emulators"][kind]
        print(
            f"  {kind:<10} logins {r['logins']:>3}  list pages {r['list_pages']:>5}  "
            f"single GETs {r['single_gets']:>6}  | emulator built replies in {e['build_s']:.2f} s"
            f" ({e['mb_sent']} MB)"
        )
    if "enforce_s" in report:
        e = report["enforcement"]
        print(
            f"  enforcement pass: {report['enforce_s']:.2f} s "
            f"({report['enforce_share_of_sync']:.1%} of the sync): {e['suspended']} resellers "
            f"suspended, {e['disabled']} configs disabled; remote: {e['remote_done']} done, "
            f"{e['remote_failed']} failed, {e['remote_pending']} pending"
        )
        writes = report["remote_writes_per_panel"]
        if e["remote_done"] and writes:
            busiest = max(writes, key=writes.get)
            print(
                f"    writes per panel {writes}; the busiest ({busiest}) took "
                f"{writes[busiest] / report['enforce_s']:.1f} operations/s over the pass"
            )
    if "speedup" in report:
        print(
            f"  original strategy: {report['baseline_configs']} configs in "
            f"{report['baseline_wall_s']:.2f} s ({report['baseline_ms_per_config']} ms/config) "
            f"vs ours {report['ours_ms_per_config']} ms/config: {report['speedup']}x faster"
        )
    if "profile_top" in report:
        print(report["profile_top"])


if __name__ == "__main__":
    raise SystemExit(main())
