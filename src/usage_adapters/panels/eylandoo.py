"""Eylandoo: a static `X-API-KEY` header, `GET /api/v1/users/{username}`."""

from __future__ import annotations

import logging

import httpx

from usage_adapters.panels.transport import FetchWording, HttpSession, header_safe, path_segment
from usage_core.log import ctx
from usage_core.model import Panel
from usage_core.readings import CounterReading, HardFailure, UsageResult, parse_eylandoo_user

logger = logging.getLogger(__name__)

_WORDING = FetchWording.for_label("Eylandoo")


class EylandooSession(HttpSession):
    """Reads usage from an Eylandoo panel; no login, the API key goes on every call."""

    def __init__(self, panel: Panel, client: httpx.Client, max_body_bytes: int) -> None:
        super().__init__(panel, client, max_body_bytes)
        self._api_key = panel.api_token.reveal() if panel.api_token else ""

    def fetch_usage(self, username: str) -> UsageResult:
        """The user's counter by the core's Eylandoo precedence, or a hard failure."""
        if not self._api_key:
            return HardFailure("the panel has no API token")
        if not header_safe(self._api_key):
            return HardFailure("the panel's API token has characters a header cannot carry")
        if not username:
            return HardFailure("the config has no panel username")
        sent = self.send(
            "GET",
            f"/api/v1/users/{path_segment(username)}",
            headers={"X-API-KEY": self._api_key, "Accept": "application/json"},
        )
        result = self.interpret(username, sent, parse_eylandoo_user, _WORDING, logger)
        if isinstance(result, CounterReading):
            _log_reading(username, result)
        return result


def _log_reading(username: str, reading: CounterReading) -> None:
    """Say where the counter came from, in the original service's words."""
    if reading.path == "none":
        logger.info(
            "Eylandoo usage: no traffic data fields found, returning 0",
            extra=ctx(username=username),
        )
    elif reading.upload_bytes is not None and reading.download_bytes is not None:
        logger.info(
            "Eylandoo usage from " + reading.path,
            extra=ctx(
                username=username,
                upload_bytes=reading.upload_bytes,
                download_bytes=reading.download_bytes,
                total_usage_bytes=reading.bytes,
            ),
        )
    else:
        logger.info(
            "Eylandoo usage from " + reading.path,
            extra=ctx(username=username, usage_bytes=reading.bytes),
        )
