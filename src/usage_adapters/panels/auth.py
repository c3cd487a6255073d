"""The ways a session proves who it is: an OAuth2 password form, or an API key in a header.

Which one a panel row gets is chosen by what it holds: `api_key_auth` gives
the key scheme when the row's `api_token` is set (PasarGuard `X-Api-Key`,
3x-ui v3 `Authorization: Bearer`), and the dialect falls back to its login
otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from usage_adapters.panels.dialect import LoginFailure
from usage_adapters.panels.http import (
    HttpChannel,
    Reply,
    TransportProblem,
    decode_json,
    header_safe,
)
from usage_adapters.panels.kept_logins import KeptCredential, jwt_expiry
from usage_core.log import ctx
from usage_core.model import Panel
from usage_core.readings import HardFailure

logger = logging.getLogger(__name__)


class PasswordTokenAuth:
    """A login with the admin's username and password that buys a bearer token.

    Marzban (`/api/admin/token`), Marzneshin (`/api/admins/token`) and
    PasarGuard take an OAuth2 password form and answer `{"access_token": ...}`;
    Remnawave (`/api/auth/login`) takes JSON and answers
    `{"response": {"accessToken": ...}}` (`json_login`, `token_at`). The token
    then goes in `Authorization: Bearer`, with the `extra` headers. A 401 means
    the token was rejected. The token can be kept between runs until its JWT
    `exp`.
    """

    needs_login = True

    def __init__(
        self,
        panel: Panel,
        label: str,
        token_path: str,
        *,
        json_login: bool = False,
        token_at: tuple[str, ...] = ("access_token",),
        extra: Mapping[str, str] | None = None,
        missing: str = "the panel has no admin username or password",
    ) -> None:
        self._panel_id = panel.id
        self._label = label
        self._token_path = token_path
        self._json_login = json_login
        self._token_at = token_at
        self._extra = dict(extra or {})
        self._missing = missing
        self._username = panel.username or ""
        self._password = panel.password.reveal() if panel.password else ""

    def problem(self) -> str | None:
        """Both the admin username and password are needed."""
        if not self._username or not self._password:
            return self._missing
        return None

    def log_in(self, http: HttpChannel, deadline: float | None) -> object | LoginFailure:
        """Post the login; the access token, or why not."""
        label = self._label
        form = {"username": self._username, "password": self._password}
        sent = http.send(
            "POST",
            self._token_path,
            data=None if self._json_login else form,
            json_body=form if self._json_login else None,
            headers={**self._extra, "Accept": "application/json"},
            deadline=deadline,
        )
        if isinstance(sent, TransportProblem):
            logger.error(f"{label} Login Exception:", extra=ctx(message=sent.message))
            return LoginFailure(HardFailure(f"login failed: {sent.reason}"), final=False)
        token = _access_token(sent, self._token_at)
        if token is None:
            logger.warning(
                f"{label} Login failed",
                extra=ctx(status=sent.status, body_preview=http.preview(sent)),
            )
            failure = http.http_failure(sent, prefix="login failed: ")
            if sent.ok:
                failure = HardFailure(
                    f"login failed: HTTP {sent.status} without a usable access token"
                )
            return LoginFailure(failure, final=sent.status < 500)
        http.redactor.add(token)
        logger.debug(f"{label} Login successful")
        return token

    def headers(self, credential: object) -> Mapping[str, str]:
        """`Authorization: Bearer <token>`, with the extra headers."""
        return {
            **self._extra,
            "Authorization": f"Bearer {credential}",
            "Accept": "application/json",
        }

    def lost(self, reply: Reply, route_known: bool) -> bool:
        """A 401: the token expired or was revoked."""
        return reply.status == 401

    def on_relogin(self, username: str | None) -> None:
        """Say that the token is being renewed."""
        about = {"username": username} if username else {"panel_id": self._panel_id}
        logger.info("%s token rejected; logging in again", self._label, extra=ctx(**about))

    def keep(self, credential: object) -> KeptCredential | None:
        """The token and its `exp` (None for a token that is not a JWT or has none)."""
        if not isinstance(credential, str):
            return None
        return KeptCredential({"token": credential}, jwt_expiry(credential))

    def restore(self, http: HttpChannel, kept: KeptCredential) -> object | None:
        """The kept token, when it can travel in a header."""
        token = kept.fields.get("token")
        if not isinstance(token, str) or not token or not header_safe(token):
            return None
        http.redactor.add(token)
        return token


def _access_token(reply: Reply, at: tuple[str, ...]) -> str | None:
    """The token found under the keys `at` of a successful reply, if it fits in a header."""
    if not reply.ok:
        return None
    token = decode_json(reply)
    for key in at:
        token = token.get(key) if isinstance(token, dict) else None
    return token if isinstance(token, str) and token and header_safe(token) else None


class StaticKeyAuth:
    """A key sent in one header with every request; there is no login to renew.

    `scheme` prefixes the key in the header's value (`Authorization: Bearer
    <key>`); without it the value is the key alone (`X-Api-Key: <key>`).
    `extra` headers go along with it.
    """

    needs_login = False

    def __init__(
        self,
        key: str,
        header: str,
        *,
        missing: str,
        scheme: str = "",
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self._key = key
        self._header = header
        self._missing = missing
        self._headers = {
            "Accept": "application/json",
            **(extra or {}),
            header: f"{scheme} {key}" if scheme else key,
        }

    def problem(self) -> str | None:
        """The key must be present and fit in a header."""
        if not self._key:
            return self._missing
        if not header_safe(self._key):
            return "the panel's API token has characters a header cannot carry"
        return None

    def log_in(self, http: HttpChannel, deadline: float | None) -> object | LoginFailure:
        """Nothing to do: the key is the credential."""
        return self._key

    def headers(self, credential: object) -> Mapping[str, str]:
        """The key's header (and the extra ones)."""
        return self._headers

    def lost(self, reply: Reply, route_known: bool) -> bool:
        """A static key is never renewed."""
        return False

    def on_relogin(self, username: str | None) -> None:
        """Never called: a static key is never renewed."""


def api_key_auth(
    panel: Panel, header: str, *, scheme: str = "", extra: Mapping[str, str] | None = None
) -> StaticKeyAuth | None:
    """The panel row's `api_token` sent in `header` (after `scheme`), or None without one.

    E.g. `api_key_auth(panel, "X-Api-Key")` for PasarGuard, or
    `api_key_auth(panel, "Authorization", scheme="Bearer")` for 3x-ui v3's API
    tokens; a dialect falls back to its login when this is None. A key the
    panel refuses is not renewed: each request fails with the panel's reply.
    """
    key = panel.api_token.reveal().strip() if panel.api_token else ""
    if not key:
        return None
    missing = "the panel has no API token"
    return StaticKeyAuth(key, header, missing=missing, scheme=scheme, extra=extra)
