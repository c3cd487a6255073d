"""Logins kept across runs: a panel's bearer token or session cookie, sealed, until it
expires or the panel refuses it.

A `LoginStore` (Redis, a state-directory file, or memory) holds at most one
login per panel, under the panel's id and a fingerprint: a keyed hash
(HMAC-SHA256) of the panel's URL, admin username and password. A changed
credential has another fingerprint, so its old login is never served. What
is stored is sealed with AES-GCM (the fingerprint is its associated data),
so a copy of the store without the key gives away no token. A login whose
expiry (a JWT `exp`, a cookie's `Max-Age`) is less than `margin_s` away is
not used: the session logs in again instead of meeting a 401 mid-run.

Failures of the store are logged (never with a token) and cost only the
keeping: the session then logs in as if nothing had been kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from usage_adapters.panels.dialect import Auth
from usage_adapters.panels.http import HttpChannel
from usage_core.log import ctx
from usage_core.model import Panel

logger = logging.getLogger(__name__)

# Stop using a login this long before it expires.
DEFAULT_MARGIN_S = 300.0
# How long a login without a known expiry is kept (a Marzban with expiry 0 issues such tokens).
UNKNOWN_EXPIRY_KEEP_S = 7 * 24 * 3600.0
_NONCE_BYTES = 12


class LoginStore(Protocol):
    """Sealed logins, at most one per panel, each under its credential's fingerprint."""

    def get(self, panel_id: int, fingerprint: str) -> bytes | None:
        """The sealed login kept for this panel and fingerprint, or None."""
        ...

    def put(self, panel_id: int, fingerprint: str, sealed: bytes, ttl_s: int) -> None:
        """Keep `sealed` for `ttl_s` seconds, replacing whatever the panel had."""
        ...

    def drop(self, panel_id: int) -> None:
        """Forget the panel's login."""
        ...


class MemoryLoginStore:
    """A `LoginStore` in a dict, for tests and for one process's lifetime."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.entries: dict[int, tuple[str, bytes, float]] = {}

    def get(self, panel_id: int, fingerprint: str) -> bytes | None:
        """The sealed login, unless it is another credential's or its time ran out."""
        with self._lock:
            entry = self.entries.get(panel_id)
        if entry is None or entry[0] != fingerprint or self._clock() >= entry[2]:
            return None
        return entry[1]

    def put(self, panel_id: int, fingerprint: str, sealed: bytes, ttl_s: int) -> None:
        """Keep it until `ttl_s` seconds from now."""
        with self._lock:
            self.entries[panel_id] = (fingerprint, sealed, self._clock() + ttl_s)

    def drop(self, panel_id: int) -> None:
        """Forget it."""
        with self._lock:
            self.entries.pop(panel_id, None)


@attrs.frozen
class KeptCredential:
    """What a session needs to use a login again, and when the panel stops accepting it.

    The end is an instant (`expires_at`, e.g. a JWT's `exp`) or a lifetime
    from now (`lifetime_s`, e.g. a cookie's `Max-Age`); the keeper stores it
    as an instant of its own clock.
    """

    fields: Mapping[str, object]
    expires_at: float | None = None
    lifetime_s: float | None = None


@runtime_checkable
class KeepableAuth(Auth, Protocol):
    """An `Auth` whose credential can be kept between runs."""

    def keep(self, credential: object) -> KeptCredential | None:
        """What to keep of `credential` (None: nothing worth keeping)."""
        ...

    def restore(self, http: HttpChannel, kept: KeptCredential) -> object | None:
        """The credential to use from a kept one (set up on `http`), or None when unusable."""
        ...


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT (unverified: only to know when to stop using it), or None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool) and math.isfinite(exp):
        return float(exp)
    return None


class LoginKeeper:
    """Seals, names and times the logins kept in a `LoginStore`.

    Args:
        store: Where the sealed logins live.
        secret: The master key (called once, on first use): the app key or a
            generated key, from which the sealing and fingerprint keys derive.
        clock: Wall-clock seconds (a JWT's `exp` is wall-clock time).
        margin_s: A login this close to its expiry is not used.
    """

    def __init__(
        self,
        store: LoginStore,
        secret: Callable[[], bytes],
        *,
        clock: Callable[[], float] = time.time,
        margin_s: float = DEFAULT_MARGIN_S,
    ) -> None:
        self._store = store
        self._secret = secret
        self._clock = clock
        self.margin_s = margin_s
        self._keys: tuple[AESGCM, bytes] | None = None
        self._lock = threading.Lock()

    def _derived(self) -> tuple[AESGCM, bytes]:
        with self._lock:
            if self._keys is None:
                master = self._secret()
                seal = hmac.digest(master, b"usage-sync kept logins: seal", hashlib.sha256)
                name = hmac.digest(master, b"usage-sync kept logins: name", hashlib.sha256)
                self._keys = (AESGCM(seal), name)
            return self._keys

    def fingerprint(self, panel: Panel) -> str:
        """A keyed hash of what the login was bought with: URL, username, password."""
        _, name_key = self._derived()
        password = panel.password.reveal() if panel.password else ""
        material = json.dumps([panel.id, panel.url, panel.username or "", password])
        return hmac.new(name_key, material.encode(), hashlib.sha256).hexdigest()

    def recall(self, panel: Panel) -> KeptCredential | None:
        """The panel's kept login, unless there is none, it is another credential's,
        it cannot be opened, or it expires within the margin."""
        try:
            fingerprint = self.fingerprint(panel)
            sealed = self._store.get(panel.id, fingerprint)
        except Exception as exc:  # noqa: BLE001 - a failing store costs only the keeping
            _store_failed(panel, "read", exc)
            return None
        if sealed is None:
            return None
        kept = self._open(panel, fingerprint, sealed)
        if kept is None:
            logger.info(
                "Panel %s: the kept login cannot be opened; logging in",
                panel.id,
                extra=ctx(panel_id=panel.id),
            )
            return None
        if kept.expires_at is not None and self._clock() >= kept.expires_at - self.margin_s:
            logger.info(
                "Panel %s: the kept login expires soon; logging in",
                panel.id,
                extra=ctx(panel_id=panel.id),
            )
            return None
        logger.debug("Panel %s: using the kept login", panel.id, extra=ctx(panel_id=panel.id))
        return kept

    def keep(self, panel: Panel, kept: KeptCredential) -> None:
        """Keep `kept` until it expires (a login without an expiry: a week)."""
        now = self._clock()
        if kept.lifetime_s is not None:
            kept = KeptCredential(kept.fields, now + kept.lifetime_s)
        until = kept.expires_at if kept.expires_at is not None else now + UNKNOWN_EXPIRY_KEEP_S
        if until - self.margin_s <= now:
            return  # it would never be used
        try:
            fingerprint = self.fingerprint(panel)
            sealed = self._seal(panel, fingerprint, kept)
            self._store.put(panel.id, fingerprint, sealed, math.ceil(until - now))
        except Exception as exc:  # noqa: BLE001 - a failing store costs only the keeping
            _store_failed(panel, "write", exc)

    def forget(self, panel: Panel) -> None:
        """Drop the panel's kept login (the panel refused it)."""
        try:
            self._store.drop(panel.id)
        except Exception as exc:  # noqa: BLE001 - a failing store costs only the keeping
            _store_failed(panel, "drop", exc)

    def forget_panel(self, panel_id: int) -> None:
        """Drop the login kept for this panel id; a failing store raises (asked by hand)."""
        self._store.drop(panel_id)

    def _seal(self, panel: Panel, fingerprint: str, kept: KeptCredential) -> bytes:
        aead, _ = self._derived()
        document = json.dumps({"fields": dict(kept.fields), "expires_at": kept.expires_at})
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + aead.encrypt(nonce, document.encode(), _associated(panel, fingerprint))

    def _open(self, panel: Panel, fingerprint: str, sealed: bytes) -> KeptCredential | None:
        aead, _ = self._derived()
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            document = json.loads(aead.decrypt(nonce, body, _associated(panel, fingerprint)))
        except (InvalidTag, ValueError):
            return None
        fields = document.get("fields") if isinstance(document, dict) else None
        expires_at = document.get("expires_at") if isinstance(document, dict) else None
        if not isinstance(fields, dict) or not (
            expires_at is None or isinstance(expires_at, int | float)
        ):
            return None
        return KeptCredential(fields, None if expires_at is None else float(expires_at))


def _associated(panel: Panel, fingerprint: str) -> bytes:
    return f"{panel.id}:{fingerprint}".encode()


def _store_failed(panel: Panel, action: str, exc: Exception) -> None:
    logger.warning(
        "Panel %s: could not %s the kept login (%s); logging in as usual",
        panel.id,
        action,
        type(exc).__name__,
        extra=ctx(panel_id=panel.id, error=type(exc).__name__),
    )


class SessionLogins:
    """One session's view of its panel's kept login: recall, keep, forget."""

    def __init__(self, keeper: LoginKeeper, http: HttpChannel, auth: KeepableAuth) -> None:
        self._keeper = keeper
        self._http = http
        self._panel = http.panel
        self._auth = auth

    def recall(self) -> object | None:
        """The kept credential, restored into the session, or None."""
        kept = self._keeper.recall(self._panel)
        return None if kept is None else self._auth.restore(self._http, kept)

    def keep(self, credential: object) -> None:
        """Keep a credential the session just logged in for."""
        kept = self._auth.keep(credential)
        if kept is not None:
            self._keeper.keep(self._panel, kept)

    def forget(self) -> None:
        """The panel refused the credential: drop it."""
        self._keeper.forget(self._panel)


def session_logins(
    keeper: LoginKeeper | None, http: HttpChannel, auth: Auth
) -> SessionLogins | None:
    """The session's kept logins, when there is a keeper and the auth can be kept."""
    if keeper is None or not isinstance(auth, KeepableAuth) or not auth.needs_login:
        return None
    return SessionLogins(keeper, http, auth)
