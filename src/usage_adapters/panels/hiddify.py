"""Hiddify (admin API v2): the `Hiddify-API-Key` header, `GET .../user/{uuid}/`,
the listing `GET .../user/` (every user at once) and `PATCH .../user/{uuid}/`.

The panel row's `url` is the admin proxy path (`https://host/<proxy_path>`);
the routes below are appended to it. A config's panel username is the user's uuid.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

import attrs

from usage_adapters.panels.auth import StaticKeyAuth
from usage_adapters.panels.dialect import FetchWording, Page, Requester, log_debug_reading
from usage_adapters.panels.http import HttpChannel, QueryParams, path_segment
from usage_adapters.panels.options import ReadOptions
from usage_adapters.panels.writes import answer, done
from usage_core.readings import (
    CounterReading,
    RemoteResult,
    UsageResult,
    parse_hiddify_user,
    parse_hiddify_users,
)

logger = logging.getLogger(__name__)

LABEL = "Hiddify"
USERS_PATH = "/api/v2/admin/user/"
# The panel's route converter: anything else is its catch-all HTTP 500.
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
NOT_A_UUID = "a Hiddify panel_user_id must be the user's uuid"


@attrs.frozen
class HiddifyListing:
    """`GET .../user/`: a JSON array of every user the key's admin may see, unpaged."""

    item_key: str = "uuid"

    def request(self, number: int) -> tuple[str, QueryParams]:
        """The one page: the whole array (Hiddify takes no paging parameters)."""
        return USERS_PATH, ()

    def read_page(self, decoded: object, number: int) -> Page | str:
        """Every user, as the only page."""
        page = parse_hiddify_users(decoded)
        return page if isinstance(page, str) else Page(page.items, 1)

    def read_item(self, item: Mapping[str, object]) -> UsageResult:
        """A listed `UserSchema`, read as a single reply."""
        return parse_hiddify_user(item)


class HiddifyDialect:
    """How a Hiddify session authenticates, reads and lists users, and enables or disables one."""

    label = LABEL
    wording = FetchWording.for_label(LABEL)
    listing = HiddifyListing()

    def __init__(self, http: HttpChannel, options: ReadOptions) -> None:
        self.http_channel = http
        key = http.panel.api_token.reveal() if http.panel.api_token else ""
        self.auth = StaticKeyAuth(
            key, "Hiddify-API-Key", missing="the panel has no API key (the admin's uuid)"
        )

    def user_paths(self, username: str) -> Sequence[str]:
        """`/api/v2/admin/user/{uuid}/` (the trailing slash is part of the route)."""
        return (f"{USERS_PATH}{path_segment(username)}/",)

    def parse_user(self, decoded: object) -> UsageResult:
        """`current_usage_GB`, GiB as a float, in bytes."""
        return parse_hiddify_user(decoded)

    def log_reading(self, username: str, reading: CounterReading) -> None:
        """A debug line with the counter."""
        log_debug_reading(logger, LABEL, username, reading)

    def set_enabled(self, api: Requester, username: str, enabled: bool) -> RemoteResult:
        """Read `enable`; when it differs, `PATCH` only `{"enable": ...}` and read it back.

        A PATCH with `current_usage_GB` would overwrite the usage, so nothing
        but `enable` is ever sent.
        """
        if not _UUID.fullmatch(username):
            return RemoteResult(False, NOT_A_UUID)  # the panel's 500 would look worth a retry
        path = self.user_paths(username)[0]
        read = answer(self.http_channel, api("GET", path), "reading the user")
        if isinstance(read, RemoteResult):
            return read
        user = read.value
        current = user.get("enable") if isinstance(user, dict) else None
        if not isinstance(current, bool):
            return RemoteResult(False, "the user reply has no enable flag")
        if current == enabled:
            return done(enabled, already=True, verified=True)
        written = answer(
            self.http_channel,
            api("PATCH", path, json_body={"enable": enabled}),
            "changing the user's enable flag",
        )
        if isinstance(written, RemoteResult):
            return written
        after = written.value.get("enable") if isinstance(written.value, dict) else None
        if not isinstance(after, bool):
            return done(enabled)
        if after != enabled:
            return RemoteResult(
                False, f"the panel kept the user {'enabled' if after else 'disabled'}"
            )
        return done(enabled, verified=True)
