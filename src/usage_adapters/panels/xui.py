"""3x-ui: a cookie session (CSRF-protected from v3), the client-traffic route, and
`GET /panel/api/inbounds/list` (every inbound with its clients' `clientStats`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import attrs

from usage_adapters.panels.dialect import FetchWording, LoginFailure, Page, log_debug_reading
from usage_adapters.panels.http import (
    HttpChannel,
    QueryParams,
    Reply,
    TransportProblem,
    decode_json,
    header_safe,
    path_segment,
)
from usage_adapters.panels.options import ReadOptions
from usage_core.log import ctx
from usage_core.model import Panel
from usage_core.readings import (
    CounterReading,
    HardFailure,
    UsageResult,
    parse_xui_client_traffic,
    parse_xui_envelope,
    parse_xui_inbounds,
)

logger = logging.getLogger(__name__)

LABEL = "XUI"
# 3x-ui up to 3.0.x; removed in 3.1.0 in favour of the clients API.
LEGACY_TRAFFIC_ROUTE = "/panel/api/inbounds/getClientTraffics/"
CLIENTS_TRAFFIC_ROUTE = "/panel/api/clients/traffic/"
# Every version: all inbounds, each with every client's traffic in `clientStats`.
INBOUNDS_ROUTE = "/panel/api/inbounds/list"
# Makes 3x-ui answer 401 rather than 404 when the session is gone.
XHR = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}


@attrs.frozen
class XuiListing:
    """`GET /panel/api/inbounds/list`: the `clientStats` of every inbound, at once.

    A client in several inbounds keeps its last record.
    """

    item_key: str = "email"

    def request(self, number: int) -> tuple[str, QueryParams]:
        """The one page."""
        return INBOUNDS_ROUTE, ()

    def read_page(self, decoded: object, number: int) -> Page | str:
        """Every inbound's `clientStats` records."""
        page = parse_xui_inbounds(decoded)
        return page if isinstance(page, str) else Page(page.items, 1)

    def read_item(self, item: Mapping[str, object]) -> UsageResult:
        """A `ClientTraffic` record: `up + down`."""
        return parse_xui_client_traffic(item)


class XuiCookieAuth:
    """A cookie session: `GET /csrf-token` (v3; v2 answers 404), then `POST /login`.

    The credential is the cookie jar itself; logins are told apart by
    number. A 401, or a 404 from a route that answered before (3x-ui 2.8.4+
    hides a lost session as 404), means the session is gone.
    """

    needs_login = True

    def __init__(self, panel: Panel, http: HttpChannel) -> None:
        self._username = panel.username or ""
        self._password = panel.password.reveal() if panel.password else ""
        self._login_url = http.redactor.scrub(f"{panel.url.rstrip('/')}/login")
        self._logins = 0
        self.csrf_token: str | None = None

    def problem(self) -> str | None:
        """Both the admin username and password are needed."""
        if not self._username or not self._password:
            return "the panel has no admin username or password"
        return None

    def log_in(self, http: HttpChannel, deadline: float | None) -> object | LoginFailure:
        """Ask for a CSRF token, post the login form; the login's number, or why not."""
        http.client.cookies.clear()
        headers = dict(XHR)
        csrf = http.send("GET", "/csrf-token", headers=headers, deadline=deadline)
        if isinstance(csrf, Reply):
            token = _csrf_token(csrf)
            self.csrf_token = token
            if token is not None:
                http.redactor.add(token)
                headers["X-CSRF-Token"] = token
            sent = http.send(
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
            return LoginFailure(HardFailure(f"login failed: {sent.reason}"), final=False)
        for cookie in http.client.cookies.jar:
            if cookie.value:
                http.redactor.add(cookie.value)
        if not _succeeded(sent):
            logger.warning(
                "XUI Login Failed",
                extra=ctx(url=self._login_url, status=sent.status, body_preview=http.preview(sent)),
            )
            failure = http.http_failure(sent, prefix="login failed: ")
            return LoginFailure(failure, final=sent.status < 500)
        logger.info("XUI Login successful.", extra=ctx(url=self._login_url))
        self._logins += 1
        return self._logins

    def headers(self, credential: object) -> Mapping[str, str]:
        """`X-Requested-With`, so that a lost session answers 401 (cookies ride in the jar)."""
        return XHR

    def lost(self, reply: Reply, route_known: bool) -> bool:
        """401, or 404 from a route that worked before."""
        return reply.status == 401 or (reply.status == 404 and route_known)

    def on_relogin(self, username: str | None) -> None:
        """Say that the session is being renewed."""
        about = {"username": username} if username else {"url": self._login_url}
        logger.info("XUI session expired; logging in again", extra=ctx(**about))


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


class XuiDialect:
    """How a 3x-ui session logs in, reads one client and lists them all.

    A client's traffic is read from `inbounds/getClientTraffics/{email}`,
    falling back on a 404 to `clients/traffic/{email}` (3x-ui >= 3.1); the
    route that answered is kept for the session.
    """

    label = LABEL
    wording = FetchWording.for_label(LABEL, "Client Traffic")
    listing = XuiListing()

    def __init__(self, http: HttpChannel, options: ReadOptions) -> None:
        self.auth = XuiCookieAuth(http.panel, http)

    def user_paths(self, username: str) -> Sequence[str]:
        """The legacy route, then the 3.1+ one."""
        segment = path_segment(username)
        return (LEGACY_TRAFFIC_ROUTE + segment, CLIENTS_TRAFFIC_ROUTE + segment)

    def parse_user(self, decoded: object) -> UsageResult:
        """`obj.up + obj.down` of the `{success, msg, obj}` envelope."""
        return parse_xui_envelope(decoded)

    def log_reading(self, username: str, reading: CounterReading) -> None:
        """A debug line with the counter."""
        log_debug_reading(logger, LABEL, username, reading)
