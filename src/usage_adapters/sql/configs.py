"""`reseller_configs`: the configs, their usage ledgers, and guarded writes of them.

Every write of a config's usage, one row or a batch of thousands, is the same
guarded `UPDATE ... WHERE usage_bytes = :read AND meta = :read`: a row the app
(or another sync) changed after it was read is left alone, and the caller
learns which rows were written. Only `usage_bytes` and our keys inside `meta`
change; the `meta` document is never rewritten from a copy.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, Text, and_, bindparam, cast, or_, select, update

from usage_adapters.sql import tables as t
from usage_adapters.sql.engine import dialect_of
from usage_adapters.sql.errors import database_errors, translated
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
from usage_core.ledger import LedgerState, reconcile
from usage_core.log import ctx
from usage_core.model import ConfigFilter, LedgerSnapshot, ResellerConfig, SyncItem
from usage_core.ports import NewLedger, ReadLedger

logger = logging.getLogger(__name__)

# Rows per statement of a MySQL joined update, and per read-back query.
_CHUNK = 1000
# A row's `meta` text up to this long is kept as its version; a longer one by its hash.
_KEPT_META_CHARS = 16

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


def _meta_shape(config_id: int, meta_text: str | None) -> tuple[bool, bool]:
    """Whether a write sets our keys in the stored document, and whether it has a lifetime.

    A write starts from an empty document over NULL, `null` and PHP's `[]`, and
    stores JSON null over a stored lifetime when its reading has none. Both are
    worked out from the text as read when the row is written, rather than kept
    beside every row read: a full sync reads every row and writes few of them.
    """
    if meta_text is None or meta_text.lstrip()[:1] != "{":
        return False, False
    if LAST_LIFETIME_KEY not in meta_text:
        return True, False
    return True, parse_meta(config_id, meta_text).get(LAST_LIFETIME_KEY) is not None


def _stored_ledger(
    config_id: int, usage_bytes: int, meta: Mapping[str, object]
) -> tuple[LedgerState, bool]:
    """The row's ledger, and whether `stored_state` had to move the stored counter or lifetime."""
    settled, counter, lifetime, stale = _stored_fields(config_id, usage_bytes, meta)
    return LedgerState(usage_bytes, settled, counter, lifetime), stale


def _stored_fields(
    config_id: int, usage_bytes: int, meta: Mapping[str, object]
) -> tuple[int, int | None, int | None, bool]:
    """Settled bytes, last counter and lifetime as `stored_state` reads them, and staleness.

    Each key is read once (a full sync does this for every row); a row without
    `meta` has nothing to read.
    """
    if not meta:
        return 0, None, None, False
    settled = meta_bytes(config_id, meta, SETTLED_KEY) or 0
    counter = meta_bytes(config_id, meta, LAST_COUNTER_KEY)
    counted = meta_bytes(config_id, meta, COUNTED_KEY)
    lifetime = meta_bytes(config_id, meta, LAST_LIFETIME_KEY)
    kept_counter, kept_lifetime = reconcile(usage_bytes, settled, counter, counted, lifetime)
    stale = kept_counter != counter or kept_lifetime != lifetime
    return settled, kept_counter, kept_lifetime, stale


def _ledger_of(config_id: int, usage_bytes: int | None, meta: Mapping[str, object]) -> LedgerState:
    return _stored_ledger(config_id, int(usage_bytes or 0), meta)[0]


def _item(row: Any, shared: dict[Any, Any]) -> SyncItem:
    """A config row with its ledger and the version its guarded write needs (`_meta_version`).

    `shared` holds one copy of each status and type string, reseller id and
    limit: a full sync keeps every row, and these repeat across them.
    """
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
    usage = int(usage_bytes or 0)
    limit = int(traffic_limit_bytes or 0)
    status = shared.setdefault(status, status)
    panel_type = shared.setdefault(panel_type, panel_type)
    reseller_id = shared.setdefault(reseller_id, reseller_id)
    limit = shared.setdefault(limit, limit)
    if external_username == panel_user_id:
        external_username = panel_user_id  # one string for the two, as they usually are
    problem = None
    try:
        meta = parse_meta(config_id, meta_text)
        settled, counter, lifetime, stale = _stored_fields(config_id, usage, meta)
    except StoreError as exc:
        # One malformed row must not hide the reseller's other configs.
        problem = str(exc)
        settled, counter, lifetime, stale = 0, None, None, False
    return SyncItem(
        config_id,
        reseller_id,
        status,
        panel_type,
        panel_id,
        panel_user_id,
        external_username,
        limit,
        usage,
        settled,
        counter,
        lifetime,
        _meta_version(meta_text),
        stale,
        problem,
    )


def _grouped(
    writes: Sequence[tuple[ReadLedger, NewLedger]], texts: Mapping[int, str | None]
) -> dict[tuple[bool, bool, bool], list[tuple[Any, ...]]]:
    """Rows of `_WRITE_FIELDS`, grouped by the statement they need.

    A row read with a long `meta` kept only its text's hash (`_meta_version`): its
    text as read again (`texts`) is its guard, when it hashes alike; when not, the
    row changed since it was read and is left out, as a guard would leave it.
    """
    groups: dict[tuple[bool, bool, bool], list[tuple[Any, ...]]] = defaultdict(list)
    for read, after in writes:
        config_id, meta_text = read.config_id, read.version
        if type(meta_text) is int:
            digest = meta_text
            meta_text = texts.get(config_id)
            if meta_text is None or hash(meta_text) != digest:
                continue
        elif meta_text is not None and type(meta_text) is not str:
            msg = "a ledger snapshot from another store"
            raise TypeError(msg)
        usage, settled, lifetime = after.usage_bytes, after.settled_bytes, after.last_lifetime
        meta_is_object, has_lifetime = _meta_shape(config_id, meta_text)
        key = (meta_is_object, settled != read.settled_bytes, lifetime is not None or has_lifetime)
        groups[key].append(
            (
                config_id,
                read.usage_bytes,
                meta_text or "",
                usage,
                after.last_counter,
                usage + settled,
                settled,
                lifetime,
            )
        )
    return groups


def _meta_texts(conn: Connection, config_ids: Sequence[int]) -> dict[int, str | None]:
    """The `meta` text of each live config of `config_ids`, read now."""
    rows = _by_ids(conn, config_ids, (_c.id, _META_TEXT), _c.deleted_at.is_(None))
    return dict(rows)


def _by_ids(
    conn: Connection, config_ids: Sequence[int], columns: tuple[Any, ...], *where: Any
) -> Iterator[Any]:
    """The rows of `columns` of the configs with `config_ids`: one query a chunk of ids."""
    for start in range(0, len(config_ids), _CHUNK):
        chunk = config_ids[start : start + _CHUNK]
        yield from conn.execute(select(*columns).where(_c.id.in_(chunk), *where))


def _meta_version(meta_text: str | None) -> str | int | None:
    """What a row keeps of its `meta` for the guarded write: the text, or a long one's hash.

    A full sync keeps every row it reads and writes few of them: a long text (the
    ledger's own keys make one) is read again for the rows written, and guards
    their write if it still hashes to what was read.
    """
    if meta_text is None or len(meta_text) <= _KEPT_META_CHARS:
        return meta_text
    return hash(meta_text)


def _selected_by(only: ConfigFilter) -> Any:
    """`only` as a condition; its complement spelled out, as NOT over a NULL is NULL."""
    ids, types = sorted(only.panel_ids), sorted(only.unassigned_types)
    if not only.outside:
        return or_(_c.panel_id.in_(ids), and_(_c.panel_id.is_(None), _c.panel_type.in_(types)))
    return or_(
        and_(_c.panel_id.is_not(None), _c.panel_id.not_in(ids)),
        and_(_c.panel_id.is_(None), _c.panel_type.not_in(types)),
    )


class SqlConfigRepository:
    """The `ConfigRepository` port over the app's `reseller_configs` table.

    Soft-deleted rows are invisible.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dialect = dialect_of(engine)
        self._joined = self._dialect in _JOINED and (
            self._dialect != "sqlite" or _SQLITE_UPDATE_FROM
        )

    @translated
    def get(self, config_id: int) -> ResellerConfig | None:
        """The config with this id, or None."""
        query = select(*_CONFIG_COLUMNS).where(_c.id == config_id, _c.deleted_at.is_(None))
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _item(row, {}).config

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
        return LedgerSnapshot(config_id, state, row.meta_text, stale=stale)

    def synced_items(self, only: ConfigFilter | None = None) -> Iterator[SyncItem]:
        """Every config of the synced resellers (active, traffic), any status, in id order.

        With `only`, just the configs it selects (one job of a fan-out by panel).
        The rows are read as they are taken, a few thousand at a time, over one
        connection held until the last is taken or the iterator is closed.
        """
        r = t.resellers.c
        query = (
            select(*_CONFIG_COLUMNS)
            .join(t.resellers, r.id == _c.reseller_id)
            .where(r.status == "active", r.type == "traffic", _c.deleted_at.is_(None))
            .order_by(_c.id)
        )
        if only is not None:
            query = query.where(_selected_by(only))
        shared: dict[Any, Any] = {}
        # Translated here: a generator's errors arise as it is iterated, not when called.
        with database_errors(), self._engine.connect() as conn:
            rows = conn.execution_options(yield_per=5000).execute(query)
            # By partition: iterating a result row by row costs a fetch call a row.
            for part in rows.partitions():
                yield from [_item(row, shared) for row in part]

    @translated
    def active_panel_keys(self) -> set[tuple[int | None, str]]:
        """The distinct `(panel_id, panel_type)` of the synced resellers' active configs."""
        r = t.resellers.c
        query = (
            select(_c.panel_id, _c.panel_type)
            .distinct()
            .join(t.resellers, r.id == _c.reseller_id)
            .where(
                r.status == "active",
                r.type == "traffic",
                _c.deleted_at.is_(None),
                _c.status == "active",
            )
        )
        with self._engine.connect() as conn:
            return {(panel_id, panel_type) for panel_id, panel_type in conn.execute(query)}

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
    def save_ledgers(self, writes: Sequence[tuple[ReadLedger, NewLedger]]) -> set[int]:
        """Write each ledger unless its row changed since it was read; the ids written."""
        if not writes:
            return set()
        matched = 0
        with self._engine.begin() as conn:
            hashed = [read.config_id for read, _ in writes if type(read.version) is int]
            texts = _meta_texts(conn, hashed) if hashed else {}
            for shape, rows in _grouped(writes, texts).items():
                if self._joined:
                    matched += _joined_updates(conn, self._dialect, rows, shape)
                else:
                    base_is_object, sets_settled, sets_lifetime = shape
                    stmt = self._guarded_update(
                        base_is_object=base_is_object,
                        sets_settled=sets_settled,
                        sets_lifetime=sets_lifetime,
                    )
                    matched += _execute_many(conn, stmt, rows)
        if matched == len(writes):
            return {read.config_id for read, _ in writes}
        # Some rows changed under us: find out which writes landed.
        return self._landed({read.config_id: after for read, after in writes})

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

    def _landed(self, expected: dict[int, NewLedger]) -> set[int]:
        landed: set[int] = set()
        with self._engine.connect() as conn:
            for row in _by_ids(conn, list(expected), (_c.id, _c.usage_bytes, _META_TEXT)):
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
    conn: Connection, dialect: str, rows: list[tuple[Any, ...]], shape: tuple[bool, bool, bool]
) -> int:
    """The guarded update as one statement per chunk of rows, joined to their values.

    An `executemany` runs the statement once a row: PyMySQL sends each as its
    own statement, and Python's sqlite3 gives up the interpreter lock around
    each row's step, so that while the panels' threads decode replies every
    row waits its turn for the lock (`bench/write_bench.py`: 10,000 rows beside
    two threads decoding listing pages took 22 to 51 s as an `executemany`,
    0.22 to 0.26 s as one statement a chunk). Joining the rows' values as a
    derived table does the same guarded writes in one statement.
    """
    base_is_object, sets_settled, sets_lifetime = shape
    pairs = [(LAST_COUNTER_KEY, "b_counter"), (COUNTED_KEY, "b_counted")]
    if sets_settled:
        pairs.insert(0, (SETTLED_KEY, "b_settled"))
    if sets_lifetime:
        pairs.append((LAST_LIFETIME_KEY, "b_lifetime"))
    matched = 0
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        sql = _JOINED[dialect](len(chunk), base_is_object, pairs)
        # The driver's own positional parameters: no statement parsing per chunk.
        bound = tuple(chain.from_iterable(chunk))
        matched += conn.exec_driver_sql(sql, bound).rowcount
    return matched


# Only our constants and placeholders go into these statements; every value is bound.
_Pairs = list[tuple[str, str]]  # (meta key, `_WRITE_FIELDS` name of its value)


def _mysql_joined(rows: int, base_is_object: bool, pairs: _Pairs) -> str:
    base = "c.meta" if base_is_object else "'{}'"
    keys = ", ".join(f"'$.{key}', v.{field}" for key, field in pairs)
    # Column names from the first row; the others are plain rows of values.
    first = ", ".join(f"%s AS {name}" for name in _WRITE_FIELDS)
    more = ", ".join(["%s"] * len(_WRITE_FIELDS))
    values = " UNION ALL ".join([f"SELECT {first}"] + [f"SELECT {more}"] * (rows - 1))
    guard = "COALESCE(CAST(c.meta AS CHAR CHARACTER SET utf8mb4), '') COLLATE utf8mb4_bin"
    return (
        f"UPDATE reseller_configs AS c JOIN ({values}) AS v ON c.id = v.b_id "  # noqa: S608
        f"SET c.usage_bytes = v.b_usage, c.meta = JSON_SET({base}, {keys}) "
        f"WHERE c.deleted_at IS NULL AND c.usage_bytes = v.b_old_usage AND {guard} = v.b_old_meta"
    )


def _sqlite_joined(rows: int, base_is_object: bool, pairs: _Pairs) -> str:
    # SQLite names a VALUES table's columns column1, column2, ...
    column = {name: f"v.column{n}" for n, name in enumerate(_WRITE_FIELDS, start=1)}
    base = "c.meta" if base_is_object else "'{}'"
    keys = ", ".join(f"'$.{key}', {column[field]}" for key, field in pairs)
    values = ", ".join(["(" + ", ".join(["?"] * len(_WRITE_FIELDS)) + ")"] * rows)
    return (
        f"UPDATE reseller_configs AS c SET usage_bytes = {column['b_usage']}, "  # noqa: S608
        f"meta = json_set({base}, {keys}) FROM (VALUES {values}) AS v "
        f"WHERE c.id = {column['b_id']} AND c.deleted_at IS NULL "
        f"AND c.usage_bytes = {column['b_old_usage']} "
        f"AND COALESCE(CAST(c.meta AS TEXT), '') = {column['b_old_meta']}"
    )


def _postgresql_joined(rows: int, base_is_object: bool, pairs: _Pairs) -> str:
    base = "CAST(CAST(c.meta AS TEXT) AS JSONB)" if base_is_object else "CAST('{}' AS JSONB)"
    keys = ", ".join(f"'{key}', v.{field}" for key, field in pairs)
    # The first row gives the columns their types; the others follow them.
    typed = ", ".join(
        "CAST(%s AS TEXT)" if name == "b_old_meta" else "CAST(%s AS BIGINT)"
        for name in _WRITE_FIELDS
    )
    plain = ", ".join(["%s"] * len(_WRITE_FIELDS))
    values = ", ".join([f"({typed})"] + [f"({plain})"] * (rows - 1))
    return (
        "UPDATE reseller_configs AS c SET usage_bytes = v.b_usage, "  # noqa: S608
        f"meta = CAST({base} || jsonb_build_object({keys}) AS JSON) "
        f"FROM (VALUES {values}) AS v({', '.join(_WRITE_FIELDS)}) "
        "WHERE c.id = v.b_id AND c.deleted_at IS NULL AND c.usage_bytes = v.b_old_usage "
        "AND COALESCE(CAST(c.meta AS TEXT), '') = v.b_old_meta"
    )


_JOINED = {"mysql": _mysql_joined, "sqlite": _sqlite_joined, "postgresql": _postgresql_joined}
# UPDATE … FROM arrived in SQLite 3.33.0; older libraries write row by row.
_SQLITE_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33, 0)


# The order of the values in each row `save_ledgers` writes.
_WRITE_FIELDS = (
    "b_id",
    "b_old_usage",
    "b_old_meta",
    "b_usage",
    "b_counter",
    "b_counted",
    "b_settled",
    "b_lifetime",
)


def _execute_many(conn: Connection, stmt: Any, rows: list[tuple[Any, ...]]) -> int:
    """`executemany` of a compiled statement straight to the driver; the rows matched.

    Compiling once and handing the driver its parameter rows as they are skips
    SQLAlchemy's per-row parameter processing, the larger part of writing a big
    batch. The statement's only parameters are `_WRITE_FIELDS`.
    """
    compiled = stmt.compile(dialect=conn.dialect)
    order = compiled.positiontup
    params: list[Any]
    if order:
        pick = itemgetter(*(_WRITE_FIELDS.index(name) for name in order))
        params = list(map(pick, rows))
    else:
        params = [dict(zip(_WRITE_FIELDS, row, strict=True)) for row in rows]
    return int(conn.exec_driver_sql(str(compiled), params).rowcount)
