"""What each read strategy asks of a Marzban as costly as the real one.

Usage:
    .venv/bin/python bench/read_strategy_bench.py
    .venv/bin/python bench/read_strategy_bench.py --panel-users 5000 --configs 20 1000 5000
    .venv/bin/python bench/read_strategy_bench.py --sleep-up-to 0   # count only, never wait

For each panel size and number of configs, the shared reader reads the configs'
users from an emulated Marzban over loopback HTTP, once per strategy (`auto`,
the cost model's choice, then `batches`, `listing` and `singles` forced
through `extra.usage_sync_read_strategy`), and the emulator reports the
panel-side work: requests, users serialized and emulated panel seconds at the
calibrated cost of a real Marzban v0.8.4 (11.5 ms a serialized user, 2 ms a
request, one request at a time).

The emulator counts that cost without sleeping it, so that runs the real
panel would need minutes or hours for finish in seconds; a run whose
counted panel time is at most `--sleep-up-to` seconds is then repeated with
the cost slept, and its wall time shown. Single reads of more than
`--max-singles` configs are not sent: their row is the cost model's figure
(one request and at most one user per config, plus the login), marked
"modelled".
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Sequence

import attrs

from usage_adapters.panels import HttpxPanelClients
from usage_core.model import Panel, Secret
from usage_sandbox.emulator import (
    REALISTIC_COSTS,
    EmulatedUser,
    PanelEmulator,
)

ADMIN, PASSWORD = "admin", "bench-password"
STRATEGIES = ("auto", "batches", "listing", "singles")
REAL = REALISTIC_COSTS["marzban"]


class ChosenStrategy(logging.Handler):
    """Keeps the strategy the reader's last choice log line names."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        """Note the `strategy` of a choice line."""
        context = getattr(record, "context", None)
        if isinstance(context, dict) and "strategy" in context:
            self.last = str(context["strategy"])


CHOSEN = ChosenStrategy()


@attrs.frozen
class Row:
    """One strategy's run: what the panel was asked and what it cost."""

    panel_users: int
    configs: int
    strategy: str
    requests: int
    list_requests: int
    single_reads: int
    users_serialized: int
    panel_s: float
    wall_s: float | None
    read: int
    modelled: bool = False


def seed(count: int) -> list[EmulatedUser]:
    """`u0000000`.. with a few MiB each."""
    return [EmulatedUser(f"u{i:07d}", download=(i % 97 + 1) << 20) for i in range(count)]


def wanted(panel_users: int, configs: int) -> list[str]:
    """`configs` users spread evenly over the panel."""
    step = max(1, panel_users // configs)
    return [f"u{i:07d}" for i in range(0, step * configs, step)][:configs]


def read_once(
    panel: PanelEmulator, names: Sequence[str], strategy: str, clients: HttpxPanelClients
) -> tuple[int, float]:
    """Read `names` with `strategy` in a fresh session: (users read, wall seconds)."""
    row = Panel(
        id=1,
        name="bench marzban",
        url=panel.url,
        panel_type="marzban",
        username=ADMIN,
        password=Secret(PASSWORD),
        extra={"usage_sync_read_strategy": strategy},
    )
    session = clients.open(row)
    began = time.perf_counter()
    try:
        results = session.fetch_many(names)
    finally:
        session.close()
    wall = time.perf_counter() - began
    read = sum(1 for result in results.values() if hasattr(result, "bytes"))
    return read, wall


def measure(
    panel: PanelEmulator,
    *,
    panel_users: int,
    names: Sequence[str],
    strategy: str,
    clients: HttpxPanelClients,
    sleep_up_to: float,
) -> Row:
    """Count one strategy's work; run it again with the cost slept when that is short."""
    panel.cost = dataclasses.replace(REAL, sleep=False)
    panel.reset_counts()
    read, _ = read_once(panel, names, strategy, clients)
    counts, stats = panel.counts, panel.stats()
    label = f"auto: {CHOSEN.last}" if strategy == "auto" else strategy
    wall: float | None = None
    if stats.panel_s <= sleep_up_to:
        panel.cost = REAL
        panel.reset_counts()
        _, wall = read_once(panel, names, strategy, clients)
    return Row(
        panel_users=panel_users,
        configs=len(names),
        strategy=label,
        requests=counts.requests,
        list_requests=counts.list_pages,
        single_reads=counts.user_gets,
        users_serialized=counts.users_serialized,
        panel_s=stats.panel_s,
        wall_s=wall,
        read=read,
    )


def modelled_singles(panel_users: int, configs: int) -> Row:
    """Single reads by the cost model: the login, then one request and one user per config."""
    found = min(configs, panel_users)
    requests = configs + 1
    return Row(
        panel_users=panel_users,
        configs=configs,
        strategy="singles",
        requests=requests,
        list_requests=0,
        single_reads=configs,
        users_serialized=found,
        panel_s=found * REAL.per_user_s + requests * REAL.per_request_s,
        wall_s=None,
        read=found,
        modelled=True,
    )


def run(
    panel_users: int, configs: Sequence[int], sleep_up_to: float, max_singles: int
) -> list[Row]:
    """Every strategy for every number of configs on one panel of `panel_users`."""
    rows: list[Row] = []
    clients = HttpxPanelClients(timeout=600.0, panel_budget_s=3_600.0)
    with PanelEmulator(
        "marzban", users=seed(panel_users), username=ADMIN, password=PASSWORD
    ) as panel:
        for count in configs:
            names = wanted(panel_users, min(count, panel_users))
            for strategy in STRATEGIES:
                if strategy == "singles" and len(names) > max_singles:
                    rows.append(modelled_singles(panel_users, len(names)))
                else:
                    rows.append(
                        measure(
                            panel,
                            panel_users=panel_users,
                            names=names,
                            strategy=strategy,
                            clients=clients,
                            sleep_up_to=sleep_up_to,
                        )
                    )
                print(_line(rows[-1]), flush=True)
    return rows


def _line(row: Row) -> str:
    wall = "—" if row.wall_s is None else f"{row.wall_s:.2f} s"
    note = " (modelled)" if row.modelled else ""
    return (
        f"| {row.panel_users:,} | {row.configs:,} | {row.strategy}{note} | {row.requests:,} "
        f"| {row.list_requests:,} | {row.single_reads:,} | {row.users_serialized:,} "
        f"| {row.panel_s:,.2f} s | {wall} | {row.read:,} |"
    )


HEADER = (
    "| panel users | configs | strategy | requests (login included) | list requests | single reads "
    "| users serialized | panel time | wall time (cost slept) | users read |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    """Parse the arguments, run every case, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--panel-users", type=int, nargs="+", default=[5_000, 100_000])
    parser.add_argument("--configs", type=int, nargs="+", default=[20, 1_000, 100_000])
    parser.add_argument(
        "--sleep-up-to",
        type=float,
        default=15.0,
        help="repeat a run with the cost slept when its counted panel time is at most this",
    )
    parser.add_argument(
        "--max-singles",
        type=int,
        default=5_000,
        help="single reads of more configs are modelled, not sent",
    )
    args = parser.parse_args()
    reader_log = logging.getLogger("usage_adapters.panels.reader")
    reader_log.setLevel(logging.INFO)
    reader_log.addHandler(CHOSEN)
    print(HEADER, flush=True)
    rows: list[Row] = []
    for panel_users in args.panel_users:
        rows += run(panel_users, args.configs, args.sleep_up_to, args.max_singles)
    print()
    print(HEADER)
    for row in rows:
        print(_line(row))


if __name__ == "__main__":
    main()
