"""The Hiddify emulator: admin API v2 under the admin proxy path.

From `hiddify/hiddify-panel` (`panel/commercial/restapi/v2/admin/`,
`models/user.py`, `auth.py`, `panel/common.py`):

- `GET <proxy>/api/v2/admin/user/` lists every user as a JSON array, unpaged;
  an admin with no users gets 404 "You have no user".
- `GET|PATCH <proxy>/api/v2/admin/user/<uuid>/`: the route only matches a
  uuid; anything else under the API is the panel's catch-all 500 with
  `{"msg": "404 Not Found: ..."}`, and a path outside the admin proxy path a
  400 "invalid request". Without its trailing slash Flask answers 308 with a
  `Location` that adds it. (Checked against hiddifypanel 10.80.11 on loopback.)
- `Hiddify-API-Key: <admin uuid>` authenticates; anything else is 403
  "Unathorized" (sic).
- Errors from `abort` are APIFlask's `{"detail": {}, "message": ...}` for a
  client that does not accept HTML, and `{"msg": ...}` for one that does
  (`Accept: */*` included); a 422 lists the fields that failed.
- `current_usage_GB` is the stored byte count divided by 2^30 (a float); a
  PATCH that carries it overwrites the usage, capped at 1,000,000 GiB.
  `usage_limit_GB` defaults to 1000: there is no unlimited.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Final

from usage_sandbox.emulator.base import (
    PanelApp,
    Request,
    Response,
    Router,
    json_array,
    json_reply,
    json_text_reply,
    phrase,
)
from usage_sandbox.emulator.users import EmulatedUser, stable_uuid

GIB: Final = 2**30
# `User.usage_limit` defaults to 1000 GiB; the setters cap both amounts at 1e6 GiB.
DEFAULT_LIMIT_GIB: Final = 1000
MAX_GIB: Final = 1_000_000
_UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
# `PatchUserSchema`'s fields (the UserSchema without `id`).
PATCH_FIELDS: Final = frozenset(
    {
        "uuid", "name", "usage_limit_GB", "package_days", "mode", "last_online", "start_date",
        "current_usage_GB", "last_reset_time", "comment", "added_by_uuid", "telegram_id",
        "ed25519_private_key", "ed25519_public_key", "wg_pk", "wg_pub", "wg_psk", "lang",
        "enable", "is_active",
    }
)  # fmt: skip
USERS = "/api/v2/admin/user/"
# Werkzeug's NotFound, as the panel's catch-all exception handler words it.
NOT_FOUND_MESSAGE = (
    "404 Not Found: The requested URL was not found on the server. If you entered the URL "
    "manually please check your spelling and try again."
)


class HiddifyApp(PanelApp):
    """Hiddify: the v2 admin user routes, keyed by uuid (the store's usernames)."""

    kind = "hiddify"

    def add_routes(self, router: Router) -> None:
        router.add("GET", USERS, self.guard(self.list_users))
        router.add("GET", USERS + "{uuid}/", self.guard(self.get_user))
        router.add("PATCH", USERS + "{uuid}/", self.guard(self.patch_user))
        router.add("GET", USERS + "{uuid}", self.add_slash)
        router.add("PATCH", USERS + "{uuid}", self.add_slash)

    # -- the panel's error shapes
    def abort(self, request: Request, status: int, message: str, detail: object = None) -> Response:
        """APIFlask's `abort`, shaped as `panel/common.py` sends it to this client."""
        if _accepts_html(request):
            return json_reply({"msg": message}, status)
        return json_reply(
            {"detail": detail if detail is not None else {}, "message": message}, status
        )

    def authenticate(self, request: Request) -> Response | None:
        if request.header("Hiddify-API-Key") != self.credentials.api_key:
            return self.abort(request, 403, "Unathorized")
        return None

    def error_body(self, status: int) -> object:
        if status >= 500:
            return {"msg": phrase(status)}
        return {"detail": {}, "message": phrase(status)}

    def not_found(self, request: Request) -> Response:
        """Under the admin API: the catch-all 500; elsewhere: 400 "invalid request"."""
        if request.path.startswith(self.prefix + "/api/"):
            return json_reply({"msg": NOT_FOUND_MESSAGE}, 500)
        return self.abort(request, 400, "invalid request")

    def user_not_found(self, username: str) -> Response:
        return json_reply({"detail": {}, "message": "User not found"}, 404)

    # -- routes
    def add_slash(self, request: Request, params: Mapping[str, str]) -> Response:
        """Flask's strict slashes: 308 to the same path with its trailing slash."""
        return Response(308, b"", "text/html", (("Location", request.path + "/"),))

    def get_user(self, request: Request, params: Mapping[str, str]) -> Response:
        key = params["uuid"]
        if not _UUID.match(key):
            return self.not_found(request)
        return self.user_reply(key.lower(), lambda user: json_reply(self.render(user)))

    def patch_user(self, request: Request, params: Mapping[str, str]) -> Response:
        """Change `enable` (and overwrite `current_usage_GB` when sent); 422 on bad fields."""
        key = params["uuid"]
        if not _UUID.match(key):
            return self.not_found(request)
        key = key.lower()
        self.count("writes")
        faulted = self.write_fault_reply(key)
        if faulted is not None:
            return faulted
        try:
            body = request.json()
        except ValueError:
            return self.abort(request, 400, "The request body is not valid JSON")
        if not isinstance(body, dict):
            return self.abort(
                request, 422, "Validation error", {"json": {"_schema": ["Invalid input type."]}}
            )
        errors: dict[str, list[str]] = {
            name: ["Unknown field."] for name in body if name not in PATCH_FIELDS
        }
        enable = body.get("enable")
        if enable is not None and not isinstance(enable, bool):
            errors["enable"] = ["Not a valid boolean."]
        usage = body.get("current_usage_GB")
        if usage is not None and (isinstance(usage, bool) or not isinstance(usage, int | float)):
            errors["current_usage_GB"] = ["Not a valid number."]
        if errors:
            return self.abort(request, 422, "Validation error", {"json": errors})
        if self.users.get(key) is None:
            return self.user_not_found(key)

        def change(user: EmulatedUser) -> EmulatedUser:
            if enable is not None:
                user = dataclasses.replace(user, enabled=enable)
            if usage is not None:  # the quirk: any PATCH with it overwrites the usage
                used = int(min(MAX_GIB * GIB, usage * GIB))
                user = dataclasses.replace(user, upload=0, download=used)
            return user

        try:
            user = self.users.modify(key, change)
        except KeyError:
            return self.user_not_found(key)
        return json_reply(self.render(user))

    def list_users(self, request: Request, params: Mapping[str, str]) -> Response:
        """Every user as one JSON array; 404 "You have no user" when there is none."""
        self.count("list_pages")
        faulted = self.begin_page(1)
        if faulted is not None:
            return faulted
        names = self.listed_names()
        if not names:
            return self.abort(request, 404, "You have no user")
        items = self.fragments(self.users.entries(names), "hiddify", self._listed)
        return json_text_reply(json_array(items))

    def _listed(self, user: EmulatedUser, user_id: int) -> dict[str, object]:
        return hiddify_user(user, user_id, self.credentials.api_key)

    def render(self, user: EmulatedUser) -> dict[str, object]:
        return hiddify_user(user, self.users.id_of(user.username), self.credentials.api_key)


def _accepts_html(request: Request) -> bool:
    """Werkzeug's `accept_html`: `text/html`, `application/xhtml+xml` or a wildcard accepted."""
    accept = (request.header("Accept") or "*/*").lower()
    kinds = {part.split(";")[0].strip() for part in accept.split(",")}
    return bool(kinds & {"text/html", "application/xhtml+xml", "*/*", "text/*"})


def hiddify_user(user: EmulatedUser, user_id: int, admin_uuid: str) -> dict[str, object]:
    """A `UserSchema` as the v2 admin API sends it."""
    limit = user.data_limit or DEFAULT_LIMIT_GIB * GIB
    keys = stable_uuid(user.username).hex
    return {
        "uuid": user.username,
        "name": f"user {user.username[:8]}",
        "usage_limit_GB": limit / GIB,
        "package_days": 30,
        "mode": "no_reset",
        "last_online": None,
        "start_date": None,
        "current_usage_GB": user.used / GIB,
        "last_reset_time": "2025-01-01 00:00:00",
        "comment": user.note,
        "added_by_uuid": admin_uuid,
        "telegram_id": None,
        "ed25519_private_key": f"-----BEGIN PRIVATE KEY-----{keys}",
        "ed25519_public_key": f"ssh-ed25519 {keys}",
        "wg_pk": keys[:44],
        "wg_pub": keys[-44:],
        "wg_psk": keys[8:52],
        "lang": "en",
        "enable": user.enabled,
        "is_active": user.enabled and user.used <= limit,
        "id": user_id,
    }
