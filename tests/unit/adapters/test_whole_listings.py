"""A whole listing (Eylandoo `list_all`, 3x-ui `inbounds/list`) read as it is decoded gives what
reading the decoded reply gives, and keeps no listed user's object."""

import json

from hypothesis import given
from hypothesis import strategies as st

from usage_adapters.panels.dialect import Page, WholeListing
from usage_adapters.panels.eylandoo import EylandooListing
from usage_adapters.panels.json_stream import decode_elements
from usage_adapters.panels.reader import listed_elements, matching_items
from usage_adapters.panels.xui import XuiListing

NAMES = st.sampled_from(["u1", "u2", "u3", "u4", "stranger"])
WANTED = {name: name for name in ("u1", "u2", "u3", "u4")}
COUNTER = st.integers(min_value=-5, max_value=2**64) | st.none() | st.just("12")


def eylandoo_user(name: str, counter: object) -> dict[str, object]:
    return {"username": name, "total_traffic_bytes": counter, "status": "active"}


def xui_record(name: str, counter: object) -> dict[str, object]:
    return {"email": name, "up": counter, "down": 1, "enable": True}


def groups(user: st.SearchStrategy[object]) -> st.SearchStrategy[list[object]]:
    return st.lists(user | st.integers() | st.just("not a user"), max_size=6)


EYLANDOO_USERS = st.builds(eylandoo_user, NAMES, COUNTER)
XUI_RECORDS = st.builds(xui_record, NAMES, COUNTER)
EYLANDOO_REPLIES = st.one_of(
    st.builds(lambda users: {"success": True, "users": users}, groups(EYLANDOO_USERS)),
    st.builds(lambda users: {"data": {"users": users}}, groups(EYLANDOO_USERS)),
    st.builds(
        lambda users, subs: {
            "main_admin": {"users": users},
            "sub_admins": [{"users": sub} for sub in subs],
        },
        groups(EYLANDOO_USERS),
        st.lists(groups(EYLANDOO_USERS), max_size=3),
    ),
    st.builds(lambda users: {"main_admin_users": users}, groups(EYLANDOO_USERS)),
)
XUI_REPLIES = st.builds(
    lambda inbounds: {"success": True, "msg": "", "obj": inbounds},
    st.lists(
        st.builds(
            lambda stats: {"id": 1, "settings": '{"clients": []}', "clientStats": stats},
            groups(XUI_RECORDS) | st.none(),
        ),
        max_size=3,
    ),
)


def read_both(listing: WholeListing, reply: object) -> tuple[object, object]:
    """The page's (pairs, size) read from the decoded reply, and read as it is decoded."""
    body = json.dumps(reply).encode()
    whole = listing.read_page(json.loads(body), 1)
    streamed = listing.read_page(decode_elements(body, *listed_elements(WANTED, listing)), 1)
    if isinstance(whole, str) or isinstance(streamed, str):
        return whole, streamed
    for item in streamed.items:
        assert not isinstance(item, dict), "a listed user's object was kept"
    return summary(whole, listing), summary(streamed, listing)


def summary(page: Page, listing: WholeListing) -> tuple[list[object], int]:
    return list(matching_items(page.items, WANTED, listing)), len(page.items)


@given(EYLANDOO_REPLIES)
def test_eylandoo_list_all_reads_the_same_in_every_shape(reply: object) -> None:
    """Each `list_all` shape gives the same readings and size either way, keeping no user."""
    whole, streamed = read_both(EylandooListing(), reply)
    assert streamed == whole


@given(XUI_REPLIES)
def test_xui_inbounds_read_the_same(reply: object) -> None:
    """`inbounds/list` gives the same readings and size either way, keeping no record object."""
    whole, streamed = read_both(XuiListing(), reply)
    assert streamed == whole
