"""The 3x-ui emulator: cookie sessions (CSRF in v3) and `inbounds/list`."""

from __future__ import annotations

import dataclasses
import math
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from usage_sandbox.emulator.base import (
    XUI_COOKIE,
    XUI_SESSION_MAX_AGE_S,
    PanelApp,
    Request,
    Response,
    Router,
    XuiVersion,
    dumps,
    json_array,
    json_reply,
    json_text_reply,
    phrase,
    text_reply,
)
from usage_sandbox.emulator.users import EmulatedUser, stable_uuid


@dataclasses.dataclass
class XuiSession:
    csrf: str | None = None
    authenticated: bool = False


class XuiApp(PanelApp):
    """3x-ui: cookie sessions under a base path; v3 adds CSRF and moves the traffic route."""

    kind = "xui"

    def __init__(
        self, *args: Any, version: XuiVersion = 2, inbounds: int = 3, **kwargs: Any
    ) -> None:
        self.version = version
        self.inbound_count = inbounds
        self._sessions: dict[str, XuiSession] = {}
        self._issued: list[str] = []
        super().__init__(*args, **kwargs)
        self.cookie_path = self.prefix or "/"

    def add_routes(self, router: Router) -> None:
        router.add("POST", "/login", self.login)
        router.add("GET", "/panel/api/inbounds/list", self.guard(self.inbounds))
        if self.version >= 3:
            router.add("GET", "/csrf-token", self.csrf_token)
            router.add("GET", "/panel/api/clients/traffic/{email}", self.guard(self.traffic))
        else:
            router.add(
                "GET", "/panel/api/inbounds/getClientTraffics/{email}", self.guard(self.traffic)
            )

    def not_found(self, request: Request) -> Response:
        return text_reply("404 page not found", 404)

    def user_not_found(self, username: str) -> Response:
        return json_reply({"success": True, "msg": "", "obj": None})

    def error_body(self, status: int) -> object:
        return {"success": False, "msg": phrase(status), "obj": None}

    def unsuccessful_body(self, message: str) -> object:
        return {"success": False, "msg": message, "obj": None}

    def invalidate_sessions(self) -> None:
        with self._lock:
            self._sessions.clear()

    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    def _session(self, request: Request) -> tuple[str, XuiSession] | None:
        session_id = request.cookie(XUI_COOKIE)
        if session_id is None:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
        return None if session is None else (session_id, session)

    def _new_session(self, **fields: Any) -> tuple[str, XuiSession]:
        session_id = secrets.token_urlsafe(24)
        session = XuiSession(**fields)
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

    def authenticate(self, request: Request) -> Response | None:
        found = self._session(request)
        if found is not None and found[1].authenticated:
            return None
        if request.is_xhr:
            return json_reply({"success": False, "msg": "Unauthorized", "obj": None}, 401)
        return self.not_found(request)

    def csrf_token(self, request: Request, params: Mapping[str, str]) -> Response:
        self.count("csrf_tokens")
        found = self._session(request) or self._new_session()
        session_id, session = found
        with self._lock:
            if session.csrf is None:
                session.csrf = secrets.token_urlsafe(24)
                self._issued.append(session.csrf)
            token = session.csrf
        return json_reply(
            {"success": True, "msg": "", "obj": token}, 200, self._set_cookie(session_id)
        )

    def login(self, request: Request, params: Mapping[str, str]) -> Response:
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
                return json_reply({"success": False, "msg": "invalid CSRF token", "obj": None}, 403)
        fields = request.form_or_json() or {}
        if not self.credentials.accepts(fields.get("username"), fields.get("password")):
            self.count("failed_logins")
            return json_reply(
                {"success": False, "msg": "Invalid username or password.", "obj": None}
            )
        if found is not None and self.version >= 3:
            session_id, session = found
            with self._lock:
                session.authenticated = True
        else:
            session_id, _ = self._new_session(authenticated=True)
        return json_reply(
            {"success": True, "msg": "Login Successfully", "obj": None},
            200,
            self._set_cookie(session_id),
        )

    def traffic(self, request: Request, params: Mapping[str, str]) -> Response:
        def render(user: EmulatedUser) -> Response:
            record = self.client_traffic(user, self.users.id_of(user.username))
            return json_reply({"success": True, "msg": "", "obj": record})

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
            "uuid": str(stable_uuid(user.username)),
            "subId": stable_uuid(user.username).hex[:16],
        }
        if self.version >= 3:
            record.update(resetDay=0, resetMax=0, resetCount=0, lastSubFetch=0)
        else:
            record["allTime"] = user.lifetime
        return record

    def inbounds(self, request: Request, params: Mapping[str, str]) -> Response:
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
        return json_text_reply('{"success":true,"msg":"","obj":' + json_array(inbounds) + "}")

    def _inbound(self, inbound_id: int, names: Sequence[str]) -> str:
        users = self.users.entries(names)
        stats = self.fragments(
            users, f"stats-{inbound_id}", lambda u, i: self.client_traffic(u, i, inbound_id)
        )
        clients = self.fragments(users, "client", _xui_client)
        settings = '{"clients":' + json_array(clients) + ',"decryption":"none","fallbacks":[]}'
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
        head = dumps(fields)[:-1]
        encoded = dumps(settings) if self.version < 3 else settings
        return head + ',"settings":' + encoded + ',"clientStats":' + json_array(stats) + "}"


def _xui_client(user: EmulatedUser, user_id: int = 0) -> dict[str, object]:
    """A client as 3x-ui keeps it in an inbound's `settings.clients`."""
    key = stable_uuid(user.username)
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
