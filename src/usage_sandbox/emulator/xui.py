"""The 3x-ui emulator: cookie sessions (CSRF in v3), `inbounds/list` and `inbounds/get`,
and the client writes: v2 `inbounds/updateClient/{clientId}`, v3 (3.5+) `clients/get`,
`clients/update` and `clients/bulkEnable`/`bulkDisable`."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

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

# The client entry of a user no write has touched yet (see `client_entry`).
DEFAULT_TOTAL_GB: Final = 50 * 1024**3  # bytes, despite the name
DEFAULT_LIMIT_IP: Final = 2
DEFAULT_FLOW: Final = "xtls-rprx-vision"
CREATED_MS: Final = 1_735_689_600_000  # CREATED_AT in epoch milliseconds

# `model.Client`'s JSON fields (v3.5) and their Go types; `STORED_FIELDS` are
# kept (zero-filled when a write leaves them out) in `EmulatedUser.xui_client`.
# The read-side `ClientRecord` spells some differently: `reverse` is a JSON
# object or null, but `allowedIPs` a string, which `model.Client` refuses.
CLIENT_FIELD_TYPES: Final[dict[str, str]] = {
    "id": "string",
    "security": "string",
    "password": "string",
    "flow": "string",
    "reverse": "model.ClientReverse",
    "auth": "string",
    "privateKey": "string",
    "publicKey": "string",
    "allowedIPs": "[]string",
    "preSharedKey": "string",
    "keepAlive": "int",
    "secret": "string",
    "adTag": "string",
    "email": "string",
    "limitIp": "int",
    "totalGB": "int64",
    "expiryTime": "int64",
    "enable": "bool",
    "tgId": "int64",
    "subId": "string",
    "group": "string",
    "comment": "string",
    "reset": "int",
    "created_at": "int64",
    "updated_at": "int64",
}
STORED_FIELDS: Final = (
    "id",
    "flow",
    "limitIp",
    "totalGB",
    "expiryTime",
    "tgId",
    "subId",
    "comment",
    "reset",
    "created_at",
    "updated_at",
)
_GO_ZERO: Final[dict[str, object]] = {
    "string": "",
    "bool": False,
    "int": 0,
    "int64": 0,
    "[]string": None,
    "model.ClientReverse": None,
}
_GO_INT = re.compile(r"^[+-]?[0-9]+$")

# Messages: `jsonMsg` writes "<localized message> (<error>)"; `common.NewError`
# ends its error text with a newline (fmt.Sprintln), which the reply keeps.
WENT_WRONG: Final = "Something went wrong"
LOGIN_AGAIN: Final = "Your session has expired, please log in again"
CLIENT_UPDATED: Final = "Inbound client has been updated."
INBOUND_UPDATED: Final = "Inbound has been successfully updated."


@dataclasses.dataclass
class XuiSession:
    csrf: str | None = None
    authenticated: bool = False
    # When the cookie's `Max-Age` runs out (gorilla's secure cookie refuses it after).
    expires_at: float = float("inf")


class _RefusedError(Exception):
    """A 3x-ui application error: HTTP 200 with `success: false` and this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _PanicError(Exception):
    """A Go panic in the handler, which gin's recovery turns into a bare 500."""


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
        self._positions: tuple[int, dict[str, int]] = (-1, {})
        # (membership version, {str(stable_uuid(name)): name})
        self._default_ids: tuple[int, dict[str, str]] = (-1, {})
        self.session_max_age_s = float(XUI_SESSION_MAX_AGE_S)
        # Before 2.2.5 a lost session got HTTP 200 and `success: false` (`checkLogin`).
        self.login_again_200 = False
        super().__init__(*args, **kwargs)
        self.cookie_path = self.prefix or "/"

    def add_routes(self, router: Router) -> None:
        router.add("POST", "/login", self.login)
        router.add("GET", "/panel/api/inbounds/list", self.guard(self.inbounds))
        router.add("GET", "/panel/api/inbounds/get/{id}", self.guard(self.get_inbound))
        if self.version >= 3:
            router.add("GET", "/csrf-token", self.csrf_token)
            router.add("GET", "/panel/api/clients/traffic/{email}", self.guard(self.traffic))
            router.add("GET", "/panel/api/clients/get/{email}", self.guard(self.get_client))
            router.add("POST", "/panel/api/clients/update/{email}", self.guard(self.update_client))
            router.add("POST", "/panel/api/clients/bulkEnable", self.guard(self.bulk_enable))
            router.add("POST", "/panel/api/clients/bulkDisable", self.guard(self.bulk_disable))
        else:
            router.add(
                "GET", "/panel/api/inbounds/getClientTraffics/{email}", self.guard(self.traffic)
            )
            router.add(
                "POST",
                "/panel/api/inbounds/updateClient/{clientId}",
                self.guard(self.update_inbound_client),
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
        if session is None or self.clock() >= session.expires_at:
            return None
        return session_id, session

    def _new_session(self, **fields: Any) -> tuple[str, XuiSession]:
        session_id = secrets.token_urlsafe(24)
        session = XuiSession(**fields, expires_at=self.clock() + self.session_max_age_s)
        with self._lock:
            self._sessions[session_id] = session
            self._issued.append(session_id)
        return session_id, session

    def _set_cookie(self, session_id: str) -> tuple[str, str]:
        return (
            "Set-Cookie",
            f"{XUI_COOKIE}={session_id}; Path={self.cookie_path}; "
            f"Max-Age={int(self.session_max_age_s)}; HttpOnly; SameSite=Lax",
        )

    def authenticate(self, request: Request) -> Response | None:
        """v3: an API token (`Authorization: Bearer`) passes, CSRF check included.
        Otherwise the session check, then (v3) the CSRF check: an unsafe method needs
        the session's token in `X-CSRF-Token` (or the `_csrf` form field), else a bare 403.

        Without a session (none, unknown or expired) the reply is 401 for an XHR
        request and 404 otherwise (`checkAPIAuth`)."""
        if self.version >= 3 and self._api_token_valid(request):
            return None
        found = self._session(request)
        if found is None or not found[1].authenticated:
            if request.is_xhr and self.login_again_200:
                return json_reply({"success": False, "msg": LOGIN_AGAIN, "obj": None})
            if request.is_xhr:
                return json_reply({"success": False, "msg": "Unauthorized", "obj": None}, 401)
            return self.not_found(request)
        if self.version >= 3 and request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            with self._lock:
                expected = found[1].csrf
            sent = request.header("X-CSRF-Token") or (request.form() or {}).get("_csrf", "")
            if not expected or not secrets.compare_digest(sent.encode(), expected.encode()):
                return Response(403, b"", "text/plain; charset=utf-8")
        return None

    def _api_token_valid(self, request: Request) -> bool:
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        key = self.credentials.api_key
        return (
            scheme == "Bearer"
            and bool(token)
            and bool(key)
            and secrets.compare_digest(token.encode(), key.encode())
        )

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
            name = user.username
            record = self.client_traffic(user, self.users.id_of(name), self.inbound_of(name))
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
            "total": client_total(user),
            "expiryTime": 0,
            "reset": 0,
            "lastOnline": 0,
            "uuid": str(stable_uuid(user.username)),
            "subId": stable_uuid(user.username).hex[:16],
        }
        if user.xui_client is not None:  # client_traffics follows the last write
            entry = user.xui_client
            record.update(
                expiryTime=_go_int(entry.get("expiryTime")),
                reset=_go_int(entry.get("reset")),
                uuid=_go_str(entry.get("id")),
                subId=_go_str(entry.get("subId")),
            )
        if self.version >= 3:
            record.update(resetDay=0, resetMax=0, resetCount=0, lastSubFetch=0)
        else:
            record["allTime"] = user.lifetime
        return record

    # -- where each client lives
    def _blocks(self) -> tuple[int, tuple[str, ...], int]:
        """(membership version, every username in id order, users per inbound)."""
        version, names = self.users.ordered_names(by_username=False)
        return version, names, max(1, math.ceil(len(names) / max(1, self.inbound_count)))

    def inbound_names(self, inbound_id: int) -> tuple[str, ...]:
        """The users of inbound `inbound_id`: consecutive blocks of the id order."""
        _, names, block = self._blocks()
        return names[(inbound_id - 1) * block : inbound_id * block]

    def inbound_of(self, username: str) -> int:
        """The id of the inbound holding `username`'s client (0 when unknown)."""
        version, names, block = self._blocks()
        with self._lock:
            cached_version, positions = self._positions
        if cached_version != version:
            positions = {name: index for index, name in enumerate(names)}
            with self._lock:
                self._positions = (version, positions)
        position = positions.get(username)
        return 0 if position is None else position // block + 1

    def inbounds(self, request: Request, params: Mapping[str, str]) -> Response:
        """Every inbound with its clients in `settings` and their traffic in `clientStats`.

        Users are spread over `inbound_count` inbounds in consecutive blocks
        of the id order (omitted users keep their place, unlisted); v2
        carries `settings` as a JSON string, v3 as an object.
        """
        self.count("list_pages")
        faulted = self.begin_page(1)
        if faulted is not None:
            return faulted
        _, names, block = self._blocks()
        with self._lock:
            omitted = self._omitted
        inbounds = []
        for number in range(max(1, self.inbound_count)):
            part = names[number * block : (number + 1) * block]
            if omitted:
                part = tuple(name for name in part if name not in omitted)
            inbounds.append(self._inbound(number + 1, part))
        return json_text_reply('{"success":true,"msg":"","obj":' + json_array(inbounds) + "}")

    def get_inbound(self, request: Request, params: Mapping[str, str]) -> Response:
        """`inbounds/get/{id}`: one inbound, every client in `settings`, no `clientStats`."""
        self.count("user_gets")
        raw = params["id"]
        if not _GO_INT.match(raw):
            return _refused(f' (strconv.Atoi: parsing "{raw}": invalid syntax)')
        inbound_id = int(raw)
        if not 1 <= inbound_id <= max(1, self.inbound_count):
            return _refused("Obtain (record not found)")
        inbound = self._inbound(inbound_id, self.inbound_names(inbound_id), with_stats=False)
        return json_text_reply('{"success":true,"msg":"","obj":' + inbound + "}")

    def _inbound(self, inbound_id: int, names: Sequence[str], *, with_stats: bool = True) -> str:
        users = self.users.entries(names)
        if with_stats:
            stats = json_array(
                self.fragments(
                    users,
                    f"stats-{inbound_id}",
                    lambda u, i: self.client_traffic(u, i, inbound_id),
                )
            )
        else:
            stats = "null"  # `GetInbound` does not preload `clientStats`
        clients = self.fragments(users, "client", client_entry)
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
        return head + ',"settings":' + encoded + ',"clientStats":' + stats + "}"

    # -- v2 writes
    def update_inbound_client(self, request: Request, params: Mapping[str, str]) -> Response:
        """v2 `POST inbounds/updateClient/{clientId}` (`UpdateInboundClient`, v2.3.1+).

        The body (`model.Inbound`, JSON or form) names the inbound in `id` and
        carries `{"clients": [client]}` as a JSON string in `settings`.
        `clientId` is matched against the `id` of that inbound's clients. The
        entry is REPLACED by the one sent: every field left out is lost (read
        back as 0/false/""), only `created_at` is kept. `enable` and `totalGB`
        (read as Go would: a wrong type counts as zero) become the user's
        state and quota. A new `email` renames the user; an empty one deletes
        the client's traffic row, which the emulator does by deleting the user.
        """
        self.count("writes")
        try:
            username, sent = self._locate_client(request, params["clientId"])
        except _RefusedError as refused:
            return _refused(refused.message)
        except _PanicError:
            return Response(500, b"", "text/plain; charset=utf-8")
        faulted = self.write_fault_reply(username)
        if faulted is not None:
            return faulted
        email = _go_str(sent.get("email"))
        if email and email != username:
            lowered = email.lower()
            if any(name.lower() == lowered for name in self.users.names()):
                return _refused(f"{WENT_WRONG} (Duplicate email: {email}\n)")
        if not email:
            self.users.remove(username)
            return _success(CLIENT_UPDATED)
        record = {key: value for key, value in sent.items() if key not in ("email", "enable")}
        for key in STORED_FIELDS:
            record.setdefault(key, _GO_ZERO[CLIENT_FIELD_TYPES[key]])

        def replace(user: EmulatedUser) -> EmulatedUser:
            old = client_entry(user)
            record["created_at"] = old.get("created_at") or _now_ms()
            record["updated_at"] = _now_ms()
            return dataclasses.replace(
                user,
                enabled=sent.get("enable") is True,
                data_limit=max(0, _go_int(sent.get("totalGB"))),
                xui_client=record,
            )

        return self._store(username, email, replace)

    def _locate_client(self, request: Request, client_id: str) -> tuple[str, dict[str, Any]]:
        """(the user `client_id` names, the client sent), checked in 3x-ui's order."""
        inbound_id, settings = self._bind_inbound(request)
        try:
            decoded = json.loads(settings)
        except ValueError as error:
            raise _RefusedError(f"{WENT_WRONG} ({_json_error(settings, error)})") from None
        if not isinstance(decoded, dict):
            raise _RefusedError(
                f"{WENT_WRONG} (json: cannot unmarshal {_json_kind(decoded)}"
                " into Go value of type map[string]interface {})"
            )
        clients = decoded.get("clients")
        if not isinstance(clients, list):
            raise _PanicError  # settings["clients"].([]any)
        if not 1 <= inbound_id <= max(1, self.inbound_count):
            raise _RefusedError(f"{WENT_WRONG} (record not found)")
        names = self.inbound_names(inbound_id)
        if names and (not clients or not isinstance(clients[0], dict)):
            raise _PanicError  # clients[0]
        sent: dict[str, Any] = clients[0] if clients else {}
        username = self._match_client_id(names, client_id)
        if username is None or not _go_str(sent.get("id")):
            raise _RefusedError(f"{WENT_WRONG} (empty client ID\n)")
        return username, sent

    def _bind_inbound(self, request: Request) -> tuple[int, str]:
        """gin's `ShouldBind` into `model.Inbound`: (`id`, `settings`), JSON or form."""
        if request.is_json:
            if not request.body:
                raise _RefusedError(f"{INBOUND_UPDATED} (EOF)")
            try:
                body = request.json()
            except ValueError as error:
                text = request.body.decode("utf-8", "replace")
                raise _RefusedError(f"{INBOUND_UPDATED} ({_json_error(text, error)})") from None
            if body is None:
                body = {}
            if not isinstance(body, dict):
                raise _RefusedError(
                    f"{INBOUND_UPDATED} (json: cannot unmarshal {_json_kind(body)}"
                    " into Go value of type model.Inbound)"
                )
            inbound_id, settings = body.get("id"), body.get("settings")
            for name, value, go_type in (
                ("id", inbound_id, "int"),
                ("settings", settings, "string"),
            ):
                if value is not None and not _go_typed(value, go_type):
                    raise _RefusedError(
                        f"{INBOUND_UPDATED} ({_type_error(value, 'Inbound', name, go_type)})"
                    )
            return (inbound_id or 0), (settings or "")
        form = request.form() or {}
        raw_id = form.get("id", "")
        if raw_id and not _GO_INT.match(raw_id):
            raise _RefusedError(
                f'{INBOUND_UPDATED} (strconv.ParseInt: parsing "{raw_id}": invalid syntax)'
            )
        return (int(raw_id) if raw_id else 0), form.get("settings", "")

    def _match_client_id(self, names: Sequence[str], client_id: str) -> str | None:
        """The first of `names` (one inbound's clients) whose client `id` is `client_id`."""
        owner = self._default_id_owner(client_id)
        for user, _ in self.users.entries(names):
            stored = user.xui_client
            if stored is None:
                if user.username == owner:
                    return owner
            elif stored.get("id") == client_id:
                return user.username
        return None

    def _default_id_owner(self, client_id: str) -> str | None:
        """The user whose client id, until a write changes it, is `client_id`."""
        version, names = self.users.ordered_names(by_username=False)
        with self._lock:
            indexed_version, index = self._default_ids
        if indexed_version != version:
            # Each name's uuid is computed once, however often the users change.
            known = set(index.values())
            index = dict(index)
            index.update((str(stable_uuid(n)), n) for n in names if n not in known)
            with self._lock:
                self._default_ids = (version, index)
        return index.get(client_id)

    def _store(
        self, username: str, new_name: str, change: Callable[[EmulatedUser], EmulatedUser]
    ) -> Response:
        """Apply a client update (then the rename it asks for) and reply as 3x-ui does."""
        try:
            self.users.modify(username, change)
            if new_name != username:
                self.users.rename(username, new_name)
        except KeyError:
            return _refused(f"{WENT_WRONG} (record not found)")
        except ValueError:
            return _refused(f"{WENT_WRONG} (Duplicate email: {new_name}\n)")
        return _success(CLIENT_UPDATED)

    # -- v3 (3.5+) client routes
    def get_client(self, request: Request, params: Mapping[str, str]) -> Response:
        """`clients/get/{email}` -> `{client, inboundIds, externalLinks, usedTraffic}`."""

        def render(user: EmulatedUser) -> Response:
            name = user.username
            obj = {
                "client": client_record(user, self.users.id_of(name)),
                "inboundIds": [self.inbound_of(name)],
                "externalLinks": [],
                "usedTraffic": user.used,
            }
            return json_reply({"success": True, "msg": "", "obj": obj})

        return self.user_reply(params["email"], render, lambda _: _refused(" (record not found)"))

    def update_client(self, request: Request, params: Mapping[str, str]) -> Response:
        """`clients/update/{email}` with a bare `model.Client` (v3.5 `ClientService.Update`).

        The entry is REPLACED by the one sent, as in v2: every field left out
        is lost, except `id` (the uuid, kept since v3.3.1), `subId` and
        `created_at`, which are kept when empty. `email` is required and may
        rename the user. Field types are checked as Go's JSON decoder does, so
        a `ClientRecord` sent back as it was read is refused: its numeric `id`,
        and (3.5+) its string `allowedIPs` where `model.Client` takes a list.
        """
        username = params["email"]
        self.count("writes")
        faulted = self.write_fault_reply(username)
        if faulted is not None:
            return faulted
        try:
            sent = _bind_client(request)
        except _RefusedError as refused:
            return _refused(refused.message)
        existing = self.users.get(username)
        if existing is None:
            return _refused(f"{WENT_WRONG} (record not found)")
        new_name = str(sent["email"])
        if not new_name.strip():
            return _refused(f"{WENT_WRONG} (client email is required\n)")
        old_sub_id = _go_str(client_entry(existing).get("subId"))
        sub_id = str(sent["subId"]) or old_sub_id
        if new_name != username and new_name in self.users:
            return _refused(f"{WENT_WRONG} (Duplicate email: {new_name}\n)")
        if sub_id != old_sub_id and any(
            client_entry(user).get("subId") == sub_id
            for user in self.users.all()
            if user.username != username
        ):
            return _refused(f"{WENT_WRONG} (Duplicate subId: {sub_id}\n)")
        record: dict[str, object] = {key: sent[key] for key in STORED_FIELDS}

        def replace(user: EmulatedUser) -> EmulatedUser:
            current = client_entry(user)
            record["id"] = sent["id"] or _go_str(current.get("id"))
            record["subId"] = sub_id
            record["created_at"] = sent["created_at"] or _go_int(current.get("created_at"))
            record["updated_at"] = _now_ms()
            return dataclasses.replace(
                user,
                enabled=sent["enable"] is True,
                data_limit=max(0, _go_int(sent["totalGB"])),
                xui_client=record,
            )

        return self._store(username, new_name, replace)

    def bulk_enable(self, request: Request, params: Mapping[str, str]) -> Response:
        """`clients/bulkEnable` with `{"emails": [...]}`."""
        return self._bulk_set(request, True)

    def bulk_disable(self, request: Request, params: Mapping[str, str]) -> Response:
        """`clients/bulkDisable` with `{"emails": [...]}`."""
        return self._bulk_set(request, False)

    def _bulk_set(self, request: Request, enabled: bool) -> Response:
        """Only `enable` (and `updated_at`) changes; blanks and repeats are dropped.

        A client already in that state is left alone but still counted in
        `changed`; an unknown email is `skipped` with "client not found". The
        write fault of the first listed user that has one applies to the request.
        """
        self.count("writes")
        try:
            emails = _bind_emails(request)
        except _RefusedError as refused:
            return _refused(refused.message)
        faulted = self.write_fault_reply(*emails)
        if faulted is not None:
            return faulted

        def change(user: EmulatedUser) -> EmulatedUser:
            if user.enabled == enabled:
                return user
            entry = client_entry(user)
            stored = {k: v for k, v in entry.items() if k not in ("email", "enable")}
            stored["updated_at"] = _now_ms()
            return dataclasses.replace(user, enabled=enabled, xui_client=stored)

        changed, skipped = 0, []
        for email in emails:
            try:
                self.users.modify(email, change)
            except KeyError:
                skipped.append({"email": email, "reason": "client not found"})
            else:
                changed += 1
        obj: dict[str, object] = {"changed": changed}
        if skipped:
            obj["skipped"] = skipped
        return json_reply({"success": True, "msg": "", "obj": obj})


# ------------------------------------------------------------ client entries


def client_total(user: EmulatedUser) -> int:
    """The client's quota (`totalGB`, bytes) as `client_traffics.total` holds it."""
    if user.xui_client is None and not user.data_limit:
        return DEFAULT_TOTAL_GB
    return user.data_limit


def client_entry(user: EmulatedUser, user_id: int = 0) -> dict[str, object]:
    """The user's client as 3x-ui keeps it in an inbound's `settings.clients`.

    Until a write stores one, the entry is derived from the username (its
    stable uuid as `id`, `subId` from it), with `limitIp` 2, the vision
    `flow`, and `totalGB` = `data_limit` or 50 GiB; `email` and `enable`
    always come from the user.
    """
    stored = user.xui_client
    if stored is None:
        key = stable_uuid(user.username)
        return {
            "id": str(key),
            "flow": DEFAULT_FLOW,
            "email": user.username,
            "limitIp": DEFAULT_LIMIT_IP,
            "totalGB": client_total(user),
            "expiryTime": 0,
            "enable": user.enabled,
            "tgId": 0,
            "subId": key.hex[:16],
            "comment": "",
            "reset": 0,
            "created_at": CREATED_MS,
            "updated_at": CREATED_MS,
        }
    return {**stored, "email": user.username, "enable": user.enabled}


def client_record(user: EmulatedUser, user_id: int) -> dict[str, object]:
    """v3's `ClientRecord` (`clients/get`): `uuid` for `id`, `createdAt`/`updatedAt`,
    and the record's own numeric `id`."""
    entry = client_entry(user)

    def text(key: str) -> str:
        return _go_str(entry.get(key))

    def number(key: str) -> int:
        return _go_int(entry.get(key))

    return {
        "id": user_id,
        "email": user.username,
        "subId": text("subId"),
        "uuid": text("id"),
        "password": text("password"),
        "auth": text("auth"),
        "flow": text("flow"),
        "security": text("security"),
        "reverse": None,
        "privateKey": "",
        "publicKey": "",
        "allowedIPs": "",
        "preSharedKey": "",
        "keepAlive": 0,
        "secret": "",
        "adTag": "",
        "limitIp": number("limitIp"),
        "totalGB": number("totalGB"),
        "expiryTime": number("expiryTime"),
        "enable": user.enabled,
        "tgId": number("tgId"),
        "group": text("group"),
        "comment": text("comment"),
        "reset": number("reset"),
        "createdAt": number("created_at"),
        "updatedAt": number("updated_at"),
    }


# ------------------------------------------------------- Go-like decoding


def _bind_client(request: Request) -> dict[str, Any]:
    """gin's `ShouldBindJSON` into `model.Client`: every field, typed, zero when absent."""
    body = _bind_json(request, "model.Client")
    typed: dict[str, Any] = {}
    for name, go_type in CLIENT_FIELD_TYPES.items():
        value = body.get(name)
        if value is None:
            typed[name] = _GO_ZERO[go_type]
        elif _go_typed(value, go_type):
            typed[name] = value
        else:
            raise _RefusedError(f"{WENT_WRONG} ({_type_error(value, 'Client', name, go_type)})")
    return typed


def _bind_emails(request: Request) -> list[str]:
    """The `emails` of a bulk body, trimmed, blanks and repeats dropped."""
    body = _bind_json(request, "controller.bulkEnableRequest")
    emails = body.get("emails")
    if emails is None:
        return []
    if not isinstance(emails, list):
        raise _RefusedError(
            f"{WENT_WRONG} ({_type_error(emails, 'bulkEnableRequest', 'emails', '[]string')})"
        )
    clean: list[str] = []
    for email in emails:
        if email is not None and not isinstance(email, str):
            raise _RefusedError(
                f"{WENT_WRONG} ({_type_error(email, 'bulkEnableRequest', 'emails', 'string')})"
            )
        trimmed = (email or "").strip()
        if trimmed and trimmed not in clean:
            clean.append(trimmed)
    return clean


def _bind_json(request: Request, go_type: str) -> dict[str, Any]:
    """A JSON-object body as gin's `ShouldBindJSON` reads it (null: an empty object)."""
    if not request.body:
        raise _RefusedError(f"{WENT_WRONG} (EOF)")
    text = request.body.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError as error:
        raise _RefusedError(f"{WENT_WRONG} ({_json_error(text, error)})") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        kind = _json_kind(body)
        raise _RefusedError(
            f"{WENT_WRONG} (json: cannot unmarshal {kind} into Go value of type {go_type})"
        )
    return body


def _go_typed(value: object, go_type: str) -> bool:
    if go_type == "string":
        return isinstance(value, str)
    if go_type == "bool":
        return isinstance(value, bool)
    if go_type == "[]string":
        return isinstance(value, list) and all(isinstance(item, str | None) for item in value)
    if go_type.startswith("model."):
        return isinstance(value, dict)
    return isinstance(value, int) and not isinstance(value, bool)


def _go_str(value: object) -> str:
    """A string field as Go decodes it: a wrong type reads as ""."""
    return value if isinstance(value, str) else ""


def _go_int(value: object) -> int:
    """An integer field as Go decodes it: a wrong type reads as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_error(value: object, struct: str, field: str, go_type: str) -> str:
    kind = _json_kind(value)
    if kind == "number" and go_type.startswith("int"):
        kind = f"number {json.dumps(value)}"
    return f"json: cannot unmarshal {kind} into Go struct field {struct}.{field} of type {go_type}"


def _json_error(text: str, error: ValueError) -> str:
    """Go's message for a body that is not JSON."""
    position = getattr(error, "pos", len(text))
    if not text.strip() or position >= len(text):
        return "unexpected end of JSON input"
    return f"invalid character {text[position]!r} looking for beginning of value"


def _refused(message: str) -> Response:
    return json_reply({"success": False, "msg": message, "obj": None})


def _success(message: str) -> Response:
    return json_reply({"success": True, "msg": message, "obj": None})


def _now_ms() -> int:
    return int(time.time() * 1000)
