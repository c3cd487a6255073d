"""HTTP gateways to the VPN panels, built on httpx: one dialect module per panel type
(`eylandoo`, `marzban`, `marzneshin`, `remnawave`, `xui`), driven by one shared `reader`."""

from usage_adapters.panels.clients import (
    DEFAULT_LIMITS,
    DEFAULT_USER_AGENT,
    DIALECTS,
    HttpxPanelClients,
)
from usage_adapters.panels.options import (
    DEFAULT_HTTP_TIMEOUT_S,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_LISTING_BYTES,
    DEFAULT_PANEL_BUDGET_S,
    DEFAULT_PANEL_CONCURRENCY,
)
from usage_adapters.panels.redaction import Redactor

__all__ = [
    "DEFAULT_HTTP_TIMEOUT_S",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_LISTING_BYTES",
    "DEFAULT_PANEL_BUDGET_S",
    "DEFAULT_PANEL_CONCURRENCY",
    "DEFAULT_USER_AGENT",
    "DIALECTS",
    "HttpxPanelClients",
    "Redactor",
]
