"""Grace thresholds and reseller totals."""

from hypothesis import given
from hypothesis import strategies as st

from usage_core.ledger import LedgerState
from usage_core.quota import grace_limit, reseller_total

GIB = 1024**3
MIB = 1024**2


class TestGraceLimit:
    """`grace_limit` adds max(percent of the limit, a floor)."""

    def test_documented_examples(self) -> None:
        """1 GiB → 1,126,170,624 (floor wins); 10 GiB → 10,952,166,604 (2 % wins)."""
        assert grace_limit(GIB, 2.0, 50 * MIB) == 1_126_170_624
        assert grace_limit(10 * GIB, 2.0, 50 * MIB) == 10_952_166_604

    def test_crossover(self) -> None:
        """At 2,621,440,000 bytes, 2 % equals the 50 MiB floor."""
        assert grace_limit(2_621_440_000, 2.0, 50 * MIB) == 2_621_440_000 + 50 * MIB

    @given(st.integers(0, 2**50), st.floats(0, 100), st.integers(0, 2**30))
    def test_grace_is_at_least_the_floor(self, limit: int, percent: float, floor: int) -> None:
        """The effective limit is never below limit + floor, nor below limit + percent."""
        effective = grace_limit(limit, percent, floor)
        assert effective >= limit + floor
        assert effective >= limit + int(limit * percent / 100) - 1


class TestResellerTotal:
    """`reseller_total` sums usage and settled bytes, less forgiveness, floored at 0."""

    def test_sum_minus_forgiven(self) -> None:
        """Two configs with settled bytes, 100 forgiven."""
        states = [LedgerState(1000, 200), LedgerState(50)]
        assert reseller_total(states, 100) == 1150

    @given(
        st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)), max_size=20),
        st.integers(0, 2**45),
    )
    def test_never_negative(self, pairs: list[tuple[int, int]], forgiven: int) -> None:
        """Forgiveness larger than the usage gives 0, never a negative total."""
        total = reseller_total([LedgerState(u, s) for u, s in pairs], forgiven)
        assert total == max(0, sum(u + s for u, s in pairs) - forgiven)


class TestTotalsNeverOverflow:
    """A reseller total is clamped to what the column holds, and the others are unharmed."""

    def test_clamped_to_bigint(self) -> None:
        """Two counters of 2^62 + 1 add up past 2^63 - 1: the total is 2^63 - 1."""
        big = LedgerState(2**62 + 1)
        assert reseller_total([big, big]) == 2**63 - 1

    @given(st.lists(st.integers(0, 2**63 - 1), max_size=5), st.integers(0, 2**64))
    def test_always_fits(self, usages: list[int], forgiven: int) -> None:
        """Whatever the configs hold, the total is within 0..2^63 - 1."""
        total = reseller_total([LedgerState(u) for u in usages], forgiven)
        assert 0 <= total <= 2**63 - 1
