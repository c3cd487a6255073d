"""Hypothesis strategies shared by the unit tests."""

from hypothesis import strategies as st

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
# Values a panel might put in a usage field: numbers, numeric text, junk.
usage_field_values = (
    st.integers(-(2**40), 2**50)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(0, 2**50).map(str)
    | st.sampled_from(["", "abc", "-5", "1.5", "1e9", " 7", None, True, False])
)
