"""Eylandoo: a static `X-API-KEY` header, `GET /api/v1/users/{username}`, and
`GET /api/v1/users/list_all` (everyone at once, in any of its documented shapes)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import attrs

from usage_adapters.panels.auth import StaticKeyAuth
from usage_adapters.panels.dialect import FetchWording, Page, Requester
from usage_adapters.panels.http import HttpChannel, QueryParams, path_segment
from usage_adapters.panels.json_stream import EACH, Path
from usage_adapters.panels.options import ReadOptions
from usage_adapters.panels.writes import answer, done
from usage_core.log import ctx
from usage_core.readings import (
    NO_USAGE_FIELDS,
    CounterReading,
    RemoteResult,
    UsageResult,
    parse_eylandoo_list_all,
    parse_eylandoo_list_item,
    parse_eylandoo_user,
)

logger = logging.getLogger(__name__)

LABEL = "Eylandoo"
LIST_ALL_ROUTE = "/api/v1/users/list_all"


@attrs.frozen
class EylandooListing:
    """`GET /api/v1/users/list_all`: one page with every user."""

    item_key: str = "username"
    # Each shape's groups, as `parse_eylandoo_list_all` reads them.
    user_arrays: tuple[Path, ...] = (
        ("users",),
        ("data", "users"),
        ("main_admin", "users"),
        ("main_admin_users",),
        ("sub_admins", EACH, "users"),
    )
    unread_values: tuple[Path, ...] = ()

    def request(self, number: int) -> tuple[str, QueryParams]:
        """The one page."""
        return LIST_ALL_ROUTE, ()

    def read_page(self, decoded: object, number: int) -> Page | str:
        """Every group of the reply, flattened."""
        page = parse_eylandoo_list_all(decoded)
        return page if isinstance(page, str) else Page(page.items, 1)

    def read_item(self, item: Mapping[str, object]) -> UsageResult:
        """A list item, by the single-user precedence."""
        return parse_eylandoo_list_item(item)


class EylandooDialect:
    """How an Eylandoo session reads one user and lists them all; no login.

    Per-user log lines ("Eylandoo usage from ...") belong to single reads only.
    """

    label = LABEL
    wording = FetchWording.for_label(LABEL)
    listing = EylandooListing()

    def __init__(self, http: HttpChannel, options: ReadOptions) -> None:
        self.http_channel = http
        panel = http.panel
        key = panel.api_token.reveal() if panel.api_token else ""
        self.auth = StaticKeyAuth(key, "X-API-KEY", missing="the panel has no API token")

    def user_paths(self, username: str) -> Sequence[str]:
        """`/api/v1/users/{username}`."""
        return (f"/api/v1/users/{path_segment(username)}",)

    def parse_user(self, decoded: object) -> UsageResult:
        """The documented field precedence."""
        return parse_eylandoo_user(decoded)

    def log_reading(self, username: str, reading: CounterReading) -> None:
        """Say where the counter came from, in the original service's words."""
        if reading.path == NO_USAGE_FIELDS:
            logger.info(
                "Eylandoo usage: no traffic data fields found, returning 0",
                extra=ctx(username=username),
            )
        elif reading.upload_bytes is not None and reading.download_bytes is not None:
            logger.info(
                "Eylandoo usage from " + reading.path,
                extra=ctx(
                    username=username,
                    upload_bytes=reading.upload_bytes,
                    download_bytes=reading.download_bytes,
                    total_usage_bytes=reading.bytes,
                ),
            )
        else:
            logger.info(
                "Eylandoo usage from " + reading.path,
                extra=ctx(username=username, usage_bytes=reading.bytes),
            )

    def set_enabled(self, api: Requester, username: str, enabled: bool) -> RemoteResult:
        """Set the state with `PUT {"is_disabled": ...}`, toggling only where that is unknown.

        The state is read first and after every change. Panels documented
        before 2026-07 have only `toggle`, which flips: it is sent only when
        the state read says it differs, and the result is read back.
        """
        path = self.user_paths(username)[0]
        state = self._state(api, path)
        if isinstance(state, RemoteResult):
            return state
        if state == enabled:
            return done(enabled, already=True, verified=True)
        put = answer(
            self.http_channel,
            api("PUT", path, json_body={"is_disabled": not enabled}),
            "setting is_disabled",
        )
        if not isinstance(put, RemoteResult) and _succeeded(put.value):
            state = self._state(api, path)
            if state == enabled:
                return done(enabled, verified=True)
        toggled = answer(self.http_channel, api("POST", f"{path}/toggle"), "toggling the user")
        if isinstance(toggled, RemoteResult):
            return toggled
        state = self._state(api, path)
        if isinstance(state, RemoteResult):
            return state
        if state != enabled:
            return RemoteResult(False, "the user's state did not change")
        return done(enabled, verified=True)

    def _state(self, api: Requester, path: str) -> bool | RemoteResult:
        """Whether the user may connect, as the single-user reply says."""
        read = answer(self.http_channel, api("GET", path), "reading the user")
        if isinstance(read, RemoteResult):
            return read
        state = eylandoo_active(read.value)
        if state is None:
            return RemoteResult(False, "the user reply does not say whether the user is active")
        return state


def _succeeded(reply: object) -> bool:
    return isinstance(reply, dict) and reply.get("success") is not False


def eylandoo_active(reply: object) -> bool | None:
    """Whether an Eylandoo user may connect: `is_active`, `data.status`, `userInfo.is_active`."""
    if not isinstance(reply, dict):
        return None
    if isinstance(reply.get("is_active"), bool):
        return bool(reply["is_active"])
    for wrapper in ("userInfo", "data"):
        node = reply.get(wrapper)
        if isinstance(node, dict):
            if isinstance(node.get("is_active"), bool):
                return bool(node["is_active"])
            status = node.get("status")
            if isinstance(status, str) and status.lower() in ("active", "disabled"):
                return status.lower() == "active"
    status = reply.get("status")
    if isinstance(status, str) and status.lower() in ("active", "disabled"):
        return status.lower() == "active"
    return None
