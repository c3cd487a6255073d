"""The Marzban emulator, and the bearer-token login it shares with Marzneshin."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any
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


class BearerApp(PanelApp):
    """FastAPI panels: an OAuth2 password form buys a bearer token."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._valid_tokens: set[str] = set()
        self._issued: list[str] = []
        super().__init__(*args, **kwargs)

    def token_reply(self, token: str) -> dict[str, object]:
        return {"access_token": token, "token_type": "bearer"}

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
            return json_reply(
                {"detail": "Incorrect username or password"},
                401,
                ("WWW-Authenticate", "Bearer"),
            )
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._valid_tokens.add(token)
            self._issued.append(token)
        return json_reply(self.token_reply(token))

    def authenticate(self, request: Request) -> Response | None:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return json_reply({"detail": "Not authenticated"}, 401, ("WWW-Authenticate", "Bearer"))
        with self._lock:
            valid = token.strip() in self._valid_tokens
        if not valid:
            return json_reply(
                {"detail": "Could not validate credentials"}, 401, ("WWW-Authenticate", "Bearer")
            )
        return None

    def invalidate_sessions(self) -> None:
        with self._lock:
            self._valid_tokens.clear()

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._issued)


class MarzbanApp(BearerApp):
    """Marzban: `/api/admin/token`, `/api/user/{username}`, `/api/users?offset&limit`."""

    kind = "marzban"

    def add_routes(self, router: Router) -> None:
        router.add("POST", "/api/admin/token", self.issue_token)
        router.add("GET", "/api/users", self.guard(self.list_users))
        router.add("GET", "/api/user/{username}", self.guard(self.get_user))

    def get_user(self, request: Request, params: Mapping[str, str]) -> Response:
        return self.user_reply(
            params["username"],
            lambda user: json_reply(marzban_user(user, self.users.id_of(user.username))),
        )

    def list_users(self, request: Request, params: Mapping[str, str]) -> Response:
        """`{users, total}`: `offset`/`limit` (no limit, or 0: everyone) over `sort`.

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


def non_negative_ints(request: Request, *names: str) -> dict[str, int] | Response:
    values: dict[str, int] = {}
    for name in names:
        raw = request.param(name)
        if raw is None or raw == "":
            continue
        if not raw.isdigit():
            return json_reply({"detail": {name: "value is not a valid integer"}}, 422)
        values[name] = int(raw)
    return values


def marzban_user(user: EmulatedUser, user_id: int = 0) -> dict[str, object]:
    """A full Marzban `UserResponse`, links and subscription URL included (~1.3 kB)."""
    key = stable_uuid(user.username)
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
