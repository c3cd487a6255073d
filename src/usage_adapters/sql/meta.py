"""Reading and writing the usage keys of `reseller_configs.meta`.

Writes go through each dialect's JSON functions so that only our keys change
inside the document; the rest of it is never rewritten from a copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from sqlalchemy import BigInteger, ColumnElement, Text, cast, func, literal, literal_column
from sqlalchemy.dialects.postgresql import JSON as PG_JSON
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnClause

from usage_core.errors import StoreError
from usage_core.readings import MAX_BYTES, byte_count

SETTLED_KEY = "settled_usage_bytes"
LAST_COUNTER_KEY = "usage_sync_last_counter"
# usage + settled as of the write that stored the last counter (see `ledger.stored_state`).
COUNTED_KEY = "usage_sync_counted_bytes"
# The panel's lifetime counter read with the last counter, where the panel has one.
LAST_LIFETIME_KEY = "usage_sync_last_lifetime"
# `json.loads` without its whitespace checks, for the common text that has none;
# anything else is read again by `json.loads` (a full sync parses every row's meta).
_decode = json.JSONDecoder().raw_decode
# What `meta_set` writes into a statement as it is.
_CONSTANT = re.compile(r"[$.A-Za-z0-9_]+")


def parse_meta(config_id: int, text: str | None) -> Mapping[str, object]:
    """The meta document as a mapping; NULL, `null` and PHP's empty `[]` are empty."""
    if text is None:
        return {}
    try:
        value = _loads(text)
    except ValueError as exc:
        msg = f"config {config_id}: meta is not valid JSON"
        raise StoreError(msg) from exc
    if value is None or value == []:
        return {}
    if not isinstance(value, dict):
        msg = f"config {config_id}: meta is a JSON {type(value).__name__}, not an object"
        raise StoreError(msg)
    return value


def _loads(text: str) -> object:
    try:
        value, end = _decode(text)
    except ValueError:
        end = -1
    if end != len(text):
        value = json.loads(text)  # the whole text, by the usual rules
    return value


def meta_bytes(config_id: int, meta: Mapping[str, object], key: str) -> int | None:
    """A byte count stored in meta, None when absent; StoreError when unusable."""
    raw = meta.get(key)
    if raw is None:
        return None
    # Our own keys hold plain JSON integers: the common case skips the general reading.
    if type(raw) is int and 0 <= raw <= MAX_BYTES:
        return raw
    value = byte_count(raw)
    if value is None:
        msg = f"config {config_id}: meta.{key} is not a byte count"
        raise StoreError(msg)
    return value


def meta_set(
    dialect: str,
    column: ColumnClause[object],
    base_is_object: bool,
    values: Mapping[str, int | ColumnElement[object]],
) -> ColumnElement[object]:
    """An SQL expression: `column` with `values` (ints or bound parameters) set at top-level keys.

    `base_is_object` false starts from an empty document (NULL, `null` or PHP's `[]`).
    """

    def number(value: int | ColumnElement[object]) -> ColumnElement[object]:
        # PostgreSQL cannot infer a parameter's type inside jsonb_build_object;
        # SQLite binds Python ints as integers already.
        expression: ColumnElement[object] = literal(value) if isinstance(value, int) else value
        return expression if dialect == "sqlite" else cast(expression, BigInteger)

    # Keys are our own constants, written into the statement: a batch of
    # thousands of rows then binds only each row's values.
    if dialect == "postgresql":
        document = cast(column, Text) if base_is_object else literal_column("'{}'", Text)
        pairs: list[ColumnElement[object]] = []
        for key, value in values.items():
            pairs += [_constant(key), number(value)]
        merged = cast(document, JSONB).op("||")(func.jsonb_build_object(*pairs))
        # `meta` is `json` in the app's schema; jsonb only does the merge, and
        # PostgreSQL casts json to jsonb on assignment should a site use jsonb.
        return cast(merged, PG_JSON)
    base_expr: ColumnElement[object] = column if base_is_object else literal_column("'{}'", Text)
    args: list[ColumnElement[object]] = [base_expr]
    for key, value in values.items():
        args += [_constant(f"$.{key}"), number(value)]
    return func.json_set(*args)


def _constant(text: str) -> ColumnElement[object]:
    """A string constant of our own (a key or a JSON path) as an SQL literal."""
    if not _CONSTANT.fullmatch(text):
        msg = f"not a plain key or path: {text!r}"
        raise ValueError(msg)
    return literal_column(f"'{text}'", Text)


def meta_text_guard(dialect: str) -> ColumnElement[object]:
    """`meta` as exact text, NULL as '', for comparing with the text that was read."""
    if dialect == "mysql":
        # The app's collation ignores case and trailing spaces; compare exactly.
        return literal_column(
            "COALESCE(CAST(reseller_configs.meta AS CHAR CHARACTER SET utf8mb4), '') "
            "COLLATE utf8mb4_bin",
            Text,
        )
    return literal_column("COALESCE(CAST(reseller_configs.meta AS TEXT), '')", Text)


def _object_or_empty(dialect: str, column: ColumnClause[object]) -> ColumnElement[object]:
    """The column's document when it is a JSON object, else `{}` (NULL, `null`, PHP's `[]`)."""
    if dialect == "postgresql":
        return literal_column(
            f"(CASE WHEN json_typeof({column}) = 'object' THEN CAST({column} AS jsonb) "
            "ELSE CAST('{}' AS jsonb) END)"
        )
    if dialect == "mysql":
        return literal_column(
            f"(CASE WHEN JSON_TYPE({column}) = 'OBJECT' THEN {column} ELSE JSON_OBJECT() END)"
        )
    return literal_column(
        f"(CASE WHEN json_valid({column}) AND json_type({column}) = 'object' "
        f"THEN {column} ELSE '{{}}' END)"
    )


def json_update(
    dialect: str,
    column: ColumnClause[object],
    values: Mapping[str, object],
    remove: tuple[str, ...] = (),
) -> ColumnElement[object]:
    """An SQL expression: the column's JSON object with `values` set and `remove` removed.

    Values of any JSON type travel as bound JSON text; a document that is not
    an object (NULL, `null`, PHP's empty `[]`) is treated as `{}`. Only the
    named top-level keys change: the document is never rewritten from a copy.
    """
    base = _object_or_empty(dialect, column)
    if dialect == "postgresql":
        document: ColumnElement[object] = base
        for key in remove:
            document = document.op("-")(literal(key, Text))
        if values:
            added = cast(literal(json.dumps(dict(values)), Text), JSONB)
            document = document.op("||")(added)
        return cast(document, PG_JSON)
    if remove:
        remover = func.JSON_REMOVE if dialect == "mysql" else func.json_remove
        base = remover(base, *(literal(f"$.{key}", Text) for key in remove))
    if not values:
        return base
    args: list[ColumnElement[object]] = [base]
    for key, value in values.items():
        text = literal(json.dumps(value), Text)
        # JSON_EXTRACT(text, '$') is how MySQL and MariaDB both take JSON text as JSON.
        as_json = (
            func.JSON_EXTRACT(text, literal("$", Text)) if dialect == "mysql" else func.json(text)
        )
        args += [literal(f"$.{key}", Text), as_json]
    setter = func.JSON_SET if dialect == "mysql" else func.json_set
    return setter(*args)
