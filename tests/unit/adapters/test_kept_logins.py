"""The login keeper: fingerprints, sealing, expiry margin, and stores that fail."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from usage_adapters.panels.kept_logins import (
    KeptCredential,
    LoginKeeper,
    MemoryLoginStore,
    jwt_expiry,
)
from usage_core.model import Panel, Secret


def jwt(claims: dict[str, object]) -> str:
    """An unsigned-looking JWT with these claims (the keeper never verifies signatures)."""
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.c2ln"


def panel(password: str = "pw", url: str = "https://p.example", username: str = "admin") -> Panel:  # noqa: S107
    """A panel row with these credentials."""
    return Panel(
        id=3,
        name="p",
        url=url,
        panel_type="marzban",
        username=username,
        password=Secret(password),
    )


class Clock:
    """A settable clock."""

    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class BrokenStore:
    """A store whose every call fails, as Redis does when it is down."""

    def get(self, panel_id: int, fingerprint: str) -> bytes | None:
        raise ConnectionError("down")

    def put(self, panel_id: int, fingerprint: str, sealed: bytes, ttl_s: int) -> None:
        raise ConnectionError("down")

    def drop(self, panel_id: int) -> None:
        raise ConnectionError("down")


def keeper(
    store: MemoryLoginStore | BrokenStore, clock: Clock, key: bytes = b"k" * 32
) -> LoginKeeper:
    """A keeper with a fixed key."""
    return LoginKeeper(store, lambda: key, clock=clock, margin_s=300)


def test_jwt_expiry_reads_exp_and_nothing_else() -> None:
    """`exp` of a JWT; None for opaque tokens, missing or non-numeric `exp`."""
    assert jwt_expiry(jwt({"sub": "a", "exp": 1_900_000_000})) == 1_900_000_000.0
    assert jwt_expiry(jwt({"sub": "a"})) is None
    assert jwt_expiry(jwt({"exp": "soon"})) is None
    assert jwt_expiry(jwt({"exp": True})) is None
    assert jwt_expiry("opaque-token") is None
    assert jwt_expiry("a.!!!.c") is None


def test_a_kept_login_comes_back_until_the_margin() -> None:
    """Kept until 5 minutes before its expiry; from then on it is not served."""
    clock = Clock()
    logins = keeper(MemoryLoginStore(clock), clock)
    kept = KeptCredential({"token": "t"}, clock.now + 3600)
    logins.keep(panel(), kept)
    assert logins.recall(panel()) == kept
    clock.now += 3600 - 301
    assert logins.recall(panel()) == kept
    clock.now += 1
    assert logins.recall(panel()) is None


def test_a_changed_credential_or_url_is_not_served() -> None:
    """Another password, username or URL for the same panel id finds nothing."""
    clock = Clock()
    logins = keeper(MemoryLoginStore(clock), clock)
    logins.keep(panel(), KeptCredential({"token": "t"}, None))
    assert logins.recall(panel(password="other")) is None
    assert logins.recall(panel(username="root")) is None
    assert logins.recall(panel(url="https://q.example")) is None
    assert logins.recall(panel()) is not None


def test_sealed_with_another_key_is_not_opened() -> None:
    """A login sealed under one key is unreadable under another (and holds no plain token)."""
    clock = Clock()
    store = MemoryLoginStore(clock)
    keeper(store, clock, b"a" * 32).keep(panel(), KeptCredential({"token": "plain-TOKEN"}, None))
    [(_, sealed, _)] = store.entries.values()
    assert b"plain-TOKEN" not in sealed
    assert keeper(store, clock, b"b" * 32).recall(panel()) is None


def test_an_already_expiring_login_is_not_kept() -> None:
    """A login that ends within the margin is not written at all."""
    clock = Clock()
    store = MemoryLoginStore(clock)
    keeper(store, clock).keep(panel(), KeptCredential({"token": "t"}, clock.now + 60))
    assert store.entries == {}


def test_a_failing_store_costs_only_the_keeping(caplog: pytest.LogCaptureFixture) -> None:
    """Every call on a broken store is logged by type and answered as 'nothing kept'."""
    caplog.set_level(logging.DEBUG)
    logins = keeper(BrokenStore(), Clock())
    logins.keep(panel(), KeptCredential({"token": "secret-TOKEN"}, None))
    assert logins.recall(panel()) is None
    logins.forget(panel())
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "Panel 3: could not write the kept login (ConnectionError); logging in as usual",
        "Panel 3: could not read the kept login (ConnectionError); logging in as usual",
        "Panel 3: could not drop the kept login (ConnectionError); logging in as usual",
    ]
    assert not any("secret-TOKEN" in repr(vars(record)) for record in caplog.records)
