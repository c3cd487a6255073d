"""The Hiddify dialect against a real, unmodified Hiddify panel, when one is configured.

Set `USAGE_SYNC_TEST_HIDDIFY_URL` (the admin proxy URL, `http://127.0.0.1:<port>/<proxy_path_admin>`),
`USAGE_SYNC_TEST_HIDDIFY_KEY` (the owner admin's uuid) and `USAGE_SYNC_TEST_HIDDIFY_DB` (the
panel's database, an SQLAlchemy URL: counters are set there, as the panel's usage job sets
them). docs/panels.md says how such a panel was started on loopback.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
from gateway_support import failure, reading
from sqlalchemy import create_engine, text

from usage_adapters.panels import HttpxPanelClients
from usage_core.model import Panel, Secret

URL = os.environ.get("USAGE_SYNC_TEST_HIDDIFY_URL", "")
KEY = os.environ.get("USAGE_SYNC_TEST_HIDDIFY_KEY", "")
DB = os.environ.get("USAGE_SYNC_TEST_HIDDIFY_DB", "")

pytestmark = [pytest.mark.real_panels, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def configured() -> None:
    """Asked for without a panel to run against is a failure, not a skip."""
    if not (URL and KEY and DB):
        pytest.fail("set USAGE_SYNC_TEST_HIDDIFY_URL, _KEY and _DB", pytrace=False)


# Byte counts that a float of GiB must carry exactly: odd, past 2^32, past 2^40, tiny.
COUNTERS = (5_972_593_704, 2**40 + 12_345, 1)


def panel_row(key: str = KEY) -> Panel:
    """A panel row as the app stores a Hiddify panel: `other`, its type named in extra."""
    return Panel(
        id=1,
        name="real Hiddify",
        url=URL,
        panel_type="other",
        api_token=Secret(key),
        extra={"usage_sync_panel_type": "hiddify"},
    )


@pytest.fixture
def users() -> Iterator[list[str]]:
    """Users made through the panel's own API with the given counters; deleted afterwards."""
    api = httpx.Client(
        base_url=URL.rstrip("/") + "/api/v2/admin/user/",
        headers={"Hiddify-API-Key": KEY, "Accept": "application/json"},
        timeout=60,
    )
    engine = create_engine(DB)
    made: list[str] = []
    try:
        for counter in COUNTERS:
            key = str(uuid.uuid4())
            created = api.post("", json={"uuid": key, "name": f"usage-sync {key[:8]}"})
            assert created.status_code == 200, created.text
            made.append(key)
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE user SET current_usage = :used WHERE uuid = :key"),
                    {"used": counter, "key": key},
                )
        yield made
    finally:
        for key in made:
            api.delete(f"{key}/")
        api.close()
        engine.dispose()


def test_counters_come_back_exactly(users: list[str]) -> None:
    """Single reads and the listing give the stored byte counts; an unknown uuid is 404."""
    session = HttpxPanelClients(timeout=60).open(panel_row())
    try:
        for key, counter in zip(users, COUNTERS, strict=True):
            assert reading(session.fetch_usage(key)).bytes == counter
        ghost = str(uuid.uuid4())
        results = session.fetch_many([*users, ghost])
        assert [reading(results[key]).bytes for key in users] == list(COUNTERS)
        assert failure(results[ghost]).reason == "HTTP 404: User not found"
    finally:
        session.close()


def test_set_enabled_flips_only_enable(users: list[str]) -> None:
    """Disable, disable again, enable: done, already, done; the counter is untouched."""
    session = HttpxPanelClients(timeout=60).open(panel_row())
    try:
        first = users[0]
        assert (
            session.set_enabled(first, False).detail,
            session.set_enabled(first, False).detail,
        ) == (
            "disabled",
            "already disabled",
        )
        assert session.set_enabled(first, True).detail == "enabled"
        assert reading(session.fetch_usage(first)).bytes == COUNTERS[0]
    finally:
        session.close()


def test_wrong_key_and_non_uuid_names() -> None:
    """A wrong key is the panel's 403 "Unathorized"; a name that is not a uuid its 500."""
    wrong = HttpxPanelClients(timeout=60).open(panel_row(str(uuid.uuid4())))
    right = HttpxPanelClients(timeout=60).open(panel_row())
    try:
        assert failure(wrong.fetch_usage(str(uuid.uuid4()))).reason == "HTTP 403: Unathorized"
        assert failure(right.fetch_usage("alice")).reason.startswith("HTTP 500: 404 Not Found")
    finally:
        wrong.close()
        right.close()
