"""The per-config parts of a full sync, each timed alone in one process (CPU seconds).

`sync_bench.py` measures whole runs beside their floor; this says where the rest of a run
goes: the configs' select, building the work items, planning, reading listed users,
applying growth through the ledger, a panel's readings applied and every row written as a
first sync does, and the per-config log lines; then what the plan of every config holds in
memory while the panels are asked (traced allocations). Run from the project root:
`python bench/parts_bench.py --configs 100000`. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from usage_adapters.sql import configs, tables
from usage_core.ledger import advance
from usage_core.log import Line
from usage_core.model import Panel, ResellerUsage, SyncWork
from usage_core.plan import plan_sync
from usage_core.readings import parse_marzban_user
from usage_core.recording import log_readings
from usage_core.summary import SyncSummary
from usage_core.sync_all import SyncAllUsage
from usage_core.targets import PanelDirectory
from usage_entrypoints.clock import SystemClock
from usage_entrypoints.logs import configure_logging

EYLANDOO_SHARE = 4  # one config in four, as in sync_bench.py


def fill_configs(engine: sa.Engine, n: int, *, synced: bool = True) -> None:
    """N Marzban configs of one reseller; `synced`: with usage and the ledger's keys, else none."""
    rows = [
        {
            "id": i,
            "reseller_id": 1,
            "status": "active",
            "panel_type": "marzban",
            "panel_id": 1,
            "panel_user_id": f"user{i}",
            "external_username": f"user{i}",
            "usage_bytes": 1000 + i if synced else 0,
            "traffic_limit_bytes": 10**10,
            "expires_at": datetime(2030, 1, 1),
            "meta": {"usage_sync_last_counter": 1000 + i, "usage_sync_counted_bytes": 1000 + i}
            if synced
            else None,
        }
        for i in range(1, n + 1)
    ]
    tables.metadata.create_all(engine, tables=[tables.resellers, tables.reseller_configs])
    with engine.begin() as conn:
        conn.execute(
            tables.resellers.insert(),
            [
                {
                    "id": 1,
                    "user_id": None,
                    "type": "traffic",
                    "status": "active",
                    "traffic_total_bytes": 10**15,
                    "traffic_used_bytes": 0,
                }
            ],
        )
        conn.execute(tables.reseller_configs.insert(), rows)


def plan_memory(engine: sa.Engine, panels: PanelDirectory) -> tuple[int, int, int]:
    """Configs planned, bytes the plan holds, and the peak while planning, as a sync plans.

    The rows stream from the store into the plan, as in a sync, so that what is
    traced is what a run holds while its panels answer: the plan's columns and names.
    """
    gc.collect()
    tracemalloc.start()
    try:
        items = configs.SqlConfigRepository(engine).synced_items()
        plan = plan_sync(SyncWork([ResellerUsage(1, 0)], items), panels)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return plan.configs, held, peak


def _timed(name: str, work: Callable[[], Any]) -> Any:
    start = time.process_time()
    result = work()
    print(f"  {name:<44} {time.process_time() - start:6.3f} CPU-s")
    return result


def main() -> None:
    """Time each part over N configs."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--configs", type=int, default=100_000)
    n = parser.parse_args().configs
    workdir = Path(tempfile.mkdtemp(prefix="usage-sync-parts-"))
    try:
        engine = sa.create_engine(f"sqlite:///{workdir / 'parts.sqlite'}")
        fill_configs(engine, n)
        configure_logging(level="INFO", log_file=str(workdir / "parts.log"))
        # As during a sync (`usage_entrypoints.collector`): what is alive is not walked.
        gc.collect()
        gc.freeze()
        gc.disable()
        query = sa.select(*configs._CONFIG_COLUMNS).order_by(configs._c.id)
        print(f"{n} configs, one process, cycle collector off")
        with engine.connect() as conn:
            rows = _timed("the configs' select", lambda: conn.execute(query).all())
        items = _timed(
            "work items from the rows (_item)", lambda: [configs._item(r, {}) for r in rows]
        )
        metas = [r.meta_text for r in rows]
        _timed("  of which json.loads of meta", lambda: [json.loads(m) for m in metas])
        panel = Panel(1, "marzban", "http://127.0.0.1", "marzban")
        panels = PanelDirectory([panel])
        work = SyncWork([ResellerUsage(1, 0)], items)
        _timed("planning (plan_sync)", lambda: plan_sync(work, panels))
        listed = [
            {"username": f"user{i}", "used_traffic": 2000 + i, "lifetime_used_traffic": 9000 + i}
            for i in range(1, n + 1)
        ]
        readings = _timed(
            "listed users read (parse_marzban_user)", lambda: list(map(parse_marzban_user, listed))
        )
        states = [item.state for item in items]
        _timed(
            "growth through the ledger (advance)",
            lambda: [
                advance(s, r.bytes, lifetime=r.lifetime_bytes)
                for s, r in zip(states, readings, strict=True)
            ],
        )

        def log_lines(level: int, count: int) -> None:
            # As a sync logs them: the lines of a panel as one record, built when on.
            if not logging.getLogger("usage_core").isEnabledFor(level):
                return
            lines: list[Line] = [
                (("Eylandoo", f"user{i}", reading.bytes), {"config_id": i})
                for i, reading in enumerate(readings[:count])
            ]
            log_readings(level, lines)

        plan = plan_sync(work, panels)
        found = dict(zip((u["username"] for u in listed), readings, strict=True))
        # Applying a panel's readings needs only the configs' store.
        unused: Any = None
        clock = SystemClock(ZoneInfo("UTC"))
        sync = SyncAllUsage(configs.SqlConfigRepository(engine), unused, unused, unused, clock)
        summary = SyncSummary(started_at=clock.now())
        _timed(
            "every row written (SyncAllUsage._apply)",
            lambda: sync._apply(plan.jobs[0], found, summary),
        )
        if summary.as_dict()["updated"] != n:
            raise SystemExit(f"the writes landed for {summary.as_dict()['updated']} of {n} rows")
        eylandoo = n // EYLANDOO_SHARE
        _timed(f"{eylandoo} per-config lines at INFO", lambda: log_lines(logging.INFO, eylandoo))
        _timed(
            f"{n - eylandoo} per-config lines at DEBUG (off)",
            lambda: log_lines(logging.DEBUG, n - eylandoo),
        )
        planned, held, peak = plan_memory(engine, panels)
        print(
            f"  the plan of {planned} synced configs holds {held / 1e6:.1f} MB "
            f"({held / max(planned, 1):.0f} B a config; {peak / 1e6:.1f} MB at its peak)"
        )

    finally:
        logging.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
