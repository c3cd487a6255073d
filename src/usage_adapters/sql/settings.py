"""`settings(key, value)`: reads, and dialect-specific upserts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import mysql, postgresql, sqlite

from usage_adapters.sql import tables as t
from usage_adapters.sql.engine import dialect_of
from usage_adapters.sql.errors import translated

Now = Callable[[], datetime]


class SqlSettingsRepository:
    """The `SettingsRepository` port over the app's `settings` table."""

    def __init__(self, engine: Engine, now: Now) -> None:
        self._engine = engine
        self._now = now

    @translated
    def get(self, key: str) -> str | None:
        """The raw value stored under `key`, or None when there is no row."""
        with self._engine.connect() as conn:
            value = conn.execute(select(t.settings.c.value).where(t.settings.c.key == key)).first()
        return None if value is None else value[0]

    @translated
    def set(self, key: str, value: str) -> None:
        """Insert or replace the row for `key`."""
        now = self._now()
        row = {"key": key, "value": value, "created_at": now, "updated_at": now}
        dialect = dialect_of(self._engine)
        stmt: Any
        if dialect == "mysql":
            stmt = mysql.insert(t.settings).values(row)
            stmt = stmt.on_duplicate_key_update(value=stmt.inserted.value, updated_at=now)
        else:
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            stmt = insert(t.settings).values(row)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.settings.c.key],
                set_={"value": stmt.excluded.value, "updated_at": now},
            )
        with self._engine.begin() as conn:
            conn.execute(stmt)
