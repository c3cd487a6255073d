"""Remnawave: an API token (or an admin login) as a bearer token,
`GET /api/users/by-username/{username}`, and the keyset listing `GET /api/users/stream`.

What the panel's sources (remnawave/backend 2.x-3.3) say, and what is done about it:

- API tokens made in the panel's dashboard are the panel's way in for programs:
  the row's `api_token` is sent as `Authorization: Bearer`, with no login. An
  admin's own token (from `POST /api/auth/login`, which answers a wrong password
  with a 403 and notifies the admins of every login) is refused on the API
  unless the request says it comes from the panel's web page
  (`X-Remnawave-Client-Type: browser`); without an API token that is what is sent.
- The backend drops every connection that does not come through an HTTPS
  reverse proxy (`X-Forwarded-For` and `X-Forwarded-Proto: https`). A panel row
  whose URL is plain `http://` talks to the backend directly (its port on the
  same host or a private network), so those two headers are sent for it.
- Users are listed by id, `size` at most 1,000, each page naming the `cursor`
  of the next one; a user's actions are routed by its numeric `id` (3.0+) or its
  `uuid` (2.x), read from the user first.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

import attrs

from usage_adapters.panels.auth import PasswordTokenAuth, api_key_auth
from usage_adapters.panels.dialect import (
    Auth,
    FetchWording,
    Page,
    Requester,
    log_debug_reading,
)
from usage_adapters.panels.http import (
    HttpChannel,
    QueryParams,
    path_segment,
)
from usage_adapters.panels.options import ReadOptions
from usage_adapters.panels.writes import Answer, answer, done
from usage_core.model import Panel
from usage_core.read_strategy import ReadCosts
from usage_core.readings import (
    CounterReading,
    RemoteResult,
    UsageResult,
    parse_remnawave_stream,
    parse_remnawave_total,
    parse_remnawave_user,
    parse_remnawave_user_object,
)

logger = logging.getLogger(__name__)

LABEL = "Remnawave"
STREAM_ROUTE = "/api/users/stream"
USERS_ROUTE = "/api/users"
# A request costs the panel about two serialized users: Marzban's measured figure,
# taken for Remnawave too (not measured on a real Remnawave).
REQUEST_COST = 2.0
LOGIN_ROUTE = "/api/auth/login"
# The stream's `size` is validated as 1..1000 (a 400 beyond).
MAX_PAGE_SIZE = 1000
# `errorCode` of the 400 a disable or enable meets when the user already is so.
ALREADY = {False: "A029", True: "A030"}
DISABLED = "DISABLED"


def forwarded_headers(panel: Panel) -> Mapping[str, str]:
    """What the backend's reverse-proxy check wants, for a plain-HTTP (direct) URL."""
    if urlsplit(panel.url).scheme.lower() != "http":
        return {}
    return {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https"}


def remnawave_auth(panel: Panel) -> Auth:
    """The row's `api_token` as a bearer token, or else the admin's login.

    An admin token is accepted on the API only from the panel's own web page
    (`X-Remnawave-Client-Type: browser`). It is renewed on a 401 and kept
    between runs until its JWT `exp`, as Marzban's is (each login notifies the
    panel's admins).
    """
    extra = forwarded_headers(panel)
    key = api_key_auth(panel, "Authorization", scheme="Bearer", extra=extra)
    if key is not None:
        return key
    return PasswordTokenAuth(
        panel,
        LABEL,
        LOGIN_ROUTE,
        json_login=True,
        token_at=("response", "accessToken"),
        extra={**extra, "X-Remnawave-Client-Type": "browser"},
        missing="the panel has no API token and no admin username or password",
    )


@attrs.frozen
class RemnawaveListing:
    """`GET /api/users/stream`: users by id, `size` a page, each page naming the next.

    It filters by no username, but the offset listing `GET /api/users` says
    how many users the panel holds: few users of many are read singly.
    """

    size: int
    item_key: str = "username"
    # Pages are fetched one after the other; single reads have no limit of their own.
    page_concurrency: int | None = None

    @property
    def costs(self) -> ReadCosts:
        """Pages of `size`, no exact filter, a `total` from the offset listing."""
        return ReadCosts(REQUEST_COST, self.size, reports_total=True)

    def probe(self) -> tuple[str, QueryParams]:
        """A one-user page of the offset listing: `start=0&size=1`."""
        return USERS_ROUTE, (("start", 0), ("size", 1))

    def read_total(self, decoded: object) -> int | str:
        """`response.total`."""
        return parse_remnawave_total(decoded)

    def request(self, number: int) -> tuple[str, QueryParams]:
        """The first page: no cursor."""
        return STREAM_ROUTE, (("size", self.size),)

    def read_page(self, decoded: object, number: int) -> Page | str:
        """The page's users and the request of the next page (None on the last)."""
        page = parse_remnawave_stream(decoded)
        if isinstance(page, str):
            return page
        after = None
        if page.next_cursor is not None:
            after = (STREAM_ROUTE, (("cursor", page.next_cursor), ("size", self.size)))
        return Page(page.items, 1, next_request=after)

    def read_item(self, item: Mapping[str, object]) -> UsageResult:
        """A listed user object."""
        return parse_remnawave_user_object(item)


class RemnawaveDialect:
    """How a Remnawave session authenticates, reads one user and lists them all."""

    label = LABEL
    wording = FetchWording.for_label(LABEL)

    def __init__(self, http: HttpChannel, options: ReadOptions) -> None:
        self.http_channel = http
        self.auth = remnawave_auth(http.panel)
        size = min(max(1, options.page_size or MAX_PAGE_SIZE), MAX_PAGE_SIZE)
        self.listing = RemnawaveListing(size)

    def user_paths(self, username: str) -> Sequence[str]:
        """`/api/users/by-username/{username}`."""
        return (f"/api/users/by-username/{path_segment(username)}",)

    def parse_user(self, decoded: object) -> UsageResult:
        """`response.userTraffic.usedTrafficBytes` (flat before 2.3)."""
        return parse_remnawave_user(decoded)

    def log_reading(self, username: str, reading: CounterReading) -> None:
        """A debug line with the counter."""
        log_debug_reading(logger, LABEL, username, reading)

    def set_enabled(self, api: Requester, username: str, enabled: bool) -> RemoteResult:
        """`POST /api/users/{id}/actions/disable` or `/enable`, sent only when needed.

        The user is read first: its `status` says whether anything is to be
        done, its `id` (or 2.x `uuid`) is where the action goes. A `LIMITED` or
        `EXPIRED` user counts as enabled: enabling it would lift the panel's own
        limit. The state is read back from the action's reply.
        """
        read = answer(
            self.http_channel, api("GET", self.user_paths(username)[0]), "reading the user"
        )
        if isinstance(read, RemoteResult):
            return read
        user = _response_object(read.value)
        status = user.get("status")
        target = _action_target(user)
        if not isinstance(status, str) or target is None:
            return RemoteResult(False, "the user reply has no status and id")
        if (status != DISABLED) == enabled:
            return done(enabled, already=True, verified=True)
        action = "enable" if enabled else "disable"
        what = f"asking the panel to {action} the user"
        sent = answer(
            self.http_channel,
            api("POST", f"/api/users/{path_segment(target)}/actions/{action}"),
            what,
            expected=(400,),
        )
        if isinstance(sent, RemoteResult):
            return sent
        if sent.status == 400:
            return self._refused(sent, enabled, what)
        after = _response_object(sent.value).get("status")
        if not isinstance(after, str):
            return done(enabled)
        if (after != DISABLED) != enabled:
            return RemoteResult(False, f"the panel kept the user {after}")
        return done(enabled, verified=True)

    def _refused(self, sent: Answer, enabled: bool, what: str) -> RemoteResult:
        """A 400: "already disabled/enabled" (the user changed since it was read) is done."""
        body = sent.value if isinstance(sent.value, dict) else {}
        if body.get("errorCode") == ALREADY[enabled]:
            return done(enabled, already=True)
        message = body.get("message")
        detail = self.http_channel.redactor.scrub(str(message))[:200] if message else ""
        return RemoteResult(False, f"{what}: HTTP 400" + (f": {detail}" if detail else ""))


def _response_object(value: object) -> Mapping[str, object]:
    body = value.get("response") if isinstance(value, dict) else None
    return body if isinstance(body, dict) else {}


def _action_target(user: Mapping[str, object]) -> str | None:
    """Where a user's actions are routed: its 2.x `uuid`, else its 3.0+ numeric `id`."""
    uuid = user.get("uuid")
    if isinstance(uuid, str) and uuid:
        return uuid
    number = user.get("id")
    if isinstance(number, int) and not isinstance(number, bool) and number > 0:
        return str(number)
    return None
