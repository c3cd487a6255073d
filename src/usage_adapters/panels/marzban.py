"""Marzban: a bearer token from `/api/admin/token`, `GET /api/user/{username}`, the
listing `GET /api/users?offset&limit&sort=username`, and the same route filtered by a
repeated `username=` (exact)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from usage_adapters.panels.auth import PasswordTokenAuth
from usage_adapters.panels.dialect import (
    FetchWording,
    Page,
    Requester,
    log_debug_reading,
    paged,
)
from usage_adapters.panels.http import HttpChannel, QueryParams, path_segment
from usage_adapters.panels.options import ReadOptions
from usage_adapters.panels.writes import answer, done
from usage_core.read_strategy import ReadCosts
from usage_core.readings import (
    CounterReading,
    RemoteResult,
    UsageResult,
    parse_marzban_user,
    parse_marzban_users_page,
)

logger = logging.getLogger(__name__)

LABEL = "Marzban"
# Marzban has no maximum `limit`, but builds every listed user's share links and
# subscription URL (~11 ms a user on a 2-core machine): a 1,000-user page took 10-13 s,
# near the 15 s timeout. 250 users are ~3 s a page.
DEFAULT_PAGE_SIZE = 250
# Names in one `username=` batch: a short URL (nginx refuses request lines over 8 KiB).
BATCH_SIZE: Final = 50
# Marzban serializes users one request at a time: more pages in flight only queue.
PAGE_CONCURRENCY: Final = 1
# A request costs the panel about two serialized users (ten single reads took 0.32 s).
REQUEST_COST: Final = 2.0


@attrs.frozen
class MarzbanListing:
    """`GET /api/users`, sorted by username, in pages of `size` (offset/limit).

    Also PasarGuard's: the same route, shape, `total` and exact `username=` filter.
    """

    size: int
    item_key: str = "username"
    batch_size: int = BATCH_SIZE
    page_concurrency: int | None = PAGE_CONCURRENCY
    least_batch: int = 1

    @property
    def costs(self) -> ReadCosts:
        """Pages of `size`, batches of `batch_size`, a `total` on every page."""
        return ReadCosts(REQUEST_COST, self.size, self.batch_size, reports_total=True)

    def probe(self) -> tuple[str, QueryParams]:
        """A one-user page: `offset=0&limit=1`."""
        return "/api/users", (("offset", 0), ("limit", 1))

    def batch(self, names: Sequence[str]) -> tuple[str, QueryParams]:
        """`username=a&username=b&...`: exactly those users (an SQL `IN`)."""
        return "/api/users", tuple(("username", name) for name in names)

    def read_total(self, decoded: object) -> int | str:
        """`total`."""
        page = parse_marzban_users_page(decoded)
        if isinstance(page, str):
            return page
        return "the reply has no total" if page.total is None else page.total

    def request(self, number: int) -> tuple[str, QueryParams]:
        """Page `number`: `offset=(number-1)*size&limit=size&sort=username`."""
        offset = (number - 1) * self.size
        return "/api/users", (("offset", offset), ("limit", self.size), ("sort", "username"))

    def read_page(self, decoded: object, number: int) -> Page | str:
        """The page's users and the page count from `total`."""
        page = parse_marzban_users_page(decoded)
        if isinstance(page, str):
            return page
        return paged(page.items, page.total, number, self.size)

    def read_item(self, item: Mapping[str, object]) -> UsageResult:
        """A listed user object, read as a single reply."""
        return parse_marzban_user(item)


class MarzbanDialect:
    """How a Marzban session logs in, reads one user and lists them all."""

    label = LABEL
    wording = FetchWording.for_label(LABEL)

    def __init__(self, http: HttpChannel, options: ReadOptions) -> None:
        self.http_channel = http
        self.auth = PasswordTokenAuth(http.panel, LABEL, "/api/admin/token")
        self.listing = MarzbanListing(max(1, options.page_size or DEFAULT_PAGE_SIZE))

    def user_paths(self, username: str) -> Sequence[str]:
        """`/api/user/{username}`."""
        return (f"/api/user/{path_segment(username)}",)

    def parse_user(self, decoded: object) -> UsageResult:
        """`used_traffic`."""
        return parse_marzban_user(decoded)

    def log_reading(self, username: str, reading: CounterReading) -> None:
        """A debug line with the counter."""
        log_debug_reading(logger, LABEL, username, reading)

    def set_enabled(self, api: Requester, username: str, enabled: bool) -> RemoteResult:
        """`PUT /api/user/{username}` with only `status` (and the user's `next_plan`).

        Marzban deletes a user's next plan when a modify leaves `next_plan` out,
        so the plan read just before is sent back unchanged.
        """
        return set_status(self.http_channel, api, self.user_paths(username)[0], enabled)


def set_status(
    http: HttpChannel, api: Requester, path: str, enabled: bool, *, keep_next_plan: bool = True
) -> RemoteResult:
    """Marzban's (and PasarGuard's) set-state: read `status`, `PUT` it when it differs.

    With `keep_next_plan`, the user's `next_plan` is sent back unchanged
    (Marzban deletes it otherwise; PasarGuard leaves out fields alone).
    """
    read = answer(http, api("GET", path), "reading the user")
    if isinstance(read, RemoteResult):
        return read
    user = read.value
    if not isinstance(user, dict) or not isinstance(user.get("status"), str):
        return RemoteResult(False, "the user reply has no status")
    if (user["status"] != "disabled") == enabled:
        return done(enabled, already=True, verified=True)
    body: dict[str, object] = {"status": "active" if enabled else "disabled"}
    if keep_next_plan and user.get("next_plan") is not None:
        body["next_plan"] = user["next_plan"]
    written = answer(http, api("PUT", path, json_body=body), "changing the user's status")
    if isinstance(written, RemoteResult):
        return written
    after = written.value
    status = after.get("status") if isinstance(after, dict) else None
    if status is None:
        return done(enabled)
    if (status != "disabled") != enabled:
        return RemoteResult(False, f"the panel kept the user {status}")
    return done(enabled, verified=True)
