"""`HttpxPanelClients`: the `PanelClients` port, one httpx client and dialect per session."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Generator, Mapping, Sequence

import httpx

from usage_adapters.panels.dialect import PanelDialect
from usage_adapters.panels.eylandoo import EylandooDialect
from usage_adapters.panels.hiddify import HiddifyDialect
from usage_adapters.panels.http import HttpChannel
from usage_adapters.panels.kept_logins import LoginKeeper
from usage_adapters.panels.marzban import MarzbanDialect
from usage_adapters.panels.marzneshin import MarzneshinDialect
from usage_adapters.panels.options import (
    DEFAULT_HTTP_TIMEOUT_S,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_LISTING_BYTES,
    DEFAULT_PANEL_BUDGET_S,
    DEFAULT_PANEL_CONCURRENCY,
    MAX_PANEL_CONCURRENCY,
    ReadOptions,
    read_options,
)
from usage_adapters.panels.pasarguard import PasarGuardDialect
from usage_adapters.panels.reader import PanelReader
from usage_adapters.panels.redaction import install_http_library_log_filter
from usage_adapters.panels.remnawave import RemnawaveDialect
from usage_adapters.panels.xui import XuiDialect
from usage_core.model import Panel, PanelType
from usage_core.ports import PanelSession
from usage_core.readings import HardFailure, RemoteResult, UsageResult

# Explicit, never httpx's implicit defaults (a bare `httpx.Limits()` is unlimited).
DEFAULT_LIMITS = httpx.Limits(
    max_connections=10, max_keepalive_connections=10, keepalive_expiry=30.0
)
DEFAULT_USER_AGENT = "usage-sync/0.1"

DialectFactory = Callable[[HttpChannel, ReadOptions], PanelDialect]

# Which dialect speaks to a panel of each type (`Panel.kind`); a type without
# an entry fails its panel's reads with a clear reason.
DIALECTS: Mapping[PanelType, DialectFactory] = {
    PanelType.EYLANDOO: EylandooDialect,
    PanelType.MARZBAN: MarzbanDialect,
    PanelType.MARZNESHIN: MarzneshinDialect,
    PanelType.XUI: XuiDialect,
    PanelType.REMNAWAVE: RemnawaveDialect,
    PanelType.PASARGUARD: PasarGuardDialect,
    PanelType.HIDDIFY: HiddifyDialect,
}


class FailingSession:
    """A session that cannot talk to its panel at all; every fetch fails the same way."""

    def __init__(self, failure: HardFailure) -> None:
        self._failure = failure

    def fetch_usage(self, username: str) -> UsageResult:
        """The session's one failure."""
        return self._failure

    def fetch_many(self, usernames: Sequence[str]) -> dict[str, UsageResult]:
        """The session's one failure for every name, without a request."""
        return dict.fromkeys(usernames, self._failure)

    def set_enabled(self, username: str, enabled: bool) -> RemoteResult:
        """The session's one failure, without a request."""
        return RemoteResult(False, self._failure.reason)

    def close(self) -> None:
        """Nothing to release."""


class HttpxPanelClients:
    """Opens a session per panel, each with its own `httpx.Client`.

    Constructing one attaches `HttpLibraryLogFilter` to the httpx and
    httpcore loggers, so that their DEBUG traces cannot leak a session cookie.

    Each session's `fetch_many` (see `usage_adapters.panels.reader`) runs at
    most `sync_concurrency` requests at a time, or the panel's own
    `extra.sync_concurrency` (1..64); Marzban and Marzneshin page their
    listing by `extra.sync_page_size` (Marzneshin at most 100). The session's
    connection pool is widened to the concurrency when `limits` is smaller.

    Args:
        timeout: An `httpx.Timeout`, or seconds for every phase.
        limits: Connection-pool limits of each session's client.
        max_body_bytes: Replies longer than this are not parsed (a hard failure).
        user_agent: The `User-Agent` header.
        trust_env: Whether proxy and CA settings are read from the environment.
        transport: A transport to use instead of the network (for tests and
            benchmarks); `verify` does not apply to it.
        panel_budget_s: Seconds one `fetch_many` may spend on its panel; past
            it no request starts and unread users get a hard failure.
        sync_concurrency: Requests in flight per panel during `fetch_many`,
            unless the panel's `extra.sync_concurrency` says otherwise.
        max_listing_bytes: Bulk listing replies longer than this are not
            parsed (the users are then read one by one).
        logins: Where logins are kept between sessions and runs; None logs
            in once per session.
    """

    def __init__(
        self,
        *,
        timeout: httpx.Timeout | float = DEFAULT_HTTP_TIMEOUT_S,
        limits: httpx.Limits = DEFAULT_LIMITS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        user_agent: str = DEFAULT_USER_AGENT,
        trust_env: bool = True,
        transport: httpx.BaseTransport | None = None,
        panel_budget_s: float = DEFAULT_PANEL_BUDGET_S,
        sync_concurrency: int = DEFAULT_PANEL_CONCURRENCY,
        max_listing_bytes: int = DEFAULT_MAX_LISTING_BYTES,
        logins: LoginKeeper | None = None,
    ) -> None:
        if max_body_bytes < 1 or max_listing_bytes < 1:
            raise ValueError("max_body_bytes and max_listing_bytes must be positive")
        if not panel_budget_s > 0:
            raise ValueError("panel_budget_s must be positive")
        if not 1 <= sync_concurrency <= MAX_PANEL_CONCURRENCY:
            raise ValueError(f"sync_concurrency must be within 1..{MAX_PANEL_CONCURRENCY}")
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.limits = limits
        self.max_body_bytes = max_body_bytes
        self.panel_budget_s = panel_budget_s
        self.sync_concurrency = sync_concurrency
        self.max_listing_bytes = max_listing_bytes
        self.logins = logins
        self._user_agent = user_agent
        self._trust_env = trust_env
        self._transport = transport
        # Building a verifying SSL context costs ~20 ms; build each kind once.
        self._ssl_contexts: dict[bool, ssl.SSLContext] = {}
        self._ssl_lock = threading.Lock()
        # httpcore's DEBUG traces print response headers, 3x-ui's Set-Cookie included.
        install_http_library_log_filter()

    def open(self, panel: Panel) -> PanelSession:
        """A session with `panel`; nothing is sent until the first fetch."""
        kind = panel.kind
        if kind is None:
            return FailingSession(HardFailure(panel.type_problem or "unknown panel type"))
        dialect = DIALECTS.get(kind)
        if dialect is None:
            return FailingSession(HardFailure(f"no client speaks panel type {kind.value!r}"))
        problem = panel.problem  # e.g. credentials that do not decrypt
        if problem:
            return FailingSession(HardFailure(str(problem)))
        options = read_options(
            panel,
            concurrency=self.sync_concurrency,
            budget_s=self.panel_budget_s,
            max_listing_bytes=self.max_listing_bytes,
            single_budget_s=2 * _longest_phase(self.timeout),
        )
        try:
            client = self._client(panel, pool_limits(self.limits, options.concurrency))
        except httpx.InvalidURL:
            return FailingSession(HardFailure("the panel URL is not a valid URL"))
        channel = HttpChannel(panel, client, self.max_body_bytes)
        return PanelReader(channel, dialect(channel, options), options, self.logins)

    def _client(self, panel: Panel, limits: httpx.Limits) -> httpx.Client:
        url = httpx.URL(panel.url.rstrip("/"))
        return httpx.Client(
            base_url=url.copy_with(userinfo=b"") if url.userinfo else url,
            auth=UserInfoAuth(url.username, url.password) if url.userinfo else None,
            timeout=self.timeout,
            limits=limits,
            verify=self._ssl_context(panel.verify_tls),
            headers={"User-Agent": self._user_agent},
            follow_redirects=False,
            trust_env=self._trust_env,
            transport=self._transport,
        )

    def _ssl_context(self, verify: bool) -> ssl.SSLContext:
        """The shared context for `verify=panel.verify_tls`."""
        with self._ssl_lock:
            context = self._ssl_contexts.get(verify)
            if context is None:
                context = httpx.create_ssl_context(verify=verify, trust_env=self._trust_env)
                self._ssl_contexts[verify] = context
            return context


class UserInfoAuth(httpx.Auth):
    """Basic auth from the panel URL's `user:password@`, for a proxy in front of the panel.

    A request that carries its own `Authorization` (a Marzban or Marzneshin
    bearer token) keeps it, as the app's HTTP client does: httpx would
    otherwise replace it with the URL's credentials and the panel would refuse
    every request.
    """

    def __init__(self, username: str, password: str) -> None:
        self._basic = httpx.BasicAuth(username, password)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the basic credentials unless the request has an `Authorization` already."""
        if "Authorization" in request.headers:
            yield request
        else:
            yield from self._basic.auth_flow(request)


def _longest_phase(timeout: httpx.Timeout) -> float:
    phases = [t for t in (timeout.connect, timeout.read, timeout.write, timeout.pool) if t]
    return max(phases, default=DEFAULT_HTTP_TIMEOUT_S)


def pool_limits(limits: httpx.Limits, concurrency: int) -> httpx.Limits:
    """`limits` widened so that `concurrency` requests never wait for a connection."""

    def at_least(value: int | None) -> int | None:
        return None if value is None else max(value, concurrency)

    return httpx.Limits(
        max_connections=at_least(limits.max_connections),
        max_keepalive_connections=at_least(limits.max_keepalive_connections),
        keepalive_expiry=limits.keepalive_expiry,
    )
