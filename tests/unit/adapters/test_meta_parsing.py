"""Reading `meta` text: the fast path agrees with `json.loads` on any text."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from usage_adapters.sql.meta import parse_meta
from usage_core.errors import StoreError

_WHITESPACE = st.sampled_from(["", " ", "\n", "\t ", "\r\n", "\u00a0", "\ufeff"])
_DOCUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def _expected(text: str) -> object:
    """What `parse_meta` must return, by `json.loads` and the documented rules; StoreError."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise StoreError("not valid JSON") from exc
    if value is None or value == []:
        return {}
    if not isinstance(value, dict):
        raise StoreError("not an object")
    return value


def _reads_as_json_loads(text: str) -> None:
    """`parse_meta` gives what `_expected` does, or raises StoreError where it does."""
    try:
        expected = _expected(text)
    except StoreError:
        with pytest.raises(StoreError):
            parse_meta(1, text)
        return
    assert parse_meta(1, text) == expected


@given(_WHITESPACE, _DOCUMENTS, _WHITESPACE, st.sampled_from(["", "x", "}", "{}"]))
def test_same_as_json_loads(before: str, document: object, after: str, tail: str) -> None:
    """Documents with surrounding whitespace or trailing text read as `json.loads` reads them."""
    _reads_as_json_loads(before + json.dumps(document) + after + tail)


@given(st.text(max_size=20))
def test_any_text_is_a_mapping_or_a_store_error(text: str) -> None:
    """Arbitrary text never escapes as anything but a mapping or a StoreError."""
    _reads_as_json_loads(text)
