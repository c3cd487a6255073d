"""Shared parts of every emulated panel: kinds, faults, counters, HTTP plumbing and
the behaviour every panel app has in common."""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from email.message import Message
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from typing import ClassVar, Final, Literal, get_args
from urllib.parse import parse_qs, unquote

from usage_sandbox.emulator.users import EmulatedUser, UserStore

PanelKind = Literal[
    "eylandoo", "marzban", "marzneshin", "remnawave", "xui", "pasarguard", "hiddify"
]
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
# nginx's default `large_client_header_buffers 4 8k`: a longer request line gets 414.
MAX_REQUEST_LINE = 8 * 1024
MARZNESHIN_MAX_PAGE_SIZE = 100
MARZNESHIN_DEFAULT_PAGE_SIZE = 50
CREATED_AT = "2025-01-01T00:00:00"
SUB_ADMINS = 3  # Eylandoo main-key listings spread users over the main admin and these
MARZBAN_SORTS: Final = ("username", "created_at", "used_traffic", "data_limit", "expire")
MARZNESHIN_ORDERS: Final = ("username", "used_traffic", "data_limit", "expire_date", "created_at")
dumps = json.JSONEncoder(separators=(",", ":")).encode

# ------------------------------------------------------------------- faults


class Unset(enum.Enum):
    UNSET = enum.auto()


UNSET: Final = Unset.UNSET


@dataclasses.dataclass(frozen=True)
class Fault:
    """What a request (a user's single read or write, a login, a listing page) gets instead.

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
        drip_s: Send the reply's body one byte every `drip_s` seconds.
    """

    status: int | None = None
    json_body: object = UNSET
    raw_body: bytes | str | None = None
    content_type: str | None = None
    success_false: str | None = None
    delay_s: float = 0.0
    disconnect: bool = False
    drip_s: float = 0.0

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

    @classmethod
    def dripping(cls, seconds_per_byte: float, *, body: object = UNSET) -> Fault:
        """Reply (normally, or with `body`), one byte every `seconds_per_byte`.

        Each byte comes well within any read timeout, so only an overall
        deadline ends the wait.
        """
        return cls(json_body=body, drip_s=seconds_per_byte)

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
        user_gets: Single-user reads (per-user routes, 3x-ui `inbounds/get` and
            `clients/get` included).
        list_pages: Bulk list requests (one per page).
        rejected: Requests refused for missing or invalid authentication
            (a 3x-ui v3 POST without its CSRF token included).
        writes: State-changing requests (disable, enable, modify, update,
            toggle, bulk enable/disable), whatever their outcome.
        users_serialized: User objects written into read replies (listing
            items, filtered listings, single reads): the work a real panel
            does per user.
    """

    requests: int = 0
    logins: int = 0
    failed_logins: int = 0
    csrf_tokens: int = 0
    user_gets: int = 0
    list_pages: int = 0
    rejected: int = 0
    writes: int = 0
    users_serialized: int = 0


COUNT_NAMES: Final = tuple(f.name for f in dataclasses.fields(RequestCounts))


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
        panel_s: Seconds of emulated panel work (`ServerCost`), counted
            whether or not the emulator sleeps them.
    """

    served: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    busy_s: float = 0.0
    build_s: float = 0.0
    write_s: float = 0.0
    bytes_sent: int = 0
    panel_s: float = 0.0

    @property
    def build_s_per_request(self) -> float:
        """Mean reply-building time per request served."""
        return self.build_s / self.served if self.served else 0.0


@dataclasses.dataclass(frozen=True)
class ServerCost:
    """The work a panel does per request and per user object it serializes.

    Attributes:
        per_user_s: Seconds of server work for each user object in a read
            reply (Marzban builds each listed user's share links and
            subscription URL).
        per_request_s: Seconds of server work for every request.
        serialized: True when the panel does this work one request at a
            time (Marzban's CPU-bound serialization in one process).
        sleep: True to spend the seconds (the client waits for them);
            False only to count them in `ServerStats.panel_s`, for runs too
            big to wait for.
    """

    per_user_s: float = 0.0
    per_request_s: float = 0.0
    serialized: bool = True
    sleep: bool = True

    def seconds(self, users: int) -> float:
        """The work of one request that serializes `users` user objects."""
        return self.per_request_s + users * self.per_user_s


# Calibrated on a real Marzban v0.8.4 on a 2-core machine: a 1,000-user page took
# 10-13 s (~11.5 ms a user), ten single reads 0.32 s in all (client round trips
# included), one request at a time.
REALISTIC_COSTS: Final[Mapping[PanelKind, ServerCost]] = {
    "marzban": ServerCost(per_user_s=0.0115, per_request_s=0.002),
    # PasarGuard v3.1.0 at the same moment: a 1,000-user page in 0.36 s (no share links).
    "pasarguard": ServerCost(per_user_s=0.00036),
}


# ------------------------------------------------------------ HTTP plumbing


@dataclasses.dataclass(frozen=True)
class Request:
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

    @property
    def is_json(self) -> bool:
        content_type = (self.header("Content-Type") or "").split(";")[0].strip().lower()
        return content_type == "application/json" or content_type.endswith("+json")

    def json(self) -> object:
        """The body decoded as JSON (ValueError when it is not JSON)."""
        return json.loads(self.body)

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
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    # Seconds between the body's bytes, for a panel that drip-feeds its reply.
    drip_s: float = 0.0


# Not sent: the handler closes the connection instead (`Fault.disconnect`).
DISCONNECT: Final = Response(0)


def json_reply(payload: object, status: int = 200, *headers: tuple[str, str]) -> Response:
    return Response(status, dumps(payload).encode(), headers=headers)


def json_text_reply(text: str, status: int = 200) -> Response:
    """A reply whose JSON document is already written out."""
    return Response(status, text.encode())


def json_array(fragments: Iterable[str]) -> str:
    """A JSON array of already-encoded values."""
    return "[" + ",".join(fragments) + "]"


def text_reply(text: str, status: int, content_type: str = "text/plain; charset=utf-8") -> Response:
    return Response(status, text.encode(), content_type)


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


Handler = Callable[[Request, Mapping[str, str]], Response]


class Router:
    """Method + path-template routing; `{name}` matches one URL-decoded segment."""

    _PARAM = re.compile(r"\{(\w+)\}")

    def __init__(self, prefix: str = "") -> None:
        self._prefix = prefix
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        parts = self._PARAM.split(self._prefix + template)
        regex = "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
        )
        self._routes.append((method, re.compile(f"^{regex}$"), handler))

    def route(self, request: Request) -> Response | None:
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
        return json_reply({"detail": "Method Not Allowed"}, 405) if path_matched else None


# ----------------------------------------------------------- panel behaviour


@dataclasses.dataclass(frozen=True)
class Credentials:
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


class PanelApp:
    """State and behaviour shared by every panel kind; subclasses add routes."""

    kind: ClassVar[PanelKind]

    def __init__(
        self, users: UserStore, credentials: Credentials, stop: threading.Event, prefix: str = ""
    ) -> None:
        self.users = users
        self.credentials = credentials
        self.latency_s = 0.0
        # Wall-clock seconds: tokens and sessions expire by it (tests pass a fake one).
        self.clock: Callable[[], float] = time.time
        self._stop = stop
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNT_NAMES, 0)
        self._faults: dict[str, Fault] = {}
        self._write_faults: dict[str, Fault] = {}
        self._login_fault: Fault | None = None
        self._seen: list[str] = []
        self._written: list[str] = []
        # Listing behaviour and caches.
        self._list_faults: dict[int, Fault] = {}
        self._omitted: frozenset[str] = frozenset()
        self._list_items: dict[str, object] = {}
        self._list_hook: ListHook | None = None
        self._orders: dict[str, tuple[int, frozenset[str], tuple[str, ...]]] = {}
        self._fragments: dict[str, dict[str, tuple[EmulatedUser, int, str]]] = {}
        self._indexes: dict[str, tuple[tuple[str, ...], dict[str, int]]] = {}
        # The panel's own work per request and per user, and the one CPU it runs on.
        self.cost = ServerCost()
        self._cpu = threading.Lock()
        # Throughput.
        self._stats = ServerStats()
        self._paused = threading.local()
        self.prefix = prefix
        self.router = Router(prefix)
        self.add_routes(self.router)

    # -- overridden per kind
    def add_routes(self, router: Router) -> None:
        raise NotImplementedError

    def authenticate(self, request: Request) -> Response | None:
        """None when the request may proceed, else the refusal."""
        return None

    def user_not_found(self, username: str) -> Response:
        return json_reply({"detail": "User not found"}, 404)

    def error_body(self, status: int) -> object:
        return {"detail": phrase(status)}

    def unsuccessful_body(self, message: str) -> object:
        return {"success": False, "detail": message}

    def not_found(self, request: Request) -> Response:
        return json_reply({"detail": "Not Found"}, 404)

    def invalidate_sessions(self) -> None:
        """Forget every issued token or session."""

    def change_password(self, password: str) -> None:
        """A new admin password; as on the real panels, it ends every session and token."""
        with self._lock:
            self.credentials = dataclasses.replace(self.credentials, password=password)
        self.invalidate_sessions()

    def issued_tokens(self) -> list[str]:
        """Every token, session id or CSRF token ever issued."""
        return []

    # -- shared machinery
    def handle(self, request: Request) -> Response:
        self.count("requests")
        self.pause(self.latency_s)
        self._paused.seconds = 0.0
        self._paused.users = 0
        began = time.perf_counter()
        self._paused.drip_s = 0.0
        response = self.router.route(request) or self.not_found(request)
        self._charge(self._paused.users)
        if self._paused.drip_s and response is not DISCONNECT:
            response = dataclasses.replace(response, drip_s=self._paused.drip_s)
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

    def serialized(self, users: int) -> None:
        """Note that this request's reply carries `users` user objects."""
        if users:
            self._paused.users = getattr(self._paused, "users", 0) + users
            with self._lock:
                self._counts["users_serialized"] += users

    def _charge(self, users: int) -> None:
        """Spend (or only count) the panel's work for this request, one request at a time."""
        cost = self.cost
        seconds = cost.seconds(users)
        if seconds <= 0:
            return
        with self._lock:
            self._stats = dataclasses.replace(self._stats, panel_s=self._stats.panel_s + seconds)
        if not cost.sleep:
            return
        if cost.serialized:
            with self._cpu:
                self.pause(seconds)
        else:
            self.pause(seconds)

    def guard(self, handler: Handler) -> Handler:
        def guarded(request: Request, params: Mapping[str, str]) -> Response:
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
            self._counts = dict.fromkeys(COUNT_NAMES, 0)
            self._seen.clear()
            self._written.clear()
            in_flight = self._stats.in_flight
            self._stats = ServerStats(in_flight=in_flight, max_in_flight=in_flight)

    def seen_usernames(self) -> list[str]:
        with self._lock:
            return list(self._seen)

    def written_usernames(self) -> list[str]:
        with self._lock:
            return list(self._written)

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

    def set_write_fault(self, username: str, fault: Fault | None) -> None:
        with self._lock:
            if fault is None:
                self._write_faults.pop(username, None)
            else:
                self._write_faults[username] = fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._write_faults.clear()
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

    def begin_page(self, page: int) -> Response | None:
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

    def exactly(self, names: tuple[str, ...], wanted: Iterable[str]) -> tuple[str, ...]:
        """The `wanted` names that are among `names`, in `names`' order (an exact IN filter)."""
        with self._lock:
            cached = self._indexes.get("")
        if cached is None or cached[0] is not names:
            cached = (names, {name: index for index, name in enumerate(names)})
            with self._lock:
                self._indexes[""] = cached
        index = cached[1]
        return tuple(sorted((name for name in set(wanted) if name in index), key=index.__getitem__))

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
                append(dumps(overrides[name]))
                continue
            hit = cache.get(name)
            if hit is not None and hit[0] is user and hit[1] == user_id:
                append(hit[2])
                continue
            text = dumps(render(user, user_id))
            cache[name] = (user, user_id, text)
            append(text)
        self.serialized(len(texts))
        return texts

    def set_login_fault(self, fault: Fault | None) -> None:
        with self._lock:
            self._login_fault = fault

    def login_fault_reply(self) -> Response | None:
        """The login fault's reply, or None to log in normally."""
        with self._lock:
            fault = self._login_fault
        return None if fault is None else self._apply(fault)

    def user_reply(
        self,
        username: str,
        render: Callable[[EmulatedUser], Response],
        not_found: Callable[[str], Response] | None = None,
    ) -> Response:
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
        if user is not None:
            self.serialized(1)
            return render(user)
        return (not_found or self.user_not_found)(username)

    # -- writes
    def write_fault_reply(self, *usernames: str) -> Response | None:
        """Note a write to `usernames`; the first one's write fault reply, or None.

        A fault that only delays is waited out here, and then None is returned
        so that the write goes ahead.
        """
        with self._lock:
            self._written.extend(usernames)
            fault = next(
                (self._write_faults[n] for n in usernames if n in self._write_faults), None
            )
        return None if fault is None else self._apply(fault)

    def write_reply(self, username: str, write: Callable[[EmulatedUser], Response]) -> Response:
        """A single-user write route's reply: counted, then fault, not-found or `write(user)`."""
        self.count("writes")
        faulted = self.write_fault_reply(username)
        if faulted is not None:
            return faulted
        user = self.users.get(username)
        return self.user_not_found(username) if user is None else write(user)

    def _apply(self, fault: Fault) -> Response | None:
        self.pause(fault.delay_s)
        if fault.drip_s:
            self._paused.drip_s = fault.drip_s  # `handle` slows this request's reply
        if fault.disconnect:
            return DISCONNECT
        status = 200 if fault.status is None else fault.status
        if fault.raw_body is not None:
            raw = fault.raw_body.encode() if isinstance(fault.raw_body, str) else fault.raw_body
            return Response(status, raw, fault.content_type or "text/html; charset=utf-8")
        if fault.json_body is not UNSET:
            return json_reply(fault.json_body, status)
        if fault.success_false is not None:
            return json_reply(self.unsuccessful_body(fault.success_false), status)
        if fault.status is not None:
            return json_reply(self.error_body(fault.status), fault.status)
        return None
