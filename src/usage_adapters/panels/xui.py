"""3x-ui: a cookie session (CSRF-protected from v3) and the client-traffic route."""

from __future__ import annotations

import logging
import threading

import attrs
import httpx

from usage_adapters.panels.transport import (
    FetchWording,
    HttpSession,
    Reply,
    TransportProblem,
    decode_json,
    header_safe,
    path_segment,
)
from usage_core.log import ctx
from usage_core.model import Panel
from usage_core.readings import CounterReading, HardFailure, UsageResult, parse_xui_envelope

logger = logging.getLogger(__name__)

_WORDING = FetchWording.for_label("XUI", "Client Traffic")
# 3x-ui up to 3.0.x; removed in 3.1.0 in favour of the clients API.
LEGACY_TRAFFIC_ROUTE = "/panel/api/inbounds/getClientTraffics/"
CLIENTS_TRAFFIC_ROUTE = "/panel/api/clients/traffic/"
# Makes 3x-ui answer 401 rather than 404 when the session is gone.
_XHR = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}


@attrs.frozen
class _Login:
    number: int
    fresh: bool  # happened during the current fetch


class XuiSession(HttpSession):
    """Logs in once per session with a cookie, then reads each client's `up + down`.

    Login first asks `/csrf-token` (3x-ui v3) and sends the token back as
    `X-CSRF-Token`; a 404 there means v2, which needs none. The traffic route
    is `inbounds/getClientTraffics/{email}`, falling back on a 404 to
    `clients/traffic/{email}` (3x-ui >= 3.1); the route that worked is kept
    for the rest of the session. API calls carry `X-Requested-With` so that
    a lost session answers 401; a 401 (or a 404 from the route that worked)
    triggers one re-login and retry. Refused logins are remembered as in
    `BearerSession`. Safe to share between threads.
    """

    def __init__(self, panel: Panel, client: httpx.Client, max_body_bytes: int) -> None:
        super().__init__(panel, client, max_body_bytes)
        self._username = panel.username or ""
        self._password = panel.password.reveal() if panel.password else ""
        self._login_url = self._redactor.scrub(f"{panel.url.rstrip('/')}/login")
        self._lock = threading.Lock()
        self._logins = 0
        self._current: int | None = None
        self._refused: HardFailure | None = None
        self._route: str | None = None

    def fetch_usage(self, username: str) -> UsageResult:
        """The client's `up + down`, or a hard failure."""
        if not self._username or not self._password:
            return HardFailure("the panel has no admin username or password")
        if not username:
            return HardFailure("the config has no panel username")
        login = self._login_for(stale=None)
        if isinstance(login, HardFailure):
            return login
        route_known = self._route is not None
        sent = self._traffic(username)
        if _session_lost(sent, route_known) and not login.fresh:
            logger.info("XUI session expired; logging in again", extra=ctx(username=username))
            login = self._login_for(stale=login.number)
            if isinstance(login, HardFailure):
                return login
            if isinstance(sent, Reply) and sent.status == 404:
                self._route = None  # maybe upgraded in between: look the route up again
            sent = self._traffic(username)
        result = self.interpret(username, sent, parse_xui_envelope, _WORDING, logger)
        if isinstance(result, CounterReading):
            logger.debug(
                "XUI usage from %s",
                result.path,
                extra=ctx(username=username, usage_bytes=result.bytes),
            )
        return result

    def _traffic(self, username: str) -> Reply | TransportProblem:
        segment = path_segment(username)
        if self._route is not None:
            return self.send("GET", self._route + segment, headers=_XHR)
        sent = self.send("GET", LEGACY_TRAFFIC_ROUTE + segment, headers=_XHR)
        if isinstance(sent, Reply) and sent.status == 404:
            sent = self.send("GET", CLIENTS_TRAFFIC_ROUTE + segment, headers=_XHR)
            if isinstance(sent, Reply) and sent.ok:
                logger.info(
                    "XUI getClientTraffics route not found; using clients/traffic (3x-ui >= 3.1)",
                    extra=ctx(url=self._login_url),
                )
                self._route = CLIENTS_TRAFFIC_ROUTE
        elif isinstance(sent, Reply) and sent.ok:
            self._route = LEGACY_TRAFFIC_ROUTE
        return sent

    def _login_for(self, stale: int | None) -> _Login | HardFailure:
        """The current login, logging in when there is none or it is `stale`."""
        with self._lock:
            if self._refused is not None:
                return self._refused
            if self._current is not None and self._current != stale:
                return _Login(self._current, fresh=False)
            self._current = None
            failure = self._login()
            if failure is not None:
                return failure
            self._logins += 1
            self._current = self._logins
            return _Login(self._current, fresh=True)

    def _login(self) -> HardFailure | None:
        self._client.cookies.clear()
        headers = dict(_XHR)
        csrf = self.send("GET", "/csrf-token", headers=headers)
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
                self._refused = failure
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
