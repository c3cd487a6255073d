"""PasarGuard's and Hiddify's replies: counters, owners, admins and GiB floats."""

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import json_values
from usage_core.readings import (
    MAX_BYTES,
    CounterReading,
    HardFailure,
    ListingPage,
    admin_state,
    gib_to_bytes,
    parse_hiddify_user,
    parse_hiddify_users,
    parse_pasarguard_admins,
    parse_pasarguard_user,
)

GIB = 2**30


class TestHiddifyGibibytes:
    """`current_usage_GB` floats become bytes with no loss beyond the float's own."""

    @given(st.integers(0, 2**53 - 1))
    def test_exact_below_two_to_the_53(self, stored: int) -> None:
        """Every byte count the panel can hold exactly in a float comes back exactly."""
        assert gib_to_bytes(stored / GIB) == stored

    @given(st.integers(0, MAX_BYTES))
    def test_never_more_than_the_floats_own_error(self, stored: int) -> None:
        """Above 2^53 the result is the float's exact value, floored: within its rounding."""
        reported = stored / GIB
        result = gib_to_bytes(reported)
        if result is None:  # the float rounded up past 2^63 - 1
            assert Fraction(reported) * GIB > MAX_BYTES
            return
        assert result == int(Fraction(reported) * GIB)
        assert abs(result - stored) <= stored * 2.0**-52 + 1

    def test_values_that_are_not_amounts(self) -> None:
        """Negatives, non-finite floats, booleans, strings and nulls are refused."""
        for value in (-0.5, float("inf"), float("nan"), True, "1.5", None, [1]):
            assert gib_to_bytes(value) is None
        assert gib_to_bytes(0) == 0
        assert gib_to_bytes(1.5) == 3 * GIB // 2
        assert gib_to_bytes(2**33) is None  # 2^63 bytes

    def test_user_reply(self) -> None:
        """A `UserSchema` reads `current_usage_GB`; a missing or bad one is a hard failure."""
        assert parse_hiddify_user({"current_usage_GB": 0.25}) == CounterReading(
            GIB // 4, "current_usage_GB"
        )
        assert parse_hiddify_user({"uuid": "x"}) == HardFailure("the reply has no current_usage_GB")
        failure = parse_hiddify_user({"current_usage_GB": -1.0})
        assert isinstance(failure, HardFailure)
        assert failure.reason.startswith("current_usage_GB is not an amount of GiB")

    def test_listing_is_an_array(self) -> None:
        """The user listing is a bare array, its length the total."""
        assert parse_hiddify_users([{"uuid": "a"}]) == ListingPage([{"uuid": "a"}], 1)
        assert parse_hiddify_users({"msg": "x"}) == "the reply is not a JSON array of users"

    @given(json_values)
    def test_any_json_never_raises(self, value: object) -> None:
        """Whatever JSON comes back, the parsers answer without raising."""
        parse_hiddify_user(value)
        parse_hiddify_user({"current_usage_GB": value})
        parse_hiddify_users(value)


def admin(status: str, **role: object) -> dict[str, object]:
    """An `AdminDetails` object with a role carrying `role`'s flags."""
    return {"username": "reseller", "status": status, "role": {"name": "r", **role}}


class TestPasarGuard:
    """A PasarGuard user's owner, and when an admin's state keeps its users off the nodes."""

    def test_owner_is_read_from_the_user(self) -> None:
        """`admin.username` becomes the reading's owner; a user without one has none."""
        reply = {"used_traffic": 7, "admin": {"id": 3, "username": "reseller"}}
        assert parse_pasarguard_user(reply) == CounterReading(7, "used_traffic", owner="reseller")
        assert parse_pasarguard_user({"used_traffic": 7, "admin": None}) == CounterReading(
            7, "used_traffic"
        )

    def test_limited_and_disabled_admins_block_by_their_roles_flags(self) -> None:
        """As the panel decides: the status's flag, true by default; no role blocks nobody."""
        cases = {
            ("limited", ()): True,
            ("limited", (("disconnect_users_when_limited", False),)): False,
            ("limited", (("disable_users_when_limited", False),)): False,
            ("disabled", ()): True,
            ("disabled", (("disconnect_users_when_disabled", False),)): False,
            ("disabled", (("disconnect_users_when_limited", False),)): True,
            ("active", ()): False,
        }
        for (status, flags), blocks in cases.items():
            state = admin_state(admin(status, **dict(flags)))
            assert state is not None
            assert (state.blocks_users is not None) == blocks, (status, flags)
        no_role = admin_state({"username": "old", "is_disabled": True})
        assert no_role is not None
        assert no_role.status == "disabled"
        assert no_role.blocks_users is None

    def test_reason_names_the_admin_and_its_status(self) -> None:
        """The reason says which admin and why."""
        state = admin_state(admin("limited"))
        assert state is not None
        assert state.blocks_users == (
            "admin reseller is limited: the panel removed its users from the nodes"
        )

    def test_admins_list_and_single_admin(self) -> None:
        """`{admins: [...]}` and a bare `AdminDetails` both give states by name."""
        listed = parse_pasarguard_admins({"admins": [admin("limited")], "total": 1})
        assert isinstance(listed, dict)
        assert set(listed) == {"reseller"}
        single = parse_pasarguard_admins(admin("active"))
        assert isinstance(single, dict)
        assert single["reseller"].blocks_users is None
        assert parse_pasarguard_admins([]) == "the reply is not a JSON object"

    @given(json_values)
    def test_any_json_never_raises(self, value: object) -> None:
        """Whatever JSON comes back, the parsers answer without raising."""
        parse_pasarguard_user(value)
        parse_pasarguard_admins(value)
        parse_pasarguard_admins({"admins": [value]})
        if isinstance(value, dict):
            admin_state(value)
