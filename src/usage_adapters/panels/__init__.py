"""HTTP gateways to the VPN panels (Eylandoo, Marzban, Marzneshin, 3x-ui), built on httpx."""

from usage_adapters.panels.bulk import (
    DEFAULT_MAX_LISTING_BYTES,
    DEFAULT_PANEL_BUDGET_S,
    DEFAULT_SYNC_CONCURRENCY,
)
from usage_adapters.panels.clients import (
    DEFAULT_LIMITS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    HttpxPanelClients,
)
from usage_adapters.panels.redaction import Redactor

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_LISTING_BYTES",
    "DEFAULT_PANEL_BUDGET_S",
    "DEFAULT_SYNC_CONCURRENCY",
    "DEFAULT_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "HttpxPanelClients",
    "Redactor",
]
