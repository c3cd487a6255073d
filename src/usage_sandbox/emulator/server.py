"""`PanelEmulator` (one emulated panel over loopback HTTP) and `EmulatorFleet`."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import parse_qs, urlsplit

from usage_sandbox.emulator.base import (
    DISCONNECT,
    EYLANDOO_LIST_SHAPES,
    EYLANDOO_SHAPES,
    MAX_REQUEST_BODY,
    MAX_REQUEST_LINE,
    PANEL_KINDS,
    REALISTIC_COSTS,
    UNSET,
    XUI_SESSION_MAX_AGE_S,
    Credentials,
    EylandooListShape,
    EylandooShape,
    Fault,
    ListHook,
    PanelApp,
    PanelKind,
    Request,
    RequestCounts,
    Response,
    ServerCost,
    ServerStats,
    XuiVersion,
    json_reply,
    text_reply,
)
from usage_sandbox.emulator.eylandoo import EylandooApp
from usage_sandbox.emulator.hiddify import HiddifyApp
from usage_sandbox.emulator.marzban import DEFAULT_TOKEN_LIFETIME_S, BearerApp, MarzbanApp
from usage_sandbox.emulator.marzneshin import MarzneshinApp
from usage_sandbox.emulator.pasarguard import AdminBook, PasarGuardApp
from usage_sandbox.emulator.remnawave import RemnawaveApp
from usage_sandbox.emulator.users import UserSeed, UserStore
from usage_sandbox.emulator.xui import XuiApp

logger = logging.getLogger(__name__)

_APPS: Final[dict[PanelKind, type[PanelApp]]] = {
    "eylandoo": EylandooApp,
    "marzban": MarzbanApp,
    "marzneshin": MarzneshinApp,
    "remnawave": RemnawaveApp,
    "xui": XuiApp,
    "pasarguard": PasarGuardApp,
    "hiddify": HiddifyApp,
}


# -------------------------------------------------------------- the server


class _RequestHandler(BaseHTTPRequestHandler):
    server: _EmulatorServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections give up after this
    # Buffer the reply so headers and body leave in one segment: with two
    # small writes, Nagle plus delayed ACKs cost ~40 ms per keep-alive request.
    wbufsize = -1

    def setup(self) -> None:
        super().setup()
        # As real servers do: a reply's last partial segment must not wait for
        # the client's delayed ACK (Nagle), which costs ~40 ms per request.
        with suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        if len(self.requestline) > MAX_REQUEST_LINE:
            # What nginx in front of a panel answers (`large_client_header_buffers`).
            self.close_connection = True
            page = "<html><head><title>414 Request-URI Too Large</title></head></html>"
            self._write(text_reply(page, 414, "text/html"))
            return
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self._write(json_reply({"detail": "Length Required"}, 411))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BODY:
            self.close_connection = True
            self._write(json_reply({"detail": "Bad Content-Length"}, 400))
            return
        app = self.server.app
        began = time.perf_counter()
        app.enter()
        written, write_s = 0, 0.0
        try:
            body = self.rfile.read(length) if length else b""
            target = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=target.path,
                query=parse_qs(target.query, keep_blank_values=True),
                headers=self.headers,
                body=body,
            )
            response = app.handle(request)
            if response is DISCONNECT:
                self.close_connection = True
                _hang_up(self.connection)
                return
            writing = time.perf_counter()
            self._write(response)
            written, write_s = len(response.body), time.perf_counter() - writing
        finally:
            app.leave(time.perf_counter() - began, write_s, written)

    def _write(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if not response.drip_s:
            self.wfile.write(response.body)
            self.wfile.flush()
            return
        self.wfile.flush()
        for index in range(len(response.body)):
            if self.server.stopping.wait(response.drip_s):
                return
            self.wfile.write(response.body[index : index + 1])
            self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: request lines are not worth a log line here."""


class _EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connection bursts from a
    # concurrent client (each drop costs a 1 s SYN retransmit).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: PanelApp, stopping: threading.Event) -> None:
        self.app = app
        self.stopping = stopping
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()
        self._closing = False
        super().__init__(address, _RequestHandler)

    def track(self, connection: socket.socket) -> None:
        with self._live_lock:
            if not self._closing:
                self._live.add(connection)
                return
        _hang_up(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._live_lock:
            self._live.discard(connection)

    def hang_up_all(self) -> None:
        """Refuse new connections and cut the open ones, waking their threads."""
        with self._live_lock:
            self._closing = True
            live = list(self._live)
        for connection in live:
            _hang_up(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (or we hung up on it)
        logger.exception("Panel emulator: request handler failed")


def _hang_up(connection: socket.socket) -> None:
    with suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class PanelEmulator:
    """One emulated panel over real loopback HTTP.

    Args:
        kind: "eylandoo", "marzban", "marzneshin", "remnawave", "xui", "pasarguard" or
            "hiddify".
        users: `{username: total_bytes}` or `EmulatedUser` values to start with.
        username: Admin username for the login routes.
        password: Admin password for the login routes.
        api_key: Eylandoo `X-API-KEY`; on 3x-ui v3 and Remnawave, an API token
            (`Authorization: Bearer`); Hiddify `Hiddify-API-Key` (the admin's uuid).
        xui_version: 2 (`getClientTraffics`, no CSRF) or 3 (CSRF, `clients/traffic`).
        base_path: 3x-ui web base path, or Hiddify admin proxy path, e.g. "/secret";
            every route sits under it.
        latency_s: Delay added to every request.
        eylandoo_shape: Default Eylandoo user reply: "flat", "user_info" or "old".
        list_shape: Eylandoo `list_all` reply: "users", "data.users", "main_admin",
            "main_admin_users" or "sub_admins" (see `EylandooListShape`).
        xui_inbounds: How many inbounds 3x-ui spreads its clients over.
        cost: The panel's own work per request and per user serialized
            (default: none, replies come as fast as they are built).
        realistic: Use the panel's measured cost (`REALISTIC_COSTS`: Marzban's
            ~11.5 ms a serialized user, one request at a time) unless `cost`
            is given; panels without a measured cost keep none.
        eylandoo_set_state: Eylandoo only: whether `PUT /api/v1/users/{username}`
            honours `is_disabled` (documented from 2026-07-15). False emulates an
            older panel that answers "User updated successfully." and ignores it.
        token_lifetime_s: Marzban and Marzneshin: seconds a bearer token (a JWT)
            lives; None issues tokens without `exp`, as an expiry of 0 does.
        xui_session_max_age_s: 3x-ui: seconds a session cookie lives
            (`sessionMaxAge`, default 360 minutes).
        xui_login_again_200: 3x-ui: answer a request without a valid session
            as versions before 2.2.5 did: HTTP 200, `success: false`, "Your
            session has expired, please log in again".
        clock: Wall-clock seconds by which tokens and sessions expire.
        remnawave_version: Remnawave's API: "3.3" (actions by numeric id), "2.8"
            (by `uuid`), "2.2" (by `uuid`, flat counters, no stream).
        remnawave_scopes: Remnawave 2.8+: the API token's scopes, e.g. `users:read`.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.

    Use as a context manager, or call `start()` and `close()`.
    """

    def __init__(
        self,
        kind: PanelKind,
        *,
        users: UserSeed | None = None,
        username: str = "admin",
        password: str = "emulator-password",  # noqa: S107 - a throwaway test credential
        api_key: str = "emulator-api-key",
        xui_version: XuiVersion = 2,
        base_path: str = "",
        latency_s: float = 0.0,
        eylandoo_shape: EylandooShape = "flat",
        list_shape: EylandooListShape = "users",
        xui_inbounds: int = 3,
        eylandoo_set_state: bool = True,
        token_lifetime_s: float | None = DEFAULT_TOKEN_LIFETIME_S,
        xui_session_max_age_s: float = XUI_SESSION_MAX_AGE_S,
        xui_login_again_200: bool = False,
        clock: Callable[[], float] = time.time,
        remnawave_version: str = "3.3",
        remnawave_scopes: Sequence[str] = ("*",),
        cost: ServerCost | None = None,
        realistic: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if kind not in PANEL_KINDS:
            raise ValueError(f"unknown panel kind {kind!r}; expected one of {PANEL_KINDS}")
        if xui_version not in (2, 3):
            raise ValueError(f"xui_version must be 2 or 3, not {xui_version!r}")
        if eylandoo_shape not in EYLANDOO_SHAPES:
            raise ValueError(f"eylandoo_shape must be one of {EYLANDOO_SHAPES}")
        if list_shape not in EYLANDOO_LIST_SHAPES:
            raise ValueError(f"list_shape must be one of {EYLANDOO_LIST_SHAPES}")
        if xui_inbounds < 1:
            raise ValueError("xui_inbounds must be at least 1")
        self.kind: PanelKind = kind
        self.base_path = _normalise_base_path(base_path) if kind in ("xui", "hiddify") else ""
        self.users = UserStore(users)
        self._address = (host, port)
        self._stop = threading.Event()
        credentials = Credentials(username, password, api_key)
        app_args = (self.users, credentials, self._stop, self.base_path)
        self._app: PanelApp
        if kind == "eylandoo":
            self._app = EylandooApp(
                *app_args,
                shape=eylandoo_shape,
                list_shape=list_shape,
                set_state=eylandoo_set_state,
            )
        elif kind == "xui":
            self._app = XuiApp(*app_args, version=xui_version, inbounds=xui_inbounds)
        elif kind == "remnawave":
            self._app = RemnawaveApp(*app_args, version=remnawave_version)
            self._app.api_scopes = tuple(remnawave_scopes)
        else:
            self._app = _APPS[kind](*app_args)
        self._app.latency_s = latency_s
        self._app.clock = clock
        if isinstance(self._app, BearerApp):
            self._app.token_lifetime_s = token_lifetime_s
        if isinstance(self._app, XuiApp):
            self._app.session_max_age_s = xui_session_max_age_s
            self._app.login_again_200 = xui_login_again_200
        if cost is None and realistic:
            cost = REALISTIC_COSTS.get(kind)
        self._app.cost = cost or ServerCost()
        self._server: _EmulatorServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"<PanelEmulator {self.kind} {where}>"

    # -- lifecycle
    def start(self) -> Self:
        """Bind the port and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._stop.clear()
        server = _EmulatorServer(self._address, self._app, self._stop)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"panel-emulator-{self.kind}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def close(self) -> None:
        """Stop serving, cut open connections and wait for the handler threads."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        self._stop.set()
        server.shutdown()
        server.hang_up_all()
        server.server_close()
        thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- where it listens
    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:<port>`, without the base path."""
        return f"http://{self._address[0]}:{self.port}"

    @property
    def url(self) -> str:
        """The panel URL to configure, base path included (3x-ui, Hiddify)."""
        return self.origin + self.base_path

    # -- observation
    @property
    def counts(self) -> RequestCounts:
        """A snapshot of the request counters."""
        return self._app.counts()

    def reset_counts(self) -> None:
        """Zero the request counters and `stats()`, and forget the usernames seen."""
        self._app.reset_counts()

    def stats(self) -> ServerStats:
        """The emulator's own throughput: requests served, most in flight, busy seconds."""
        return self._app.stats()

    @property
    def seen_usernames(self) -> list[str]:
        """Usernames of the single-user reads, URL-decoded, in arrival order."""
        return self._app.seen_usernames()

    @property
    def written_usernames(self) -> list[str]:
        """Usernames the write requests were for, in arrival order (bulk: each listed one).

        A 3x-ui v2 `updateClient` is named by its client id: it shows here only
        once the id matched a user.
        """
        return self._app.written_usernames()

    def issued_tokens(self) -> list[str]:
        """Every bearer token, session id and CSRF token handed out so far."""
        return self._app.issued_tokens()

    # -- behaviour
    @property
    def latency_s(self) -> float:
        """Delay added to every request."""
        return self._app.latency_s

    @latency_s.setter
    def latency_s(self, seconds: float) -> None:
        self._app.latency_s = seconds

    @property
    def cost(self) -> ServerCost:
        """The panel's own work per request and per user serialized."""
        return self._app.cost

    @cost.setter
    def cost(self, cost: ServerCost) -> None:
        self._app.cost = cost

    def set_fault(self, username: str, fault: Fault) -> None:
        """Make `username`'s single-user reads misbehave as `fault` says."""
        self._app.set_fault(username, fault)

    def clear_fault(self, username: str) -> None:
        """Let `username`'s reads behave normally again."""
        self._app.set_fault(username, None)

    def set_write_fault(self, username: str, fault: Fault | None) -> None:
        """Make `username`'s write requests misbehave as `fault` says; None restores them.

        Writes are Marzban `PUT /api/user/{u}`, Marzneshin `.../disable` and
        `.../enable`, Eylandoo `.../toggle` and `PUT`, 3x-ui `updateClient`,
        `clients/update` and the bulk routes (a bulk request gets the fault of
        the first listed user that has one). The fault replaces the reply
        before anything is changed; a `Fault.slow` delay is waited out and the
        write then goes ahead. Reads are faulted separately (`set_fault`).
        """
        self._app.set_write_fault(username, fault)

    def clear_write_fault(self, username: str) -> None:
        """Let `username`'s writes behave normally again."""
        self._app.set_write_fault(username, None)

    def clear_faults(self) -> None:
        """Remove every user read and write fault, the login fault and the listing faults."""
        self._app.clear_faults()

    def set_login_fault(self, fault: Fault | None) -> None:
        """Make the login (token) route misbehave; None restores it."""
        if isinstance(self._app, EylandooApp):
            raise TypeError("Eylandoo has no login route")
        self._app.set_login_fault(fault)

    @property
    def admins(self) -> AdminBook:
        """PasarGuard only: the panel's admins and which one owns each user."""
        if not isinstance(self._app, PasarGuardApp):
            raise TypeError("admins exist only on the PasarGuard emulator")
        return self._app.admins

    def give_to_other_admin(self, usernames: Iterable[str]) -> None:
        """Marzneshin only: log in as a non-sudo admin that does not own these users.

        They are left out of its listings, and reading, disabling or enabling
        them (or any unknown user) is 403 `You're not allowed`.
        """
        if not isinstance(self._app, MarzneshinApp):
            raise TypeError("other admins' users exist only on the Marzneshin emulator")
        self._app.give_to_other_admin(usernames)

    def set_shape(self, username: str, shape: EylandooShape | None) -> None:
        """Eylandoo only: the reply shape for one user (None: the emulator's default)."""
        if not isinstance(self._app, EylandooApp):
            raise TypeError("reply shapes exist only on the Eylandoo emulator")
        if shape is not None and shape not in EYLANDOO_SHAPES:
            raise ValueError(f"shape must be one of {EYLANDOO_SHAPES}")
        self._app.set_shape(username, shape)

    def invalidate_sessions(self) -> None:
        """Expire every issued bearer token or 3x-ui session, as a panel restart would."""
        self._app.invalidate_sessions()

    def change_password(self, password: str) -> None:
        """Change the admin password; earlier tokens and sessions stop working."""
        self._app.change_password(password)

    # -- listings
    def set_list_fault(self, page: int, fault: Fault | None) -> None:
        """Make listing page `page` (1-based) misbehave as `fault` says; None restores it.

        Marzban's page number is `offset // limit + 1`, Marzneshin's is `page`;
        the unpaged listings (Eylandoo, 3x-ui) are page 1.
        """
        self._app.set_list_fault(page, fault)

    def omit_from_listing(self, usernames: Iterable[str]) -> None:
        """Leave these users out of the listings (single reads still find them)."""
        self._app.omit_from_listing(usernames)

    def set_list_item(self, username: str, item: object) -> None:
        """Show `item` (any JSON value) in the listings in place of the user's own item."""
        self._app.set_list_item(username, item)

    def clear_list_item(self, username: str) -> None:
        """List the user's own item again."""
        self._app.set_list_item(username, UNSET)

    def set_list_hook(self, hook: ListHook | None) -> None:
        """Run `hook(page)` before each listing page is built (None removes it).

        The hook may change `users`, e.g. to emulate users added or deleted
        while a client pages through the listing.
        """
        self._app.set_list_hook(hook)

    @property
    def list_shape(self) -> EylandooListShape:
        """Eylandoo only: the `list_all` reply shape."""
        if not isinstance(self._app, EylandooApp):
            raise TypeError("list shapes exist only on the Eylandoo emulator")
        return self._app.list_shape

    @list_shape.setter
    def list_shape(self, shape: EylandooListShape) -> None:
        if not isinstance(self._app, EylandooApp):
            raise TypeError("list shapes exist only on the Eylandoo emulator")
        if shape not in EYLANDOO_LIST_SHAPES:
            raise ValueError(f"list_shape must be one of {EYLANDOO_LIST_SHAPES}")
        self._app.list_shape = shape


def _normalise_base_path(base_path: str) -> str:
    stripped = base_path.strip("/")
    return f"/{stripped}" if stripped else ""


class EmulatorFleet:
    """Several emulators started and stopped together, looked up by name."""

    def __init__(self, emulators: Mapping[str, PanelEmulator]) -> None:
        self._emulators = dict(emulators)

    @classmethod
    def one_of_each(
        cls,
        *,
        users: Mapping[str, int] | None = None,
        username: str = "admin",
        password: str = "emulator-password",  # noqa: S107 - a throwaway test credential
        api_key: str = "emulator-api-key",
        latency_s: float = 0.0,
    ) -> EmulatorFleet:
        """Eylandoo, Marzban, Marzneshin, 3x-ui v2 and v3 (under `/panel-v3`), same users."""
        common: dict[str, Any] = {
            "username": username,
            "password": password,
            "api_key": api_key,
            "latency_s": latency_s,
        }
        seed = dict(users or {})
        return cls(
            {
                "eylandoo": PanelEmulator("eylandoo", users=seed, **common),
                "marzban": PanelEmulator("marzban", users=seed, **common),
                "marzneshin": PanelEmulator("marzneshin", users=seed, **common),
                "xui": PanelEmulator("xui", users=seed, xui_version=2, **common),
                "xui-v3": PanelEmulator(
                    "xui", users=seed, xui_version=3, base_path="/panel-v3", **common
                ),
            }
        )

    def start(self) -> Self:
        """Start every emulator; if one fails, the ones started are closed again."""
        with ExitStack() as stack:
            for emulator in self._emulators.values():
                stack.enter_context(emulator)
            stack.pop_all()
        return self

    def close(self) -> None:
        """Stop every emulator."""
        for emulator in self._emulators.values():
            emulator.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __getitem__(self, name: str) -> PanelEmulator:
        return self._emulators[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._emulators)

    def items(self) -> list[tuple[str, PanelEmulator]]:
        """(name, emulator) pairs in insertion order."""
        return list(self._emulators.items())
