"""Marzban and Marzneshin: an OAuth2 password form buys a bearer token, reused per session."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

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
    """Where one FastAPI panel keeps its token and user routes, and how it is named in logs."""

    label: str
    token_path: str
    user_path: str
    parse: Callable[[object], UsageResult]

    @property
    def wording(self) -> FetchWording:
        """The user-fetch log messages, e.g. "Marzban Get User failed:"."""
        return FetchWording.for_label(self.label)


MARZBAN = BearerDialect("Marzban", "/api/admin/token", "/api/user/", parse_marzban_user)
MARZNESHIN = BearerDialect("Marzneshin", "/api/admins/token", "/api/users/", parse_marzneshin_user)


@attrs.frozen
class _Token:
    value: str
    fresh: bool  # obtained during the current fetch


class BearerSession(HttpSession):
    """Logs in once, lazily, and reuses the token for every user of the session.

    A 401 on a user fetch triggers one re-login and one retry, unless the
    token was obtained during that same fetch. A login the panel refused
    (4xx, or a 2xx without a token) is remembered: later fetches fail at once
    without asking again. A login that failed in transit or with a 5xx is
    tried again by the next fetch, once. Safe to share between threads.
    """

    def __init__(
        self, panel: Panel, client: httpx.Client, max_body_bytes: int, dialect: BearerDialect
    ) -> None:
        super().__init__(panel, client, max_body_bytes)
        self._dialect = dialect
        self._username = panel.username or ""
        self._password = panel.password.reveal() if panel.password else ""
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refused: HardFailure | None = None

    def fetch_usage(self, username: str) -> UsageResult:
        """The user's `used_traffic`, or a hard failure."""
        if not self._username or not self._password:
            return HardFailure("the panel has no admin username or password")
        if not username:
            return HardFailure("the config has no panel username")
        token = self._token_for(stale=None)
        if isinstance(token, HardFailure):
            return token
        sent = self._get_user(username, token.value)
        if isinstance(sent, Reply) and sent.status == 401 and not token.fresh:
            logger.info(
                "%s token rejected; logging in again",
                self._dialect.label,
                extra=ctx(username=username),
            )
            token = self._token_for(stale=token.value)
            if isinstance(token, HardFailure):
                return token
            sent = self._get_user(username, token.value)
        result = self.interpret(username, sent, self._dialect.parse, self._dialect.wording, logger)
        if isinstance(result, CounterReading):
            logger.debug(
                "%s usage from %s",
                self._dialect.label,
                result.path,
                extra=ctx(username=username, usage_bytes=result.bytes),
            )
        return result

    def _get_user(self, username: str, token: str) -> Reply | TransportProblem:
        return self.send(
            "GET",
            self._dialect.user_path + path_segment(username),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    def _token_for(self, stale: str | None) -> _Token | HardFailure:
        """The session's token, logging in when there is none or it is `stale`."""
        with self._lock:
            if self._refused is not None:
                return self._refused
            if self._token is not None and self._token != stale:
                return _Token(self._token, fresh=False)
            self._token = None
            outcome = self._login()
            if isinstance(outcome, HardFailure):
                return outcome
            self._token = outcome
            return _Token(outcome, fresh=True)

    def _login(self) -> str | HardFailure:
        label = self._dialect.label
        sent = self.send(
            "POST",
            self._dialect.token_path,
            data={"username": self._username, "password": self._password},
            headers={"Accept": "application/json"},
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
                self._refused = failure
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
