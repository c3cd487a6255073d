"""Eylandoo over loopback HTTP: the static key, the field precedence, list shapes."""

from __future__ import annotations

import logging

import pytest
from gateway_support import (
    OpenSession,
    StartEmulator,
    failure,
    reading,
)
from panel_support import (
    WRONG_API_KEY,
    context_of,
    leaks,
    records_with,
)

from usage_core.log import BODY_PREVIEW_CHARS
from usage_sandbox.emulator import (
    Fault,
)

pytestmark = pytest.mark.timeout(30)


class TestEylandoo:
    """Eylandoo: API key header, reply shapes and the core's field precedence."""

    def test_flat_reply_reads_total_traffic_bytes(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """The current flat reply gives `total_traffic_bytes`, logged in the seed's words."""
        panel = start("eylandoo", users={"alice": 5_000})
        result = reading(open_session(panel).fetch_usage("alice"))
        assert (result.bytes, result.path) == (5_000, "total_traffic_bytes")
        [record] = records_with(logs.records, "Eylandoo usage from total_traffic_bytes")
        assert context_of(record) == {"username": "alice", "usage_bytes": 5_000}

    def test_user_info_wrapper_reads_user_info_total(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A `userInfo`-wrapped reply is read from `userInfo.total_traffic_bytes`."""
        panel = start("eylandoo", users={"alice": 7_000}, eylandoo_shape="user_info")
        result = reading(open_session(panel).fetch_usage("alice"))
        assert (result.bytes, result.path) == (7_000, "userInfo.total_traffic_bytes")
        assert records_with(logs.records, "Eylandoo usage from userInfo.total_traffic_bytes")

    def test_old_reply_reads_data_used(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """The Oct-2025 `{status, data}` reply is read from `data.data_used`, per user shape."""
        panel = start("eylandoo", users={"alice": 1_000, "bob": 2_000})
        panel.set_shape("bob", "old")
        session = open_session(panel)
        assert reading(session.fetch_usage("alice")).path == "total_traffic_bytes"
        result = reading(session.fetch_usage("bob"))
        assert (result.bytes, result.path) == (2_000, "data.data_used")
        [record] = records_with(logs.records, "Eylandoo usage from data.data_used")
        assert context_of(record) == {"username": "bob", "usage_bytes": 2_000}

    def test_zero_total_with_traffic_falls_back_to_the_sum(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A flat reply whose total is stuck at 0 is read as upload + download."""
        panel = start("eylandoo", users={"alice": 0})
        panel.set_fault(
            "alice",
            Fault.reply(
                {
                    "success": True,
                    "total_traffic_bytes": 0,
                    "upload_bytes": 10,
                    "download_bytes": 32,
                }
            ),
        )
        result = reading(open_session(panel).fetch_usage("alice"))
        assert (result.bytes, result.path) == (42, "upload_bytes + download_bytes")
        [record] = records_with(logs.records, "Eylandoo usage from upload_bytes + download_bytes")
        assert context_of(record) == {
            "username": "alice",
            "upload_bytes": 10,
            "download_bytes": 32,
            "total_usage_bytes": 42,
        }

    def test_user_info_with_only_upload_and_download_reads_the_sum(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A `userInfo` without a total is read as its upload + download."""
        panel = start("eylandoo", users={"alice": 0})
        panel.set_fault(
            "alice",
            Fault.reply({"success": True, "userInfo": {"upload_bytes": 5, "download_bytes": 6}}),
        )
        result = reading(open_session(panel).fetch_usage("alice"))
        assert (result.bytes, result.path) == (11, "userInfo.upload_bytes + download_bytes")
        assert records_with(
            logs.records, "Eylandoo usage from userInfo.upload_bytes + download_bytes"
        )

    def test_reply_without_usage_fields_reads_zero(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A successful reply with no traffic field counts as 0 bytes, path `none`."""
        panel = start("eylandoo", users={"alice": 0})
        panel.set_fault("alice", Fault.reply({"success": True, "username": "alice"}))
        result = reading(open_session(panel).fetch_usage("alice"))
        assert (result.bytes, result.path) == (0, "none")
        [record] = records_with(
            logs.records, "Eylandoo usage: no traffic data fields found, returning 0"
        )
        assert context_of(record) == {"username": "alice"}

    def test_success_false_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """HTTP 200 with `success: false` fails, with the panel's message as the reason."""
        panel = start("eylandoo", users={"alice": 1})
        panel.set_fault("alice", Fault.unsuccessful("quota service down"))
        result = failure(open_session(panel).fetch_usage("alice"))
        assert "quota service down" in result.reason
        [record] = records_with(
            logs.records, "Eylandoo Get User Usage: failed to retrieve user data"
        )
        assert context_of(record)["username"] == "alice"
        assert record.levelno == logging.WARNING

    def test_unknown_user_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A 404 fails and logs "Eylandoo Get User failed:" with status and body preview."""
        panel = start("eylandoo", users={"alice": 1})
        result = failure(open_session(panel).fetch_usage("ghost"))
        assert result.reason == "HTTP 404: User not found or permission denied"
        [record] = records_with(logs.records, "Eylandoo Get User failed:")
        assert context_of(record) == {
            "status": 404,
            "username": "ghost",
            "body_preview": '{"success":false,"message":"User not found or permission denied"}',
        }

    def test_wrong_api_key_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A key the panel rejects gives a 401 hard failure."""
        panel = start("eylandoo", users={"alice": 1})
        result = failure(open_session(panel, api_key=WRONG_API_KEY).fetch_usage("alice"))
        assert result.reason == "HTTP 401: Invalid or inactive API key"
        assert panel.counts.rejected == 1

    def test_missing_api_token_sends_nothing(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A panel row without an API token fails without any request."""
        panel = start("eylandoo", users={"alice": 1})
        result = failure(open_session(panel, api_key=None).fetch_usage("alice"))
        assert result.reason == "the panel has no API token"
        assert panel.counts.requests == 0

    @pytest.mark.parametrize("key", ["clé-SECRET-non-ascii", "line\nbreak-SECRET"])
    def test_api_token_unfit_for_a_header_sends_nothing(
        self,
        key: str,
        start: StartEmulator,
        open_session: OpenSession,
        logs: pytest.LogCaptureFixture,
    ) -> None:
        """A non-ASCII or multi-line API token fails without a request and without raising."""
        panel = start("eylandoo", users={"alice": 1})
        result = failure(open_session(panel, api_key=key).fetch_usage("alice"))
        assert result.reason == "the panel's API token has characters a header cannot carry"
        assert panel.counts.requests == 0
        assert leaks(logs.records, ["SECRET"]) == []

    def test_non_json_body_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A 2xx HTML page fails (it is not a 0-byte reading)."""
        panel = start("eylandoo", users={"alice": 1})
        panel.set_fault("alice", Fault.malformed("<html>maintenance</html>"))
        assert failure(open_session(panel).fetch_usage("alice")).reason == "the reply is not JSON"
        assert records_with(logs.records, "Eylandoo Get User Usage: failed to retrieve user data")

    def test_unexpected_json_type_is_a_hard_failure(
        self, start: StartEmulator, open_session: OpenSession
    ) -> None:
        """A JSON array where an object belongs fails without raising."""
        panel = start("eylandoo", users={"alice": 1})
        panel.set_fault("alice", Fault.reply([1, 2, 3]))
        result = failure(open_session(panel).fetch_usage("alice"))
        assert result.reason == "the reply is not a JSON object"

    def test_body_preview_is_cut_to_the_limit(
        self, start: StartEmulator, open_session: OpenSession, logs: pytest.LogCaptureFixture
    ) -> None:
        """A long error body is logged as a preview of at most 500 characters."""
        panel = start("eylandoo", users={"alice": 1})
        panel.set_fault("alice", Fault.http_status(502, body={"message": "x" * 5_000}))
        failure(open_session(panel).fetch_usage("alice"))
        [record] = records_with(logs.records, "Eylandoo Get User failed:")
        preview = context_of(record)["body_preview"]
        assert isinstance(preview, str)
        assert len(preview) == BODY_PREVIEW_CHARS
