"""The Eylandoo emulator: `X-API-KEY`, three single-user shapes and five `list_all` shapes,
`POST /api/v1/users/{username}/toggle` and `PUT /api/v1/users/{username}`."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, Final

from usage_sandbox.emulator.base import (
    CREATED_AT,
    SUB_ADMINS,
    EylandooListShape,
    EylandooShape,
    PanelApp,
    Request,
    Response,
    Router,
    json_array,
    json_reply,
    json_text_reply,
    phrase,
)
from usage_sandbox.emulator.users import EmulatedUser


class EylandooApp(PanelApp):
    """`X-API-KEY` on every call; flat, `userInfo` or old `data` user shapes.

    Writes: `POST .../toggle` flips the state (f80809c and the 2026-07 docs'
    reply); `PUT .../{username}` honours `is_disabled` only with `set_state`
    (documented from 2026-07-15), and otherwise answers as v3.0.0 did while
    ignoring it.
    """

    kind = "eylandoo"

    def __init__(
        self,
        *args: Any,
        shape: EylandooShape = "flat",
        list_shape: EylandooListShape = "users",
        set_state: bool = True,
        **kwargs: Any,
    ) -> None:
        self.default_shape: EylandooShape = shape
        self.list_shape: EylandooListShape = list_shape
        self.set_state = set_state
        self._shapes: dict[str, EylandooShape] = {}
        super().__init__(*args, **kwargs)

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/api/v1/status", self.status)
        router.add("GET", "/api/v1/users/list_all", self.guard(self.list_all))
        router.add("GET", "/api/v1/users/{username}", self.guard(self.get_user))
        router.add("PUT", "/api/v1/users/{username}", self.guard(self.update_user))
        router.add("POST", "/api/v1/users/{username}/toggle", self.guard(self.toggle_user))

    def set_shape(self, username: str, shape: EylandooShape | None) -> None:
        with self._lock:
            if shape is None:
                self._shapes.pop(username, None)
            else:
                self._shapes[username] = shape

    def authenticate(self, request: Request) -> Response | None:
        key = request.header("X-API-KEY")
        if not key:
            return json_reply({"success": False, "message": "API key is missing"}, 401)
        if not secrets.compare_digest(key.encode(), self.credentials.api_key.encode()):
            return json_reply({"success": False, "message": "Invalid or inactive API key"}, 401)
        return None

    def user_not_found(self, username: str) -> Response:
        return json_reply({"success": False, "message": "User not found or permission denied"}, 404)

    def error_body(self, status: int) -> object:
        message = "An internal error occurred." if status >= 500 else phrase(status)
        return {"success": False, "message": message}

    def unsuccessful_body(self, message: str) -> object:
        return {"success": False, "message": message}

    def not_found(self, request: Request) -> Response:
        return json_reply({"success": False, "message": "Not found"}, 404)

    def status(self, request: Request, params: Mapping[str, str]) -> Response:
        return json_reply({"success": True, "message": "Panel is online", "timestamp": CREATED_AT})

    def list_all(self, request: Request, params: Mapping[str, str]) -> Response:
        """Everyone at once, in the configured `list_shape` (no paging, no parameters)."""
        self.count("list_pages")
        faulted = self.begin_page(1)
        if faulted is not None:
            return faulted
        names = self.listed_names()
        shape = self.list_shape
        if shape == "users":
            return json_text_reply('{"success":true,"users":' + self._items(names, "flat") + "}")
        if shape == "data.users":
            users = self.users.entries(names)
            active = sum(user.enabled for user, _ in users)
            return json_text_reply(
                '{"status":"success","data":{"users":'
                + self._items(names, "old")
                + f',"total_count":{len(names)},"active_count":{active},"online_count":0}}}}'
            )
        # Main-key shapes: every fourth user is the main admin's, the rest are
        # spread over the sub-admins ("sub_admins": no main-admin users at all).
        kind = "updown" if shape == "main_admin_users" else "flat"
        groups = SUB_ADMINS if shape == "sub_admins" else SUB_ADMINS + 1
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
        return json_text_reply(head + ',"sub_admins":' + json_array(subs) + "}")

    def _items(self, names: Sequence[str], kind: str) -> str:
        return json_array(self.fragments(self.users.entries(names), kind, _EYLANDOO_ITEMS[kind]))

    def get_user(self, request: Request, params: Mapping[str, str]) -> Response:
        username = params["username"]
        with self._lock:
            shape = self._shapes.get(username, self.default_shape)
        return self.user_reply(username, lambda user: json_reply(_eylandoo_reply(user, shape)))

    def toggle_user(self, request: Request, params: Mapping[str, str]) -> Response:
        """Flip the user's state (not idempotent) and say which way it went."""
        username = params["username"]

        def write(_: EmulatedUser) -> Response:
            try:
                user = self.users.modify(
                    username, lambda u: dataclasses.replace(u, enabled=not u.enabled)
                )
            except KeyError:
                return self.user_not_found(username)
            message = "User enabled" if user.enabled else "User disabled"
            return json_reply({"success": True, "message": message, "is_active": user.enabled})

        return self.write_reply(username, write)

    def update_user(self, request: Request, params: Mapping[str, str]) -> Response:
        """`PUT` with a JSON body: `is_disabled` sets the state when `set_state` is on.

        Without `set_state` (a panel older than 2026-07-15) the reply still
        says the user was updated, and `is_disabled` is ignored. Other fields
        are accepted and ignored. An empty or non-object body is refused.
        """
        username = params["username"]
        self.count("writes")
        faulted = self.write_fault_reply(username)
        if faulted is not None:
            return faulted
        try:
            body = request.json() if request.body else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body:
            return json_reply(
                {"success": False, "message": "Request body must be JSON and not empty"}, 400
            )
        if self.users.get(username) is None:
            return self.user_not_found(username)
        if not self.set_state:
            return json_reply({"success": True, "message": "User updated successfully."})
        disabled = body.get("is_disabled")
        if disabled is not None and not isinstance(disabled, bool):
            return json_reply({"success": False, "message": "is_disabled must be a boolean"}, 400)
        user: EmulatedUser | None = self.users.get(username)
        if disabled is not None:
            with suppress(KeyError):
                user = self.users.set_enabled(username, not disabled)
        if user is None:
            return self.user_not_found(username)
        return json_reply(
            {
                "success": True,
                "message": "User updated successfully",
                "user": _eylandoo_fields(user),
            }
        )


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
        "created_at": CREATED_AT,
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
