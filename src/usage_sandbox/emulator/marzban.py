"""The Marzban emulator, and the bearer-token login it shares with Marzneshin."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from usage_sandbox.emulator.base import (
    CREATED_AT,
    MARZBAN_SORTS,
    PanelApp,
    Request,
    Response,
    Router,
    json_array,
    json_reply,
    json_text_reply,
)
from usage_sandbox.emulator.users import EmulatedUser, stable_uuid

# `UserStatusModify` (app/models/user.py, v0.8.4): limited and expired are refused.
MARZBAN_MODIFY_STATUSES: Final = ("active", "disabled", "on_hold")
MARZBAN_NOTE_MAX = 500
_NOT_AN_OBJECT = "Input should be a valid dictionary or object to extract fields from"
_NOT_AN_INT = "Input should be a valid integer"


# `JWT_ACCESS_TOKEN_EXPIRE_MINUTES`' default on Marzban, Marzneshin and PasarGuard: 1440.
DEFAULT_TOKEN_LIFETIME_S: Final = 24 * 3600.0
UNAUTHORIZED: Final = ("WWW-Authenticate", "Bearer")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class BearerApp(PanelApp):
    """FastAPI panels: an OAuth2 password form buys a bearer token.

    Tokens are HS256 JWTs with `sub`, `access`, `iat` and, unless
    `token_lifetime_s` is None (the panels' expiry 0), `exp`; a token past
    its `exp`, not signed by this panel, or issued before the last password
    change or `invalidate_sessions` gets the panels' 401.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._valid_tokens: set[str] = set()
        self._issued: list[str] = []
        self._jwt_key = secrets.token_bytes(32)
        self.token_lifetime_s: float | None = DEFAULT_TOKEN_LIFETIME_S
        super().__init__(*args, **kwargs)

    def token_reply(self, token: str) -> dict[str, object]:
        return {"access_token": token, "token_type": "bearer"}

    def new_token(self) -> str:
        """A signed JWT for the admin, as `create_admin_token` makes it."""
        now = int(self.clock())
        claims: dict[str, object] = {"sub": self.credentials.username, "access": "sudo", "iat": now}
        # The panels' tokens of one second are identical; a nonce tells the emulator's apart,
        # so that a token revoked by `invalidate_sessions` stays revoked.
        claims["jti"] = secrets.token_hex(8)
        if self.token_lifetime_s is not None:
            claims["exp"] = now + int(self.token_lifetime_s)
        header = _b64(b'{"alg":"HS256","typ":"JWT"}')
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.digest(self._jwt_key, f"{header}.{body}".encode(), hashlib.sha256)
        return f"{header}.{body}.{_b64(signature)}"

    def token_valid(self, token: str) -> bool:
        """Issued by this panel, not revoked, and not past its `exp`."""
        with self._lock:
            if token not in self._valid_tokens:
                return False
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
        return exp is None or self.clock() <= exp

    def issue_token(self, request: Request, params: Mapping[str, str]) -> Response:
        self.count("logins")
        faulted = self.login_fault_reply()
        if faulted is not None:
            self.count("failed_logins")
            return faulted
        form = request.form()
        if form is None or "username" not in form or "password" not in form:
            self.count("failed_logins")
            return json_reply({"detail": {"username": "field required"}}, 422)
        if not self.credentials.accepts(form["username"], form["password"]):
            self.count("failed_logins")
            return json_reply({"detail": "Incorrect username or password"}, 401, UNAUTHORIZED)
        token = self.new_token()
        with self._lock:
            self._valid_tokens.add(token)
            self._issued.append(token)
        return json_reply(self.token_reply(token))

    def authenticate(self, request: Request) -> Response | None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return json_reply({"detail": "Not authenticated"}, 401, UNAUTHORIZED)
        if not self.token_valid(token.strip()):
            return json_reply({"detail": "Could not validate credentials"}, 401, UNAUTHORIZED)
        return None

    def invalidate_sessions(self) -> None:
        with self._lock:
            self._valid_tokens.clear()

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._issued)


class MarzbanApp(BearerApp):
    """Marzban: `/api/admin/token`, `/api/user/{username}` (GET and PUT), `/api/users`,
    `POST /api/user/{username}/reset` and `POST /api/users/reset`."""

    kind = "marzban"

    def add_routes(self, router: Router) -> None:
        router.add("POST", "/api/admin/token", self.issue_token)
        router.add("GET", "/api/users", self.guard(self.list_users))
        router.add("GET", "/api/user/{username}", self.guard(self.get_user))
        router.add("PUT", "/api/user/{username}", self.guard(self.modify_user))
        router.add("POST", "/api/user/{username}/reset", self.guard(self.reset_user))
        router.add("POST", "/api/users/reset", self.guard(self.reset_all_users))

    def reset_user(self, request: Request, params: Mapping[str, str]) -> Response:
        """v0.8.4 `crud.reset_user_data_usage`: the counter goes into a reset log.

        The lifetime (reset logs + counter) stands. The status check there
        (`status not in (expired or disabled)`) tests a substring of
        "expired", so a disabled user comes back active; the next plan is dropped.
        """
        username = params["username"]

        def write(_: EmulatedUser) -> Response:
            try:
                user = self.users.modify(
                    username,
                    lambda u: dataclasses.replace(
                        u, upload=0, download=0, settled=u.lifetime, enabled=True, next_plan=None
                    ),
                )
            except KeyError:
                return self.user_not_found(username)
            return json_reply(marzban_user(user, self.users.id_of(username)))

        return self.write_reply(username, write)

    def reset_all_users(self, request: Request, params: Mapping[str, str]) -> Response:
        """v0.8.4 `crud.reset_all_users_data_usage`: every counter to 0, the reset logs deleted.

        So every lifetime drops to 0. Disabled users stay disabled; next plans are dropped.
        """
        self.count("writes")
        self.users.reset_every_counter(keep_lifetime=False)
        for name in self.users.names():
            self.users.set_next_plan(name, None)
        return json_reply({"detail": "Users successfully reset."})

    def get_user(self, request: Request, params: Mapping[str, str]) -> Response:
        return self.user_reply(
            params["username"],
            lambda user: json_reply(marzban_user(user, self.users.id_of(user.username))),
        )

    def modify_user(self, request: Request, params: Mapping[str, str]) -> Response:
        """`PUT /api/user/{username}` with a `UserModify` body (v0.8.4 `crud.update_user`).

        Every field is optional, but a body without `next_plan` (or with
        null) deletes the user's next plan. `status` is assigned as sent,
        with no quota or expiry check; `on_hold` leaves the user enabled.
        """
        username = params["username"]
        self.count("writes")
        faulted = self.write_fault_reply(username)
        if faulted is not None:
            return faulted
        if not request.body:
            return json_reply({"detail": {"body": "Field required"}}, 422)
        try:
            body = request.json()
        except ValueError:
            return json_reply({"detail": {"0": "JSON decode error"}}, 422)
        if self.users.get(username) is None:
            return self.user_not_found(username)
        modify = validate_user_modify(body)
        if isinstance(modify, Response):
            return modify
        try:
            user = self.users.modify(username, lambda u: dataclasses.replace(u, **modify))
        except KeyError:
            return self.user_not_found(username)
        return json_reply(marzban_user(user, self.users.id_of(username)))

    def list_users(self, request: Request, params: Mapping[str, str]) -> Response:
        """`{users, total}`: `offset`/`limit` (no limit, or 0: everyone) over `sort`.

        A repeated `username=` keeps exactly those users (an SQL `IN`), and
        `total` counts them, as v0.8.4's `crud.get_users` does.

        The page number the listing hooks see is `offset // limit + 1`.
        """
        self.count("list_pages")
        bounds = non_negative_ints(request, "offset", "limit")
        if isinstance(bounds, Response):
            return bounds
        offset, limit = bounds.get("offset", 0), bounds.get("limit", 0)
        keys = [key for key in (request.param("sort") or "").split(",") if key]
        for key in keys:
            if key.removeprefix("-") not in MARZBAN_SORTS:
                return json_reply({"detail": f'"{key}" is not a valid sort option'}, 400)
        faulted = self.begin_page(offset // limit + 1 if limit else 1)
        if faulted is not None:
            return faulted
        names = self._sorted(keys[0] if keys else "id")
        wanted = request.query.get("username")
        if wanted:
            names = self.exactly(names, wanted)
        page = names[offset : offset + limit] if limit else names[offset:]
        items = self.fragments(self.users.entries(page), "marzban", marzban_user)
        return json_text_reply('{"users":' + json_array(items) + f',"total":{len(names)}}}')

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


def validate_user_modify(body: object) -> dict[str, Any] | Response:
    """The `EmulatedUser` changes a `UserModify` body asks for, or FastAPI's 422.

    Errors use Marzban's handler shape: `{"detail": {"<field>": "<pydantic message>"}}`.
    """
    if not isinstance(body, dict):
        return json_reply({"detail": {"body": _NOT_AN_OBJECT}}, 422)
    errors: dict[str, str] = {}
    changes: dict[str, Any] = {}
    for check in (_data_limit_change, _note_change, _status_change, _next_plan_change):
        check(body, changes, errors)
    expire = _optional_int(body, "expire", errors)
    if expire is not None:
        changes["expire"] = expire or None
    if errors:
        return json_reply({"detail": errors}, 422)
    return changes


Changes = dict[str, Any]


def _data_limit_change(body: Mapping[str, Any], changes: Changes, errors: dict[str, str]) -> None:
    data_limit = body.get("data_limit")
    if isinstance(data_limit, float):
        data_limit = int(data_limit)
    if data_limit is None:
        return
    if not isinstance(data_limit, int) or isinstance(data_limit, bool):
        errors["data_limit"] = "Value error, data_limit must be an integer or a float, not a string"
    elif data_limit < 0:
        errors["data_limit"] = "Input should be greater than or equal to 0"
    else:
        changes["data_limit"] = data_limit


def _note_change(body: Mapping[str, Any], changes: Changes, errors: dict[str, str]) -> None:
    note = body.get("note")
    if note is None:
        return
    if not isinstance(note, str):
        errors["note"] = "Input should be a valid string"
    elif len(note) > MARZBAN_NOTE_MAX:
        errors["note"] = "Value error, User's note can be a maximum of 500 character"
    else:
        changes["note"] = note or None


def _status_change(body: Mapping[str, Any], changes: Changes, errors: dict[str, str]) -> None:
    """`status` as sent (no quota or expiry check); `on_hold` needs a hold duration, no expire."""
    on_hold_duration = _optional_int(body, "on_hold_expire_duration", errors)
    status = body.get("status")
    if status is None:
        return
    if status == "on_hold" and not on_hold_duration:
        errors["status"] = (
            "Value error, User cannot be on hold without a valid on_hold_expire_duration."
        )
    elif status == "on_hold" and body.get("expire"):
        errors["status"] = "Value error, User cannot be on hold with specified expire."
    elif status not in MARZBAN_MODIFY_STATUSES:
        errors["status"] = "Input should be 'active', 'disabled' or 'on_hold'"
    else:
        changes["enabled"] = status != "disabled"


def _next_plan_change(body: Mapping[str, Any], changes: Changes, errors: dict[str, str]) -> None:
    """The quirk: a body without `next_plan` (or with null) deletes the user's next plan."""
    plan = body.get("next_plan")
    if plan is None:
        changes["next_plan"] = None
    elif not isinstance(plan, dict):
        errors["next_plan"] = _NOT_AN_OBJECT
    else:
        changes["next_plan"] = {
            "data_limit": _optional_int(plan, "data_limit", errors),
            "expire": _optional_int(plan, "expire", errors),
            "add_remaining_traffic": bool(plan.get("add_remaining_traffic", False)),
            "fire_on_either": bool(plan.get("fire_on_either", True)),
        }


def _optional_int(fields: Mapping[str, object], name: str, errors: dict[str, str]) -> int | None:
    """`fields[name]` read as a pydantic (lax) `Optional[int]`; an error is noted in `errors`."""
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().removeprefix("-").isdigit():
        return int(value)
    errors[name] = _NOT_AN_INT
    return None


def non_negative_ints(request: Request, *names: str) -> dict[str, int] | Response:
    """Integer query parameters as Marzban (pydantic v1) reads them: digits only."""
    return _int_params(request, names, signed=False, refusal="value is not a valid integer")


def query_ints(request: Request, *names: str) -> dict[str, int] | Response:
    """Integer query parameters as pydantic v2 reads them (Marzneshin, PasarGuard): signed."""
    refusal = "Input should be a valid integer, unable to parse string as an integer"
    return _int_params(request, names, signed=True, refusal=refusal)


def _int_params(
    request: Request, names: tuple[str, ...], *, signed: bool, refusal: str
) -> dict[str, int] | Response:
    values: dict[str, int] = {}
    for name in names:
        raw = request.param(name)
        if raw is None or raw == "":
            continue
        digits = raw.removeprefix("-") if signed else raw
        if not digits.isdigit():
            return json_reply({"detail": {name: refusal}}, 422)
        values[name] = int(raw)
    return values


def marzban_user(user: EmulatedUser, user_id: int = 0) -> dict[str, object]:
    """A full Marzban `UserResponse`, links and subscription URL included (~1.3 kB)."""
    key = stable_uuid(user.username)
    name = quote(user.username, safe="")
    host = "panel.example.com"
    return {
        "proxies": {"vless": {"id": str(key), "flow": "xtls-rprx-vision"}},
        "expire": user.expire,
        "data_limit": user.data_limit or None,
        "data_limit_reset_strategy": "no_reset",
        "inbounds": {"vless": ["VLESS TCP REALITY"]},
        "note": user.note,
        "sub_updated_at": None,
        "sub_last_user_agent": None,
        "online_at": None,
        "on_hold_expire_duration": None,
        "on_hold_timeout": None,
        "auto_delete_in_days": None,
        "next_plan": None if user.next_plan is None else dict(user.next_plan),
        "username": user.username,
        "status": "active" if user.enabled else "disabled",
        "used_traffic": user.used,
        "lifetime_used_traffic": user.lifetime,
        "created_at": CREATED_AT,
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
