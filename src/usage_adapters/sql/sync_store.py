"""The bulk reads and batched guarded writes of a full sync."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, inspect, or_, select, text, update

from usage_adapters.sql import tables as t
from usage_adapters.sql.meta import (
    LAST_COUNTER_KEY,
    SETTLED_KEY,
    meta_set,
    meta_text_guard,
    parse_meta,
)
from usage_adapters.sql.store import (
    CONFIG_COLUMNS,
    MetaVersion,
    config_and_meta,
    dialect_of,
    meta_text_column,
)
from usage_core.errors import StoreError
from usage_core.ledger import LedgerState
from usage_core.model import ConfigFilter, LedgerSnapshot, ResellerUsage, SyncItem, SyncWork

logger = logging.getLogger(__name__)

# Rows per statement when reading back a batch that hit concurrent writers.
_CHUNK = 1000


class SqlSyncStore:
    """`SyncStore` over the app's tables: a few reads, executemany guarded writes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = dialect_of(engine)
        self._has_forgiven: bool | None = None

    def _forgiven_column_exists(self) -> bool:
        if self._has_forgiven is None:
            columns = inspect(self._engine).get_columns("resellers")
            self._has_forgiven = any(col["name"] == "admin_forgiven_bytes" for col in columns)
        return self._has_forgiven

    def load_sync_work(self, only: ConfigFilter | None = None) -> SyncWork:
        """Active traffic resellers and their non-deleted configs, in two queries."""
        r, c = t.resellers.c, t.reseller_configs.c
        reseller_columns: list[Any] = [r.id, r.traffic_used_bytes]
        if self._forgiven_column_exists():
            reseller_columns.append(r.admin_forgiven_bytes)
        synced = (r.status == "active", r.type == "traffic")
        configs_query = (
            select(*CONFIG_COLUMNS, meta_text_column())
            .join(t.resellers, r.id == c.reseller_id)
            .where(*synced, c.deleted_at.is_(None))
            .order_by(c.id)
        )
        if only is not None:
            configs_query = configs_query.where(
                or_(
                    c.panel_id.in_(sorted(only.panel_ids)),
                    and_(c.panel_id.is_(None), c.panel_type.in_(sorted(only.unassigned_types))),
                )
            )
        with self._engine.connect() as conn:
            resellers = [
                ResellerUsage(
                    id=int(row[0]),
                    used_bytes=int(row[1] or 0),
                    forgiven_bytes=int(row[2] or 0) if len(row) > 2 else 0,
                )
                for row in conn.execute(select(*reseller_columns).where(*synced).order_by(r.id))
            ]
            rows = conn.execution_options(yield_per=5000).execute(configs_query)
            items = [_item(row) for row in rows]
        return SyncWork(resellers=resellers, items=items)

    def save_ledgers(self, writes: Sequence[tuple[LedgerSnapshot, LedgerState]]) -> set[int]:
        """Guarded batched updates; the ids whose row was still as read, now written."""
        groups: dict[tuple[bool, bool], list[dict[str, Any]]] = defaultdict(list)
        expected: dict[int, LedgerState] = {}
        for snapshot, after in writes:
            version = snapshot.version
            if not isinstance(version, MetaVersion):
                msg = "a ledger snapshot from another store"
                raise TypeError(msg)
            sets_settled = after.settled_bytes != snapshot.state.settled_bytes
            groups[(version.meta_is_object, sets_settled)].append(
                {
                    "b_id": snapshot.config_id,
                    "b_old_usage": version.usage_bytes,
                    "b_old_meta": version.meta_text or "",
                    "b_usage": after.usage_bytes,
                    "b_counter": after.last_counter,
                    "b_settled": after.settled_bytes,
                }
            )
            expected[snapshot.config_id] = after
        matched = 0
        with self._engine.begin() as conn:
            for (base_is_object, sets_settled), params in groups.items():
                if self._dialect == "mysql":
                    matched += self._joined_updates(conn, params, base_is_object, sets_settled)
                    continue
                stmt = self._guarded_update(
                    base_is_object=base_is_object, sets_settled=sets_settled
                )
                matched += _execute_many(conn, stmt, params)
        if matched == len(expected):
            return set(expected)
        # Some rows changed under us: find out which writes landed.
        return self._landed(expected)

    def _joined_updates(
        self,
        conn: Connection,
        params: list[dict[str, Any]],
        base_is_object: bool,
        sets_settled: bool,
    ) -> int:
        """MySQL/MariaDB: the guarded update as one UPDATE … JOIN per chunk of rows.

        PyMySQL sends an `executemany` of UPDATEs as one statement per row; joining
        the rows' values as a derived table does the same guarded writes in one.
        """
        base = "c.meta" if base_is_object else "'{}'"
        keys = f"'$.{LAST_COUNTER_KEY}', v.b_counter"
        if sets_settled:
            keys = f"'$.{SETTLED_KEY}', v.b_settled, " + keys
        guard = (
            "COALESCE(CAST(c.meta AS CHAR CHARACTER SET utf8mb4), '') COLLATE utf8mb4_bin"
            " = v.b_old_meta"
        )
        matched = 0
        for start in range(0, len(params), _CHUNK):
            chunk = params[start : start + _CHUNK]
            rows = " UNION ALL ".join(
                f"SELECT :i{n} AS b_id, :u{n} AS b_old_usage, :m{n} AS b_old_meta, "
                f":n{n} AS b_usage, :c{n} AS b_counter, :s{n} AS b_settled"
                for n in range(len(chunk))
            )
            sql = (
                # Only constants and placeholders are interpolated; every value is bound.
                f"UPDATE reseller_configs AS c JOIN ({rows}) AS v ON c.id = v.b_id "  # noqa: S608
                f"SET c.usage_bytes = v.b_usage, c.meta = JSON_SET({base}, {keys}) "
                f"WHERE c.deleted_at IS NULL AND c.usage_bytes = v.b_old_usage AND {guard}"
            )
            bound: dict[str, Any] = {}
            for n, row in enumerate(chunk):
                bound |= {
                    f"i{n}": row["b_id"],
                    f"u{n}": row["b_old_usage"],
                    f"m{n}": row["b_old_meta"],
                    f"n{n}": row["b_usage"],
                    f"c{n}": row["b_counter"],
                    f"s{n}": row["b_settled"],
                }
            matched += conn.execute(text(sql), bound).rowcount
        return matched

    def _guarded_update(self, *, base_is_object: bool, sets_settled: bool) -> Any:
        c = t.reseller_configs.c
        keys: dict[str, Any] = {LAST_COUNTER_KEY: bindparam("b_counter")}
        if sets_settled:
            keys = {SETTLED_KEY: bindparam("b_settled"), **keys}
        meta = meta_set(self._dialect, c.meta, base_is_object, keys)
        return (
            update(t.reseller_configs)
            .where(
                c.id == bindparam("b_id"),
                c.deleted_at.is_(None),
                c.usage_bytes == bindparam("b_old_usage"),
                meta_text_guard(self._dialect) == bindparam("b_old_meta"),
            )
            .values(usage_bytes=bindparam("b_usage"), meta=meta)
        )

    def _landed(self, expected: dict[int, LedgerState]) -> set[int]:
        c = t.reseller_configs.c
        landed: set[int] = set()
        ids = list(expected)
        with self._engine.connect() as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                query = select(c.id, c.usage_bytes, meta_text_column()).where(c.id.in_(chunk))
                for row in conn.execute(query):
                    after = expected[row.id]
                    try:
                        meta = parse_meta(row.id, row.meta_text)
                    except StoreError:
                        continue
                    if row.usage_bytes == after.usage_bytes and meta.get(LAST_COUNTER_KEY) == (
                        after.last_counter
                    ):
                        landed.add(row.id)
        return landed

    def set_used_bytes_many(self, totals: dict[int, int]) -> None:
        """Store `traffic_used_bytes` for several resellers in one executemany."""
        if not totals:
            return
        r = t.resellers.c
        stmt = (
            update(t.resellers)
            .where(r.id == bindparam("b_id"))
            .values(traffic_used_bytes=bindparam("b_total"))
        )
        params = [{"b_id": rid, "b_total": total} for rid, total in totals.items()]
        with self._engine.begin() as conn:
            conn.execute(stmt, params)


def _execute_many(conn: Connection, stmt: Any, params: list[dict[str, Any]]) -> int:
    """`executemany` of a compiled statement straight to the driver; the rows matched.

    Compiling once and handing the driver plain parameter rows skips SQLAlchemy's
    per-row parameter processing, the larger part of writing a big batch.
    """
    compiled = stmt.compile(dialect=conn.dialect)
    fixed = {k: v for k, v in compiled.params.items() if not k.startswith("b_")}
    order = compiled.positiontup
    rows: list[Any]
    if order:
        rows = [tuple(fixed[k] if k in fixed else row[k] for k in order) for row in params]
    else:
        rows = [fixed | row for row in params]
    return int(conn.exec_driver_sql(str(compiled), rows).rowcount)


def _item(row: Any) -> SyncItem:
    config, is_object = config_and_meta(row)
    version = MetaVersion(config.usage_bytes, row.meta_text, is_object)
    return SyncItem(config, LedgerSnapshot(config.id, config.ledger, version))
