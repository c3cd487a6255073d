"""Scrubbing of credentials out of anything a panel gateway logs or reports."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from usage_core.log import BODY_PREVIEW_CHARS

MASK = "***"

# Key names whose values are credentials wherever they appear in a JSON body,
# e.g. "access_token", "X-API-KEY", "sessionToken", "password".
_SENSITIVE_WORDS = r"token|passw|secret|api[-_]?key|session|cookie|authori[sz]ation|csrf"
_SENSITIVE_KEY = rf"[^\"]*(?:{_SENSITIVE_WORDS})[^\"]*"
_JSON_SECRET = re.compile(
    rf"(\"{_SENSITIVE_KEY}\"\s*:\s*)(\"(?:[^\"\\]|\\.)*\"?|[^,}}\]\s]+)", re.IGNORECASE
)
_FORM_SECRET = re.compile(
    r"(\b(?:password|passwd|token|access_token|api_key|apikey)=)[^&\s\"']*", re.IGNORECASE
)
_BEARER = re.compile(r"(\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(//)[^/@\s]+@")
# httpcore's DEBUG traces print response headers as `(b'Set-Cookie', b'...')`.
_HEADER_PAIR = re.compile(
    r"(\(b(['\"])(?:set-cookie|cookie|authorization|proxy-authorization|x-api-key|x-csrf-token)"
    r"\2, b)(['\"]).*?\3\)",
    re.IGNORECASE,
)
_HTTP_LIBRARY_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


class Redactor:
    """Replaces a panel's credentials, and anything shaped like one, by `***`.

    Literal secrets (the panel's password and API token, and every token or
    session id a session obtains later) are replaced in their plain, URL- and
    JSON-escaped spellings; then JSON values under credential-like keys,
    form fields such as `password=`, bearer tokens and URL user-info are
    masked. Safe to share between threads.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._literals: list[str] = []
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Scrub `secret` (in all its spellings) from now on."""
        spellings = {
            secret,
            quote(secret, safe=""),
            quote_plus(secret),
            json.dumps(secret)[1:-1],
            repr(secret.encode("utf-8", "replace"))[2:-1],  # as in h11's header errors
        }
        with self._lock:
            known = set(self._literals)
            fresh = [s for s in spellings if s and s not in known]
            if fresh:
                self._literals = sorted([*self._literals, *fresh], key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """`text` with every known secret and credential-shaped value masked."""
        with self._lock:
            literals = self._literals
        for literal in literals:
            if literal in text:
                text = text.replace(literal, MASK)
        text = _JSON_SECRET.sub(rf'\1"{MASK}"', text)
        text = _FORM_SECRET.sub(rf"\1{MASK}", text)
        text = _BEARER.sub(rf"\1{MASK}", text)
        return _URL_USERINFO.sub(rf"\1{MASK}@", text)

    def preview(self, body: bytes | str, limit: int = BODY_PREVIEW_CHARS) -> str:
        """A scrubbed body cut to `limit` characters, for a log line."""
        text = body if isinstance(body, str) else body.decode("utf-8", "replace")
        return self.scrub(text)[:limit]


class HttpLibraryLogFilter(logging.Filter):
    """Masks credentials in httpx's and httpcore's own log records.

    httpcore's DEBUG traces include response headers, so a 3x-ui session
    cookie would reach the logs; httpx's INFO line includes the URL, which
    may carry user-info. This filter rewrites such records in place.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Always keep the record, with sensitive header values and user-info masked."""
        message = record.getMessage()
        masked = _HEADER_PAIR.sub(rf"\1'{MASK}')", message)
        masked = _BEARER.sub(rf"\1{MASK}", _URL_USERINFO.sub(rf"\1{MASK}@", masked))
        if masked != message:
            record.msg, record.args = masked, None
        return True


_LIBRARY_FILTER = HttpLibraryLogFilter()


def install_http_library_log_filter() -> None:
    """Attach `HttpLibraryLogFilter` to the httpx and httpcore loggers (idempotent)."""
    for name in _HTTP_LIBRARY_LOGGERS:
        library_logger = logging.getLogger(name)
        if not any(isinstance(f, HttpLibraryLogFilter) for f in library_logger.filters):
            library_logger.addFilter(_LIBRARY_FILTER)
