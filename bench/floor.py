"""The floor of a sync: the least work any implementation must do on the same data.

Download every panel's listing bodies, `json.loads` them, extract name -> counter, select
the configs' rows, diff each counter against the last one stored in `meta`, and write the
changed rows with one `executemany` of guarded updates. Each step is timed (wall and
process CPU, all threads) so that the benchmark can print our figures beside it. The
transaction is rolled back, so the database is left as the sync about to run will find it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx

from usage_adapters.panels import marzban, marzneshin
from usage_adapters.sql.engine import create_store_engine
from usage_adapters.sql.meta import COUNTED_KEY, LAST_COUNTER_KEY

# The page sizes our gateways ask for, so that the bodies are the same ones.
MARZBAN_PAGE_SIZE = marzban.DEFAULT_PAGE_SIZE
MARZNESHIN_PAGE_SIZE = marzneshin.MAX_PAGE_SIZE
PAGES_IN_FLIGHT = 8
TIMEOUT = httpx.Timeout(300.0, connect=10.0)

Credentials = tuple[str, str, str]  # admin username, password, Eylandoo API key

_META_TEXT = {
    "mysql": "COALESCE(CAST(meta AS CHAR CHARACTER SET utf8mb4), '') COLLATE utf8mb4_bin",
    "sqlite": "COALESCE(CAST(meta AS TEXT), '')",
    "postgresql": "COALESCE(CAST(meta AS TEXT), '')",
}
_NEW_META = {
    "mysql": f"JSON_SET(COALESCE(meta, '{{}}'), '$.{LAST_COUNTER_KEY}', %s, '$.{COUNTED_KEY}', %s)",
    "sqlite": f"json_set(COALESCE(meta, '{{}}'), '$.{LAST_COUNTER_KEY}', ?, '$.{COUNTED_KEY}', ?)",
    "postgresql": "CAST(CAST(COALESCE(NULLIF(CAST(meta AS TEXT), ''), '{}') AS jsonb) || "
    f"jsonb_build_object('{LAST_COUNTER_KEY}', CAST(%s AS bigint), "
    f"'{COUNTED_KEY}', CAST(%s AS bigint)) AS json)",
}


def _guarded_update(dialect: str) -> str:
    """The one guarded UPDATE: new usage and ledger keys where usage and meta are as read."""
    mark = "?" if dialect == "sqlite" else "%s"
    # Built from the constants above only; every value is bound.
    new_meta, meta_text = _NEW_META[dialect], _META_TEXT[dialect]
    sets = f"usage_bytes = {mark}, meta = {new_meta}"
    guard = f"id = {mark} AND usage_bytes = {mark} AND {meta_text} = {mark}"
    return f"UPDATE reseller_configs SET {sets} WHERE {guard}"  # noqa: S608


class Steps:
    """Wall and process-CPU seconds of each named step."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, float]] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the block as step `name`."""
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.figures[name] = {
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
        }

    def total(self, key: str) -> float:
        """The sum of `key` ("wall_s" or "cpu_s") over the steps."""
        return sum(figures[key] for figures in self.figures.values())


def _login(client: httpx.Client, kind: str, credentials: Credentials) -> dict[str, str]:
    """Log in as our gateways do; the headers the listing requests need."""
    username, password, api_key = credentials
    form = {"username": username, "password": password}
    if kind == "eylandoo":
        return {"X-API-KEY": api_key}
    if kind in ("marzban", "marzneshin"):
        path = "/api/admin/token" if kind == "marzban" else "/api/admins/token"
        reply = client.post(path, data=form)
        reply.raise_for_status()
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}
    client.post("/login", data=form).raise_for_status()  # the session cookie stays in client
    return {}


def listing_requests(kind: str, users: int) -> list[tuple[str, dict[str, Any]]]:
    """(path, query) of every listing request for a panel of `kind` holding `users` users."""
    if kind == "eylandoo":
        return [("/api/v1/users/list_all", {})]
    if kind == "xui":
        return [("/panel/api/inbounds/list", {})]
    if kind == "marzban":
        size = MARZBAN_PAGE_SIZE
        return [
            ("/api/users", {"offset": offset, "limit": size, "sort": "username"})
            for offset in range(0, max(users, 1), size)
        ]
    size = MARZNESHIN_PAGE_SIZE
    return [
        ("/api/users", {"page": page, "size": size, "order_by": "username"})
        for page in range(1, -(-max(users, 1) // size) + 1)
    ]


def download_panel(kind: str, url: str, users: int, credentials: Credentials) -> list[bytes]:
    """Every listing body of one panel, pages fetched `PAGES_IN_FLIGHT` at a time."""
    with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        headers = _login(client, kind, credentials)

        def get(request: tuple[str, dict[str, Any]]) -> bytes:
            reply = client.get(request[0], params=request[1], headers=headers)
            reply.raise_for_status()
            return reply.content

        with ThreadPoolExecutor(PAGES_IN_FLIGHT) as pool:
            return list(pool.map(get, listing_requests(kind, users)))


def download_listings(
    urls: Mapping[str, str], users: int, credentials: Credentials
) -> dict[str, list[bytes]]:
    """Every panel's listing bodies, the panels downloaded concurrently."""
    with ThreadPoolExecutor(len(urls)) as pool:
        futures = {
            kind: pool.submit(download_panel, kind, url, users, credentials)
            for kind, url in urls.items()
        }
        return {kind: future.result() for kind, future in futures.items()}


def _eylandoo(body: Any) -> Iterator[tuple[str, int]]:
    for user in body["users"]:
        yield user["username"], user["total_traffic_bytes"]


def _marzban(body: Any) -> Iterator[tuple[str, int]]:
    for user in body["users"]:
        yield user["username"], user["used_traffic"]


def _marzneshin(body: Any) -> Iterator[tuple[str, int]]:
    for user in body["items"]:
        yield user["username"], user["used_traffic"]


def _xui(body: Any) -> Iterator[tuple[str, int]]:
    for inbound in body["obj"]:
        for stat in inbound["clientStats"] or ():
            yield stat["email"], stat["up"] + stat["down"]


EXTRACT: dict[str, Callable[[Any], Iterator[tuple[str, int]]]] = {
    "eylandoo": _eylandoo,
    "marzban": _marzban,
    "marzneshin": _marzneshin,
    "xui": _xui,
}


def run_floor(
    database_url: str, urls: Mapping[str, str], users: int, credentials: Credentials
) -> dict[str, Any]:
    """Do the floor's steps once on the live data; their figures (nothing is kept)."""
    steps = Steps()
    with steps.step("download"):
        bodies = download_listings(urls, users, credentials)
    with steps.step("decode"):
        decoded = {kind: [json.loads(body) for body in pages] for kind, pages in bodies.items()}
    with steps.step("extract"):
        counters = {
            kind: {name: counter for page in pages for name, counter in EXTRACT[kind](page)}
            for kind, pages in decoded.items()
        }
    del bodies, decoded
    engine = create_store_engine(database_url)
    dialect = engine.dialect.name
    with engine.connect() as conn:
        with steps.step("select"):
            kinds = dict(conn.exec_driver_sql("SELECT id, panel_type FROM panels").all())
            columns = f"id, panel_id, panel_user_id, usage_bytes, {_META_TEXT[dialect]}"
            rows = conn.exec_driver_sql(f"SELECT {columns} FROM reseller_configs").all()  # noqa: S608
        with steps.step("diff"):
            changes = _diff(rows, {panel: counters[kind] for panel, kind in kinds.items()})
        with steps.step("write"):
            matched = (
                conn.exec_driver_sql(_guarded_update(dialect), changes).rowcount if changes else 0
            )
        conn.rollback()
    engine.dispose()
    if matched != len(changes):
        # A guard that matched nothing would make the floor look cheaper than it is.
        raise RuntimeError(f"the floor's guarded update matched {matched} of {len(changes)} rows")
    return {
        "wall_s": steps.total("wall_s"),
        "cpu_s": steps.total("cpu_s"),
        "rows": len(rows),
        "writes": len(changes),
        "steps": steps.figures,
    }


def _diff(
    rows: list[Any], counters: Mapping[int, Mapping[str, int]]
) -> list[tuple[int, int, int, int, int, str]]:
    """The guarded update's parameters for each row whose counter moved."""
    changes = []
    for config_id, panel_id, name, usage, meta in rows:
        counter = counters.get(panel_id, {}).get(name)
        if counter is None:
            continue
        last = json.loads(meta).get(LAST_COUNTER_KEY) if meta else None
        if counter == last:
            continue
        base = usage if last is None else last
        new_usage = usage + counter - base if counter >= base else counter
        changes.append((new_usage, counter, new_usage, config_id, usage, meta))
    return changes
