"""The PasarGuard emulator (v5): Marzban's routes with PasarGuard's shapes, API keys
(`X-Api-Key`), and admins that the panel limits itself.

From `PasarGuard/panel` v5.2.1: `UserResponse` carries `id`, an ISO `expire`,
`lifetime_used_traffic` and `admin: {id, username}`; `PUT /api/user/{u}`
leaves omitted fields alone; `GET /api/users` builds no share links and takes
exact `username`/`usernames` filters; `GET /api/admins?usernames=` lists admins
with `status` (`active`, `disabled`, `limited`) and their role's
`disconnect_users_when_*` flags. A limited or disabled admin whose role
disconnects users has its users removed from the nodes, while each user's
own `status` stays `active`.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
from collections.abc import Mapping
from typing import Any, Final

from usage_sandbox.emulator.base import (
    CREATED_AT,
    MARZBAN_SORTS,
    Request,
    Response,
    Router,
    json_array,
    json_reply,
    json_text_reply,
)
from usage_sandbox.emulator.marzban import BearerApp, query_ints
from usage_sandbox.emulator.users import EmulatedUser, stable_uuid

ADMIN_STATUSES: Final = ("active", "disabled", "limited")


def credentials_refused() -> Response:
    """401 `Could not validate credentials`: a missing, bad or expired token or key alike."""
    return json_reply(
        {"detail": "Could not validate credentials"}, 401, ("WWW-Authenticate", "Bearer")
    )


# `UserModify.status`: limited and expired are the panel's to set.
MODIFY_STATUSES: Final = ("active", "disabled", "on_hold")
# The validator's refusal of any other status, verbatim from v5.2.1 (a Python set's repr).
STATUS_REFUSAL: Final = (
    "Value error, ('status must be in', {<UserStatus.active: 'active'>, "
    "<UserStatus.on_hold: 'on_hold'>, <UserStatus.disabled: 'disabled'>})"
)
# `UserSortOption`: Marzban's keys plus `edit_at` and `online_at`, each also with `-`.
SORTS: Final = (*MARZBAN_SORTS, "edit_at", "online_at")


@dataclasses.dataclass(frozen=True)
class EmulatedAdmin:
    """A PasarGuard admin: its status and its role's disconnect flags."""

    username: str
    id: int
    status: str = "active"
    disconnect_when_limited: bool = True
    disconnect_when_disabled: bool = True

    @property
    def disconnects_users(self) -> bool:
        """True when the panel has removed this admin's users from the nodes."""
        if self.status == "limited":
            return self.disconnect_when_limited
        if self.status == "disabled":
            return self.disconnect_when_disabled
        return False


class AdminBook:
    """The panel's admins and which admin owns each user (the login admin by default)."""

    def __init__(self, login_admin: str) -> None:
        self.login_admin = login_admin
        self._lock = threading.Lock()
        self._admins = {login_admin: EmulatedAdmin(login_admin, 1)}
        self._owners: dict[str, str] = {}
        # False: the login admin lacks the `admins: read` permission (403 on `/api/admins`).
        self.readable = True
        # Bumped on every change, so that cached list items showing an owner are rebuilt.
        self.version = 0

    def set_admin(
        self,
        username: str,
        status: str = "active",
        *,
        disconnect_when_limited: bool = True,
        disconnect_when_disabled: bool = True,
    ) -> None:
        """Add or change an admin."""
        if status not in ADMIN_STATUSES:
            raise ValueError(f"status must be one of {ADMIN_STATUSES}")
        with self._lock:
            known = self._admins.get(username)
            admin_id = known.id if known else len(self._admins) + 1
            self._admins[username] = EmulatedAdmin(
                username, admin_id, status, disconnect_when_limited, disconnect_when_disabled
            )
            self.version += 1

    def set_owner(self, user: str, admin: str) -> None:
        """Give `user` to `admin` (added as an active admin when new)."""
        with self._lock:
            missing = admin not in self._admins
        if missing:
            self.set_admin(admin)
        with self._lock:
            self._owners[user] = admin
            self.version += 1

    def owner_of(self, user: str) -> EmulatedAdmin:
        """The admin who owns `user`."""
        with self._lock:
            return self._admins[self._owners.get(user, self.login_admin)]

    def get(self, username: str) -> EmulatedAdmin | None:
        """The admin of this name, or None."""
        with self._lock:
            return self._admins.get(username)

    def all(self) -> list[EmulatedAdmin]:
        """Every admin, by id."""
        with self._lock:
            return sorted(self._admins.values(), key=lambda admin: admin.id)


class PasarGuardApp(BearerApp):
    """PasarGuard: `/api/admin/token`, `/api/user/{username}` (GET, PUT), `/api/users`,
    `/api/admin` and `/api/admins`."""

    kind = "pasarguard"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.admins = AdminBook(self.credentials.username)

    def add_routes(self, router: Router) -> None:
        router.add("POST", "/api/admin/token", self.issue_token)
        router.add("GET", "/api/users", self.guard(self.list_users))
        router.add("GET", "/api/user/{username}", self.guard(self.get_user))
        router.add("PUT", "/api/user/{username}", self.guard(self.modify_user))
        router.add("GET", "/api/admin", self.guard(self.current_admin))
        router.add("GET", "/api/admins", self.guard(self.list_admins))

    def issue_token(self, request: Request, params: Mapping[str, str]) -> Response:
        """As Marzban's, but a disabled admin is refused with 403."""
        admin = self.admins.get(self.credentials.username)
        if admin is not None and admin.status == "disabled":
            self.count("logins")
            self.count("failed_logins")
            return json_reply({"detail": "your account has been disabled"}, 403)
        return super().issue_token(request, params)

    def authenticate(self, request: Request) -> Response | None:
        """A valid bearer token, else an `X-Api-Key` (v5.1); a disabled admin gets 403.

        A refused token is no refusal while a valid API key comes along, as in
        `_get_admin_from_request_credentials`.
        """
        refusal = super().authenticate(request)
        if refusal is not None and refusal.status == 401:
            # No bearer token at all is the same 401 as a bad one (no "Not authenticated").
            refusal = credentials_refused()
        key = (request.header("X-Api-Key") or "").strip()
        if refusal is not None and key:
            valid = secrets.compare_digest(key.encode(), self.credentials.api_key.encode())
            refusal = None if valid else credentials_refused()
        if refusal is not None:
            return refusal
        admin = self.admins.get(self.admins.login_admin)
        if admin is not None and admin.status == "disabled":
            return json_reply({"detail": "your account has been disabled"}, 403)
        return None

    def error_body(self, status: int) -> object:
        if status == 503:
            return {"detail": "Database temporarily unavailable"}
        return super().error_body(status)

    def render(self, user: EmulatedUser) -> dict[str, object]:
        """A single user's reply, its subscription URL built (listings leave it empty)."""
        body = pasarguard_user(user, self.users.id_of(user.username), self.admins)
        body["subscription_url"] = f"/sub/{stable_uuid(user.username).hex}"
        return body

    def get_user(self, request: Request, params: Mapping[str, str]) -> Response:
        return self.user_reply(params["username"], lambda user: json_reply(self.render(user)))

    def modify_user(self, request: Request, params: Mapping[str, str]) -> Response:
        """`PUT /api/user/{username}`: fields left out or null are not modified."""
        username = params["username"]
        self.count("writes")
        faulted = self.write_fault_reply(username)
        if faulted is not None:
            return faulted
        try:
            body = request.json()
        except json.JSONDecodeError as error:
            # FastAPI names the failing position as the field: `{` is `{"1": ...}`.
            return json_reply({"detail": {str(error.pos): "JSON decode error"}}, 422)
        except ValueError:
            return json_reply({"detail": {"0": "JSON decode error"}}, 422)
        if not isinstance(body, dict):
            return json_reply({"detail": {"body": "Input should be a valid dictionary"}}, 422)
        status = body.get("status")
        if status is not None and status not in MODIFY_STATUSES:
            return json_reply({"detail": {"status": STATUS_REFUSAL}}, 422)
        if self.users.get(username) is None:
            return self.user_not_found(username)
        try:
            user = self.users.modify(
                username,
                lambda u: (
                    u if status is None else dataclasses.replace(u, enabled=status != "disabled")
                ),
            )
        except KeyError:
            return self.user_not_found(username)
        return json_reply(self.render(user))

    def list_users(self, request: Request, params: Mapping[str, str]) -> Response:
        """`{users, total}`: exact `username`/`usernames` filters, `offset`/`limit`, `sort`.

        A negative `offset` or `limit` is no offset or no limit, as the panel
        on SQLite answers; an unknown sort key is a 400.
        """
        self.count("list_pages")
        bounds = query_ints(request, "offset", "limit")
        if isinstance(bounds, Response):
            return bounds
        offset, limit = max(bounds.get("offset", 0), 0), max(bounds.get("limit", 0), 0)
        keys = [key for key in (request.param("sort") or "").split(",") if key]
        for key in keys:
            if key.removeprefix("-") not in SORTS:
                return json_reply(
                    {"detail": f"Value error, '{key}' is not a valid UserSortOption"}, 400
                )
        faulted = self.begin_page(offset // limit + 1 if limit else 1)
        if faulted is not None:
            return faulted
        order = "-username" if keys and keys[0] == "-username" else "username" if keys else "id"
        names = self.listed_names(order)
        exact = {*request.query.get("username", []), *request.query.get("usernames", [])}
        if exact:
            names = tuple(name for name in names if name in exact)
        page = names[offset : offset + limit] if limit else names[offset:]
        items = self.fragments(
            self.users.entries(page), f"pasarguard-{self.admins.version}", self._listed
        )
        return json_text_reply('{"users":' + json_array(items) + f',"total":{len(names)}}}')

    def _listed(self, user: EmulatedUser, user_id: int) -> dict[str, object]:
        return pasarguard_user(user, user_id, self.admins)

    def current_admin(self, request: Request, params: Mapping[str, str]) -> Response:
        """`GET /api/admin`: the logged-in admin's `AdminDetails`."""
        admin = self.admins.get(self.admins.login_admin)
        if admin is None:
            return json_reply({"detail": "Admin not found"}, 404)
        return json_reply(admin_details(admin))

    def list_admins(self, request: Request, params: Mapping[str, str]) -> Response:
        """`GET /api/admins`: `usernames` exact, `username` a substring, `offset`/`limit`."""
        if not self.admins.readable:
            return json_reply({"detail": "Permission denied: admins.read"}, 403)
        bounds = query_ints(request, "offset", "limit")
        if isinstance(bounds, Response):
            return bounds
        admins = self.admins.all()
        exact = request.query.get("usernames")
        if exact:
            admins = [admin for admin in admins if admin.username in exact]
        like = (request.param("username") or "").lower()
        if like:
            admins = [admin for admin in admins if like in admin.username.lower()]
        offset, limit = max(bounds.get("offset", 0), 0), max(bounds.get("limit", 0), 0)
        page = admins[offset : offset + limit] if limit else admins[offset:]
        counts = {status: sum(a.status == status for a in admins) for status in ADMIN_STATUSES}
        return json_reply(
            {"admins": [admin_details(a) for a in page], "total": len(admins), **counts}
        )


def admin_details(admin: EmulatedAdmin) -> dict[str, object]:
    """An `AdminDetails` as `GET /api/admins` sends it (v5.2.1)."""
    return {
        "id": admin.id,
        "username": admin.username,
        "telegram_id": None,
        "discord_webhook": None,
        "sub_domain": None,
        "profile_title": None,
        "support_url": None,
        "custom_variables": [],
        "notification_enable": None,
        "total_users": 0,
        "used_traffic": 0,
        "data_limit": None,
        "status": admin.status,
        "sub_template": None,
        "lifetime_used_traffic": 0,
        "note": None,
        # The built-in roles: `owner` (1) for the first admin, `operator` (3) for the others.
        "role": {
            "id": 1 if admin.id == 1 else 3,
            "name": "owner" if admin.id == 1 else "operator",
            "is_owner": admin.id == 1,
            "disabled_when_limited": False,
            "disconnect_users_when_limited": admin.disconnect_when_limited,
            "disconnect_users_when_disabled": admin.disconnect_when_disabled,
        },
        "permission_overrides": None,
        "is_disabled": admin.status == "disabled",
        "is_limited": admin.status == "limited",
    }


def pasarguard_user(user: EmulatedUser, user_id: int, admins: AdminBook) -> dict[str, object]:
    """A PasarGuard `UserResponse` (no share links: `load_sub` is off)."""
    key = stable_uuid(user.username)
    owner = admins.owner_of(user.username)
    if not user.enabled:
        status = "disabled"
    elif user.data_limit and user.used >= user.data_limit:
        status = "limited"
    else:
        status = "active"
    return {
        "id": user_id,
        "username": user.username,
        "status": status,
        "used_traffic": user.used,
        "lifetime_used_traffic": user.lifetime,
        "data_limit": user.data_limit or None,
        "data_limit_reset_strategy": "no_reset",
        "expire": None,
        "note": user.note,
        "on_hold_expire_duration": None,
        "on_hold_timeout": None,
        "group_ids": [1],
        "hwid_limit": None,
        "auto_delete_in_days": None,
        "next_plan": None if user.next_plan is None else dict(user.next_plan),
        "proxy_settings": {"vless": {"id": str(key), "flow": ""}},
        "created_at": CREATED_AT,
        "edit_at": None,
        "online_at": None,
        "subscription_url": "",  # `load_sub` is off in listings
        "admin": {"id": owner.id, "username": owner.username},
    }
