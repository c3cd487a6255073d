"""Stdlib-only emulators of the panels' HTTP APIs, for tests, demos and benchmarks.

A `PanelEmulator` serves one panel type on `127.0.0.1` (a free port by
default) from a daemon thread, with an in-memory user store that tests mutate
while it runs:

    with PanelEmulator("marzban", users={"alice": 5_000}) as panel:
        ...  # point a gateway at panel.url
        panel.users.set_counter("alice", total=7_000)
        panel.set_fault("alice", Fault.http_status(503))
        assert panel.counts.logins == 1

Only the routes the sync reads are emulated, with the shapes documented in
`panel-apis.md`: Eylandoo (API key), Marzban and Marzneshin (OAuth2 password
form -> bearer token) and 3x-ui v2/v3 (cookie session, CSRF in v3). Nothing
here prints or logs a credential.

The bulk listings (Eylandoo `list_all` in each of its documented shapes,
Marzban `offset/limit`, Marzneshin `page/size`, 3x-ui `inbounds/list` with
`clientStats`) are served from per-user JSON fragments cached until the user
changes, so that listings of 250,000 users cost little more than sending them.
Listing fault hooks fail a given page, leave users out, replace a user's list
item, or run a callback before each page (to change the users between pages):

    panel.set_list_fault(3, Fault.http_status(500))
    panel.omit_from_listing({"bob"})
    panel.set_list_item("carol", {"username": "carol"})
    panel.set_list_hook(lambda page: panel.users.remove("dave"))
    panel.stats()  # requests served, most in flight, busy and build seconds
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import math
import re
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, suppress
from email.message import Message
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, Self, get_args
from urllib.parse import parse_qs, quote, unquote, urlsplit

logger = logging.getLogger(__name__)

PanelKind = Literal["eylandoo", "marzban", "marzneshin", "xui"]
EylandooShape = Literal["flat", "user_info", "old"]
# Eylandoo `list_all` reply shapes (panel-apis.md §1): v3.1.3 and sub-admin keys
# (`users`), Oct 2025 (`data.users`), v3.0.0 main key (`main_admin` + `sub_admins`),
# v1.1.6/v2.0.0 main key (`main_admin_users` + `sub_admins`), and a main key whose
# users all belong to sub-admins (`sub_admins` only).
EylandooListShape = Literal["users", "data.users", "main_admin", "main_admin_users", "sub_admins"]
XuiVersion = Literal[2, 3]
ListHook = Callable[[int], None]

PANEL_KINDS: Final[tuple[PanelKind, ...]] = get_args(PanelKind)
EYLANDOO_SHAPES: Final[tuple[EylandooShape, ...]] = get_args(EylandooShape)
EYLANDOO_LIST_SHAPES: Final[tuple[EylandooListShape, ...]] = get_args(EylandooListShape)

XUI_COOKIE = "3x-ui"
XUI_SESSION_MAX_AGE_S = 360 * 60
MAX_REQUEST_BODY = 1 << 20
MARZNESHIN_MAX_PAGE_SIZE = 100
MARZNESHIN_DEFAULT_PAGE_SIZE = 50
_CREATED_AT = "2025-01-01T00:00:00"
_SUB_ADMINS = 3  # Eylandoo main-key listings spread users over the main admin and these
_MARZBAN_SORTS: Final = ("username", "created_at", "used_traffic", "data_limit", "expire")
_MARZNESHIN_ORDERS: Final = ("username", "used_traffic", "data_limit", "expire_date", "created_at")
_dumps = json.JSONEncoder(separators=(",", ":")).encode


# ---------------------------------------------------------------- user store


@dataclasses.dataclass(frozen=True)
class EmulatedUser:
    """One user as every emulated panel sees it.

    Attributes:
        username: The panel username (the client email on 3x-ui).
        upload: Upload bytes in the current period.
        download: Download bytes in the current period.
        settled: Bytes used before earlier counter resets; Marzban and
            Marzneshin report `settled + upload + download` as
            `lifetime_used_traffic`.
        data_limit: Quota in bytes, 0 for unlimited.
        enabled: False for a disabled user.
    """

    username: str
    upload: int = 0
    download: int = 0
    settled: int = 0
    data_limit: int = 0
    enabled: bool = True

    @property
    def used(self) -> int:
        """The current-period counter: upload + download."""
        return self.upload + self.download

    @property
    def lifetime(self) -> int:
        """Everything ever used, across resets."""
        return self.settled + self.used


def split_total(total: int) -> tuple[int, int]:
    """Split a total counter into (upload, download): a quarter up, the rest down."""
    upload = total // 4
    return upload, total - upload


UserSeed = Mapping[str, int] | Iterable[EmulatedUser]


class UserStore:
    """The emulated panel's users, safe to read and change from any thread."""

    def __init__(self, users: UserSeed | None = None) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, EmulatedUser] = {}
        self._ids: dict[str, int] = {}
        self._next_id = 1
        self._membership = 0  # bumped whenever a name is added or removed
        self._sorted: tuple[int, tuple[str, ...]] = (-1, ())
        if isinstance(users, Mapping):
            for name, total in users.items():
                self.add(name, total=total)
        elif users is not None:
            for user in users:
                self.put(user)

    def put(self, user: EmulatedUser) -> None:
        """Add `user`, replacing any user of the same name."""
        with self._lock:
            if user.username not in self._ids:
                self._ids[user.username] = self._next_id
                self._next_id += 1
            if user.username not in self._users:
                self._membership += 1
            self._users[user.username] = user

    def add(
        self,
        username: str,
        *,
        total: int | None = None,
        upload: int = 0,
        download: int = 0,
        data_limit: int = 0,
        enabled: bool = True,
    ) -> EmulatedUser:
        """Add (or replace) a user; `total` is split with `split_total`."""
        if total is not None:
            upload, download = split_total(total)
        user = EmulatedUser(username, upload, download, data_limit=data_limit, enabled=enabled)
        self.put(user)
        return user

    def get(self, username: str) -> EmulatedUser | None:
        """The user named `username`, or None."""
        with self._lock:
            return self._users.get(username)

    def all(self) -> list[EmulatedUser]:
        """Every user, in insertion order."""
        with self._lock:
            return list(self._users.values())

    def id_of(self, username: str) -> int:
        """The panel-side numeric id; a user deleted and added again gets a new one."""
        with self._lock:
            return self._ids.get(username, 0)

    def names(self) -> list[str]:
        """Every username, in insertion order."""
        with self._lock:
            return list(self._users)

    def remove(self, username: str) -> bool:
        """Delete a user; True when it existed."""
        with self._lock:
            self._ids.pop(username, None)
            existed = self._users.pop(username, None) is not None
            self._membership += existed
            return existed

    def ordered_names(self, by_username: bool) -> tuple[int, tuple[str, ...]]:
        """(membership version, every username) in insertion or username order.

        The version changes whenever a user is added or removed, so callers
        can cache what they derive from the names; the username order itself
        is cached here.
        """
        with self._lock:
            version = self._membership
            if not by_username:
                return version, tuple(self._users)
            if self._sorted[0] != version:
                self._sorted = (version, tuple(sorted(self._users)))
            return self._sorted

    def entries(self, names: Iterable[str]) -> list[tuple[EmulatedUser, int]]:
        """(user, panel-side id) for each of `names` that exists, under one lock."""
        with self._lock:
            users, ids = self._users, self._ids
            return [(users[name], ids[name]) for name in names if name in users]

    def set_counter(
        self,
        username: str,
        *,
        total: int | None = None,
        upload: int | None = None,
        download: int | None = None,
    ) -> EmulatedUser:
        """Overwrite a user's counter (KeyError when unknown)."""
        if total is not None:
            upload, download = split_total(total)
        return self._change(
            username,
            lambda u: dataclasses.replace(
                u,
                upload=u.upload if upload is None else upload,
                download=u.download if download is None else download,
            ),
        )

    def add_traffic(self, username: str, *, upload: int = 0, download: int = 0) -> EmulatedUser:
        """Grow a user's counter, as traffic would (KeyError when unknown)."""
        return self._change(
            username,
            lambda u: dataclasses.replace(
                u, upload=u.upload + upload, download=u.download + download
            ),
        )

    def reset_counter(self, username: str) -> EmulatedUser:
        """Zero the current-period counter, keeping the lifetime total (KeyError when unknown)."""
        return self._change(
            username,
            lambda u: dataclasses.replace(u, upload=0, download=0, settled=u.lifetime),
        )

    def set_enabled(self, username: str, enabled: bool) -> EmulatedUser:
        """Enable or disable a user (KeyError when unknown)."""
        return self._change(username, lambda u: dataclasses.replace(u, enabled=enabled))

    def _change(
        self, username: str, change: Callable[[EmulatedUser], EmulatedUser]
    ) -> EmulatedUser:
        with self._lock:
            user = change(self._users[username])
            self._users[username] = user
            return user

    def __len__(self) -> int:
        with self._lock:
            return len(self._users)

    def __contains__(self, username: object) -> bool:
        with self._lock:
            return username in self._users


# ------------------------------------------------------------------- faults


class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET: Final = _Unset.UNSET


@dataclasses.dataclass(frozen=True)
class Fault:
    """What a request (a user's single read, a login, a listing page) gets instead.

    The first field set wins, in this order: `hang_up` (the connection is
    closed without a reply), `raw_body` (sent verbatim), `json_body`,
    `success_false` (the panel's own `success: false` shape), `status` (the
    panel's own error body for that status). `delay_s` is waited before any
    reply; a fault with only a delay then replies normally.

    Attributes:
        status: HTTP status to send (200 when only a body is given).
        json_body: Any JSON value to send as the body.
        raw_body: Bytes or text to send as-is, e.g. a broken JSON document.
        content_type: Content-Type of `raw_body` (default text/html).
        success_false: Message of a `success: false` reply.
        delay_s: Seconds to wait before replying.
        disconnect: Close the connection without replying, as a dying panel
            or proxy would (the client sees a transport error).
    """

    status: int | None = None
    json_body: object = UNSET
    raw_body: bytes | str | None = None
    content_type: str | None = None
    success_false: str | None = None
    delay_s: float = 0.0
    disconnect: bool = False

    @classmethod
    def disconnected(cls) -> Fault:
        """Close the connection without a reply."""
        return cls(disconnect=True)

    @classmethod
    def http_status(cls, status: int, *, body: object = UNSET) -> Fault:
        """Reply with `status` and the panel's error body (or `body` as JSON)."""
        return cls(status=status, json_body=body)

    @classmethod
    def malformed(cls, body: bytes | str = "<html>502 Bad Gateway", *, status: int = 200) -> Fault:
        """Reply with a body that is not JSON."""
        return cls(status=status, raw_body=body)

    @classmethod
    def unsuccessful(cls, message: str = "An internal error occurred.") -> Fault:
        """Reply HTTP 200 with the panel's `success: false` body."""
        return cls(success_false=message)

    @classmethod
    def reply(cls, body: object, *, status: int = 200) -> Fault:
        """Reply with any JSON value."""
        return cls(status=status, json_body=body)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Reply normally, after `seconds`."""
        return cls(delay_s=seconds)

    @property
    def replaces_reply(self) -> bool:
        """True when the fault sends its own reply rather than the normal one."""
        return (
            self.disconnect
            or self.raw_body is not None
            or self.json_body is not UNSET
            or self.success_false is not None
            or self.status is not None
        )


@dataclasses.dataclass(frozen=True)
class RequestCounts:
    """How many requests of each sort an emulator has answered.

    Attributes:
        requests: Every request, whatever its route or outcome.
        logins: Login attempts (token or login route), successful or not.
        failed_logins: Login attempts refused.
        csrf_tokens: 3x-ui v3 `GET /csrf-token` calls.
        user_gets: Single-user reads (per-user routes).
        list_pages: Bulk list requests (one per page).
        rejected: Requests refused for missing or invalid authentication.
    """

    requests: int = 0
    logins: int = 0
    failed_logins: int = 0
    csrf_tokens: int = 0
    user_gets: int = 0
    list_pages: int = 0
    rejected: int = 0


_COUNT_NAMES: Final = tuple(f.name for f in dataclasses.fields(RequestCounts))


@dataclasses.dataclass(frozen=True)
class ServerStats:
    """How hard an emulator worked, to check that it is not a benchmark's bottleneck.

    Attributes:
        served: Requests answered (the reply written or the client gone).
        in_flight: Requests being handled right now.
        max_in_flight: The most requests handled at the same time.
        busy_s: Handler wall time summed over requests (latency included).
        build_s: Time spent routing and building replies: the emulator's own
            CPU work, without the injected latency or fault delays.
        write_s: Time spent writing replies to the sockets.
        bytes_sent: Reply bodies written, in bytes.
    """

    served: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    busy_s: float = 0.0
    build_s: float = 0.0
    write_s: float = 0.0
    bytes_sent: int = 0

    @property
    def build_s_per_request(self) -> float:
        """Mean reply-building time per request served."""
        return self.build_s / self.served if self.served else 0.0


# ------------------------------------------------------------ HTTP plumbing


@dataclasses.dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Message
    body: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def cookie(self, name: str) -> str | None:
        raw = self.header("Cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return None
        morsel = jar.get(name)
        return None if morsel is None else morsel.value

    @property
    def is_xhr(self) -> bool:
        return (self.header("X-Requested-With") or "").lower() == "xmlhttprequest"

    def form(self) -> dict[str, str] | None:
        """Fields of a urlencoded body, or None for any other content type."""
        content_type = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return None
        text = self.body.decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def form_or_json(self) -> dict[str, str] | None:
        """Fields of a urlencoded or JSON-object body, or None."""
        fields = self.form()
        if fields is not None:
            return fields
        try:
            decoded = json.loads(self.body or b"null")
        except ValueError:
            return None
        if not isinstance(decoded, dict):
            return None
        return {str(k): str(v) for k, v in decoded.items() if isinstance(v, str)}


@dataclasses.dataclass(frozen=True)
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


# Not sent: the handler closes the connection instead (`Fault.disconnect`).
_DISCONNECT: Final = _Response(0)


def _json(payload: object, status: int = 200, *headers: tuple[str, str]) -> _Response:
    return _Response(status, _dumps(payload).encode(), headers=headers)


def _json_text(text: str, status: int = 200) -> _Response:
    """A reply whose JSON document is already written out."""
    return _Response(status, text.encode())


def _array(fragments: Iterable[str]) -> str:
    """A JSON array of already-encoded values."""
    return "[" + ",".join(fragments) + "]"


def _text(text: str, status: int, content_type: str = "text/plain; charset=utf-8") -> _Response:
    return _Response(status, text.encode(), content_type)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_Handler = Callable[[_Request, Mapping[str, str]], _Response]


class _Router:
    """Method + path-template routing; `{name}` matches one URL-decoded segment."""

    _PARAM = re.compile(r"\{(\w+)\}")

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = []

    def add(self, method: str, template: str, handler: _Handler) -> None:
        parts = self._PARAM.split(self._prefix + template)
        regex = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
        )
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    def route(self, request: _Request) -> _Response | None:
        """The matched handler's reply; a 405 for a known path; None when no path matches."""
        path_matched = False
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if match is None:
                continue
            path_matched = True
            if method == request.method:
                params = {k: unquote(v) for k, v in match.groupdict().items()}
                return handler(request, params)
        return _json({"detail": "Method Not Allowed"}, 405) if path_matched else None


# ----------------------------------------------------------- panel behaviour


@dataclasses.dataclass(frozen=True)
class _Credentials:
    username: str
    password: str
    api_key: str

    def accepts(self, username: str | None, password: str | None) -> bool:
        return (
            username is not None
            and password is not None
            and secrets.compare_digest(username.encode(), self.username.encode())
            and secrets.compare_digest(password.encode(), self.password.encode())
        )


class _PanelApp:
    """State and behaviour shared by every panel kind; subclasses add routes."""

    kind: ClassVar[PanelKind]

    def __init__(
        self, users: UserStore, credentials: _Credentials, stop: threading.Event, prefix: str = ""
    ) -> None:
        self.users = users
        self.credentials = credentials
        self.latency_s = 0.0
        self._stop = stop
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNT_NAMES, 0)
        self._faults: dict[str, Fault] = {}
        self._login_fault: Fault | None = None
        self._seen: list[str] = []
        # Listing behaviour and caches.
        self._list_faults: dict[int, Fault] = {}
        self._omitted: frozenset[str] = frozenset()
        self._list_items: dict[str, object] = {}
        self._list_hook: ListHook | None = None
        self._orders: dict[str, tuple[int, frozenset[str], tuple[str, ...]]] = {}
        self._fragments: dict[str, dict[str, tuple[EmulatedUser, int, str]]] = {}
        # Throughput.
        self._stats = ServerStats()
        self._paused = threading.local()
        self.prefix = prefix
        self.router = _Router(prefix)
        self.add_routes(self.router)

    # -- overridden per kind
    def add_routes(self, router: _Router) -> None:
        raise NotImplementedError

    def authenticate(self, request: _Request) -> _Response | None:
        """None when the request may proceed, else the refusal."""
        return None

    def user_not_found(self, username: str) -> _Response:
        return _json({"detail": "User not found"}, 404)

    def error_body(self, status: int) -> object:
        return {"detail": _phrase(status)}

    def unsuccessful_body(self, message: str) -> object:
        return {"success": False, "detail": message}

    def not_found(self, request: _Request) -> _Response:
        return _json({"detail": "Not Found"}, 404)

    def invalidate_sessions(self) -> None:
        """Forget every issued token or session."""

    def issued_tokens(self) -> list[str]:
        """Every token, session id or CSRF token ever issued."""
        return []

    # -- shared machinery
    def handle(self, request: _Request) -> _Response:
        self.count("requests")
        self.pause(self.latency_s)
        self._paused.seconds = 0.0
        began = time.perf_counter()
        response = self.router.route(request) or self.not_found(request)
        building = time.perf_counter() - began - self._paused.seconds
        with self._lock:
            self._stats = dataclasses.replace(
                self._stats, build_s=self._stats.build_s + max(0.0, building)
            )
        return response

    def enter(self) -> None:
        """A request arrived (its headers are read)."""
        with self._lock:
            in_flight = self._stats.in_flight + 1
            self._stats = dataclasses.replace(
                self._stats,
                in_flight=in_flight,
                max_in_flight=max(self._stats.max_in_flight, in_flight),
            )

    def leave(self, busy_s: float, write_s: float, bytes_sent: int) -> None:
        """A request was answered (or abandoned) after `busy_s` seconds."""
        with self._lock:
            stats = self._stats
            self._stats = dataclasses.replace(
                stats,
                served=stats.served + 1,
                in_flight=stats.in_flight - 1,
                busy_s=stats.busy_s + busy_s,
                write_s=stats.write_s + write_s,
                bytes_sent=stats.bytes_sent + bytes_sent,
            )

    def stats(self) -> ServerStats:
        with self._lock:
            return self._stats

    def guard(self, handler: _Handler) -> _Handler:
        def guarded(request: _Request, params: Mapping[str, str]) -> _Response:
            refusal = self.authenticate(request)
            if refusal is not None:
                self.count("rejected")
                return refusal
            return handler(request, params)

        return guarded

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def counts(self) -> RequestCounts:
        with self._lock:
            return RequestCounts(**self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(_COUNT_NAMES, 0)
            self._seen.clear()
            in_flight = self._stats.in_flight
            self._stats = ServerStats(in_flight=in_flight, max_in_flight=in_flight)

    def seen_usernames(self) -> list[str]:
        with self._lock:
            return list(self._seen)

    def pause(self, seconds: float) -> None:
        if seconds > 0:
            began = time.perf_counter()
            self._stop.wait(seconds)
            paused = getattr(self._paused, "seconds", 0.0)
            self._paused.seconds = paused + time.perf_counter() - began

    def set_fault(self, username: str, fault: Fault | None) -> None:
        with self._lock:
            if fault is None:
                self._faults.pop(username, None)
            else:
                self._faults[username] = fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._login_fault = None
            self._list_faults.clear()
            self._list_items.clear()
            self._omitted = frozenset()
            self._list_hook = None

    # -- listings
    def set_list_fault(self, page: int, fault: Fault | None) -> None:
        with self._lock:
            if fault is None:
                self._list_faults.pop(page, None)
            else:
                self._list_faults[page] = fault

    def omit_from_listing(self, usernames: Iterable[str]) -> None:
        with self._lock:
            self._omitted = frozenset(usernames)

    def set_list_item(self, username: str, item: object) -> None:
        with self._lock:
            if item is UNSET:
                self._list_items.pop(username, None)
            else:
                self._list_items[username] = item

    def set_list_hook(self, hook: ListHook | None) -> None:
        with self._lock:
            self._list_hook = hook

    def begin_page(self, page: int) -> _Response | None:
        """Run the list hook, then the page's fault: its reply, or None to list normally."""
        with self._lock:
            hook = self._list_hook
            fault = self._list_faults.get(page)
        if hook is not None:
            hook(page)
        return None if fault is None else self._apply(fault)

    def listed_names(self, order: str = "id") -> tuple[str, ...]:
        """The names a listing shows, omitted users left out.

        `order` is "id" (insertion order) or "username", optionally prefixed
        with "-" for descending; the result is cached until the users or the
        omitted set change.
        """
        descending = order.startswith("-")
        base = order.removeprefix("-")
        version, names = self.users.ordered_names(by_username=base == "username")
        with self._lock:
            omitted = self._omitted
            cached = self._orders.get(order)
        if cached is not None and cached[0] == version and cached[1] is omitted:
            return cached[2]
        if omitted:
            names = tuple(name for name in names if name not in omitted)
        if descending:
            names = names[::-1]
        with self._lock:
            self._orders[order] = (version, omitted, names)
        return names

    def fragments(
        self,
        entries: Iterable[tuple[EmulatedUser, int]],
        kind: str,
        render: Callable[[EmulatedUser, int], object],
    ) -> list[str]:
        """Each user's list item as JSON text, cached until the user changes.

        `entries` come from `UserStore.entries`; an item set with
        `set_list_item` replaces the rendered one.
        """
        with self._lock:
            cache = self._fragments.setdefault(kind, {})
            overrides = dict(self._list_items)
        texts: list[str] = []
        append = texts.append
        for user, user_id in entries:
            name = user.username
            if overrides and name in overrides:
                append(_dumps(overrides[name]))
                continue
            hit = cache.get(name)
            if hit is not None and hit[0] is user and hit[1] == user_id:
                append(hit[2])
                continue
            text = _dumps(render(user, user_id))
            cache[name] = (user, user_id, text)
            append(text)
        return texts

    def set_login_fault(self, fault: Fault | None) -> None:
        with self._lock:
            self._login_fault = fault

    def login_fault_reply(self) -> _Response | None:
        """The login fault's reply, or None to log in normally."""
        with self._lock:
            fault = self._login_fault
        return None if fault is None else self._apply(fault)

    def user_reply(self, username: str, render: Callable[[EmulatedUser], _Response]) -> _Response:
        """A single-user route's reply: fault, not-found or `render(user)`."""
        with self._lock:
            self._counts["user_gets"] += 1
            self._seen.append(username)
            fault = self._faults.get(username)
        if fault is not None:
            reply = self._apply(fault)
            if reply is not None:
                return reply
        user = self.users.get(username)
        return self.user_not_found(username) if user is None else render(user)

    def _apply(self, fault: Fault) -> _Response | None:
        self.pause(fault.delay_s)
        if fault.disconnect:
            return _DISCONNECT
        status = 200 if fault.status is None else fault.status
        if fault.raw_body is not None:
            raw = fault.raw_body.encode() if isinstance(fault.raw_body, str) else fault.raw_body
            return _Response(status, raw, fault.content_type or "text/html; charset=utf-8")
        if fault.json_body is not UNSET:
            return _json(fault.json_body, status)
        if fault.success_false is not None:
            return _json(self.unsuccessful_body(fault.success_false), status)
        if fault.status is not None:
            return _json(self.error_body(fault.status), fault.status)
        return None


class _EylandooApp(_PanelApp):
    """`X-API-KEY` on every call; flat, `userInfo` or old `data` user shapes."""

    kind = "eylandoo"

    def __init__(
        self,
        *args: Any,
        shape: EylandooShape = "flat",
        list_shape: EylandooListShape = "users",
        **kwargs: Any,
    ) -> None:
        self.default_shape: EylandooShape = shape
        self.list_shape: EylandooListShape = list_shape
        self._shapes: dict[str, EylandooShape] = {}
        super().__init__(*args, **kwargs)

    def add_routes(self, router: _Router) -> None:
        router.add("GET", "/api/v1/status", self.status)
        router.add("GET", "/api/v1/users/list_all", self.guard(self.list_all))
        router.add("GET", "/api/v1/users/{username}", self.guard(self.get_user))

    def set_shape(self, username: str, shape: EylandooShape | None) -> None:
        with self._lock:
            if shape is None:
                self._shapes.pop(username, None)
            else:
                self._shapes[username] = shape

    def authenticate(self, request: _Request) -> _Response | None:
        key = request.header("X-API-KEY")
        if not key:
            return _json({"success": False, "message": "API key is missing"}, 401)
        if not secrets.compare_digest(key.encode(), self.credentials.api_key.encode()):
            return _json({"success": False, "message": "Invalid or inactive API key"}, 401)
        return None

    def user_not_found(self, username: str) -> _Response:
        return _json({"success": False, "message": "User not found or permission denied"}, 404)

    def error_body(self, status: int) -> object:
        message = "An internal error occurred." if status >= 500 else _phrase(status)
        return {"success": False, "message": message}

    def unsuccessful_body(self, message: str) -> object:
        return {"success": False, "message": message}

    def not_found(self, request: _Request) -> _Response:
        return _json({"success": False, "message": "Not found"}, 404)

    def status(self, request: _Request, params: Mapping[str, str]) -> _Response:
        return _json({"success": True, "message": "Panel is online", "timestamp": _CREATED_AT})

    def list_all(self, request: _Request, params: Mapping[str, str]) -> _Response:
        """Everyone at once, in the configured `list_shape` (no paging, no parameters)."""
        self.count("list_pages")
        faulted = self.begin_page(1)
        if faulted is not None:
            return faulted
        names = self.listed_names()
        shape = self.list_shape
        if shape == "users":
            return _json_text('{"success":true,"users":' + self._items(names, "flat") + "}")
        if shape == "data.users":
            users = self.users.entries(names)
            active = sum(user.enabled for user, _ in users)
            return _json_text(
                '{"status":"success","data":{"users":'
                + self._items(names, "old")
                + f',"total_count":{len(names)},"active_count":{active},"online_count":0}}}}'
            )
        # Main-key shapes: every fourth user is the main admin's, the rest are
        # spread over the sub-admins ("sub_admins": no main-admin users at all).
        kind = "updown" if shape == "main_admin_users" else "flat"
        groups = _SUB_ADMINS if shape == "sub_admins" else _SUB_ADMINS + 1
        spread = [names[i::groups] for i in range(groups)]
        own = [] if shape == "sub_admins" else spread.pop(0)
        if shape == "main_admin_users":
            subs = [
                f'{{"sub_admin_id":{i + 1},"sub_admin_username":"reseller{i + 1}",'
                f'"users":{self._items(part, kind)}}}'
                for i, part in enumerate(spread)
            ]
            head = '{"success":true,"main_admin_users":' + self._items(own, kind)
        else:
            subs = [
                f'{{"id":{i + 1},"username":"reseller{i + 1}","users":{self._items(part, kind)}}}'
                for i, part in enumerate(spread)
            ]
            head = '{"success":true'
            if shape == "main_admin":
                head += ',"main_admin":{"users":' + self._items(own, kind) + "}"
        return _json_text(head + ',"sub_admins":' + _array(subs) + "}")

    def _items(self, names: Sequence[str], kind: str) -> str:
        return _array(self.fragments(self.users.entries(names), kind, _EYLANDOO_ITEMS[kind]))

    def get_user(self, request: _Request, params: Mapping[str, str]) -> _Response:
        username = params["username"]
        with self._lock:
            shape = self._shapes.get(username, self.default_shape)
        return self.user_reply(username, lambda user: _json(_eylandoo_reply(user, shape)))


def _eylandoo_old_item(user: EmulatedUser, user_id: int = 0) -> dict[str, object]:
    """A `list_all` item of the Oct-2025 `data.users` shape: usage in `data_used`."""
    return {
        "username": user.username,
        "status": "active" if user.enabled else "disabled",
        "max_clients": 1,
        "data_used": user.used,
        "data_limit": user.data_limit,
        "expiry_date": None,
        "online": False,
        "sub_admin": None,
        "created_at": _CREATED_AT,
    }


def _eylandoo_updown_item(user: EmulatedUser, user_id: int = 0) -> dict[str, object]:
    """A v1.1.6 `list_all` item: `upload_bytes` + `download_bytes`, no total."""
    fields = _eylandoo_fields(user)
    del fields["total_traffic_bytes"]
    return fields


def _eylandoo_fields(user: EmulatedUser, user_id: int = 0) -> dict[str, object]:
    return {
        "username": user.username,
        "upload_bytes": user.upload,
        "download_bytes": user.download,
        "total_traffic_bytes": user.used,
        "data_limit": round(user.data_limit / 1024**3, 2),
        "data_limit_unit": "GB",
        "is_active": user.enabled,
        "is_online": False,
        "active_connections": 0,
        "expiry_date_actual_iso": None,
        "expiry_date_display": None,
        "remaining_days": None,
        "activation_type": "fixed_date",
        "notes": "",
    }


_EYLANDOO_ITEMS: Final[dict[str, Callable[[EmulatedUser, int], object]]] = {
    "flat": _eylandoo_fields,
    "updown": _eylandoo_updown_item,
    "old": _eylandoo_old_item,
}


def _eylandoo_reply(user: EmulatedUser, shape: EylandooShape) -> dict[str, object]:
    if shape == "user_info":
        return {"success": True, "userInfo": _eylandoo_fields(user)}
    if shape == "old":
        return {
            "status": "success",
            "data": {
                "username": user.username,
                "status": "active" if user.enabled else "disabled",
                "max_clients": 1,
                "data_limit": user.data_limit,
                "data_used": user.used,
                "data_limit_unit": "GB",
                "expiry_date": None,
                "online": False,
            },
        }
    return {"success": True, **_eylandoo_fields(user)}


class _BearerApp(_PanelApp):
    """FastAPI panels: an OAuth2 password form buys a bearer token."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._valid_tokens: set[str] = set()
        self._issued: list[str] = []
        super().__init__(*args, **kwargs)

    def token_reply(self, token: str) -> dict[str, object]:
        return {"access_token": token, "token_type": "bearer"}

    def issue_token(self, request: _Request, params: Mapping[str, str]) -> _Response:
        self.count("logins")
        faulted = self.login_fault_reply()
        if faulted is not None:
            self.count("failed_logins")
            return faulted
        form = request.form()
        if form is None or "username" not in form or "password" not in form:
            self.count("failed_logins")
            return _json({"detail": {"username": "field required"}}, 422)
        if not self.credentials.accepts(form["username"], form["password"]):
            self.count("failed_logins")
            return _json(
                {"detail": "Incorrect username or password"},
                401,
                ("WWW-Authenticate", "Bearer"),
            )
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._valid_tokens.add(token)
            self._issued.append(token)
        return _json(self.token_reply(token))

    def authenticate(self, request: _Request) -> _Response | None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _json({"detail": "Not authenticated"}, 401, ("WWW-Authenticate", "Bearer"))
        with self._lock:
            valid = token.strip() in self._valid_tokens
        if not valid:
            return _json(
                {"detail": "Could not validate credentials"}, 401, ("WWW-Authenticate", "Bearer")
            )
        return None

    def invalidate_sessions(self) -> None:
        with self._lock:
            self._valid_tokens.clear()

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._issued)


class _MarzbanApp(_BearerApp):
    """Marzban: `/api/admin/token`, `/api/user/{username}`, `/api/users?offset&limit`."""

    kind = "marzban"

    def add_routes(self, router: _Router) -> None:
        router.add("POST", "/api/admin/token", self.issue_token)
        router.add("GET", "/api/users", self.guard(self.list_users))
        router.add("GET", "/api/user/{username}", self.guard(self.get_user))

    def get_user(self, request: _Request, params: Mapping[str, str]) -> _Response:
        return self.user_reply(
            params["username"],
            lambda user: _json(_marzban_user(user, self.users.id_of(user.username))),
        )

    def list_users(self, request: _Request, params: Mapping[str, str]) -> _Response:
        """`{users, total}`: `offset`/`limit` (no limit, or 0: everyone) over `sort`.

        The page number the listing hooks see is `offset // limit + 1`.
        """
        self.count("list_pages")
        bounds = _non_negative_ints(request, "offset", "limit")
        if isinstance(bounds, _Response):
            return bounds
        offset, limit = bounds.get("offset", 0), bounds.get("limit", 0)
        keys = [key for key in (request.param("sort") or "").split(",") if key]
        for key in keys:
            if key.removeprefix("-") not in _MARZBAN_SORTS:
                return _json({"detail": f'"{key}" is not a valid sort option'}, 400)
        faulted = self.begin_page(offset // limit + 1 if limit else 1)
        if faulted is not None:
            return faulted
        names = self._sorted(keys[0] if keys else "id")
        page = names[offset : offset + limit] if limit else names[offset:]
        items = self.fragments(self.users.entries(page), "marzban", _marzban_user)
        return _json_text('{"users":' + _array(items) + f',"total":{len(names)}}}')

    def _sorted(self, key: str) -> tuple[str, ...]:
        descending, field = key.startswith("-"), key.removeprefix("-")
        if field in ("username", "created_at", "id"):
            base = "username" if field == "username" else "id"
            return self.listed_names(("-" if descending else "") + base)
        names = self.listed_names()
        used = {user.username: user.used for user, _ in self.users.entries(names)}
        if field == "used_traffic":
            return tuple(sorted(names, key=lambda n: used.get(n, 0), reverse=descending))
        return names  # data_limit / expire: the emulator's users all tie


def _non_negative_ints(request: _Request, *names: str) -> dict[str, int] | _Response:
    values: dict[str, int] = {}
    for name in names:
        raw = request.param(name)
        if raw is None or raw == "":
            continue
        if not raw.isdigit():
            return _json({"detail": {name: "value is not a valid integer"}}, 422)
        values[name] = int(raw)
    return values


def _marzban_user(user: EmulatedUser, user_id: int = 0) -> dict[str, object]:
    """A full Marzban `UserResponse`, links and subscription URL included (~1.3 kB)."""
    key = _stable_uuid(user.username)
    name = quote(user.username, safe="")
    host = "panel.example.com"
    return {
        "proxies": {"vless": {"id": str(key), "flow": "xtls-rprx-vision"}},
        "expire": None,
        "data_limit": user.data_limit or None,
        "data_limit_reset_strategy": "no_reset",
        "inbounds": {"vless": ["VLESS TCP REALITY"]},
        "note": "",
        "sub_updated_at": None,
        "sub_last_user_agent": None,
        "online_at": None,
        "on_hold_expire_duration": None,
        "on_hold_timeout": None,
        "auto_delete_in_days": None,
        "next_plan": None,
        "username": user.username,
        "status": "active" if user.enabled else "disabled",
        "used_traffic": user.used,
        "lifetime_used_traffic": user.lifetime,
        "created_at": _CREATED_AT,
        "links": [
            f"vless://{key}@{host}:443?security=reality&type=tcp&headerType=&flow="
            f"xtls-rprx-vision&path=&host=&sni=www.example.com&fp=chrome"
            f"&pbk=SbVKOEMjK0sIlbwg4akyBg5mL5KZwwB-ed4eEE7YnRc&sid={key.hex[:8]}"
            f"#{name}%20%F0%9F%9A%80%20VLESS%20TCP%20REALITY",
            f"vless://{key}@{host}:8443?security=tls&type=ws&path=%2Fws&host={host}"
            f"&sni={host}&fp=chrome#{name}%20VLESS%20WS%20TLS",
        ],
        "subscription_url": f"https://{host}/sub/{key.hex}{key.hex[:16]}",
        "excluded_inbounds": {"vless": []},
        "admin": {
            "username": "admin",
            "is_sudo": True,
            "telegram_id": None,
            "discord_webhook": None,
            "users_usage": 0,
        },
    }


class _MarzneshinApp(_BearerApp):
    """Marzneshin: `/api/admins/token`, `/api/users/{username}`, `/api/users?page&size`."""

    kind = "marzneshin"

    def add_routes(self, router: _Router) -> None:
        router.add("POST", "/api/admins/token", self.issue_token)
        router.add("GET", "/api/users", self.guard(self.list_users))
        router.add("GET", "/api/users/{username}", self.guard(self.get_user))

    def token_reply(self, token: str) -> dict[str, object]:
        return {"access_token": token, "is_sudo": True, "token_type": "bearer"}

    def get_user(self, request: _Request, params: Mapping[str, str]) -> _Response:
        return self.user_reply(
            params["username"],
            lambda user: _json(self.user_body(user, self.users.id_of(user.username))),
        )

    @staticmethod
    def user_body(user: EmulatedUser, user_id: int) -> dict[str, object]:
        key = _stable_uuid(user.username)
        return {
            "id": user_id,
            "username": user.username,
            "used_traffic": user.used,
            "lifetime_used_traffic": user.lifetime,
            "traffic_reset_at": None,
            "data_limit": user.data_limit or None,
            "data_limit_reset_strategy": "no_reset",
            "expire_strategy": "never",
            "expire_date": None,
            "usage_duration": None,
            "activation_deadline": None,
            "is_active": user.enabled,
            "activated": True,
            "enabled": user.enabled,
            "expired": False,
            "data_limit_reached": bool(user.data_limit) and user.used >= user.data_limit,
            "online_at": None,
            "sub_updated_at": None,
            "sub_last_user_agent": None,
            "sub_revoked_at": None,
            "created_at": _CREATED_AT,
            "service_ids": [1],
            "owner_username": "admin",
            "subscription_url": f"/sub/{quote(user.username, safe='')}/{key.hex}",
            "key": key.hex,
            "note": None,
        }

    def list_users(self, request: _Request, params: Mapping[str, str]) -> _Response:
        """fastapi-pagination's `Page`: `page` >= 1, `size` 1..100 (422 beyond).

        `order_by=username` and `descending` sort the listing; without
        `order_by` (or with another order, on which the emulator's users
        tie) users come in id order.
        """
        self.count("list_pages")
        bounds = _non_negative_ints(request, "page", "size")
        if isinstance(bounds, _Response):
            return bounds
        page = bounds.get("page", 1)
        size = bounds.get("size", MARZNESHIN_DEFAULT_PAGE_SIZE)
        if page < 1:
            return _json(
                {"detail": {"page": "ensure this value is greater than or equal to 1"}}, 422
            )
        if not 1 <= size <= MARZNESHIN_MAX_PAGE_SIZE:
            return _json(
                {"detail": {"size": "ensure this value is less than or equal to 100"}}, 422
            )
        order_by = request.param("order_by")
        if order_by is not None and order_by not in _MARZNESHIN_ORDERS:
            return _json({"detail": {"order_by": "value is not a valid enumeration member"}}, 422)
        faulted = self.begin_page(page)
        if faulted is not None:
            return faulted
        descending = (request.param("descending") or "").lower() in ("true", "1")
        base = "username" if order_by == "username" else "id"
        names = self.listed_names(("-" if descending else "") + base)
        listed = self.users.entries(names[(page - 1) * size : page * size])
        items = self.fragments(listed, "marzneshin", self.user_body)
        pages = math.ceil(len(names) / size)
        query = f"size={size}" + (f"&order_by={order_by}" if order_by else "")
        link = "/api/users?page={}&" + query
        links = {
            "first": link.format(1),
            "last": link.format(max(pages, 1)),
            "self": link.format(page),
            "next": link.format(page + 1) if page < pages else None,
            "prev": link.format(page - 1) if page > 1 else None,
        }
        return _json_text(
            '{"items":'
            + _array(items)
            + f',"total":{len(names)},"page":{page},"size":{size},"pages":{pages},'
            + '"links":'
            + _dumps(links)
            + "}"
        )


@dataclasses.dataclass
class _XuiSession:
    csrf: str | None = None
    authenticated: bool = False


class _XuiApp(_PanelApp):
    """3x-ui: cookie sessions under a base path; v3 adds CSRF and moves the traffic route."""

    kind = "xui"

    def __init__(
        self, *args: Any, version: XuiVersion = 2, inbounds: int = 3, **kwargs: Any
    ) -> None:
        self.version = version
        self.inbound_count = inbounds
        self._sessions: dict[str, _XuiSession] = {}
        self._issued: list[str] = []
        super().__init__(*args, **kwargs)
        self.cookie_path = self.prefix or "/"

    def add_routes(self, router: _Router) -> None:
        router.add("POST", "/login", self.login)
        router.add("GET", "/panel/api/inbounds/list", self.guard(self.inbounds))
        if self.version >= 3:
            router.add("GET", "/csrf-token", self.csrf_token)
            router.add("GET", "/panel/api/clients/traffic/{email}", self.guard(self.traffic))
        else:
            router.add(
                "GET", "/panel/api/inbounds/getClientTraffics/{email}", self.guard(self.traffic)
            )

    def not_found(self, request: _Request) -> _Response:
        return _text("404 page not found", 404)

    def user_not_found(self, username: str) -> _Response:
        return _json({"success": True, "msg": "", "obj": None})

    def error_body(self, status: int) -> object:
        return {"success": False, "msg": _phrase(status), "obj": None}

    def unsuccessful_body(self, message: str) -> object:
        return {"success": False, "msg": message, "obj": None}

    def invalidate_sessions(self) -> None:
        with self._lock:
            self._sessions.clear()

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    def _session(self, request: _Request) -> tuple[str, _XuiSession] | None:
        session_id = request.cookie(XUI_COOKIE)
        if session_id is None:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
        return None if session is None else (session_id, session)

    def _new_session(self, **fields: Any) -> tuple[str, _XuiSession]:
        session_id = secrets.token_urlsafe(24)
        session = _XuiSession(**fields)
        with self._lock:
            self._sessions[session_id] = session
            self._issued.append(session_id)
        return session_id, session

    def _set_cookie(self, session_id: str) -> tuple[str, str]:
        return (
            "Set-Cookie",
            f"{XUI_COOKIE}={session_id}; Path={self.cookie_path}; "
            f"Max-Age={XUI_SESSION_MAX_AGE_S}; HttpOnly; SameSite=Lax",
        )

    def authenticate(self, request: _Request) -> _Response | None:
        found = self._session(request)
        if found is not None and found[1].authenticated:
            return None
        if request.is_xhr:
            return _json({"success": False, "msg": "Unauthorized", "obj": None}, 401)
        return self.not_found(request)

    def csrf_token(self, request: _Request, params: Mapping[str, str]) -> _Response:
        self.count("csrf_tokens")
        found = self._session(request) or self._new_session()
        session_id, session = found
        with self._lock:
            if session.csrf is None:
                session.csrf = secrets.token_urlsafe(24)
                self._issued.append(session.csrf)
            token = session.csrf
        return _json({"success": True, "msg": "", "obj": token}, 200, self._set_cookie(session_id))

    def login(self, request: _Request, params: Mapping[str, str]) -> _Response:
        self.count("logins")
        faulted = self.login_fault_reply()
        if faulted is not None:
            self.count("failed_logins")
            return faulted
        found = self._session(request)
        if self.version >= 3:
            sent = request.header("X-CSRF-Token") or ""
            expected = found[1].csrf if found is not None else None
            if expected is None or not secrets.compare_digest(sent.encode(), expected.encode()):
                self.count("failed_logins")
                return _json({"success": False, "msg": "invalid CSRF token", "obj": None}, 403)
        fields = request.form_or_json() or {}
        if not self.credentials.accepts(fields.get("username"), fields.get("password")):
            self.count("failed_logins")
            return _json({"success": False, "msg": "Invalid username or password.", "obj": None})
        if found is not None and self.version >= 3:
            session_id, session = found
            with self._lock:
                session.authenticated = True
        else:
            session_id, _ = self._new_session(authenticated=True)
        return _json(
            {"success": True, "msg": "Login Successfully", "obj": None},
            200,
            self._set_cookie(session_id),
        )

    def traffic(self, request: _Request, params: Mapping[str, str]) -> _Response:
        def render(user: EmulatedUser) -> _Response:
            record = self.client_traffic(user, self.users.id_of(user.username))
            return _json({"success": True, "msg": "", "obj": record})

        return self.user_reply(params["email"], render)

    def client_traffic(
        self, user: EmulatedUser, user_id: int, inbound_id: int = 1
    ) -> dict[str, object]:
        record: dict[str, object] = {
            "id": user_id,
            "inboundId": inbound_id,
            "enable": user.enabled,
            "email": user.username,
            "up": user.upload,
            "down": user.download,
            "total": user.data_limit,
            "expiryTime": 0,
            "reset": 0,
            "lastOnline": 0,
            "uuid": str(_stable_uuid(user.username)),
            "subId": _stable_uuid(user.username).hex[:16],
        }
        if self.version >= 3:
            record.update(resetDay=0, resetMax=0, resetCount=0, lastSubFetch=0)
        else:
            record["allTime"] = user.lifetime
        return record

    def inbounds(self, request: _Request, params: Mapping[str, str]) -> _Response:
        """Every inbound with its clients in `settings` and their traffic in `clientStats`.

        Users are spread over `inbound_count` inbounds in consecutive blocks;
        v2 carries `settings` as a JSON string, v3 as an object.
        """
        self.count("list_pages")
        faulted = self.begin_page(1)
        if faulted is not None:
            return faulted
        names = self.listed_names()
        count = max(1, self.inbound_count)
        block = max(1, math.ceil(len(names) / count))
        inbounds = [
            self._inbound(number + 1, names[number * block : (number + 1) * block])
            for number in range(count)
        ]
        return _json_text('{"success":true,"msg":"","obj":' + _array(inbounds) + "}")

    def _inbound(self, inbound_id: int, names: Sequence[str]) -> str:
        users = self.users.entries(names)
        stats = self.fragments(
            users, f"stats-{inbound_id}", lambda u, i: self.client_traffic(u, i, inbound_id)
        )
        clients = self.fragments(users, "client", _xui_client)
        settings = '{"clients":' + _array(clients) + ',"decryption":"none","fallbacks":[]}'
        up = down = settled = 0
        for user, _ in users:
            up, down, settled = up + user.upload, down + user.download, settled + user.settled
        fields = {
            "id": inbound_id,
            "up": up,
            "down": down,
            "total": 0,
            "allTime": settled + up + down,
            "remark": f"emulated-{inbound_id}",
            "enable": True,
            "expiryTime": 0,
            "trafficReset": "never",
            "lastTrafficResetTime": 0,
            "listen": "",
            "port": 442 + inbound_id,
            "protocol": "vless",
            "streamSettings": '{"network":"tcp","security":"reality"}',
            "tag": f"inbound-{442 + inbound_id}",
            "sniffing": '{"enabled":true,"destOverride":["http","tls"]}',
        }
        head = _dumps(fields)[:-1]
        encoded = _dumps(settings) if self.version < 3 else settings
        return head + ',"settings":' + encoded + ',"clientStats":' + _array(stats) + "}"


def _xui_client(user: EmulatedUser, user_id: int = 0) -> dict[str, object]:
    """A client as 3x-ui keeps it in an inbound's `settings.clients`."""
    key = _stable_uuid(user.username)
    return {
        "id": str(key),
        "flow": "xtls-rprx-vision",
        "email": user.username,
        "limitIp": 0,
        "totalGB": user.data_limit,
        "expiryTime": 0,
        "enable": user.enabled,
        "tgId": "",
        "subId": key.hex[:16],
        "comment": "",
        "reset": 0,
    }


def _stable_uuid(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"usage-sync-emulator:{name}")


_APPS: Final[dict[PanelKind, type[_PanelApp]]] = {
    "eylandoo": _EylandooApp,
    "marzban": _MarzbanApp,
    "marzneshin": _MarzneshinApp,
    "xui": _XuiApp,
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

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            self._write(_json({"detail": "Length Required"}, 411))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_REQUEST_BODY:
            self.close_connection = True
            self._write(_json({"detail": "Bad Content-Length"}, 400))
            return
        app = self.server.app
        began = time.perf_counter()
        app.enter()
        written, write_s = 0, 0.0
        try:
            body = self.rfile.read(length) if length else b""
            target = urlsplit(self.path)
            request = _Request(
                method=self.command,
                path=target.path,
                query=parse_qs(target.query, keep_blank_values=True),
                headers=self.headers,
                body=body,
            )
            response = app.handle(request)
            if response is _DISCONNECT:
                self.close_connection = True
                _hang_up(self.connection)
                return
            writing = time.perf_counter()
            self._write(response)
            written, write_s = len(response.body), time.perf_counter() - writing
        finally:
            app.leave(time.perf_counter() - began, write_s, written)

    def _write(self, response: _Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)
        self.wfile.flush()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: request lines are not worth a log line here."""


class _EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connection bursts from a
    # concurrent client (each drop costs a 1 s SYN retransmit).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: _PanelApp) -> None:
        self.app = app
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
        kind: "eylandoo", "marzban", "marzneshin" or "xui".
        users: `{username: total_bytes}` or `EmulatedUser` values to start with.
        username: Admin username for the login routes.
        password: Admin password for the login routes.
        api_key: Eylandoo `X-API-KEY`.
        xui_version: 2 (`getClientTraffics`, no CSRF) or 3 (CSRF, `clients/traffic`).
        base_path: 3x-ui web base path, e.g. "/secret"; every route sits under it.
        latency_s: Delay added to every request.
        eylandoo_shape: Default Eylandoo user reply: "flat", "user_info" or "old".
        list_shape: Eylandoo `list_all` reply: "users", "data.users", "main_admin",
            "main_admin_users" or "sub_admins" (see `EylandooListShape`).
        xui_inbounds: How many inbounds 3x-ui spreads its clients over.
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
        self.base_path = _normalise_base_path(base_path) if kind == "xui" else ""
        self.users = UserStore(users)
        self._address = (host, port)
        self._stop = threading.Event()
        credentials = _Credentials(username, password, api_key)
        app_args = (self.users, credentials, self._stop, self.base_path)
        self._app: _PanelApp
        if kind == "eylandoo":
            self._app = _EylandooApp(*app_args, shape=eylandoo_shape, list_shape=list_shape)
        elif kind == "xui":
            self._app = _XuiApp(*app_args, version=xui_version, inbounds=xui_inbounds)
        else:
            self._app = _APPS[kind](*app_args)
        self._app.latency_s = latency_s
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
        server = _EmulatorServer(self._address, self._app)
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
        """The panel URL to configure, base path included (3x-ui)."""
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
        """Usernames of the single-user requests, URL-decoded, in arrival order."""
        return self._app.seen_usernames()

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

    def set_fault(self, username: str, fault: Fault) -> None:
        """Make `username`'s single-user requests misbehave as `fault` says."""
        self._app.set_fault(username, fault)

    def clear_fault(self, username: str) -> None:
        """Let `username`'s requests behave normally again."""
        self._app.set_fault(username, None)

    def clear_faults(self) -> None:
        """Remove every user fault and the login fault."""
        self._app.clear_faults()

    def set_login_fault(self, fault: Fault | None) -> None:
        """Make the login (token) route misbehave; None restores it."""
        if isinstance(self._app, _EylandooApp):
            raise TypeError("Eylandoo has no login route")
        self._app.set_login_fault(fault)

    def set_shape(self, username: str, shape: EylandooShape | None) -> None:
        """Eylandoo only: the reply shape for one user (None: the emulator's default)."""
        if not isinstance(self._app, _EylandooApp):
            raise TypeError("reply shapes exist only on the Eylandoo emulator")
        if shape is not None and shape not in EYLANDOO_SHAPES:
            raise ValueError(f"shape must be one of {EYLANDOO_SHAPES}")
        self._app.set_shape(username, shape)

    def invalidate_sessions(self) -> None:
        """Expire every issued bearer token or 3x-ui session, as a panel restart would."""
        self._app.invalidate_sessions()

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
        if not isinstance(self._app, _EylandooApp):
            raise TypeError("list shapes exist only on the Eylandoo emulator")
        return self._app.list_shape

    @list_shape.setter
    def list_shape(self, shape: EylandooListShape) -> None:
        if not isinstance(self._app, _EylandooApp):
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


__all__ = [
    "EYLANDOO_LIST_SHAPES",
    "EYLANDOO_SHAPES",
    "PANEL_KINDS",
    "EmulatedUser",
    "EmulatorFleet",
    "EylandooListShape",
    "EylandooShape",
    "Fault",
    "ListHook",
    "PanelEmulator",
    "PanelKind",
    "RequestCounts",
    "ServerStats",
    "UserStore",
    "XuiVersion",
    "split_total",
]
