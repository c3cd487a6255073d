"""3x-ui: a cookie session (CSRF-protected from v3), the client-traffic route, and
`GET /panel/api/inbounds/list` (every inbound with its clients' `clientStats`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence

import attrs

from usage_adapters.panels.auth import StaticKeyAuth, api_key_auth
from usage_adapters.panels.dialect import (
    Auth,
    FetchWording,
    LoginFailure,
    Page,
    Requester,
    Unasked,
    log_debug_reading,
)
from usage_adapters.panels.http import (
    HttpChannel,
    QueryParams,
    Reply,
    TransportProblem,
    decode_json,
    header_safe,
    path_segment,
)
from usage_adapters.panels.json_stream import EACH, Path
from usage_adapters.panels.kept_logins import KeptCredential
from usage_adapters.panels.options import ReadOptions
from usage_adapters.panels.writes import Answer, answer, done
from usage_core.log import ctx
from usage_core.model import Panel
from usage_core.readings import (
    CounterReading,
    HardFailure,
    RemoteResult,
    UsageResult,
    parse_xui_client_traffic,
    parse_xui_envelope,
    parse_xui_inbounds,
)

logger = logging.getLogger(__name__)

LABEL = "XUI"
# 3x-ui up to 3.0.x; removed in 3.1.0 in favour of the clients API.
LEGACY_TRAFFIC_ROUTE = "/panel/api/inbounds/getClientTraffics/"
CLIENTS_TRAFFIC_ROUTE = "/panel/api/clients/traffic/"
# Every version: all inbounds, each with every client's traffic in `clientStats`.
INBOUNDS_ROUTE = "/panel/api/inbounds/list"
# Makes 3x-ui answer 401 rather than 404 when the session is gone.
XHR = {"Accept": "application/json", "X-Requested-With": "XMLHttpRequest"}


@attrs.frozen
class XuiListing:
    """`GET /panel/api/inbounds/list`: the `clientStats` of every inbound, at once.

    A client in several inbounds keeps its last record.
    """

    item_key: str = "email"
    user_arrays: tuple[Path, ...] = (("obj", EACH, "clientStats"),)
    # Every client again, as one string (v2) or object (v3): half the reply, and unused.
    unread_values: tuple[Path, ...] = (("obj", EACH, "settings"),)

    def request(self, number: int) -> tuple[str, QueryParams]:
        """The one page."""
        return INBOUNDS_ROUTE, ()

    def read_page(self, decoded: object, number: int) -> Page | str:
        """Every inbound's `clientStats` records."""
        page = parse_xui_inbounds(decoded)
        return page if isinstance(page, str) else Page(page.items, 1)

    def read_item(self, item: Mapping[str, object]) -> UsageResult:
        """A `ClientTraffic` record: `up + down`."""
        return parse_xui_client_traffic(item)


class XuiCookieAuth:
    """A cookie session: `GET /csrf-token` (v3; v2 answers 404), then `POST /login`.

    The credential is the cookie jar itself; logins are told apart by
    number. The session is gone on a 401, a 404 from a route that answered
    before (3x-ui 2.8.4+ hides a lost session as 404), a redirect (to the
    login page), or, before 3x-ui 2.2.5, HTTP 200 with `success: false` and
    the panel's "session has expired" message. The session cookie and CSRF
    token can be kept between runs until the cookie's `Max-Age` runs out.
    """

    needs_login = True

    def __init__(self, panel: Panel, http: HttpChannel) -> None:
        self._username = panel.username or ""
        self._password = panel.password.reveal() if panel.password else ""
        self._login_url = f"{panel.display_url.rstrip('/')}/login"
        self._http = http
        self._logins = 0
        self.csrf_token: str | None = None

    def problem(self) -> str | None:
        """Both the admin username and password are needed."""
        if not self._username or not self._password:
            return "the panel has no admin username or password"
        return None

    def log_in(self, http: HttpChannel, deadline: float | None) -> object | LoginFailure:
        """Ask for a CSRF token, post the login form; the login's number, or why not."""
        http.client.cookies.clear()
        headers = dict(XHR)
        csrf = http.send("GET", "/csrf-token", headers=headers, deadline=deadline)
        if isinstance(csrf, Reply):
            token = _csrf_token(csrf)
            self.csrf_token = token
            if token is not None:
                http.redactor.add(token)
                headers["X-CSRF-Token"] = token
            sent = http.send(
                "POST",
                "/login",
                data={"username": self._username, "password": self._password},
                headers=headers,
                deadline=deadline,
            )
        else:
            sent = csrf
        if isinstance(sent, TransportProblem):
            logger.error(
                "XUI Connection Exception:", extra=ctx(url=self._login_url, message=sent.message)
            )
            return LoginFailure(HardFailure(f"login failed: {sent.reason}"), final=False)
        for cookie in http.client.cookies.jar:
            if cookie.value:
                http.redactor.add(cookie.value)
        if not _succeeded(sent):
            logger.warning(
                "XUI Login Failed",
                extra=ctx(url=self._login_url, status=sent.status, body_preview=http.preview(sent)),
            )
            failure = http.http_failure(sent, prefix="login failed: ")
            return LoginFailure(failure, final=sent.status < 500)
        logger.info("XUI Login successful.", extra=ctx(url=self._login_url))
        self._logins += 1
        return self._logins

    def headers(self, credential: object) -> Mapping[str, str]:
        """`X-Requested-With`, so that a lost session answers 401 (cookies ride in the jar).

        On 3x-ui v3 the session's CSRF token goes along too: every unsafe
        request of a cookie session needs it.
        """
        if self.csrf_token is None:
            return XHR
        return {**XHR, "X-CSRF-Token": self.csrf_token}

    def lost(self, reply: Reply, route_known: bool) -> bool:
        """401, a redirect, 404 from a route that worked before, or the old expiry message."""
        if reply.status == 401 or 300 <= reply.status < 400:
            return True
        if reply.status == 404:
            return route_known
        return reply.ok and _session_expired(reply)

    def on_relogin(self, username: str | None) -> None:
        """Say that the session is being renewed."""
        about = {"username": username} if username else {"url": self._login_url}
        logger.info("XUI session expired; logging in again", extra=ctx(**about))

    def keep(self, credential: object) -> KeptCredential | None:
        """The session's cookies and CSRF token, until the first cookie expires."""
        cookies = [
            {"name": c.name, "value": c.value, "domain": c.domain, "path": c.path}
            for c in self._http.client.cookies.jar
            if c.value
        ]
        if not cookies:
            return None
        # The jar turned `Max-Age` into an instant of this machine's clock.
        ends = [float(c.expires) for c in self._http.client.cookies.jar if c.expires]
        lifetime = min(ends) - time.time() if ends else None
        fields: dict[str, object] = {"cookies": cookies, "csrf": self.csrf_token}
        return KeptCredential(fields, lifetime_s=lifetime)

    def restore(self, http: HttpChannel, kept: KeptCredential) -> object | None:
        """The kept cookies back in the jar, the CSRF token back in the headers."""
        cookies = kept.fields.get("cookies")
        csrf = kept.fields.get("csrf")
        if not isinstance(cookies, list) or not (csrf is None or isinstance(csrf, str)):
            return None
        jar = http.client.cookies
        jar.clear()
        for cookie in cookies:
            if not isinstance(cookie, dict):
                return None
            name, value = cookie.get("name"), cookie.get("value")
            domain, path = cookie.get("domain"), cookie.get("path")
            if not all(isinstance(part, str) for part in (name, value, domain, path)):
                return None
            jar.set(str(name), str(value), domain=str(domain), path=str(path))
            http.redactor.add(str(value))
        if csrf is not None and header_safe(csrf):
            http.redactor.add(csrf)
            self.csrf_token = csrf
        self._logins += 1
        return self._logins


# The credential of a session on the API token (the header carries the token itself).
_API_TOKEN = object()


class XuiTokenAuth:
    """3x-ui v3's API token (`Authorization: Bearer`, no login, no CSRF), with the
    cookie login as a fallback for a panel that refuses it.

    A panel without API tokens (v2, or v3 with the token revoked) answers 401;
    when the row also has a username and password, the session then logs in
    with them (once) and keeps that session as any cookie login is kept.
    """

    needs_login = True

    def __init__(self, token: StaticKeyAuth, cookie: XuiCookieAuth) -> None:
        self._token = token
        self._cookie = cookie
        self._refused = False
        self._switching = False

    def problem(self) -> str | None:
        """The token must fit in a header."""
        return self._token.problem()

    def log_in(self, http: HttpChannel, deadline: float | None) -> object | LoginFailure:
        """The token, asking nothing; once it was refused, the cookie login."""
        if not self._refused:
            return Unasked(_API_TOKEN)
        if self._cookie.problem() is not None:
            return LoginFailure(HardFailure("the panel refused its API token"), final=True)
        return self._cookie.log_in(http, deadline)

    def headers(self, credential: object) -> Mapping[str, str]:
        """The token's header, or the cookie session's."""
        if credential is _API_TOKEN:
            return self._token.headers(credential)
        return self._cookie.headers(credential)

    def lost(self, reply: Reply, route_known: bool) -> bool:
        """While on the token: a 401 refuses it. Then: the cookie session's rules."""
        if not self._refused:
            if reply.status != 401:
                return False
            self._refused = self._switching = True
            logger.warning("XUI API token refused; logging in with the username and password")
            return True
        return self._cookie.lost(reply, route_known)

    def on_relogin(self, username: str | None) -> None:
        """Say that the session is being renewed (the switch from the token is said already)."""
        if self._switching:
            self._switching = False
            return
        self._cookie.on_relogin(username)

    def keep(self, credential: object) -> KeptCredential | None:
        """A cookie session is kept; the token needs no keeping."""
        return None if credential is _API_TOKEN else self._cookie.keep(credential)

    def restore(self, http: HttpChannel, kept: KeptCredential) -> object | None:
        """A kept cookie session (the token was refused before): used until it ends."""
        restored = self._cookie.restore(http, kept)
        if restored is not None:
            self._refused = True
        return restored


def _csrf_token(reply: Reply) -> str | None:
    """The v3 CSRF token from `GET /csrf-token`, or None (v2 answers 404)."""
    if not reply.ok:
        return None
    decoded = decode_json(reply)
    if not isinstance(decoded, dict) or decoded.get("success") is not True:
        return None
    token = decoded.get("obj")
    return token if isinstance(token, str) and token and header_safe(token) else None


# "pages.login.loginAgain" in 3x-ui's translations: what a lost session got before 2.2.5.
_LOGIN_AGAIN = frozenset(
    {
        "Your session has expired, please log in again",
        "登录时效已过，请重新登录",
        "مدت زمان استفاده به‌اتمام‌رسیده، لطفا دوباره وارد شوید",
        "Время пребывания в сети вышло. Пожалуйста, войдите в систему снова",
        "Ваш сеанс закінчився, увійдіть знову",
        "Sesi Anda telah berakhir, harap masuk kembali",
        "Thời hạn đăng nhập đã hết. Vui lòng đăng nhập lại.",
        "El límite de tiempo de inicio de sesión ha expirado. Por favor, inicia sesión nuevamente.",
    }
)


def _session_expired(reply: Reply) -> bool:
    """`success: false` with the panel's "log in again" message (3x-ui before 2.2.5)."""
    if len(reply.body) > 1024:
        return False
    decoded = decode_json(reply)
    return (
        isinstance(decoded, dict)
        and decoded.get("success") is False
        and str(decoded.get("msg", "")).strip() in _LOGIN_AGAIN
    )


def _succeeded(reply: Reply) -> bool:
    decoded = decode_json(reply)
    return reply.ok and isinstance(decoded, dict) and decoded.get("success") is True


class XuiDialect:
    """How a 3x-ui session logs in, reads one client and lists them all.

    A client's traffic is read from `inbounds/getClientTraffics/{email}`,
    falling back on a 404 to `clients/traffic/{email}` (3x-ui >= 3.1); the
    route that answered is kept for the session.
    """

    label = LABEL
    wording = FetchWording.for_label(LABEL, "Client Traffic")
    listing = XuiListing()

    def __init__(self, http: HttpChannel, options: ReadOptions) -> None:
        self.http_channel = http
        cookie = XuiCookieAuth(http.panel, http)
        token = api_key_auth(http.panel, "Authorization", scheme="Bearer", extra=XHR)
        self.auth: Auth = cookie if token is None else XuiTokenAuth(token, cookie)
        # Which set-state route this panel has, once a write has found out.
        self._write_route: str | None = None

    def user_paths(self, username: str) -> Sequence[str]:
        """The legacy route, then the 3.1+ one."""
        segment = path_segment(username)
        return (LEGACY_TRAFFIC_ROUTE + segment, CLIENTS_TRAFFIC_ROUTE + segment)

    def parse_user(self, decoded: object) -> UsageResult:
        """`obj.up + obj.down` of the `{success, msg, obj}` envelope."""
        return parse_xui_envelope(decoded)

    def log_reading(self, username: str, reading: CounterReading) -> None:
        """A debug line with the counter."""
        log_debug_reading(logger, LABEL, username, reading)

    def set_enabled(self, api: Requester, username: str, enabled: bool) -> RemoteResult:
        """Set the client's `enable`, by the newest route the panel has.

        3x-ui 3.5+ has `clients/bulkEnable`/`bulkDisable`, which change only
        `enable`. Older versions replace the whole client on update (every
        field left out becomes 0 or empty), so there the full client is read
        first and sent back with only `enable` changed: `clients/update` on
        3.1+, `inbounds/updateClient` before.
        """
        routes = (
            (BULK, self._bulk),
            (CLIENTS, self._clients_update),
            (LEGACY, self._legacy_update),
        )
        result = RemoteResult(False, "the panel has no route to change a client")
        for name, write in routes:
            if self._write_route not in (None, name):
                continue
            outcome = write(api, username, enabled)
            if outcome is None:  # this panel has no such route
                continue
            self._write_route = name
            return outcome
        return result

    def _bulk(self, api: Requester, email: str, enabled: bool) -> RemoteResult | None:
        route = "bulkEnable" if enabled else "bulkDisable"
        sent = answer(
            self.http_channel,
            api("POST", f"/panel/api/clients/{route}", json_body={"emails": [email]}, probe=True),
            f"calling clients/{route}",
            expected=(404,),
        )
        if isinstance(sent, RemoteResult):
            return sent
        if sent.status == 404:
            return None
        obj = _envelope(sent)
        if isinstance(obj, RemoteResult):
            return obj
        skipped = obj.get("skipped") if isinstance(obj, dict) else None
        for entry in skipped if isinstance(skipped, list) else []:
            if isinstance(entry, dict) and entry.get("email") == email:
                return RemoteResult(False, f"the panel skipped the client: {entry.get('reason')}")
        state = self._client_state(api, email)
        if state is not None and state != enabled:
            return RemoteResult(False, "the panel kept the client's state")
        return done(enabled, verified=state is not None)

    def _client_record(self, api: Requester, email: str) -> dict[str, object] | RemoteResult | None:
        """3.1+: `clients/get/{email}` → its `client`; None when the route does not exist."""
        sent = answer(
            self.http_channel,
            api("GET", f"/panel/api/clients/get/{path_segment(email)}", probe=True),
            "reading the client",
            expected=(404,),
        )
        if isinstance(sent, RemoteResult) or sent.status == 404:
            return sent if isinstance(sent, RemoteResult) else None
        obj = _envelope(sent)
        if isinstance(obj, RemoteResult):
            return obj
        client = obj.get("client") if isinstance(obj, dict) else None
        if not isinstance(client, dict):
            return RemoteResult(False, "the reply has no client record")
        return client

    def _client_state(self, api: Requester, email: str) -> bool | None:
        record = self._client_record(api, email)
        if isinstance(record, dict) and isinstance(record.get("enable"), bool):
            return bool(record["enable"])
        return None

    def _clients_update(self, api: Requester, email: str, enabled: bool) -> RemoteResult | None:
        record = self._client_record(api, email)
        if record is None or isinstance(record, RemoteResult):
            return record
        if record.get("enable") is enabled:
            return done(enabled, already=True, verified=True)
        body = client_from_record(record) | {"enable": enabled}
        sent = answer(
            self.http_channel,
            api("POST", f"/panel/api/clients/update/{path_segment(email)}", json_body=body),
            "updating the client",
        )
        if isinstance(sent, RemoteResult):
            return sent
        obj = _envelope(sent)
        if isinstance(obj, RemoteResult):
            return obj
        state = self._client_state(api, email)
        if state is not None and state != enabled:
            return RemoteResult(False, "the panel kept the client's state")
        return done(enabled, verified=state is not None)

    def _legacy_update(self, api: Requester, email: str, enabled: bool) -> RemoteResult | None:
        found = self._legacy_client(api, email)
        if isinstance(found, RemoteResult):
            return found
        inbound_id, protocol, client = found
        if client.get("enable") is enabled:
            return done(enabled, already=True, verified=True)
        client_id = legacy_client_id(protocol, client)
        if not client_id:
            return RemoteResult(False, f"the client has no id for a {protocol} inbound")
        settings = json.dumps({"clients": [{**client, "enable": enabled}]})
        sent = answer(
            self.http_channel,
            api(
                "POST",
                f"/panel/api/inbounds/updateClient/{path_segment(client_id)}",
                json_body={"id": inbound_id, "settings": settings},
            ),
            "updating the client",
        )
        if isinstance(sent, RemoteResult):
            return sent
        obj = _envelope(sent)
        if isinstance(obj, RemoteResult):
            return obj
        after = self._legacy_client(api, email)
        if isinstance(after, RemoteResult):
            return done(enabled)
        if after[2].get("enable") is not enabled:
            return RemoteResult(False, "the panel kept the client's state")
        return done(enabled, verified=True)

    def _legacy_client(
        self, api: Requester, email: str
    ) -> tuple[int, str, dict[str, object]] | RemoteResult:
        """v2 to 3.0: the client's inbound (from its traffic record) and its full settings entry."""
        traffic = answer(
            self.http_channel,
            api("GET", LEGACY_TRAFFIC_ROUTE + path_segment(email)),
            "reading the client's traffic record",
        )
        if isinstance(traffic, RemoteResult):
            return traffic
        record = _envelope(traffic)
        if isinstance(record, RemoteResult):
            return record
        inbound_id = record.get("inboundId") if isinstance(record, dict) else None
        if not isinstance(inbound_id, int) or isinstance(inbound_id, bool):
            return RemoteResult(False, "the panel has no traffic record for that client")
        sent = answer(
            self.http_channel,
            api("GET", f"/panel/api/inbounds/get/{inbound_id}"),
            "reading the client's inbound",
        )
        if isinstance(sent, RemoteResult):
            return sent
        inbound = _envelope(sent)
        if isinstance(inbound, RemoteResult):
            return inbound
        if not isinstance(inbound, dict):
            return RemoteResult(False, "the inbound reply is not an object")
        client = settings_client(inbound.get("settings"), email)
        if client is None:
            return RemoteResult(False, "the client is not in its inbound's settings")
        return inbound_id, str(inbound.get("protocol") or ""), client


BULK, CLIENTS, LEGACY = "bulk", "clients", "legacy"
# ClientRecord (3.1+) spells some Client fields differently.
_RECORD_TO_CLIENT = {"uuid": "id", "createdAt": "created_at", "updatedAt": "updated_at"}


def _envelope(sent: Answer) -> object:
    """The `obj` of a `{success, msg, obj}` reply, or the failure it reports."""
    reply = sent.value
    if not isinstance(reply, dict):
        return RemoteResult(False, "the reply is not a JSON object")
    if reply.get("success") is not True:
        return RemoteResult(
            False, f"the panel replied success: false: {str(reply.get('msg'))[:200]}"
        )
    return reply.get("obj")


def client_from_record(record: dict[str, object]) -> dict[str, object]:
    """A 3.1+ `ClientRecord` as the `Client` body `clients/update` takes, every field kept.

    The record spells `allowedIPs` as comma-separated text where the update
    takes a list.
    """
    client = {_RECORD_TO_CLIENT.get(key, key): value for key, value in record.items()}
    allowed = client.get("allowedIPs")
    if isinstance(allowed, str):
        client["allowedIPs"] = [part.strip() for part in allowed.split(",") if part.strip()]
    return client


def settings_client(settings: object, email: str) -> dict[str, object] | None:
    """The client with `email` in an inbound's `settings` (a JSON string in 3x-ui v2)."""
    if isinstance(settings, str):
        try:
            settings = json.loads(settings)
        except ValueError:
            return None
    clients = settings.get("clients") if isinstance(settings, dict) else None
    for client in clients if isinstance(clients, list) else []:
        if isinstance(client, dict) and client.get("email") == email:
            return client
    return None


def legacy_client_id(protocol: str, client: dict[str, object]) -> str:
    """The `:clientId` `updateClient` matches, by the inbound's protocol."""
    key = {"trojan": "password", "shadowsocks": "email", "hysteria": "auth", "hysteria2": "auth"}
    value = client.get(key.get(protocol.lower(), "id"))
    return value if isinstance(value, str) else ""
