"""`panels`, with credentials read through a `CredentialReader`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine, Row, Text, cast, select

from usage_adapters.sql import tables as t
from usage_adapters.sql.errors import translated
from usage_core.errors import CredentialsError
from usage_core.log import ctx
from usage_core.model import Panel, Secret

logger = logging.getLogger(__name__)

CredentialReader = Callable[[int, str, str], Secret]


def plain_credentials(_panel_id: int, _column: str, value: str) -> Secret:
    """Read a credential column as plain text."""
    return Secret(value)


_PANEL_QUERY = select(
    t.panels.c.id,
    t.panels.c.name,
    t.panels.c.url,
    t.panels.c.panel_type,
    t.panels.c.username,
    t.panels.c.password,
    t.panels.c.api_token,
    # Read as text so that a malformed document is reported, not raised.
    cast(t.panels.c.extra, Text).label("extra"),
    t.panels.c.is_active,
)


class SqlPanelRepository:
    """The `PanelRepository` port over the app's `panels` table.

    `get` and `first_of_type` raise `CredentialsError` for a panel whose
    credentials cannot be read; `all` returns it with `problem` set instead,
    so that in a full sync it fails alone.
    """

    def __init__(self, engine: Engine, credentials: CredentialReader = plain_credentials) -> None:
        self._engine = engine
        self._credentials = credentials

    @translated
    def get(self, panel_id: int) -> Panel | None:
        """The panel with this id, or None."""
        return self._one(_PANEL_QUERY.where(t.panels.c.id == panel_id))

    @translated
    def first_of_type(self, panel_type: str) -> Panel | None:
        """The panel of this type (`Panel.type_name`) with the lowest id, or None.

        The type may be named in `extra`, which SQL cannot compare alike on
        every database: the few rows' types are read and compared here.
        """
        p = t.panels.c
        query = select(p.id, p.panel_type, cast(p.extra, Text).label("extra")).order_by(p.id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        for row in rows:
            typed = Panel(row.id, "", "", row.panel_type, extra=_extra(row.id, row.extra))
            if typed.type_name == panel_type:
                return self.get(row.id)
        return None

    @translated
    def all(self) -> list[Panel]:
        """Every panel in id order."""
        with self._engine.connect() as conn:
            rows = conn.execute(_PANEL_QUERY.order_by(t.panels.c.id)).all()
        return [self._panel(row, tolerate=True) for row in rows]

    def _one(self, query: Any) -> Panel | None:
        with self._engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return None if row is None else self._panel(row)

    def _panel(self, row: Row[Any], *, tolerate: bool = False) -> Panel:
        try:
            password = self._secret(row.id, "password", row.password)
            api_token = self._secret(row.id, "api_token", row.api_token)
            problem = None
        except CredentialsError as exc:
            if not tolerate:
                raise
            logger.error("%s", exc, extra=ctx(panel_id=row.id))
            password = api_token = None
            problem = str(exc)
        return Panel(
            id=row.id,
            name=row.name,
            url=row.url,
            panel_type=row.panel_type,
            username=row.username,
            password=password,
            api_token=api_token,
            extra=_extra(row.id, row.extra),
            is_active=bool(row.is_active),
            problem=problem,
        )

    def _secret(self, panel_id: int, column: str, value: str | None) -> Secret | None:
        if value is None or value == "":
            return None
        return self._credentials(panel_id, column, value)


def _extra(panel_id: int, value: object) -> Mapping[str, object]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if isinstance(value, dict):
        return value
    if value not in (None, []):
        logger.warning(
            "Panel %s: extra is not a JSON object; ignoring it",
            panel_id,
            extra=ctx(panel_id=panel_id),
        )
    return {}
