"""Field-precedence parsing of panel replies."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import json_values, usage_field_values
from usage_core.readings import (
    CounterReading,
    HardFailure,
    ListingPage,
    byte_count,
    out_of_range,
    parse_eylandoo_list_all,
    parse_eylandoo_list_item,
    parse_eylandoo_user,
    parse_marzban_user,
    parse_marzban_users_page,
    parse_marzneshin_users_page,
    parse_xui_client_traffic,
    parse_xui_envelope,
    parse_xui_inbounds,
)

GIB = 1024**3
MIB = 1024**2


def reading(reply: Any) -> tuple[int, str]:
    """The bytes and path of a reply that must parse to a reading."""
    result = parse_eylandoo_user(reply)
    assert isinstance(result, CounterReading), result
    return result.bytes, result.path


class TestByteCount:
    """`byte_count` accepts ints, digit strings and finite floats."""

    def test_accepted_and_rejected(self) -> None:
        """Each kind of JSON value is read or rejected as documented."""
        assert byte_count(5) == 5
        assert byte_count("2000000000") == 2_000_000_000
        assert byte_count(1.9) == 1
        # A negative counter cannot be real; 0 would look like a counter reset.
        assert byte_count(-1000) is None
        assert byte_count(-0.5) is None
        assert byte_count(2**63 - 1) == 2**63 - 1
        assert byte_count(2**63) is None
        assert byte_count(1e20) is None
        for junk in (True, False, None, "abc", "", "-5", "1.5", " 7", float("nan"), [], {}):
            assert byte_count(junk) is None, junk

    @given(usage_field_values)
    def test_never_negative(self, value: object) -> None:
        """A byte count is None or a non-negative int."""
        count = byte_count(value)
        assert count is None or (isinstance(count, int) and count >= 0)


class TestEylandoo:
    """`parse_eylandoo_user` applies the documented precedence."""

    def test_user_info_total_wins(self) -> None:
        """`userInfo.total_traffic_bytes` beats the upload/download beside it."""
        reply = {"userInfo": {"total_traffic_bytes": GIB, "upload_bytes": 1, "download_bytes": 2}}
        assert reading(reply) == (GIB, "userInfo.total_traffic_bytes")

    def test_user_info_pair(self) -> None:
        """Without a total, `userInfo.upload_bytes + download_bytes` is summed."""
        reply = {"userInfo": {"upload_bytes": GIB, "download_bytes": 2 * GIB}}
        assert reading(reply) == (3_221_225_472, "userInfo.upload_bytes + download_bytes")

    def test_zero_total_with_traffic_beside_it_takes_the_sum(self) -> None:
        """The production bug: total 0 with 583,653,425 bytes of download."""
        reply = {
            "success": True,
            "total_traffic_bytes": 0,
            "upload_bytes": 0,
            "download_bytes": 583_653_425,
        }
        assert reading(reply) == (583_653_425, "upload_bytes + download_bytes")
        wrapped = {"userInfo": {"total_traffic_bytes": 0, "upload_bytes": 5, "download_bytes": 7}}
        assert reading(wrapped) == (12, "userInfo.upload_bytes + download_bytes")

    def test_zero_total_alone_is_zero(self) -> None:
        """A total of 0 with no traffic beside it is a real 0."""
        reply = {"total_traffic_bytes": 0, "upload_bytes": 0, "download_bytes": 0}
        assert reading(reply) == (0, "total_traffic_bytes")

    def test_data_data_used(self) -> None:
        """The October 2025 shape: `data.data_used`."""
        assert reading({"status": "success", "data": {"data_used": 4 * GIB}}) == (
            4_294_967_296,
            "data.data_used",
        )

    def test_flat_shapes(self) -> None:
        """Today's documented flat reply: `total_traffic_bytes`, else up + down."""
        assert reading({"success": True, "total_traffic_bytes": 77}) == (77, "total_traffic_bytes")
        assert reading({"upload_bytes": "600000000", "download_bytes": "1400000000"}) == (
            2_000_000_000,
            "upload_bytes + download_bytes",
        )

    def test_wrapper_beats_root(self) -> None:
        """`userInfo` and `data` come before the flat fields."""
        reply = {"total_traffic_bytes": 9, "data": {"data_used": 5}}
        assert reading(reply) == (5, "data.data_used")

    def test_no_fields_is_zero_from_none(self) -> None:
        """A valid reply without usage fields gives 0 with path `none`."""
        assert reading({"success": True, "userInfo": {"username": "x"}}) == (0, "none")

    def test_success_false_is_a_hard_failure(self) -> None:
        """HTTP 200 with `success: false` is a failure, not 0."""
        result = parse_eylandoo_user({"success": False, "message": "User not found"})
        assert isinstance(result, HardFailure)
        assert "User not found" in result.reason

    def test_numbers_of_every_kind(self) -> None:
        """Floats truncate, negatives fail, booleans and nulls fall through."""
        assert reading({"total_traffic_bytes": 10.9}) == (10, "total_traffic_bytes")
        for bad in (-1000, -1.0, 2**63, 1e20):
            result = parse_eylandoo_user({"total_traffic_bytes": bad})
            assert isinstance(result, HardFailure), bad
            assert "total_traffic_bytes is not a byte count" in result.reason
        assert reading({"total_traffic_bytes": True, "upload_bytes": 1, "download_bytes": 2}) == (
            3,
            "upload_bytes + download_bytes",
        )
        assert reading({"userInfo": {"total_traffic_bytes": None}, "data": {"data_used": 3}}) == (
            3,
            "data.data_used",
        )

    def test_pair_needs_both_parts(self) -> None:
        """An upload without a download does not match the pair rule."""
        assert reading({"userInfo": {"upload_bytes": 5}}) == (0, "none")

    def test_non_objects_are_hard_failures(self) -> None:
        """A list, a string or null is not a reply the panel documents."""
        for reply in ([], "ok", None, 5):
            assert isinstance(parse_eylandoo_user(reply), HardFailure)

    @given(json_values)
    def test_never_raises_on_any_json(self, reply: Any) -> None:
        """Any JSON value gives a reading with bytes >= 0 or a hard failure."""
        result = parse_eylandoo_user(reply)
        assert isinstance(result, HardFailure) or result.bytes >= 0

    @given(
        st.fixed_dictionaries(
            {},
            optional={
                "total_traffic_bytes": usage_field_values,
                "upload_bytes": usage_field_values,
                "download_bytes": usage_field_values,
            },
        ),
        usage_field_values,
    )
    def test_user_info_total_has_precedence(self, root: dict[str, Any], total: object) -> None:
        """A usable `userInfo.total_traffic_bytes` wins over every flat field.

        A usage field holding a number no counter can be fails the whole reply.
        """
        reply = {**root, "userInfo": {"total_traffic_bytes": total}}
        count = byte_count(total)
        path = parse_eylandoo_user(reply)
        flat = ("total_traffic_bytes", "upload_bytes", "download_bytes")
        if any(out_of_range(root.get(name)) for name in flat):
            assert isinstance(path, HardFailure)
        elif count is not None:
            assert path == CounterReading(count, "userInfo.total_traffic_bytes")
        elif out_of_range(total):
            assert isinstance(path, HardFailure)
        else:
            assert isinstance(path, CounterReading)
            assert not path.path.startswith("userInfo.")


class TestMarzbanAndMarzneshin:
    """`parse_marzban_user` needs `used_traffic`."""

    def test_used_traffic(self) -> None:
        """`used_traffic` is the counter, `lifetime_used_traffic` comes along."""
        assert parse_marzban_user({"used_traffic": GIB, "lifetime_used_traffic": 5 * GIB}) == (
            CounterReading(GIB, "used_traffic", lifetime_bytes=5 * GIB)
        )

    def test_an_unusable_lifetime_is_left_out(self) -> None:
        """A lifetime outside 0..2^63-1, or not a number, is ignored; the reading stands."""
        for lifetime in (-1, 2**63, "lots", None, True, [1]):
            reply = {"used_traffic": GIB, "lifetime_used_traffic": lifetime}
            assert parse_marzban_user(reply) == CounterReading(GIB, "used_traffic"), lifetime

    def test_zero_is_valid(self) -> None:
        """0 is a real value."""
        assert parse_marzban_user({"used_traffic": 0}) == CounterReading(0, "used_traffic")

    def test_missing_null_or_junk_is_a_hard_failure(self) -> None:
        """Missing, null, text and non-objects fail."""
        for reply in ({}, {"used_traffic": None}, {"used_traffic": "lots"}, [], None):
            assert isinstance(parse_marzban_user(reply), HardFailure), reply

    @given(json_values)
    def test_never_raises(self, reply: Any) -> None:
        """Any JSON value gives a reading or a hard failure."""
        assert isinstance(parse_marzban_user(reply), CounterReading | HardFailure)


class TestXui:
    """3x-ui readings are `up + down` of the client's traffic record."""

    def test_up_plus_down(self) -> None:
        """The envelope's `obj.up + obj.down` is the counter."""
        reply = {"success": True, "msg": "", "obj": {"email": "a", "up": 5, "down": 7}}
        assert parse_xui_envelope(reply) == CounterReading(12, "obj.up + obj.down", 5, 7)

    def test_missing_record_is_a_hard_failure(self) -> None:
        """`obj: null` (unknown email) and `success: false` fail."""
        assert isinstance(parse_xui_envelope({"success": True, "obj": None}), HardFailure)
        assert isinstance(parse_xui_envelope({"success": False, "msg": "x"}), HardFailure)
        assert isinstance(parse_xui_client_traffic({"up": 1}), HardFailure)

    @given(json_values)
    def test_never_raises(self, reply: Any) -> None:
        """Any JSON value gives a reading or a hard failure."""
        assert isinstance(parse_xui_envelope(reply), CounterReading | HardFailure)


class TestListings:
    """The listing parsers read every documented page shape and never raise."""

    @given(json_values)
    def test_never_raise(self, reply: object) -> None:
        """Any JSON value gives a page or a reason, never an exception."""
        for parse in (
            parse_marzban_users_page,
            parse_marzneshin_users_page,
            parse_eylandoo_list_all,
            parse_xui_inbounds,
        ):
            page = parse(reply)
            assert isinstance(page, ListingPage | str)

    def test_marzban_and_marzneshin_pages(self) -> None:
        """`{users, total}` and `{items, total}`; a boolean total is not a count."""
        users = [{"username": "a", "used_traffic": 1}]
        assert parse_marzban_users_page({"users": users, "total": 7}) == ListingPage(users, 7)
        assert parse_marzneshin_users_page({"items": users, "total": 1}) == ListingPage(users, 1)
        assert isinstance(parse_marzban_users_page({"users": users, "total": True}), str)
        assert isinstance(parse_marzneshin_users_page({"users": users, "total": 1}), str)

    @given(st.lists(st.dictionaries(st.sampled_from(["username", "x"]), json_values), max_size=5))
    def test_eylandoo_groups_are_flattened(self, users: list[dict[str, object]]) -> None:
        """Users under main admin and sub-admins all come out, in order."""
        reply = {"success": True, "main_admin": {"users": users}, "sub_admins": [{"users": users}]}
        page = parse_eylandoo_list_all(reply)
        assert isinstance(page, ListingPage)
        assert list(page.items) == users + users

    def test_eylandoo_refusals(self) -> None:
        """`success: false` and a reply without users are reasons, not pages."""
        assert parse_eylandoo_list_all({"success": False, "message": "Invalid key"}) == (
            "the panel replied success: false: Invalid key"
        )
        assert parse_eylandoo_list_all({"success": True}) == "the reply has no users list"

    def test_eylandoo_old_items_read_data_used(self) -> None:
        """An Oct-2025 list item's root `data_used` is read as that version's single reply."""
        assert parse_eylandoo_list_item({"username": "a", "data_used": 9}) == CounterReading(
            9, "data.data_used"
        )

    def test_xui_client_stats_of_every_inbound(self) -> None:
        """Every inbound's `clientStats` records; no inbounds at all is an empty page."""
        reply = {
            "success": True,
            "obj": [{"clientStats": [{"email": "a"}]}, {"clientStats": None}, {"clientStats": [1]}],
        }
        assert parse_xui_inbounds(reply) == ListingPage([{"email": "a"}, 1])
        assert parse_xui_inbounds({"success": True, "obj": None}) == ListingPage([])
        assert isinstance(parse_xui_inbounds({"success": False, "msg": "x"}), str)
