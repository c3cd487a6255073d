"""The Remnawave emulator (backend 3.3): API tokens and admin logins, users by username,
the `/api/users/stream` keyset listing, and the enable, disable and reset-traffic actions.

The shapes and refusals are those of remnawave/backend 3.3.2: every reply is
`{"response": ...}`; errors are `{timestamp, path, message, errorCode}`, a
failed validation `{statusCode: 400, message: "Validation failed", errors}`, a
missing or bad bearer token Nest's `{"message": "Unauthorized", "statusCode": 401}`.
Requests that do not come through an HTTPS reverse proxy (no `X-Forwarded-For`,
no `X-Forwarded-Proto: https`) have their connection closed without a reply, as
the production backend does. Counters are sent as JavaScript numbers, so values
above 2^53 lose their low bits, as `Number(bigint)` does.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from usage_sandbox.emulator.base import (
    CREATED_AT,
    DISCONNECT,
    Handler,
    PanelApp,
    Request,
    Response,
    Router,
    json_array,
    json_reply,
    json_text_reply,
)
from usage_sandbox.emulator.users import EmulatedUser, stable_uuid

# What changed between the versions emulated: 2.3 nested the counters in
# `userTraffic`, 2.8 added `/api/users/stream`, 3.0 routed actions by numeric id
# (the user's `uuid` before, which 3.x no longer sends).
REMNAWAVE_VERSIONS: Final = ("2.2", "2.8", "3.3")
STREAM_DEFAULT_SIZE: Final = 250
STREAM_MAX_SIZE: Final = 1000
BROWSER_HEADER: Final = "X-Remnawave-Client-Type"
ADMIN_BEARER_REFUSAL: Final = (
    "For API requests you must create own API-token in the admin dashboard."
)
# errors.ts: (errorCode, message, HTTP status).
USER_NOT_FOUND: Final = ("A025", "User not found", 404)
NOT_FOUND_BY_UNIQUE: Final = ("A063", "User with specified params not found", 404)
ALREADY_DISABLED: Final = ("A029", "User already disabled", 400)
ALREADY_ENABLED: Final = ("A030", "User already enabled", 400)
GET_ALL_USERS_ERROR: Final = ("A024", "Get all users error", 500)
FORBIDDEN: Final = ("A068", "Forbidden", 403)


def js_number(value: int) -> int:
    """`value` as JavaScript's `Number(bigint)` sends it: exact only up to 2^53."""
    return value if value <= 2**53 else int(float(value))


def status_of(user: EmulatedUser) -> str:
    """`DISABLED`, `LIMITED` (the traffic limit reached) or `ACTIVE`."""
    if not user.enabled:
        return "DISABLED"
    if user.data_limit and user.used >= user.data_limit:
        return "LIMITED"
    return "ACTIVE"


def user_uuid(username: str) -> str:
    """The 1.x-2.x `uuid` of a user (its id in the action routes before 3.0)."""
    return str(stable_uuid("remnawave-user:" + username))


def remnawave_user(user: EmulatedUser, user_id: int, version: str = "3.3") -> dict[str, object]:
    """A `GetFullUserResponseModel` of `version`: 3.x by default, traffic in `userTraffic`."""
    key = stable_uuid(user.username)
    short = key.hex[:16]
    traffic: dict[str, object] = {
        "usedTrafficBytes": js_number(user.used),
        "lifetimeUsedTrafficBytes": js_number(user.lifetime),
        "onlineAt": None,
        "firstConnectedAt": None,
        "lastConnectedNodeUuid": None,
    }
    body = _body_3x(user, user_id, key.hex, short, traffic)
    if version == "3.3":
        return body
    body = {"uuid": user_uuid(user.username), **body}
    if version == "2.2":
        del body["id"], body["userTraffic"]
        body.update(traffic)
    return body


def _body_3x(
    user: EmulatedUser, user_id: int, key: str, short: str, traffic: dict[str, object]
) -> dict[str, object]:
    return {
        "id": user_id,
        "shortUuid": short,
        "username": user.username,
        "status": status_of(user),
        "trafficLimitBytes": js_number(user.data_limit),
        "trafficLimitStrategy": "NO_RESET",
        "expireAt": "2099-01-01T00:00:00.000Z",
        "telegramId": None,
        "email": None,
        "description": user.note,
        "tag": None,
        "hwidDeviceLimit": None,
        "externalSquadUuid": None,
        "trojanPassword": key[:24],
        "vlessUuid": str(uuid.UUID(key)),
        "ssPassword": key[8:32],
        "lastTriggeredThreshold": 0,
        "subRevokedAt": None,
        "lastTrafficResetAt": None,
        "createdAt": CREATED_AT + ".000Z",
        "updatedAt": CREATED_AT + ".000Z",
        "subscriptionUrl": f"https://sub.example.com/{short}",
        "activeInternalSquads": [
            {"uuid": "8f2b1c3e-0000-4000-8000-000000000001", "name": "Default-Squad"}
        ],
        "userTraffic": traffic,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def coded_error(request: Request, error: tuple[str, str, int]) -> Response:
    """The backend's `HttpExceptionFilter` body for an `errors.ts` entry."""
    code, message, status = error
    body = {"timestamp": _now(), "path": request.path, "message": message, "errorCode": code}
    return json_reply(body, status)


def validation_failed(field: str, code: str, message: str) -> Response:
    """nestjs-zod's 400 for a query or path parameter that fails its schema."""
    issue = {"code": code, "path": [field], "message": message}
    return json_reply({"statusCode": 400, "message": "Validation failed", "errors": [issue]}, 400)


def _number(raw: str) -> float | None:
    """`z.coerce.number()`: JavaScript's `Number(raw)`, None for NaN."""
    text = raw.strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


class RemnawaveApp(PanelApp):
    """Remnawave 3.3: `/api/auth/login`, `/api/users/by-username/{u}`, `/api/users/stream`,
    the offset listing `/api/users` (with `total`), and
    `POST /api/users/{id}/actions/enable|disable|reset-traffic`.

    `version` "2.8" routes the actions by the user's `uuid` (sent in every user
    object); "2.2" also has no stream (a 404), flat counters and no token scopes.
    """

    kind = "remnawave"

    def __init__(self, *args: Any, version: str = "3.3", **kwargs: Any) -> None:
        if version not in REMNAWAVE_VERSIONS:
            raise ValueError(f"remnawave_version must be one of {REMNAWAVE_VERSIONS}")
        self.version = version
        # The API token's scopes (`*`: everything), as made in the dashboard.
        self.api_scopes: tuple[str, ...] = ("*",)
        self._admin_tokens: set[str] = set()
        self._issued: list[str] = []
        self._ids_cache: tuple[tuple[str, ...], tuple[str, ...], list[int]] | None = None
        self._ids_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def add_routes(self, router: Router) -> None:
        router.add("POST", "/api/auth/login", self.log_in)
        router.add("GET", "/api/users", self.scoped("list", "read", self.list_users))
        if self.version != "2.2":
            router.add("GET", "/api/users/stream", self.scoped("stream", "read", self.stream_users))
        router.add(
            "GET",
            "/api/users/by-username/{username}",
            self.scoped("by-username", "read", self.get_user),
        )
        for action in ("enable", "disable", "reset-traffic"):
            handler = self.scoped(action, "write", self._action(action))
            router.add("POST", f"/api/users/{{user_id}}/actions/{action}", handler)

    def scoped(self, slug: str, kind: str, handler: Handler) -> Handler:
        """`guard(handler)`, refusing an API token whose scopes do not cover the route (2.8+).

        `ScopesGuard`: `*`, `users:*`, `users:<read|write>` or `users:<slug>` covers
        it; an admin's token needs no scope.
        """

        def checked(request: Request, params: Mapping[str, str]) -> Response:
            _, _, token = (request.header("Authorization") or "").partition(" ")
            api = secrets.compare_digest(token.strip().encode(), self.credentials.api_key.encode())
            wanted = {"*", "users:*", f"users:{kind}", f"users:{slug}"}
            if api and self.version != "2.2" and not wanted & set(self.api_scopes):
                self.count("rejected")
                body = {"message": "Forbidden resource", "error": "Forbidden", "statusCode": 403}
                return json_reply(body, 403)
            return handler(request, params)

        return self.guard(checked)

    # -- what every request meets first
    def handle(self, request: Request) -> Response:
        """Close the connection of a request that did not come through an HTTPS proxy."""
        proxied = bool(request.header("X-Forwarded-For"))
        https = request.header("X-Forwarded-Proto") == "https"
        if not (proxied and https):
            self.count("requests")
            self.count("rejected")
            return DISCONNECT
        return super().handle(request)

    def authenticate(self, request: Request) -> Response | None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return json_reply({"message": "Unauthorized", "statusCode": 401}, 401)
        if secrets.compare_digest(token.encode(), self.credentials.api_key.encode()):
            return None
        with self._lock:
            admin = token in self._admin_tokens
        if not admin:
            return json_reply({"message": "Unauthorized", "statusCode": 401}, 401)
        if request.header(BROWSER_HEADER) != "browser":
            body = {"message": ADMIN_BEARER_REFUSAL, "error": "Forbidden", "statusCode": 403}
            return json_reply(body, 403)
        return None

    def error_body(self, status: int) -> object:
        return {"timestamp": _now(), "path": "/api", "message": "Error", "errorCode": "E000"}

    def user_not_found(self, username: str) -> Response:
        body = {"timestamp": _now(), "path": "/api/users", "message": USER_NOT_FOUND[1]}
        return json_reply({**body, "errorCode": USER_NOT_FOUND[0]}, 404)

    def not_found(self, request: Request) -> Response:
        body = {
            "message": f"Cannot {request.method} {request.path}",
            "error": "Not Found",
            "statusCode": 404,
        }
        return json_reply(body, 404)

    def invalidate_sessions(self) -> None:
        with self._lock:
            self._admin_tokens.clear()

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    # -- routes
    def log_in(self, request: Request, params: Mapping[str, str]) -> Response:
        """JSON `{username, password}`; every refusal is a 403 (`A068`), as the panel's."""
        self.count("logins")
        faulted = self.login_fault_reply()
        if faulted is not None:
            self.count("failed_logins")
            return faulted
        try:
            body = request.json()
        except ValueError:
            body = None
        fields = body if isinstance(body, dict) else {}
        username, password = fields.get("username"), fields.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            self.count("failed_logins")
            field = "username" if not isinstance(username, str) else "password"
            return validation_failed(field, "invalid_type", "Invalid input: expected string")
        if not self.credentials.accepts(username, password):
            self.count("failed_logins")
            return coded_error(request, FORBIDDEN)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._admin_tokens.add(token)
            self._issued.append(token)
        return json_reply({"response": {"accessToken": token}})

    def get_user(self, request: Request, params: Mapping[str, str]) -> Response:
        return self.user_reply(
            params["username"],
            lambda user: json_reply(
                {"response": self.render(user, self.users.id_of(user.username))}
            ),
            lambda _: coded_error(request, NOT_FOUND_BY_UNIQUE),
        )

    def list_users(self, request: Request, params: Mapping[str, str]) -> Response:
        """The offset listing: `start` (default 0), `size` 1..1000 (default 25), and `total`."""
        self.count("list_pages")
        raw_start, raw_size = request.param("start"), request.param("size")
        start = 0.0 if raw_start is None else _number(raw_start)
        size = 25.0 if raw_size is None else _number(raw_size)
        if start is None or size is None:
            field = "start" if start is None else "size"
            return validation_failed(field, "invalid_type", "Invalid input: expected number")
        if not 1 <= size <= STREAM_MAX_SIZE:
            return validation_failed("size", "too_big", "Too big: expected number to be <=1000")
        names, _ = self._listed_ids()
        first = max(0, int(start))
        listed = self.users.entries(names[first : first + int(size)])
        items = self.fragments(listed, "remnawave", self.render)
        return json_text_reply(
            '{"response":{"users":' + json_array(items) + f',"total":{len(names)}}}}}'
        )

    def stream_users(self, request: Request, params: Mapping[str, str]) -> Response:
        """Users with `id > cursor` in id order, `size` (1..1000, default 250) a page.

        The page number the listing hooks and faults see is the cursor's place
        in the listing divided by `size`, plus one.
        """
        self.count("list_pages")
        raw_size = request.param("size")
        size = float(STREAM_DEFAULT_SIZE) if raw_size is None else _number(raw_size)
        if size is None:
            return validation_failed("size", "invalid_type", "Invalid input: expected number")
        if size < 1:
            return validation_failed("size", "too_small", "Too small: expected number to be >=1")
        if size > STREAM_MAX_SIZE:
            return validation_failed("size", "too_big", "Too big: expected number to be <=1000")
        if size != int(size):
            return coded_error(request, GET_ALL_USERS_ERROR)  # `LIMIT 3.5` fails in the database
        raw_cursor = request.param("cursor")
        cursor = 0.0 if raw_cursor is None else _number(raw_cursor)
        if cursor is None:
            return validation_failed("cursor", "invalid_type", "Invalid input: expected number")
        names, ids = self._listed_ids()
        start = bisect.bisect_right(ids, cursor) if cursor else 0
        faulted = self.begin_page(start // int(size) + 1)
        if faulted is not None:
            return faulted
        names, ids = self._listed_ids()  # the listing hook may have changed the users
        start = bisect.bisect_right(ids, cursor) if cursor else 0
        chosen = names[start : start + int(size) + 1]
        more = len(chosen) > size
        listed = self.users.entries(chosen[: int(size)])
        items = self.fragments(listed, "remnawave", self.render)
        next_cursor = f'"{listed[-1][1]}"' if more and listed else "null"
        return json_text_reply(
            '{"response":{"users":'
            + json_array(items)
            + f',"nextCursor":{next_cursor},"hasMore":{"true" if more else "false"}}}}}'
        )

    def _listed_ids(self) -> tuple[tuple[str, ...], list[int]]:
        """The listed names in id order and their ids, cached while the names stand."""
        names = self.listed_names("id")
        with self._ids_lock:
            cached = self._ids_cache
        if cached is not None and cached[0] is names:
            return cached[1], cached[2]
        entries = self.users.entries(names)
        present = tuple(user.username for user, _ in entries)
        ids = [user_id for _, user_id in entries]
        with self._ids_lock:
            self._ids_cache = (names, present, ids)
        return present, ids

    def render(self, user: EmulatedUser, user_id: int) -> dict[str, object]:
        """The user object of the emulated version."""
        return remnawave_user(user, user_id, self.version)

    def _action(self, action: str) -> Callable[[Request, Mapping[str, str]], Response]:
        def handler(request: Request, params: Mapping[str, str]) -> Response:
            return self._act(request, params["user_id"], action)

        return handler

    def _act(self, request: Request, raw_id: str, action: str) -> Response:
        """One user action by numeric id (`numberParamSchema`: a positive number), 2.x by uuid."""
        if self.version == "3.3":
            number = _number(raw_id)
            if number is None or number <= 0:
                return validation_failed("userId", "invalid_type", "Invalid input: expected number")
            username = self._name_of(lambda name: self.users.id_of(name) == number)
        else:
            try:
                wanted = str(uuid.UUID(raw_id))
            except ValueError:
                return validation_failed("uuid", "invalid_format", "Invalid UUID")
            username = self._name_of(lambda name: user_uuid(name) == wanted)
        if username is None:
            self.count("writes")
            return coded_error(request, USER_NOT_FOUND)

        def write(user: EmulatedUser) -> Response:
            if action == "reset-traffic":
                changed = self.users.reset_counter(username)
            else:
                wanted = action == "enable"
                status = status_of(user)
                if not wanted and status == "DISABLED":
                    return coded_error(request, ALREADY_DISABLED)
                if wanted and status == "ACTIVE":
                    return coded_error(request, ALREADY_ENABLED)
                changed = self.users.modify(
                    username, lambda u: dataclasses.replace(u, enabled=wanted)
                )
            return json_reply({"response": self.render(changed, self.users.id_of(username))})

        return self.write_reply(username, write)

    def _name_of(self, matches: Callable[[str], bool]) -> str | None:
        return next((name for name in self.users.names() if matches(name)), None)
