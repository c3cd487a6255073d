"""The usage ledger: counters become deltas, resets become settled bytes."""

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from usage_core.ledger import LedgerState, StepKind, advance, stored_state

counters = st.integers(0, 2**50)


@attrs.define
class Panel:
    """One user's counters on a panel: the current one and a lifetime that never drops."""

    counter: int = 0
    lifetime: int = 0

    def grow(self, amount: int) -> None:
        """Traffic: both counters grow."""
        self.counter += amount
        self.lifetime += amount


@attrs.define
class StoredRow:
    """A config row as the store keeps it: `usage_bytes` and our keys in `meta`.

    The app's "reset usage" moves usage into settled; its meta-only save of a
    config whose usage it loaded as 0 puts an older copy of `meta` back.
    """

    with_lifetime: bool
    usage: int = 0
    meta: dict[str, int] = attrs.Factory(dict)
    copy: dict[str, int] | None = None

    @property
    def total(self) -> int:
        """usage + settled, what the quota counts."""
        return self.usage + self.meta.get("settled", 0)

    def sync(self, panel: Panel) -> None:
        """Read the row, apply the panel's counters, write the row back."""
        lifetime = panel.lifetime if self.with_lifetime else None
        state = stored_state(
            self.usage,
            self.meta.get("settled", 0),
            self.meta.get("counter"),
            self.meta.get("counted"),
            self.meta.get("lifetime"),
        )
        step = advance(state, panel.counter, lifetime=lifetime)
        after = step.after
        if step.settled_now:
            # Settled bytes live only in meta: an older copy saved over this write
            # loses them, a race the stamp cannot repair (docs/design.md).
            self.copy = None
        self.usage = after.usage_bytes
        self.meta = {
            "settled": after.settled_bytes,
            "counter": panel.counter,
            "counted": after.total_bytes,
        }
        if lifetime is not None:
            self.meta["lifetime"] = lifetime
        assert self.total <= panel.lifetime

    def load(self) -> None:
        """The app loads the config; with usage 0 its save will write meta alone."""
        if self.usage == 0:
            self.copy = dict(self.meta)

    def save(self) -> None:
        """The app saves the meta it loaded, over whatever was written since."""
        if self.copy is not None:
            self.meta, self.copy = self.copy, None

    def app_reset(self) -> None:
        """The app's "reset usage": usage into settled."""
        self.meta = {**self.meta, "settled": self.total}
        self.usage, self.copy = 0, None

    def play(self, event: str, amount: int, panel: Panel) -> None:
        """One of the events both kinds of panel share."""
        if event == "grow":
            panel.grow(amount)
        elif event == "sync":
            self.sync(panel)
        elif event == "load":
            self.load()
        elif event == "save":
            self.save()
        elif event == "app_reset":
            self.app_reset()


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

    def test_older_meta_moves_the_lifetime_on_with_the_counter(self) -> None:
        """The lifetime read with the newer write's counter was that much further on too."""
        state = stored_state(200, 1000, 5000, 1000, last_lifetime=9000)
        assert state == LedgerState(200, 1000, 5200, 9200)
        assert not advance(state, 5200, lifetime=9200).changed

    def test_a_lifetime_without_a_counter_is_dropped(self) -> None:
        """A stored lifetime means nothing without the counter it was read with."""
        assert stored_state(200, 0, None, None, last_lifetime=9000) == LedgerState(200)

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
        panel, row = Panel(), StoredRow(with_lifetime=False)
        for event, amount in events:
            if event == "reset":
                # The app's reset and a panel reset that succeeds, each seen by a sync (a
                # reset and regrowth between two syncs is what a counter cannot tell).
                row.sync(panel)
                row.app_reset()
                panel.counter = 0
                row.sync(panel)
            else:
                row.play(event, amount, panel)
        row.sync(panel)
        assert row.total == panel.lifetime


# The scenario: a counter synced at this value, 1,000 more bytes, a reset on the
# panel, and regrowth to 5,000 past the old value before the next sync.
SYNCED = 5_972_593_704


class TestLifetime:
    """`advance` with the panel's lifetime counter beside the current one."""

    def test_a_reset_hidden_by_regrowth_is_settled(self) -> None:
        """Counter growth of 5,000 with lifetime growth of 5,972,599,704 settles the old counter."""
        state = advance(LedgerState(0), SYNCED, lifetime=SYNCED).after
        step = advance(state, SYNCED + 5_000, lifetime=2 * SYNCED + 6_000)
        assert step.kind is StepKind.RESET
        assert step.after == LedgerState(
            SYNCED + 5_000, SYNCED + 1_000, SYNCED + 5_000, 2 * SYNCED + 6_000
        )
        assert step.after.total_bytes == 11_945_193_408 == 2 * SYNCED + 6_000

    def test_without_a_lifetime_the_same_readings_lose_the_old_counter(self) -> None:
        """Today's rule on the same counters: growth of 5,000, the pre-reset bytes unseen."""
        state = advance(LedgerState(0), SYNCED).after
        step = advance(state, SYNCED + 5_000)
        assert step.kind is StepKind.GROWTH
        assert step.after.total_bytes == SYNCED + 5_000

    def test_a_visible_reset_also_counts_the_bytes_before_it(self) -> None:
        """A counter that dropped settles the usage plus what was used before the reset."""
        state = LedgerState(900, 50, last_counter=900, last_lifetime=2_000)
        step = advance(state, 30, lifetime=2_130)
        assert step.kind is StepKind.RESET
        # 130 used since the last sync: 30 after the reset, so 100 before it.
        assert step.after == LedgerState(30, 1_050, 30, 2_130)
        assert step.settled_now == 1_000

    def test_growth_matching_the_lifetime_is_plain_growth(self) -> None:
        """The lifetime growing as the counter does changes nothing about growth."""
        step = advance(LedgerState(500, 100, 400, 7_000), 450, lifetime=7_050)
        assert step.kind is StepKind.GROWTH
        assert step.after == LedgerState(550, 100, 450, 7_050)

    def test_the_first_lifetime_is_recorded_even_when_the_counter_stands(self) -> None:
        """An unchanged counter that brings the first lifetime is written, as a baseline."""
        step = advance(LedgerState(10, 0, 10), 10, lifetime=90)
        assert step.kind is StepKind.UNCHANGED
        assert step.changed
        assert step.after == LedgerState(10, 0, 10, 90)
        assert not advance(step.after, 10, lifetime=90).changed

    def test_a_lifetime_that_dropped_falls_back_to_the_counter(self) -> None:
        """Marzban's reset-all deletes the reset logs: the lifetime drops and tells nothing."""
        state = LedgerState(900, 0, 900, 5_000)
        grown = advance(state, 950, lifetime=950)
        assert grown.kind is StepKind.GROWTH
        assert grown.after == LedgerState(950, 0, 950, 950)
        reset = advance(state, 20, lifetime=20)
        assert reset.kind is StepKind.RESET
        assert reset.after == LedgerState(20, 900, 20, 20)

    def test_a_missing_lifetime_falls_back_and_forgets_the_last_one(self) -> None:
        """A reading without a lifetime applies today's rule and clears the stored lifetime."""
        step = advance(LedgerState(900, 0, 900, 5_000), 950)
        assert step.after == LedgerState(950, 0, 950, None)
        # Without a stored lifetime, the next one is only recorded.
        step = advance(step.after, 1_000, lifetime=9_000)
        assert step.kind is StepKind.GROWTH
        assert step.after == LedgerState(1_000, 0, 1_000, 9_000)

    def test_a_lifetime_that_disagrees_with_the_counter_falls_back(self) -> None:
        """Lifetime growth below the counter since a reset cannot be right: the counter decides."""
        state = LedgerState(100, 0, 100, 1_000)
        # Counter up by 50, lifetime by 120: a reset would need the counter <= 120.
        step = advance(state, 150, lifetime=1_120)
        assert step.kind is StepKind.GROWTH
        assert step.after == LedgerState(150, 0, 150, 1_120)
        # Counter dropped to 80 but the lifetime grew by 10 only.
        step = advance(state, 80, lifetime=1_010)
        assert step.kind is StepKind.RESET
        assert step.after == LedgerState(80, 100, 80, 1_010)
        # Lifetime grew less than the counter: growth as the counter says.
        step = advance(state, 300, lifetime=1_050)
        assert step.after == LedgerState(300, 0, 300, 1_050)

    def test_a_reply_without_usage_fields_ignores_the_lifetime_too(self) -> None:
        """With `may_reset` false, a drop keeps the whole state, lifetime included."""
        state = LedgerState(900, 0, 900, 5_000)
        step = advance(state, 0, may_reset=False, lifetime=6_000)
        assert step.ignored_drop
        assert step.after == state

    def test_negative_lifetimes_are_refused(self) -> None:
        """A negative lifetime is a programming error, not a reading."""
        with pytest.raises(ValueError, match="negative"):
            advance(LedgerState(0), 0, lifetime=-1)

    @given(
        st.integers(0, 2**40),
        st.integers(0, 2**40),
        st.integers(0, 2**40),
        st.lists(
            st.lists(st.tuples(st.sampled_from(["grow", "reset"]), counters), max_size=6),
            max_size=20,
        ),
    )
    @settings(max_examples=300)
    def test_resets_and_regrowth_between_syncs_lose_and_double_count_nothing(
        self, usage: int, settled: int, start: int, periods: list[list[tuple[str, int]]]
    ) -> None:
        """With a monotonic lifetime, usage + settled grows by exactly the lifetime's growth."""
        counter, lifetime = start, start
        state = advance(LedgerState(usage, settled), counter, lifetime=lifetime).after
        first_total = state.total_bytes
        for events in periods:
            for event, amount in events:
                if event == "grow":
                    counter += amount
                    lifetime += amount
                else:
                    counter = 0
            step = advance(state, counter, lifetime=lifetime)
            state = step.after
            assert state.usage_bytes == counter
            assert state.total_bytes - first_total == lifetime - start

    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["grow", "reset", "reset_all", "recreate", "sync"]), counters
            ),
            max_size=40,
        ),
        st.booleans(),
    )
    @settings(max_examples=300)
    def test_a_lifetime_that_drops_never_counts_more_than_was_used(
        self, events: list[tuple[str, int]], reports_lifetime: bool
    ) -> None:
        """Marzban's computed lifetime: whatever drops it, a sync never counts more than was used.

        Each sync adds at most what was used since the one before, and exactly
        that when the one before recorded a lifetime and nothing dropped it since.
        """
        counter = lifetime = used = used_at_sync = 0
        state = LedgerState(0)
        exact = False  # the last sync recorded a lifetime and nothing dropped it since
        for event, amount in [*events, ("sync", 0)]:
            if event == "grow":
                counter, lifetime, used = counter + amount, lifetime + amount, used + amount
            elif event == "reset":
                counter = 0
            elif event in ("reset_all", "recreate"):
                # The reset logs are gone: the lifetime is the counter again.
                exact = exact and lifetime == 0
                counter = lifetime = 0
            else:
                before = state.total_bytes
                state = advance(
                    state, counter, lifetime=lifetime if reports_lifetime else None
                ).after
                counted = state.total_bytes - before
                assert 0 <= counted <= used - used_at_sync
                if exact:
                    assert counted == used - used_at_sync
                used_at_sync, exact = used, reports_lifetime

    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["grow", "sync", "load", "save", "app_reset", "panel_reset"]),
                counters,
            ),
            max_size=40,
        )
    )
    @example([("grow", 5), ("sync", 0), ("grow", 3), ("panel_reset", 0), ("grow", 9)])
    @example([("grow", 1), ("panel_reset", 0), ("grow", 2), ("load", 0), ("sync", 0), ("save", 0)])
    @settings(max_examples=300)
    def test_stored_lifetimes_survive_app_resets_and_older_meta(
        self, events: list[tuple[str, int]]
    ) -> None:
        """Through meta, the app's resets and its older-meta saves, the total ends at the lifetime.

        Panel resets need no sync around them here: the lifetime settles them.
        """
        panel, row = Panel(), StoredRow(with_lifetime=True)
        # Before a first sync records a lifetime, a reset cannot be seen.
        row.sync(panel)
        for event, amount in events:
            if event == "panel_reset":
                panel.counter = 0
            else:
                row.play(event, amount, panel)
        row.sync(panel)
        assert row.total == panel.lifetime
