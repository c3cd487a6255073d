"""3x-ui: a cookie session (CSRF-protected from v3) and the client-traffic route."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Set

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
    parse_xui_client_traffic,
    parse_xui_envelope,
)

logger = logging.getLogger(__name__)

_WORDING = FetchWording.for_label("XUI", "Client Traffic")
# 3x-ui up to 3.0.x; removed in 3.1.0 in favour of the clients API.
LEGACY_TRAFFIC_ROUTE = "/panel/api/inbounds/getClientTraffics/"
CLIENTS_TRAFFIC_ROUTE = "/panel/api/clients/traffic/"
# Every version: all inbounds, each with every client's traffic in `clientStats`.
INBOUNDS_ROUTE = "/panel/api/inbounds/list"
# Makes 3x-ui answer 401 rather than 404 when the session is gone.
_XHR = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}
_PREVIEW = 200


@attrs.frozen
class _XuiListing:
    """`GET /panel/api/inbounds/list`: the `clientStats` of every inbound, at once."""

    label: str = "XUI"

    def request(self, number: int) -> tuple[str, QueryParams]:
        return INBOUNDS_ROUTE, ()

    def read_page(self, decoded: object, number: int) -> Page | str:
        if not isinstance(decoded, dict):
            return "the reply is not a JSON object"
        if decoded.get("success") is not True:
            return f"the panel replied success: false: {str(decoded.get('msg'))[:_PREVIEW]}"
        inbounds = decoded.get("obj")
        if inbounds is None:
            return Page([], 1)  # no inbounds at all
        if not isinstance(inbounds, list):
            return "the reply's obj is not a list of inbounds"
        records: list[object] = []
        for inbound in inbounds:
            stats = inbound.get("clientStats") if isinstance(inbound, dict) else None
            if isinstance(stats, list):
                records.extend(stats)
        return Page(records, 1)

    def read_items(
        self, items: Iterable[object], wanted: Set[str]
    ) -> Iterator[tuple[str, UsageResult]]:
        return matching_items(items, wanted, "email", parse_xui_client_traffic)


class XuiSession(PasswordSession[int]):
    """Logs in once per session with a cookie, then reads each client's `up + down`.

    Login first asks `/csrf-token` (3x-ui v3) and sends the token back as
    `X-CSRF-Token`; a 404 there means v2, which needs none. The traffic route
    is `inbounds/getClientTraffics/{email}`, falling back on a 404 to
    `clients/traffic/{email}` (3x-ui >= 3.1); the route that worked is kept
    for the rest of the session. API calls carry `X-Requested-With` so that
    a lost session answers 401; a 401 (or a 404 from the route that worked)
    triggers one re-login and retry. Refused logins are remembered as in
    `BearerSession`. Safe to share between threads.

    `fetch_many` reads `inbounds/list` once (every version has it) and takes
    each client's `up + down` from the inbounds' `clientStats`; a client in
    several inbounds keeps its last record.
    """

    def __init__(
        self,
        panel: Panel,
        client: httpx.Client,
        max_body_bytes: int,
        bulk: BulkOptions | None = None,
    ) -> None:
        super().__init__(panel, client, max_body_bytes, bulk or BulkOptions())
        self._login_url = self._redactor.scrub(f"{panel.url.rstrip('/')}/login")
        # The credential is the cookie jar; logins are told apart by number.
        self._logins = 0
        self._route: str | None = None
        self._listing = _XuiListing()

    # -- BulkSession steps
    def _dialect(self) -> ListingDialect:
        return self._listing

    def _get_page(self, path: str, params: QueryParams, batch: Batch) -> Fetched:
        login = self._login.get(None, batch)
        if isinstance(login, HardFailure):
            return login
        sent = self._list(path, batch)
        if _session_lost(sent, route_known=True):
            renewed = self._login.get(login.value, batch)
            if isinstance(renewed, HardFailure):
                return renewed
            if renewed is not None:
                sent = self._list(path, batch)
        return sent

    def _list(self, path: str, batch: Batch) -> Reply | TransportProblem:
        return self.send(
            "GET",
            path,
            headers=_XHR,
            deadline=batch.deadline,
            max_bytes=self._bulk.max_listing_bytes,
        )

    def _single(self, username: str, batch: Batch | None) -> Single:
        """The client's `up + down`, or a hard failure."""
        failure = self._unusable()
        if failure is not None:
            return Single(failure)
        if not username:
            return Single(NO_USERNAME)
        login = self._login.get(None, batch)
        if isinstance(login, HardFailure):
            return Single(login)
        route_known = self._route is not None
        sent = self._traffic(username, batch)
        if _session_lost(sent, route_known) and (batch is not None or not login.fresh):
            renewed = self._login.get(login.value, batch, username)
            if isinstance(renewed, HardFailure):
                return Single(renewed)
            if renewed is not None:
                if isinstance(sent, Reply) and sent.status == 404:
                    self._route = None  # maybe upgraded in between: look the route up again
                sent = self._traffic(username, batch)
        result = self.interpret(username, sent, parse_xui_envelope, _WORDING, logger)
        if isinstance(result, CounterReading):
            logger.debug(
                "XUI usage from %s",
                result.path,
                extra=ctx(username=username, usage_bytes=result.bytes),
            )
        unreachable = isinstance(sent, TransportProblem) and not sent.out_of_time
        return Single(result, unreachable=unreachable)

    def _traffic(self, username: str, batch: Batch | None) -> Reply | TransportProblem:
        segment = path_segment(username)
        deadline = batch.deadline if batch is not None else None
        route = self._route
        if route is not None:
            return self.send("GET", route + segment, headers=_XHR, deadline=deadline)
        sent = self.send("GET", LEGACY_TRAFFIC_ROUTE + segment, headers=_XHR, deadline=deadline)
        if isinstance(sent, Reply) and sent.status == 404:
            sent = self.send(
                "GET", CLIENTS_TRAFFIC_ROUTE + segment, headers=_XHR, deadline=deadline
            )
            if isinstance(sent, Reply) and sent.ok and self._route is None:
                logger.info(
                    "XUI getClientTraffics route not found; using clients/traffic (3x-ui >= 3.1)",
                    extra=ctx(url=self._login_url),
                )
                self._route = CLIENTS_TRAFFIC_ROUTE
        elif isinstance(sent, Reply) and sent.ok:
            self._route = LEGACY_TRAFFIC_ROUTE
        return sent

    def _on_relogin(self, username: str | None) -> None:
        about = {"username": username} if username else {"url": self._login_url}
        logger.info("XUI session expired; logging in again", extra=ctx(**about))

    def _log_in(self, batch: Batch | None) -> int | HardFailure:
        failure = self._cookie_login(batch)
        if failure is not None:
            return failure
        self._logins += 1
        return self._logins

    def _cookie_login(self, batch: Batch | None) -> HardFailure | None:
        deadline = batch.deadline if batch is not None else None
        self._client.cookies.clear()
        headers = dict(_XHR)
        csrf = self.send("GET", "/csrf-token", headers=headers, deadline=deadline)
        if isinstance(csrf, Reply):
            token = _csrf_token(csrf)
            if token is not None:
                self._redactor.add(token)
                headers["X-CSRF-Token"] = token
            sent = self.send(
                "POST",
                "/login",
                data={"username": self._username, "password": self._password},
                headers=headers,
                deadline=deadline,
            )
        else:
            sent = csrf
        if isinstance(sent, TransportProblem):
            logger.error(
                "XUI Connection Exception:", extra=ctx(url=self._login_url, message=sent.message)
            )
            return HardFailure(f"login failed: {sent.reason}")
        for cookie in self._client.cookies.jar:
            if cookie.value:
                self._redactor.add(cookie.value)
        if not _succeeded(sent):
            logger.warning(
                "XUI Login Failed",
                extra=ctx(url=self._login_url, status=sent.status, body_preview=self.preview(sent)),
            )
            failure = self.http_failure(sent, prefix="login failed: ")
            if sent.status < 500:
                self._login.refuse(failure)
            return failure
        logger.info("XUI Login successful.", extra=ctx(url=self._login_url))
        return None


def _session_lost(sent: Reply | TransportProblem, route_known: bool) -> bool:
    """401, or 404 from a route that worked before (3x-ui >= 2.8.4 may hide 401 as 404)."""
    if not isinstance(sent, Reply):
        return False
    return sent.status == 401 or (sent.status == 404 and route_known)


def _csrf_token(reply: Reply) -> str | None:
    """The v3 CSRF token from `GET /csrf-token`, or None (v2 answers 404)."""
    if not reply.ok:
        return None
    decoded = decode_json(reply)
    if not isinstance(decoded, dict) or decoded.get("success") is not True:
        return None
    token = decoded.get("obj")
    return token if isinstance(token, str) and token and header_safe(token) else None


def _succeeded(reply: Reply) -> bool:
    decoded = decode_json(reply)
    return reply.ok and isinstance(decoded, dict) and decoded.get("success") is True
