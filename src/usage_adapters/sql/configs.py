"""`reseller_configs`: the configs, their usage ledgers, and guarded writes of them.

Every write of a config's usage, one row or a batch of thousands, is the same
guarded `UPDATE ... WHERE usage_bytes = :read AND meta = :read`: a row the app
(or another sync) changed after it was read is left alone, and the caller
learns which rows were written. Only `usage_bytes` and our keys inside `meta`
change; the `meta` document is never rewritten from a copy.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from sqlalchemy import Connection, Engine, Text, and_, bindparam, cast, or_, select, text, update

from usage_adapters.sql import tables as t
from usage_adapters.sql.engine import dialect_of
from usage_adapters.sql.errors import translated
from usage_adapters.sql.meta import (
    COUNTED_KEY,
    LAST_COUNTER_KEY,
    LAST_LIFETIME_KEY,
    SETTLED_KEY,
    meta_bytes,
    meta_set,
    meta_text_guard,
    parse_meta,
)
from usage_core.errors import StoreError
from usage_core.ledger import LedgerState, stored_state
from usage_core.log import ctx
from usage_core.model import ConfigFilter, LedgerSnapshot, ResellerConfig, SyncItem

logger = logging.getLogger(__name__)

# Rows per statement of a MySQL joined update, and per read-back query.
_CHUNK = 1000

_c = t.reseller_configs.c
_META_TEXT = cast(_c.meta, Text).label("meta_text")
# `_item` unpacks rows in this order.
_CONFIG_COLUMNS = (
    _c.id,
    _c.reseller_id,
    _c.status,
    _c.panel_type,
    _c.panel_id,
    _c.panel_user_id,
    _c.external_username,
    _c.usage_bytes,
    _c.traffic_limit_bytes,
    _META_TEXT,
)


@attrs.frozen
class MetaVersion:
    """The row values a ledger snapshot was read from, for the guarded write."""

    usage_bytes: int
    meta_text: str | None
    meta_is_object: bool
    # The stored lifetime key holds a value, which a write without one must clear.
    has_lifetime: bool = False


def _version(usage_bytes: int, meta_text: str | None, meta: Mapping[str, object]) -> MetaVersion:
    return MetaVersion(usage_bytes, meta_text, bool(meta), meta.get(LAST_LIFETIME_KEY) is not None)


def _stored_ledger(
    config_id: int, usage_bytes: int, meta: Mapping[str, object]
) -> tuple[LedgerState, bool]:
    """The row's ledger, and whether `stored_state` had to move the stored counter or lifetime.

    Each key is read once (a full sync does this for every row); a row without
    `meta` has nothing to read.
    """
    if not meta:
        return LedgerState(usage_bytes), False
    settled = meta_bytes(config_id, meta, SETTLED_KEY) or 0
    counter = meta_bytes(config_id, meta, LAST_COUNTER_KEY)
    counted = meta_bytes(config_id, meta, COUNTED_KEY)
    lifetime = meta_bytes(config_id, meta, LAST_LIFETIME_KEY)
    state = stored_state(usage_bytes, settled, counter, counted, lifetime)
    return state, state.last_counter != counter or state.last_lifetime != lifetime


def _ledger_of(config_id: int, usage_bytes: int | None, meta: Mapping[str, object]) -> LedgerState:
    return _stored_ledger(config_id, int(usage_bytes or 0), meta)[0]


def _item(row: Any) -> SyncItem:
    """A config row with its ledger and the version its guarded write needs."""
    # Unpacked once, in `_CONFIG_COLUMNS` order: a row's attributes cost far more to
    # read one by one, and a full sync does this for every row.
    (
        config_id,
        reseller_id,
        status,
        panel_type,
        panel_id,
        panel_user_id,
        external_username,
        usage_bytes,
        traffic_limit_bytes,
        meta_text,
    ) = row
    problem = None
    meta: Mapping[str, object] = {}
    stale = False
    try:
        meta = parse_meta(config_id, meta_text)
        ledger, stale = _stored_ledger(config_id, int(usage_bytes or 0), meta)
    except StoreError as exc:
        # One malformed row must not hide the reseller's other configs.
        problem = str(exc)
        ledger = LedgerState(int(usage_bytes or 0))
    config = ResellerConfig(
        id=config_id,
        reseller_id=reseller_id,
        status=status,
        panel_type=panel_type,
        panel_id=panel_id,
        panel_user_id=panel_user_id,
        external_username=external_username,
        usage_bytes=ledger.usage_bytes,
        traffic_limit_bytes=int(traffic_limit_bytes or 0),
        settled_bytes=ledger.settled_bytes,
        last_counter=ledger.last_counter,
        last_lifetime=ledger.last_lifetime,
        problem=problem,
    )
    version = _version(ledger.usage_bytes, meta_text, meta)
    return SyncItem(config, LedgerSnapshot(config_id, ledger, version, stale=stale))


class SqlConfigRepository:
    """The `ConfigRepository` port over the app's `reseller_configs` table.

    Soft-deleted rows are invisible.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = dialect_of(engine)

    @translated
    def get(self, config_id: int) -> ResellerConfig | None:
        """The config with this id, or None."""
        query = select(*_CONFIG_COLUMNS).where(_c.id == config_id, _c.deleted_at.is_(None))
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _item(row).config

    @translated
    def load_ledger(self, config_id: int) -> LedgerSnapshot | None:
        """The config's ledger and the exact row values it came from; StoreError when unusable."""
        query = select(_c.usage_bytes, _META_TEXT).where(
            _c.id == config_id, _c.deleted_at.is_(None)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        meta = parse_meta(config_id, row.meta_text)
        state, stale = _stored_ledger(config_id, int(row.usage_bytes or 0), meta)
        version = _version(state.usage_bytes, row.meta_text, meta)
        return LedgerSnapshot(config_id, state, version, stale=stale)

    @translated
    def synced_items(self, only: ConfigFilter | None = None) -> list[SyncItem]:
        """Every config of the synced resellers (active, traffic), any status, in id order.

        With `only`, just the configs it selects (one job of a fan-out by panel).
        """
        r = t.resellers.c
        query = (
            select(*_CONFIG_COLUMNS)
            .join(t.resellers, r.id == _c.reseller_id)
            .where(r.status == "active", r.type == "traffic", _c.deleted_at.is_(None))
            .order_by(_c.id)
        )
        if only is not None:
            query = query.where(
                or_(
                    _c.panel_id.in_(sorted(only.panel_ids)),
                    and_(_c.panel_id.is_(None), _c.panel_type.in_(sorted(only.unassigned_types))),
                )
            )
        with self._engine.connect() as conn:
            rows = conn.execution_options(yield_per=5000).execute(query)
            return [_item(row) for row in rows]

    @translated
    def ledgers_of(self, reseller_id: int) -> list[LedgerState]:
        """The ledgers of the reseller's configs, any status.

        A config whose `meta` cannot be read counts with its `usage_bytes`
        only, as the app itself reads settled bytes from unusable meta as 0.
        """
        query = select(_c.id, _c.usage_bytes, _META_TEXT).where(
            _c.reseller_id == reseller_id, _c.deleted_at.is_(None)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        ledgers = []
        for row in rows:
            try:
                ledgers.append(
                    _ledger_of(row.id, row.usage_bytes, parse_meta(row.id, row.meta_text))
                )
            except StoreError as exc:
                logger.warning(
                    "%s; counting its usage_bytes only", exc, extra=ctx(config_id=row.id)
                )
                ledgers.append(LedgerState(int(row.usage_bytes or 0)))
        return ledgers

    @translated
    def save_ledgers(self, writes: Sequence[tuple[LedgerSnapshot, LedgerState]]) -> set[int]:
        """Write each ledger unless its row changed since its snapshot; the ids written."""
        groups: dict[tuple[bool, bool, bool], list[dict[str, Any]]] = defaultdict(list)
        expected: dict[int, LedgerState] = {}
        for snapshot, after in writes:
            version = snapshot.version
            if not isinstance(version, MetaVersion):
                msg = "a ledger snapshot from another store"
                raise TypeError(msg)
            sets_settled = after.settled_bytes != snapshot.state.settled_bytes
            sets_lifetime = after.last_lifetime is not None or version.has_lifetime
            groups[(version.meta_is_object, sets_settled, sets_lifetime)].append(
                {
                    "b_id": snapshot.config_id,
                    "b_old_usage": version.usage_bytes,
                    "b_old_meta": version.meta_text or "",
                    "b_usage": after.usage_bytes,
                    "b_counter": after.last_counter,
                    "b_counted": after.total_bytes,
                    "b_settled": after.settled_bytes,
                    "b_lifetime": after.last_lifetime,
                }
            )
            expected[snapshot.config_id] = after
        if not expected:
            return set()
        matched = 0
        with self._engine.begin() as conn:
            for (base_is_object, sets_settled, sets_lifetime), params in groups.items():
                if self._dialect == "mysql":
                    matched += _joined_updates(
                        conn, params, base_is_object, sets_settled, sets_lifetime
                    )
                else:
                    stmt = self._guarded_update(
                        base_is_object=base_is_object,
                        sets_settled=sets_settled,
                        sets_lifetime=sets_lifetime,
                    )
                    matched += _execute_many(conn, stmt, params)
        if matched == len(expected):
            return set(expected)
        # Some rows changed under us: find out which writes landed.
        return self._landed(expected)

    def _guarded_update(
        self, *, base_is_object: bool, sets_settled: bool, sets_lifetime: bool
    ) -> Any:
        keys: dict[str, Any] = {
            LAST_COUNTER_KEY: bindparam("b_counter"),
            COUNTED_KEY: bindparam("b_counted"),
        }
        if sets_settled:
            keys = {SETTLED_KEY: bindparam("b_settled"), **keys}
        if sets_lifetime:
            # A reading without a lifetime stores JSON null over the last one.
            keys[LAST_LIFETIME_KEY] = bindparam("b_lifetime")
        meta = meta_set(self._dialect, _c.meta, base_is_object, keys)
        return (
            update(t.reseller_configs)
            .where(
                _c.id == bindparam("b_id"),
                _c.deleted_at.is_(None),
                _c.usage_bytes == bindparam("b_old_usage"),
                meta_text_guard(self._dialect) == bindparam("b_old_meta"),
            )
            .values(usage_bytes=bindparam("b_usage"), meta=meta)
        )

    def _landed(self, expected: dict[int, LedgerState]) -> set[int]:
        landed: set[int] = set()
        ids = list(expected)
        with self._engine.connect() as conn:
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                query = select(_c.id, _c.usage_bytes, _META_TEXT).where(_c.id.in_(chunk))
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


def _joined_updates(
    conn: Connection,
    params: list[dict[str, Any]],
    base_is_object: bool,
    sets_settled: bool,
    sets_lifetime: bool,
) -> int:
    """MySQL/MariaDB: the guarded update as one UPDATE … JOIN per chunk of rows.

    PyMySQL sends an `executemany` of UPDATEs as one statement per row; joining
    the rows' values as a derived table does the same guarded writes in one.
    """
    base = "c.meta" if base_is_object else "'{}'"
    keys = f"'$.{LAST_COUNTER_KEY}', v.b_counter, '$.{COUNTED_KEY}', v.b_counted"
    if sets_settled:
        keys = f"'$.{SETTLED_KEY}', v.b_settled, " + keys
    if sets_lifetime:
        keys += f", '$.{LAST_LIFETIME_KEY}', v.b_lifetime"
    guard = (
        "COALESCE(CAST(c.meta AS CHAR CHARACTER SET utf8mb4), '') COLLATE utf8mb4_bin"
        " = v.b_old_meta"
    )
    matched = 0
    for start in range(0, len(params), _CHUNK):
        chunk = params[start : start + _CHUNK]
        rows = " UNION ALL ".join(
            f"SELECT :i{n} AS b_id, :u{n} AS b_old_usage, :m{n} AS b_old_meta, "
            f":n{n} AS b_usage, :c{n} AS b_counter, :t{n} AS b_counted, :s{n} AS b_settled, "
            f":l{n} AS b_lifetime"
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
                f"t{n}": row["b_counted"],
                f"s{n}": row["b_settled"],
                f"l{n}": row["b_lifetime"],
            }
        matched += conn.execute(text(sql), bound).rowcount
    return matched


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
