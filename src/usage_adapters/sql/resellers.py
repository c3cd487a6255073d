"""`resellers`: who is synced, their stored totals and forgiveness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, bindparam, inspect, select, update

from usage_adapters.sql import tables as t
from usage_adapters.sql.errors import translated
from usage_core.errors import StoreError
from usage_core.model import ResellerUsage

# The sync reads these resellers (the original job's selection).
_SYNCED = (t.resellers.c.status == "active", t.resellers.c.type == "traffic")


class SqlResellerRepository:
    """The `ResellerRepository` port over the app's `resellers` table.

    `admin_forgiven_bytes` (added after the app's c696ca1 schema) is read
    where the column exists, and counts as 0 where it does not.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._has_forgiven: bool | None = None

    def _usage_columns(self) -> list[Any]:
        r = t.resellers.c
        if self._has_forgiven is None:
            columns = inspect(self._engine).get_columns("resellers")
            self._has_forgiven = any(col["name"] == "admin_forgiven_bytes" for col in columns)
        forgiven = [r.admin_forgiven_bytes] if self._has_forgiven else []
        return [r.id, r.traffic_used_bytes, *forgiven]

    @translated
    def synced(self) -> list[ResellerUsage]:
        """The resellers with status `active` and type `traffic`, in id order."""
        query = select(*self._usage_columns()).where(*_SYNCED).order_by(t.resellers.c.id)
        with self._engine.connect() as conn:
            return [_usage(row) for row in conn.execute(query)]

    @translated
    def usage_of(self, reseller_id: int) -> ResellerUsage | None:
        """One reseller's stored total and forgiveness, any type or status; None when missing."""
        query = select(*self._usage_columns()).where(t.resellers.c.id == reseller_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _usage(row)

    @translated
    def set_used_bytes(self, totals: Mapping[int, int]) -> None:
        """Store `traffic_used_bytes` for each reseller, in one executemany."""
        if not totals:
            return
        negative = [rid for rid, total in totals.items() if total < 0]
        if negative:
            msg = f"reseller {negative[0]}: a negative total cannot be stored"
            raise StoreError(msg)
        r = t.resellers.c
        stmt = (
            update(t.resellers)
            .where(r.id == bindparam("b_id"))
            .values(traffic_used_bytes=bindparam("b_total"))
        )
        params = [{"b_id": rid, "b_total": total} for rid, total in totals.items()]
        with self._engine.begin() as conn:
            conn.execute(stmt, params)


def _usage(row: Any) -> ResellerUsage:
    return ResellerUsage(
        id=int(row[0]),
        used_bytes=int(row[1] or 0),
        forgiven_bytes=int(row[2] or 0) if len(row) > 2 else 0,
    )
