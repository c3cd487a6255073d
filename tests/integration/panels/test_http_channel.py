"""A large reply decoded as it arrives, over real HTTP: never held whole, failing as a whole one."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from usage_adapters.panels.http import HttpChannel, NotJson, Reply, TransportProblem, decode_json
from usage_adapters.panels.json_stream import decode_arriving
from usage_core.model import Panel

USERS = [{"name": f"user-{n:05d}", "used": n * 1000} for n in range(20_000)]
BODY = json.dumps({"users": USERS}).encode()
CHUNK = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    """Sends `BODY` (or a variant named by the path) a chunk at a time."""

    def do_GET(self) -> None:
        body = BODY[: len(BODY) // 2] + b" " * len(BODY) if self.path == "/broken" else BODY
        status = 500 if self.path == "/error" else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        # A body cut short of its length is a broken connection to the client.
        self.send_header("Content-Length", str(len(body) * (2 if self.path == "/cut" else 1)))
        self.end_headers()
        try:
            for at in range(0, len(body), CHUNK):
                self.wfile.write(body[at : at + CHUNK])
                self.wfile.flush()
                if self.path == "/slow":
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading: what the deadline and cap tests do

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A loopback server of the replies above."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def channel(url: str) -> Iterator[HttpChannel]:
    """A channel to the server, capped at twice the body."""
    channel = HttpChannel(Panel(1, "p", url, "xui"), httpx.Client(base_url=url), len(BODY) * 2)
    try:
        yield channel
    finally:
        channel.close()


class Arrivals:
    """A `decode` that reads each listed user into (name, used) and counts the chunks it got."""

    def __init__(self) -> None:
        self.chunks = 0

    def __call__(self, chunks: Iterator[bytes]) -> object:
        def counted() -> Iterator[bytes]:
            for chunk in chunks:
                self.chunks += 1
                yield chunk

        return decode_arriving(counted(), [("users",)], lambda u: (u["name"], u["used"]))  # type: ignore[index]


EXPECTED = {"users": [(u["name"], u["used"]) for u in USERS]}


def test_a_large_reply_is_decoded_as_it_arrives(channel: HttpChannel) -> None:
    """Past `decode_from` bytes the value is decoded from the arriving chunks; no body is kept."""
    arrivals = Arrivals()
    sent = channel.send("GET", "/", decode=arrivals, decode_from=CHUNK)
    assert isinstance(sent, Reply)
    assert sent.arrived
    assert decode_json(sent) == EXPECTED
    assert arrivals.chunks > 1
    assert len(sent.body) < len(BODY) // 4


def test_a_reply_below_the_threshold_is_decoded_whole(channel: HttpChannel) -> None:
    """Below `decode_from` the body is read whole and decoded as any reply."""
    arrivals = Arrivals()
    sent = channel.send("GET", "/", decode=arrivals, decode_from=len(BODY) + 1)
    assert isinstance(sent, Reply)
    assert not sent.arrived
    assert sent.body == BODY
    assert arrivals.chunks == 0


def test_an_error_reply_is_never_decoded_as_it_arrives(channel: HttpChannel) -> None:
    """A non-2xx reply is read whole, for the panel's message."""
    sent = channel.send("GET", "/error", decode=Arrivals(), decode_from=CHUNK)
    assert isinstance(sent, Reply)
    assert (sent.status, sent.arrived, sent.body) == (500, False, BODY)


def test_a_reply_past_the_cap_is_cut_while_it_arrives(channel: HttpChannel) -> None:
    """Going past `max_bytes` mid-decode gives a truncated reply, as a whole read does."""
    sent = channel.send("GET", "/", decode=Arrivals(), decode_from=CHUNK, max_bytes=len(BODY) // 2)
    assert isinstance(sent, Reply)
    assert sent.truncated
    assert isinstance(decode_json(sent), NotJson)


def test_a_malformed_reply_is_not_json(channel: HttpChannel) -> None:
    """A body that is not JSON decodes to `NotJson`, whole or arriving."""
    sent = channel.send("GET", "/broken", decode=Arrivals(), decode_from=CHUNK)
    assert isinstance(sent, Reply)
    assert decode_json(sent) == NotJson("the reply is not JSON")


def test_a_connection_broken_mid_body_is_a_transport_problem(channel: HttpChannel) -> None:
    """The server closing before the body's length is a transport problem, not a short value."""
    sent = channel.send("GET", "/cut", decode=Arrivals(), decode_from=CHUNK)
    assert isinstance(sent, TransportProblem)
    assert not sent.out_of_time


def test_the_deadline_stops_a_reply_still_arriving(channel: HttpChannel) -> None:
    """A reply still arriving at the deadline is abandoned as out of time."""
    deadline = time.monotonic() + 0.3
    sent = channel.send("GET", "/slow", decode=Arrivals(), decode_from=CHUNK, deadline=deadline)
    assert isinstance(sent, TransportProblem)
    assert sent.out_of_time
