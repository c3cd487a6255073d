"""One panel's HTTP channel: bounded requests that never raise, and JSON decoding."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import quote

import attrs
import httpx

from usage_adapters.panels.redaction import Redactor
from usage_core.model import Panel
from usage_core.readings import HardFailure

_DETAIL_CHARS = 200
_DETAIL_KEYS = ("message", "detail", "msg", "error")
OUT_OF_TIME = "the panel's time budget ran out"

QueryParams = tuple[tuple[str, str | int], ...]


def header_safe(value: str) -> bool:
    """True when `value` can travel in an HTTP header as-is (printable ASCII)."""
    return value.isascii() and value.isprintable()


def path_segment(name: str) -> str:
    """`name` URL-encoded as exactly one path segment.

    Slashes, spaces and `?#%` are percent-encoded; the dot-only names "." and
    ".." are spelled `%2E` so that URL normalisation cannot remove them.
    """
    encoded = quote(name, safe="")
    if encoded in (".", ".."):
        return encoded.replace(".", "%2E")
    return encoded


@attrs.frozen
class Reply:
    """A panel's HTTP reply, its body read up to the channel's size cap.

    A large reply decoded as it arrived (`HttpChannel.send`'s `decode`) is
    `arrived`, with its JSON value (or `NotJson`) in `decoded` and only its
    first bytes in `body`.
    """

    status: int
    body: bytes
    truncated: bool = False
    arrived: bool = attrs.field(default=False, kw_only=True)
    decoded: object = attrs.field(default=None, kw_only=True, repr=False)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


@attrs.frozen
class NotJson:
    """Why a reply body could not be used as JSON."""

    reason: str


@attrs.frozen
class TransportProblem:
    """A request that got no HTTP reply: refused, timed out, broken, ...

    `out_of_time` marks a request cut short (or never sent) because its
    deadline passed, rather than because of the panel.
    """

    error: str
    message: str
    timed_out: bool
    out_of_time: bool = False

    @property
    def reason(self) -> str:
        """A short, secret-free description for a `HardFailure`."""
        if self.out_of_time:
            return OUT_OF_TIME
        if self.timed_out:
            return f"the panel did not answer in time ({self.error})"
        return f"could not reach the panel ({self.error})"

    @property
    def unreachable(self) -> bool:
        """True when the panel itself did not answer (not our own deadline)."""
        return not self.out_of_time


_OUT_OF_TIME = TransportProblem("TimeBudget", OUT_OF_TIME, timed_out=True, out_of_time=True)

Sent = Reply | TransportProblem
# Decodes a reply body from its chunks as they arrive; raises ValueError where it is not JSON.
Decode = Callable[[Iterator[bytes]], object]


def decode_json(reply: Reply) -> object:
    """The reply's JSON value, or `NotJson` (never raises).

    A reply decoded as it arrived gives the value it was decoded to.
    """
    if reply.arrived:
        return reply.decoded
    if reply.truncated:
        return NotJson(f"the reply is larger than {len(reply.body)} bytes")
    if not reply.body.strip():
        return NotJson("the reply body is empty")
    try:
        return json.loads(reply.body)
    except (ValueError, RecursionError):
        return NotJson("the reply is not JSON")


class HttpChannel:
    """One panel's `httpx.Client` and `Redactor`.

    `send` turns every transport-level exception into a `TransportProblem`
    and caps the body it reads, so callers only deal with values.
    """

    def __init__(self, panel: Panel, client: httpx.Client, max_body_bytes: int) -> None:
        self.panel = panel
        self.client = client
        self.max_body_bytes = max_body_bytes
        self.redactor = Redactor(panel.secrets())

    def close(self) -> None:
        """Release the channel's connections."""
        self.client.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json_body: object = None,
        params: QueryParams | None = None,
        deadline: float | None = None,
        max_bytes: int | None = None,
        decode: Decode | None = None,
        decode_from: int = 0,
    ) -> Sent:
        """One request relative to the panel URL; a `Reply` or what went wrong.

        With a `deadline` (a `time.monotonic()` instant) nothing is sent once it
        has passed, every timeout phase is cut to the time left, and a body
        still arriving at the deadline is abandoned: each gives a
        `TransportProblem` with `out_of_time` set. `max_bytes` replaces the
        channel's body cap (listings are much larger than user replies). A 2xx
        body that reaches `decode_from` bytes is handed to `decode` as it
        arrives, so that it is never held whole (see `Reply`).
        """
        timeout: httpx.Timeout | None = None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return _OUT_OF_TIME
            timeout = _capped(self.client.timeout, left)
        cap = self.max_body_bytes if max_bytes is None else max_bytes
        try:
            with self.client.stream(
                method,
                path,
                headers=headers,
                data=data,
                json=json_body,
                params=params,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            ) as response:
                # Not a list of chunks joined at the end: that holds a listing twice at once
                # (121 MB of 3x-ui at 250,000 users); a BytesIO hands over its own buffer.
                body = io.BytesIO()
                chunks = response.iter_bytes()
                for chunk in chunks:
                    body.write(chunk)
                    if body.tell() > cap:
                        return Reply(response.status_code, body.getvalue()[:cap], truncated=True)
                    if deadline is not None and time.monotonic() >= deadline:
                        return _OUT_OF_TIME
                    if decode is not None and response.is_success and body.tell() >= decode_from:
                        head = body.getvalue()
                        return _arriving(
                            response.status_code, head, chunks, decode, cap=cap, deadline=deadline
                        )
                return Reply(response.status_code, body.getvalue())
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            if deadline is not None and time.monotonic() >= deadline:
                return _OUT_OF_TIME
            return TransportProblem(
                error=type(exc).__name__,
                message=self.redactor.scrub(str(exc)) or type(exc).__name__,
                timed_out=isinstance(exc, httpx.TimeoutException),
            )

    def preview(self, reply: Reply) -> str:
        """The reply body, scrubbed and cut for a log line."""
        return self.redactor.preview(reply.body)

    def http_failure(self, reply: Reply, prefix: str = "") -> HardFailure:
        """`HardFailure("<prefix>HTTP <status>: <panel's message>")`, scrubbed."""
        detail = self._detail(reply)
        return HardFailure(f"{prefix}HTTP {reply.status}" + (f": {detail}" if detail else ""))

    def _detail(self, reply: Reply) -> str:
        decoded = decode_json(reply)
        if not isinstance(decoded, dict):
            return ""
        for key in _DETAIL_KEYS:
            value = decoded.get(key)
            if value:
                text = value if isinstance(value, str) else json.dumps(value)
                return self.redactor.scrub(text)[:_DETAIL_CHARS]
        return ""


class _TooLarge(Exception):  # noqa: N818 - a signal between a generator and its caller
    """The body went past its cap while it was being decoded."""


class _OutOfTime(Exception):  # noqa: N818
    """The deadline passed while the body was being decoded."""


def _arriving(
    status: int,
    head: bytes,
    chunks: Iterator[bytes],
    decode: Decode,
    *,
    cap: int,
    deadline: float | None,
) -> Sent:
    """The reply whose first bytes are `head`, decoded by `decode` as the rest arrives."""
    received = len(head)

    def body() -> Iterator[bytes]:
        nonlocal received
        yield head
        for chunk in chunks:
            received += len(chunk)
            if received > cap:
                raise _TooLarge
            if deadline is not None and time.monotonic() >= deadline:
                raise _OutOfTime
            yield chunk

    try:
        decoded = decode(body())
    except _TooLarge:
        return Reply(status, head, truncated=True)
    except _OutOfTime:
        return _OUT_OF_TIME
    except (ValueError, RecursionError):
        decoded = NotJson("the reply is not JSON")
    return Reply(status, head, arrived=True, decoded=decoded)


def _capped(timeout: httpx.Timeout, left: float) -> httpx.Timeout:
    """`timeout` with no phase longer than `left` seconds (None, unlimited, becomes `left`)."""

    def cap(phase: float | None) -> float:
        return left if phase is None else min(phase, left)

    return httpx.Timeout(
        connect=cap(timeout.connect),
        read=cap(timeout.read),
        write=cap(timeout.write),
        pool=cap(timeout.pool),
    )
