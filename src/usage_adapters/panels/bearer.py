"""Marzban and Marzneshin: an OAuth2 password form buys a bearer token, reused per session."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Set
from typing import Literal

import attrs
import httpx

from usage_adapters.panels.bulk import (
    NO_USERNAME,
    Batch,
    BulkOptions,
    Fetched,
    ListingDialect,
    Page,
    Single,
    matching_items,
    page_count,
)
from usage_adapters.panels.shared_login import PasswordSession
from usage_adapters.panels.transport import (
    FetchWording,
    QueryParams,
    Reply,
    TransportProblem,
    decode_json,
    header_safe,
    path_segment,
)
from usage_core.log import ctx
from usage_core.model import Panel
from usage_core.readings import (
    CounterReading,
    HardFailure,
    UsageResult,
    parse_marzban_user,
    parse_marzneshin_user,
)

logger = logging.getLogger(__name__)


@attrs.frozen
class BearerDialect:
    """Where one FastAPI panel keeps its token, user and list routes, and its log name.

    Attributes:
        paging: "offset" (`offset`/`limit`, Marzban) or "page" (`page`/`size`,
            fastapi-pagination, Marzneshin).
        default_page_size: Users per listing page unless `extra.sync_page_size` says.
        max_page_size: The largest page the panel accepts, or None for no limit.
    """

    label: str
    token_path: str
    user_path: str
    parse: Callable[[object], UsageResult]
    paging: Literal["offset", "page"]
    default_page_size: int
    max_page_size: int | None
    list_path: str = "/api/users"

    @property
    def wording(self) -> FetchWording:
        """The user-fetch log messages, e.g. "Marzban Get User failed:"."""
        return FetchWording.for_label(self.label)

    def page_size(self, wanted: int | None) -> int:
        """`wanted` (or the default) clamped to 1..`max_page_size`."""
        size = max(1, wanted or self.default_page_size)
        return size if self.max_page_size is None else min(size, self.max_page_size)


# Marzban has no maximum `limit`; 1,000 full user objects are ~1.3 MB per page.
MARZBAN = BearerDialect(
    "Marzban",
    "/api/admin/token",
    "/api/user/",
    parse_marzban_user,
    paging="offset",
    default_page_size=1000,
    max_page_size=None,
)
# fastapi-pagination refuses `size` above 100 with a 422.
MARZNESHIN = BearerDialect(
    "Marzneshin",
    "/api/admins/token",
    "/api/users/",
    parse_marzneshin_user,
    paging="page",
    default_page_size=100,
    max_page_size=100,
)


@attrs.frozen
class _BearerListing:
    """`GET /api/users`, sorted by username, in pages of `size`."""

    dialect: BearerDialect
    size: int

    @property
    def label(self) -> str:
        return self.dialect.label

    def request(self, number: int) -> tuple[str, QueryParams]:
        if self.dialect.paging == "offset":
            offset = (number - 1) * self.size
            return self.dialect.list_path, (
                ("offset", offset),
                ("limit", self.size),
                ("sort", "username"),
            )
        return self.dialect.list_path, (
            ("page", number),
            ("size", self.size),
            ("order_by", "username"),
        )

    def read_page(self, decoded: object, number: int) -> Page | str:
        key = "users" if self.dialect.paging == "offset" else "items"
        if not isinstance(decoded, dict):
            return "the reply is not a JSON object"
        items, total = decoded.get(key), decoded.get("total")
        if not isinstance(items, list) or not isinstance(total, int) or isinstance(total, bool):
            return f"the reply has no {key} list and total count"
        if number == 1 and len(items) >= total:
            return Page(items, 1)  # everything at once (e.g. a panel ignoring the limit)
        return Page(items, page_count(total, self.size))

    def read_items(
        self, items: Iterable[object], wanted: Set[str]
    ) -> Iterator[tuple[str, UsageResult]]:
        return matching_items(items, wanted, "username", self.dialect.parse)


class BearerSession(PasswordSession[str]):
    """Logs in once, lazily, and reuses the token for every user of the session.

    A 401 on a user fetch triggers one re-login and one retry, unless the
    token was obtained during that same fetch. A login the panel refused
    (4xx, or a 2xx without a token) is remembered: later fetches fail at once
    without asking again. A login that failed in transit or with a 5xx is
    tried again by the next fetch, once. Safe to share between threads.

    `fetch_many` lists `/api/users` sorted by username, in pages of
    `BulkOptions.page_size` (Marzban default 1,000; Marzneshin default and
    maximum 100), the pages after the first fetched concurrently. Threads that
    meet a 401 share one re-login (at most one per `fetch_many`).
    """

    def __init__(
        self,
        panel: Panel,
        client: httpx.Client,
        max_body_bytes: int,
        dialect: BearerDialect,
        bulk: BulkOptions | None = None,
    ) -> None:
        super().__init__(panel, client, max_body_bytes, bulk or BulkOptions())
        self._bearer = dialect
        self._listing = _BearerListing(dialect, dialect.page_size(self._bulk.page_size))

    # -- BulkSession steps
    def _dialect(self) -> ListingDialect:
        return self._listing

    def _get_page(self, path: str, params: QueryParams, batch: Batch) -> Fetched:
        return self._authed(path, params, batch, username=None)

    def _single(self, username: str, batch: Batch | None) -> Single:
        """The user's `used_traffic`, or a hard failure."""
        failure = self._unusable()
        if failure is not None:
            return Single(failure)
        if not username:
            return Single(NO_USERNAME)
        dialect = self._bearer
        sent = self._authed(dialect.user_path + path_segment(username), (), batch, username)
        if isinstance(sent, HardFailure):
            return Single(sent)
        result = self.interpret(username, sent, dialect.parse, dialect.wording, logger)
        if isinstance(result, CounterReading):
            logger.debug(
                "%s usage from %s",
                dialect.label,
                result.path,
                extra=ctx(username=username, usage_bytes=result.bytes),
            )
        unreachable = isinstance(sent, TransportProblem) and not sent.out_of_time
        return Single(result, unreachable=unreachable)

    # -- requests
    def _authed(
        self, path: str, params: QueryParams, batch: Batch | None, username: str | None
    ) -> Fetched:
        """A GET with the session's token; a 401 renews the token once and retries."""
        token = self._login.get(None, batch)
        if isinstance(token, HardFailure):
            return token
        sent = self._get(path, params, token.value, batch, listing=username is None)
        if not (isinstance(sent, Reply) and sent.status == 401):
            return sent
        if batch is None and token.fresh:
            return sent  # a token from this very fetch: the 401 is the answer
        renewed = self._login.get(token.value, batch, username)
        if renewed is None:
            return sent
        if isinstance(renewed, HardFailure):
            return renewed
        return self._get(path, params, renewed.value, batch, listing=username is None)

    def _get(
        self, path: str, params: QueryParams, token: str, batch: Batch | None, *, listing: bool
    ) -> Reply | TransportProblem:
        return self.send(
            "GET",
            path,
            params=params or None,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            deadline=batch.deadline if batch is not None else None,
            max_bytes=self._bulk.max_listing_bytes if listing else None,
        )

    def _on_relogin(self, username: str | None) -> None:
        about = {"username": username} if username else {"panel_id": self._panel.id}
        logger.info("%s token rejected; logging in again", self._bearer.label, extra=ctx(**about))

    def _log_in(self, batch: Batch | None) -> str | HardFailure:
        label = self._bearer.label
        sent = self.send(
            "POST",
            self._bearer.token_path,
            data={"username": self._username, "password": self._password},
            headers={"Accept": "application/json"},
            deadline=batch.deadline if batch is not None else None,
        )
        if isinstance(sent, TransportProblem):
            logger.error(f"{label} Login Exception:", extra=ctx(message=sent.message))
            return HardFailure(f"login failed: {sent.reason}")
        token = _access_token(sent)
        if token is None:
            logger.warning(
                f"{label} Login failed",
                extra=ctx(status=sent.status, body_preview=self.preview(sent)),
            )
            failure = self.http_failure(sent, prefix="login failed: ")
            if sent.ok:
                failure = HardFailure(
                    f"login failed: HTTP {sent.status} without a usable access token"
                )
            if sent.status < 500:
                self._login.refuse(failure)
            return failure
        self._redactor.add(token)
        logger.debug(f"{label} Login successful")
        return token


def _access_token(reply: Reply) -> str | None:
    if not reply.ok:
        return None
    decoded = decode_json(reply)
    token = decoded.get("access_token") if isinstance(decoded, dict) else None
    return token if isinstance(token, str) and token and header_safe(token) else None
