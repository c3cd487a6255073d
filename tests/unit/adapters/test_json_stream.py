"""Reading a listing's elements as they are decoded gives what `json.loads` gives, or fails so."""

import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usage_adapters.panels.json_stream import (
    EACH,
    Path,
    apply_elements,
    decode_arriving,
    decode_elements,
)

# What json.loads raises for a body that is not JSON, or not UTF-8.
REFUSED = (json.JSONDecodeError, UnicodeDecodeError)
ARRAYS: list[Path] = [("users",), ("data", "users"), ("obj", EACH, "clientStats")]
# Values stepped over, never built (3x-ui's `settings`: every client again).
UNREAD: list[Path] = [("obj", EACH, "settings"), ("skip",)]
KEYS = st.sampled_from(
    ["users", "data", "obj", "clientStats", "settings", "skip", "msg", "n", "é", "\U0001f600"]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30,
)
LAYOUTS = st.sampled_from(
    [
        {},
        {"indent": 2},
        {"separators": (",", ":")},
        {"ensure_ascii": False},
        {"indent": "\t", "ensure_ascii": False},
    ]
)


def seen(value: object) -> object:
    """An element, marked as read while decoding."""
    return ["seen", value]


def streamed(body: bytes, window: int) -> object:
    return decode_elements(body, ARRAYS, seen, UNREAD, window=window)


def loaded(body: bytes) -> object:
    """`json.loads(body)`, its arrays read and its unread values dropped as the stream does."""
    return apply_elements(json.loads(body), ARRAYS, seen, UNREAD)


def refused_or_alike(body: bytes, decode: Callable[[bytes], object]) -> None:
    """`decode(body)` gives what `loaded(body)` gives, or is refused where `json.loads` is."""
    try:
        expected = loaded(body)
    except ValueError:
        with pytest.raises(REFUSED):
            decode(body)
    else:
        assert decode(body) == expected


@given(DOCUMENTS, LAYOUTS, st.integers(min_value=1, max_value=40))
def test_any_document_decodes_as_json_loads_does(
    document: object, layout: dict[str, object], window: int
) -> None:
    """Any document, in any layout and in windows of any size, decodes as `json.loads` does."""
    body = json.dumps(document, **layout).encode()  # type: ignore[arg-type]
    assert streamed(body, window) == loaded(body)


@given(
    DOCUMENTS,
    st.integers(min_value=0),
    st.sampled_from([*'[]{},:"0 e.-\\', "", "1"]),
    st.integers(min_value=1, max_value=40),
)
def test_a_damaged_document_fails_as_json_loads_fails(
    document: object, where: int, put: str, window: int
) -> None:
    """A document with one character cut or replaced is refused exactly when `json.loads` is."""
    text = json.dumps(document, ensure_ascii=False)
    at = where % (len(text) + 1)
    body = (text[:at] + put + text[at + 1 :]).encode()
    refused_or_alike(body, lambda body: streamed(body, window))


@given(
    DOCUMENTS,
    LAYOUTS,
    st.lists(st.integers(min_value=0, max_value=30), max_size=12),
    st.integers(min_value=1, max_value=40),
)
def test_a_body_arriving_in_any_chunks_decodes_as_a_whole_body_does(
    document: object, layout: dict[str, object], cuts: list[int], window: int
) -> None:
    """However the bytes arrive (empty chunks, a character split between two), the value is one."""
    body = json.dumps(document, **layout).encode()  # type: ignore[arg-type]
    chunks, at = [], 0
    for size in cuts:
        chunks.append(body[at : at + size])
        at += size
    chunks.append(body[at:])
    arrived = decode_arriving(iter(chunks), ARRAYS, seen, UNREAD, window=window)
    assert arrived == streamed(body, window)


@given(DOCUMENTS, st.integers(min_value=0), st.sampled_from([*'[]{},:"0', ""]))
def test_a_damaged_body_arriving_in_chunks_fails_as_json_loads_fails(
    document: object, where: int, put: str
) -> None:
    """Arriving a few bytes at a time, a damaged document is refused exactly as by `json.loads`."""
    text = json.dumps(document, ensure_ascii=False)
    at = where % (len(text) + 1)
    body = (text[:at] + put + text[at + 1 :]).encode()
    refused_or_alike(
        body,
        lambda body: decode_arriving(
            (body[n : n + 3] for n in range(0, len(body), 3)), ARRAYS, seen, UNREAD, window=5
        ),
    )


def test_the_listing_arrays_are_read_element_by_element() -> None:
    """Only the elements at the named paths are read; everything else is kept as decoded."""
    body = json.dumps(
        {
            "success": True,
            "obj": [
                {"id": 1, "settings": '{"clients": []}', "clientStats": [{"email": "a"}, 7]},
                {"id": 2, "clientStats": []},
            ],
            "users": [{"email": "kept"}],
        }
    ).encode()
    read: list[object] = []

    def element(value: object) -> object:
        read.append(value)
        return "read"

    decoded = decode_elements(body, [("obj", EACH, "clientStats")], element, window=3)
    assert read == [{"email": "a"}, 7]
    assert decoded == {
        "success": True,
        "obj": [
            {"id": 1, "settings": '{"clients": []}', "clientStats": ["read", "read"]},
            {"id": 2, "clientStats": []},
        ],
        "users": [{"email": "kept"}],
    }


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b'{"users": [1, 2,]}', b'{"users": [1 2]}', b'{"users": [1]} x', b'{"users"}'],
)
def test_what_is_not_json_is_refused(body: bytes) -> None:
    """An empty body, a trailing comma, a missing comma or colon and extra data are refused."""
    with pytest.raises(REFUSED):
        decode_elements(body, ARRAYS, seen, window=2)


def test_a_reply_in_utf16_is_decoded_whole() -> None:
    """A body `json.loads` reads as UTF-16 is decoded whole, with the elements read the same way."""
    body = json.dumps({"users": [{"n": 1}]}).encode("utf-16")
    assert decode_elements(body, ARRAYS, seen) == {"users": [["seen", {"n": 1}]]}


@pytest.mark.parametrize("window", range(1, 24))
def test_a_long_unread_string_is_stepped_over_in_any_window(window: int) -> None:
    """A string of every escape, longer than the window, is checked as `json.loads` checks it."""
    settings = json.dumps({"clients": [{"email": f'u"{n}\\\t\u00e9\U0001f600'} for n in range(9)]})
    body = json.dumps({"skip": settings, "obj": [{"settings": settings, "n": 1}]}).encode()
    assert streamed(body, window) == {"skip": None, "obj": [{"settings": None, "n": 1}]}
    for at in range(body.index(b"clients"), len(body), 7):
        for bad in (b"\\x", b"\\u12g4", b"\x01", b"\\", b'"'):
            refused_or_alike(body[:at] + bad + body[at:], lambda body: streamed(body, window))
