"""The interval setting: raw text to minutes."""

from hypothesis import given
from hypothesis import strategies as st

from usage_core.interval import DEFAULT_INTERVAL_MINUTES, parse_interval


class TestParseInterval:
    """`parse_interval` follows the original's integer cast, clamped to 1..5."""

    def test_missing_gives_the_default(self) -> None:
        """A missing row gives 5 minutes and no problem to report."""
        setting = parse_interval(None)
        assert (setting.minutes, setting.problem, setting.clamped) == (5, None, False)

    def test_documented_examples(self) -> None:
        """The seed's and the issue's examples map as documented."""
        expected = {"10": 5, "0": 1, "-4": 1, "2.9": 2, " 2 ": 2, "3": 3, "+4": 4, "30": 5}
        for raw, minutes in expected.items():
            assert parse_interval(raw).minutes == minutes, raw

    def test_unusable_values_fall_back_and_say_why(self) -> None:
        """`abc`, the empty string and `5 minutes` give 5 with a problem naming the value."""
        for raw in ("abc", "", "5 minutes", "1e3", "0x3", "two"):
            setting = parse_interval(raw)
            assert setting.minutes == DEFAULT_INTERVAL_MINUTES
            assert setting.problem is not None
            assert repr(raw) in setting.problem

    def test_clamping_is_reported(self) -> None:
        """An out-of-range integer is clamped and flagged as such."""
        assert parse_interval("10").clamped
        assert not parse_interval("4").clamped

    @given(st.text())
    def test_any_text_gives_an_interval_within_bounds(self, raw: str) -> None:
        """Whatever the stored text, the effective interval lies in 1..5."""
        assert 1 <= parse_interval(raw).minutes <= 5

    @given(st.integers(), st.text(alphabet=" \t", max_size=3), st.text(alphabet=" \t", max_size=3))
    def test_integers_with_spaces_clamp(self, number: int, left: str, right: str) -> None:
        """Any integer, padded with whitespace, is clamped into 1..5."""
        setting = parse_interval(f"{left}{number}{right}")
        assert setting.minutes == max(1, min(5, number))
        assert setting.problem is None

    @given(st.decimals(allow_nan=False, allow_infinity=False, places=3))
    def test_decimals_truncate_toward_zero(self, number: object) -> None:
        """A decimal string behaves like its integer part, as PHP's (int) cast does."""
        text = f"{number:f}"
        assert parse_interval(text).minutes == max(1, min(5, int(float(text))))
