"""Marzneshin: a bearer token from `/api/admins/token`, `GET /api/users/{username}`,
the listing `GET /api/users?page&size&order_by=username` (at most 100 a page), and the
same route filtered by a repeated `username=` (two or more values: exact; one value
is a substring match, so a lone name is sent twice)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Final

import attrs

from usage_adapters.panels.auth import PasswordTokenAuth
from usage_adapters.panels.dialect import FetchWording, Page, Requester, log_debug_reading, paged
from usage_adapters.panels.http import HttpChannel, QueryParams, path_segment
from usage_adapters.panels.options import ReadOptions
from usage_adapters.panels.writes import answer, done
from usage_core.read_strategy import ReadCosts
from usage_core.readings import (
    CounterReading,
    RemoteResult,
    UsageResult,
    parse_marzneshin_user,
    parse_marzneshin_users_page,
)

logger = logging.getLogger(__name__)

LABEL = "Marzneshin"
# fastapi-pagination refuses `size` above 100 with a 422.
MAX_PAGE_SIZE = 100
# Names in one `username=` batch (at most a page: the filtered reply is paged too).
BATCH_SIZE: Final = 50
REQUEST_COST: Final = 2.0


@attrs.frozen
class MarzneshinListing:
    """`GET /api/users`, ordered by username, in pages of `size` (page/size)."""

    size: int
    item_key: str = "username"
    batch_size: int = BATCH_SIZE
    page_concurrency: int | None = None
    # `username=alice` alone is `ILIKE '%alice%'` (it finds alice2 too); two values are `IN`.
    least_batch: int = 2

    @property
    def costs(self) -> ReadCosts:
        """Pages of `size`, batches of `batch_size`, a `total` on every page."""
        return ReadCosts(REQUEST_COST, self.size, self.batch_size, reports_total=True)

    def probe(self) -> tuple[str, QueryParams]:
        """A one-user page: `page=1&size=1`."""
        return "/api/users", (("page", 1), ("size", 1))

    def batch(self, names: Sequence[str]) -> tuple[str, QueryParams]:
        """`username=a&username=b&...&size=n`: exactly those users, on one page.

        A lone name is sent twice: one value would be a substring match.
        """
        if len(names) == 1:
            names = (names[0], names[0])
        size = min(max(len(names), 1), MAX_PAGE_SIZE)
        return "/api/users", (
            *(("username", name) for name in names),
            ("page", 1),
            ("size", size),
        )

    def read_total(self, decoded: object) -> int | str:
        """`total`."""
        page = parse_marzneshin_users_page(decoded)
        if isinstance(page, str):
            return page
        return "the reply has no total" if page.total is None else page.total

    def request(self, number: int) -> tuple[str, QueryParams]:
        """Page `number`: `page=number&size=size&order_by=username`."""
        return "/api/users", (("page", number), ("size", self.size), ("order_by", "username"))

    def read_page(self, decoded: object, number: int) -> Page | str:
        """The page's users and the page count from `total`."""
        page = parse_marzneshin_users_page(decoded)
        if isinstance(page, str):
            return page
        return paged(page.items, page.total, number, self.size)

    def read_item(self, item: Mapping[str, object]) -> UsageResult:
        """A listed user object, read as a single reply."""
        return parse_marzneshin_user(item)


class MarzneshinDialect:
    """How a Marzneshin session logs in, reads one user and lists them all."""

    label = LABEL
    wording = FetchWording.for_label(LABEL)

    def __init__(self, http: HttpChannel, options: ReadOptions) -> None:
        self.http_channel = http
        self.auth = PasswordTokenAuth(http.panel, LABEL, "/api/admins/token")
        size = min(max(1, options.page_size or MAX_PAGE_SIZE), MAX_PAGE_SIZE)
        self.listing = MarzneshinListing(size)

    def user_paths(self, username: str) -> Sequence[str]:
        """`/api/users/{username}`."""
        return (f"/api/users/{path_segment(username)}",)

    def parse_user(self, decoded: object) -> UsageResult:
        """`used_traffic`."""
        return parse_marzneshin_user(decoded)

    def log_reading(self, username: str, reading: CounterReading) -> None:
        """A debug line with the counter."""
        log_debug_reading(logger, LABEL, username, reading)

    def set_enabled(self, api: Requester, username: str, enabled: bool) -> RemoteResult:
        """`POST /api/users/{username}/enable` or `/disable`; a 409 means it already was.

        Only the `enabled` flag changes; the state is read back from `enabled`.
        """
        path = self.user_paths(username)[0]
        action = "enable" if enabled else "disable"
        sent = answer(
            self.http_channel,
            api("POST", f"{path}/{action}"),
            f"asking the panel to {action} the user",
            expected=(409,),
        )
        if isinstance(sent, RemoteResult):
            return sent
        already = sent.status == 409
        read = answer(self.http_channel, api("GET", path), "reading the user back")
        if isinstance(read, RemoteResult):
            return done(enabled, already=already)
        user = read.value
        flag = user.get("enabled") if isinstance(user, dict) else None
        if isinstance(flag, bool) and flag != enabled:
            return RemoteResult(
                False, f"the panel kept the user {'enabled' if flag else 'disabled'}"
            )
        return done(enabled, already=already, verified=isinstance(flag, bool))
