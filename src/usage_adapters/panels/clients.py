"""`HttpxPanelClients`: the `PanelClients` port over httpx, one client per session."""

from __future__ import annotations

import ssl
import threading

import httpx

from usage_adapters.panels.bearer import MARZBAN, MARZNESHIN, BearerSession
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

    Args:
        timeout: An `httpx.Timeout`, or seconds for every phase.
        limits: Connection-pool limits of each session's client.
        max_body_bytes: Replies longer than this are not parsed (a hard failure).
        user_agent: The `User-Agent` header.
        trust_env: Whether proxy and CA settings are read from the environment.
        transport: A transport to use instead of the network (for tests and
            benchmarks); `verify` does not apply to it.
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
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._limits = limits
        self._max_body_bytes = max_body_bytes
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
        try:
            client = self._client(panel)
        except httpx.InvalidURL:
            return FailingSession(HardFailure("the panel URL is not a valid URL"))
        match kind:
            case PanelType.EYLANDOO:
                return EylandooSession(panel, client, self._max_body_bytes)
            case PanelType.MARZBAN:
                return BearerSession(panel, client, self._max_body_bytes, MARZBAN)
            case PanelType.MARZNESHIN:
                return BearerSession(panel, client, self._max_body_bytes, MARZNESHIN)
            case PanelType.XUI:
                return XuiSession(panel, client, self._max_body_bytes)

    def _client(self, panel: Panel) -> httpx.Client:
        return httpx.Client(
            base_url=panel.url.rstrip("/"),
            timeout=self._timeout,
            limits=self._limits,
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
