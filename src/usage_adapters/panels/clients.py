"""`HttpxPanelClients`: the `PanelClients` port over httpx, one client per session."""

from __future__ import annotations

import ssl
import threading

import httpx

from usage_adapters.panels.bearer import MARZBAN, MARZNESHIN, BearerSession
from usage_adapters.panels.bulk import (
    DEFAULT_MAX_LISTING_BYTES,
    DEFAULT_PANEL_BUDGET_S,
    DEFAULT_SYNC_CONCURRENCY,
    MAX_SYNC_CONCURRENCY,
    bulk_options,
    pool_limits,
)
from usage_adapters.panels.eylandoo import EylandooSession
from usage_adapters.panels.redaction import install_http_library_log_filter
from usage_adapters.panels.transport import FailingSession
from usage_adapters.panels.xui import XuiSession
from usage_core.model import Panel, PanelType, panel_type_of
from usage_core.ports import PanelSession
from usage_core.readings import HardFailure

# Explicit, never httpx's implicit defaults (a bare `httpx.Limits()` is unlimited).
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0, pool=10.0)
DEFAULT_LIMITS = httpx.Limits(
    max_connections=10, max_keepalive_connections=10, keepalive_expiry=30.0
)
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_USER_AGENT = "usage-sync/0.1"


class HttpxPanelClients:
    """Opens a session per panel, each with its own `httpx.Client`.

    Constructing one attaches `HttpLibraryLogFilter` to the httpx and
    httpcore loggers, so that their DEBUG traces cannot leak a session cookie.

    Each session's `fetch_many` (see `usage_adapters.panels.bulk`) runs at
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
    """

    def __init__(
        self,
        *,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        user_agent: str = DEFAULT_USER_AGENT,
        trust_env: bool = True,
        transport: httpx.BaseTransport | None = None,
        panel_budget_s: float = DEFAULT_PANEL_BUDGET_S,
        sync_concurrency: int = DEFAULT_SYNC_CONCURRENCY,
        max_listing_bytes: int = DEFAULT_MAX_LISTING_BYTES,
    ) -> None:
        if max_body_bytes < 1 or max_listing_bytes < 1:
            raise ValueError("max_body_bytes and max_listing_bytes must be positive")
        if not panel_budget_s > 0:
            raise ValueError("panel_budget_s must be positive")
        if not 1 <= sync_concurrency <= MAX_SYNC_CONCURRENCY:
            raise ValueError(f"sync_concurrency must be within 1..{MAX_SYNC_CONCURRENCY}")
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._limits = limits
        self._max_body_bytes = max_body_bytes
        self._panel_budget_s = panel_budget_s
        self._sync_concurrency = sync_concurrency
        self._max_listing_bytes = max_listing_bytes
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
        kind = panel_type_of(panel.panel_type)
        if kind is None:
            return FailingSession(HardFailure(f"unsupported panel type {panel.panel_type[:40]!r}"))
        problem = panel.problem  # e.g. credentials that do not decrypt
        if problem:
            return FailingSession(HardFailure(str(problem)))
        bulk = bulk_options(
            panel,
            concurrency=self._sync_concurrency,
            budget_s=self._panel_budget_s,
            max_listing_bytes=self._max_listing_bytes,
        )
        try:
            client = self._client(panel, pool_limits(self._limits, bulk.concurrency))
        except httpx.InvalidURL:
            return FailingSession(HardFailure("the panel URL is not a valid URL"))
        body = self._max_body_bytes
        match kind:
            case PanelType.EYLANDOO:
                return EylandooSession(panel, client, body, bulk)
            case PanelType.MARZBAN:
                return BearerSession(panel, client, body, MARZBAN, bulk)
            case PanelType.MARZNESHIN:
                return BearerSession(panel, client, body, MARZNESHIN, bulk)
            case PanelType.XUI:
                return XuiSession(panel, client, body, bulk)

    def _client(self, panel: Panel, limits: httpx.Limits) -> httpx.Client:
        return httpx.Client(
            base_url=panel.url.rstrip("/"),
            timeout=self._timeout,
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
