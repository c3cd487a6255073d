"""The usage ledger: counters become deltas, resets become settled bytes."""

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from usage_core.ledger import LedgerState, StepKind, advance, stored_state

counters = st.integers(0, 2**50)


class TestAdvance:
    """`advance` applies one panel counter to a ledger state."""

    def test_growth_adds_the_difference(self) -> None:
        """A counter that grew adds only its growth to usage_bytes."""
        step = advance(LedgerState(500, 100, last_counter=400), 450)
        assert step.kind is StepKind.GROWTH
        assert step.after == LedgerState(550, 100, 450)

    def test_first_counter_uses_usage_bytes_as_the_last(self) -> None:
        """With no counter seen yet, the stored usage_bytes stands in for it."""
        step = advance(LedgerState(524288000), 1073741824)
        assert step.after == LedgerState(1073741824, 0, 1073741824)

    def test_drop_settles_the_current_usage(self) -> None:
        """A counter that dropped moves usage into settled and restarts from the counter."""
        step = advance(LedgerState(900, 50, last_counter=900), 30)
        assert step.kind is StepKind.RESET
        assert step.after == LedgerState(30, 950, 30)
        assert step.settled_now == 900

    def test_unchanged_counter_needs_no_write(self) -> None:
        """A counter equal to the last one changes nothing."""
        assert not advance(LedgerState(10, 0, 10), 10).changed
        assert not advance(LedgerState(10), 10).changed

    def test_app_reset_before_the_panel_reset_is_not_counted_twice(self) -> None:
        """The app's own reset (usage to settled, usage 0) is not undone by the next sync."""
        # The app moved 1000 bytes to settled; the panel still reports 1000.
        after_app_reset = LedgerState(0, 1000, last_counter=1000)
        step = advance(after_app_reset, 1000)
        assert step.after.total_bytes == 1000
        # Then the panel's counter goes back to 0 and grows again.
        step = advance(advance(step.after, 0).after, 200)
        assert step.after.total_bytes == 1200

    def test_negative_counters_are_refused(self) -> None:
        """A negative counter is a programming error, not a reading."""
        with pytest.raises(ValueError, match="negative"):
            advance(LedgerState(0), -1)

    @given(st.integers(0, 2**40), st.integers(0, 2**40), st.lists(counters, max_size=30))
    def test_total_never_decreases_and_matches_the_counter(
        self, usage: int, settled: int, sequence: list[int]
    ) -> None:
        """Over any counters, usage + settled never drops, and usage equals the last counter."""
        state = LedgerState(usage, settled)
        settled_before = settled
        for counter in sequence:
            step = advance(state, counter)
            assert step.after.total_bytes >= state.total_bytes
            if step.kind is StepKind.RESET:
                settled_before += state.usage_bytes
            state = step.after
            assert state.usage_bytes == counter
            assert state.total_bytes == counter + settled_before

    @given(st.lists(counters, min_size=1, max_size=30))
    def test_no_bytes_are_lost(self, sequence: list[int]) -> None:
        """The total equals every rise of the counter, counting each reset's restart."""
        state = LedgerState(0)
        expected = 0
        previous = 0
        for counter in sequence:
            expected += counter - previous if counter >= previous else counter
            previous = counter
            state = advance(state, counter).after
        assert state.total_bytes == expected


class TestStoredState:
    """`stored_state` reads a row whose `meta` may be an older copy than its usage column."""

    def test_consistent_row_is_taken_as_stored(self) -> None:
        """A row whose total matches its stamp keeps its stored counter."""
        assert stored_state(300, 700, 5000, 1000) == LedgerState(300, 700, 5000)

    def test_app_reset_keeps_the_stored_counter(self) -> None:
        """The app's reset moves usage into settled: the total, and so the counter, stand."""
        assert stored_state(0, 1000, 5000, 1000) == LedgerState(0, 1000, 5000)

    def test_older_meta_over_a_newer_write_moves_the_counter_on(self) -> None:
        """Usage the stored counter does not account for was counted against a later counter."""
        # Stored at counter 5000 with usage 0; a sync then wrote usage 200 at counter
        # 5200, and the app saved its older copy of meta over it.
        state = stored_state(200, 1000, 5000, 1000)
        assert state == LedgerState(200, 1000, 5200)
        assert not advance(state, 5200).changed

    def test_rows_without_a_stamp_are_taken_as_stored(self) -> None:
        """Rows written before the stamp existed keep today's rule."""
        assert stored_state(200, 0, 5000, None) == LedgerState(200, 0, 5000)
        assert stored_state(200, 0, None, 100) == LedgerState(200, 0, None)

    @given(
        st.lists(
            st.tuples(st.sampled_from(["grow", "sync", "load", "save", "reset"]), counters),
            max_size=40,
        )
    )
    @example([("sync", 0), ("load", 0), ("grow", 7), ("sync", 0), ("save", 0)])
    @settings(max_examples=300)
    def test_older_meta_saves_never_count_a_byte_twice(self, events: list[tuple[str, int]]) -> None:
        """Syncs, app resets and the app's meta-only saves of older copies converge exactly."""
        counter = lifetime = 0
        usage = 0
        meta: dict[str, int] = {}
        copy: dict[str, int] | None = None

        def sync() -> None:
            nonlocal usage, meta
            state = stored_state(
                usage,
                meta.get("settled", 0),
                meta.get("counter"),
                meta.get("counted"),
            )
            after = advance(state, counter).after
            usage = after.usage_bytes
            meta = {
                "settled": after.settled_bytes,
                "counter": counter,
                "counted": after.total_bytes,
            }
            assert usage + meta["settled"] <= lifetime

        for event, amount in events:
            if event == "grow":
                counter += amount
                lifetime += amount
            elif event == "sync":
                sync()
            elif event == "load" and usage == 0:
                # The app loads a config whose usage is 0, so its save writes meta alone.
                copy = dict(meta)
            elif event == "save" and copy is not None:
                meta, copy = copy, None
            elif event == "reset":
                # The app's reset and a panel reset that succeeds, each seen by a sync (a
                # reset and regrowth between two syncs is what a counter cannot tell).
                sync()
                meta = {**meta, "settled": meta.get("settled", 0) + usage}
                usage, counter, copy = 0, 0, None
                sync()
        sync()
        assert usage + meta.get("settled", 0) == lifetime
