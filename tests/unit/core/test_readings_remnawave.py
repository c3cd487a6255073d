"""Remnawave replies: nested (2.3+) and flat (older) counters, and the keyset pages."""

from typing import Any

from hypothesis import given

from tests.strategies import json_values
from usage_core.readings import (
    CounterReading,
    HardFailure,
    StreamPage,
    parse_remnawave_stream,
    parse_remnawave_total,
    parse_remnawave_user,
    parse_remnawave_user_object,
)


def user(**traffic: object) -> dict[str, object]:
    """A 2.3+ user object with `traffic` in `userTraffic`."""
    return {"id": 7, "username": "alice", "status": "ACTIVE", "userTraffic": traffic}


class TestUser:
    """A user's counter and lifetime counter."""

    def test_nested_counters(self) -> None:
        """`userTraffic.usedTrafficBytes` is the counter, the lifetime counter rides along."""
        result = parse_remnawave_user(
            {"response": user(usedTrafficBytes=5_000, lifetimeUsedTrafficBytes=12_000)}
        )
        assert result == CounterReading(
            5_000, "response.userTraffic.usedTrafficBytes", lifetime_bytes=12_000
        )

    def test_flat_counters_of_panels_before_2_3(self) -> None:
        """Before 2.3 the counters were fields of the user itself."""
        flat = {"username": "alice", "usedTrafficBytes": 9, "lifetimeUsedTrafficBytes": 10}
        assert parse_remnawave_user_object(flat) == CounterReading(
            9, "usedTrafficBytes", lifetime_bytes=10
        )

    def test_digit_strings_are_read(self) -> None:
        """A BIGINT sent as a string of digits reads the same."""
        result = parse_remnawave_user_object(
            user(usedTrafficBytes="9007199254740993", lifetimeUsedTrafficBytes="9007199254740995")
        )
        assert isinstance(result, CounterReading)
        assert (result.bytes, result.lifetime_bytes) == (2**53 + 1, 2**53 + 3)

    def test_unusable_lifetime_is_left_out(self) -> None:
        """A lifetime counter missing, junk or below the counter is None, not a failure."""
        for lifetime in (None, "abc", -1, 4_999):
            result = parse_remnawave_user_object(
                user(usedTrafficBytes=5_000, lifetimeUsedTrafficBytes=lifetime)
            )
            assert result == CounterReading(5_000, "userTraffic.usedTrafficBytes"), lifetime

    def test_missing_or_junk_counter_is_a_hard_failure(self) -> None:
        """No counter, or one that is not a byte count, fails rather than reading 0."""
        assert parse_remnawave_user({"response": user()}) == HardFailure(
            "the reply has no userTraffic.usedTrafficBytes"
        )
        assert parse_remnawave_user({"response": user(usedTrafficBytes=-3)}) == HardFailure(
            "userTraffic.usedTrafficBytes is not a byte count: -3"
        )
        assert parse_remnawave_user(user(usedTrafficBytes=1)) == HardFailure(
            "the reply has no response object"
        )
        assert parse_remnawave_user([]) == HardFailure("the reply is not a JSON object")

    @given(json_values)
    def test_never_raises(self, reply: Any) -> None:
        """Any JSON value parses to a reading or a hard failure."""
        for parsed in (parse_remnawave_user(reply), parse_remnawave_user_object(reply)):
            assert isinstance(parsed, CounterReading | HardFailure)


class TestStream:
    """`/api/users/stream` pages."""

    def test_page_with_more(self) -> None:
        """`hasMore` with a `nextCursor` gives the cursor of the next page."""
        reply = {"response": {"users": [{"id": 1}], "nextCursor": "1", "hasMore": True}}
        assert parse_remnawave_stream(reply) == StreamPage([{"id": 1}], "1")

    def test_last_page(self) -> None:
        """Without `hasMore` there is no next page, whatever `nextCursor` says."""
        reply = {"response": {"users": [], "nextCursor": "5", "hasMore": False}}
        assert parse_remnawave_stream(reply) == StreamPage([], None)

    def test_refusals(self) -> None:
        """Replies that are not stream pages say why."""
        assert parse_remnawave_stream({"users": []}) == "the reply has no response object"
        assert (
            parse_remnawave_stream({"response": {"users": []}})
            == "the reply has no users list and hasMore flag"
        )
        for cursor in (None, "", "-1", "1.5", True):
            page = {"response": {"users": [], "nextCursor": cursor, "hasMore": True}}
            parsed = parse_remnawave_stream(page)
            assert isinstance(parsed, str)
            assert parsed.startswith("hasMore without a usable nextCursor"), cursor

    @given(json_values)
    def test_never_raises(self, reply: Any) -> None:
        """Any JSON value parses to a page or a reason."""
        assert isinstance(parse_remnawave_stream(reply), StreamPage | str)


def test_total_of_the_offset_listing() -> None:
    """`GET /api/users` says how many users the panel holds in `response.total`."""
    assert parse_remnawave_total({"response": {"users": [], "total": 5_021}}) == 5_021
    for reply in ({"response": {"total": -1}}, {"response": {"total": "7"}}, {"total": 7}, []):
        assert parse_remnawave_total(reply) == "the reply has no response.total", reply
