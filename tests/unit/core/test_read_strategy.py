"""The read strategy: listing, exact batches or single reads, by what each costs the panel."""

from hypothesis import given
from hypothesis import strategies as st

from usage_core.read_strategy import (
    ReadCosts,
    ReadStrategy,
    batches_of,
    choose,
    needs_total,
    parse_strategy,
    plan_for,
)

MARZBAN = ReadCosts(request_cost=2.0, page_size=250, batch_size=50, reports_total=True)
UNFILTERED = ReadCosts(request_cost=2.0, page_size=None)

costs_st = st.builds(
    ReadCosts,
    request_cost=st.floats(min_value=0.0, max_value=100.0),
    page_size=st.one_of(st.none(), st.integers(1, 5_000)),
    batch_size=st.integers(0, 200),
    reports_total=st.booleans(),
)


def test_twenty_of_five_thousand_are_one_batch() -> None:
    """20 configs on a 5,000-user Marzban: one batch serializing 20 users, no probe needed."""
    plan = choose(needed=20, total=5_000, costs=MARZBAN)
    assert (plan.strategy, plan.requests, plan.users) == (ReadStrategy.BATCHES, 1, 20)
    assert not needs_total(1, MARZBAN)


def test_everyone_is_a_listing() -> None:
    """Reading every user of the panel lists it: fewer requests for the same users."""
    plan = choose(needed=5_000, total=5_000, costs=MARZBAN)
    assert (plan.strategy, plan.requests, plan.users) == (ReadStrategy.LISTING, 20, 5_000)


def test_a_thousand_of_a_hundred_thousand_are_batches() -> None:
    """1,000 of 100,000: 20 batches of 50 instead of 100,000 users listed."""
    plan = choose(needed=1_000, total=100_000, costs=MARZBAN)
    assert (plan.strategy, plan.requests, plan.users) == (ReadStrategy.BATCHES, 20, 1_000)
    assert needs_total(20, MARZBAN)


def test_panels_without_a_filter_keep_their_listing() -> None:
    """Eylandoo and 3x-ui have no exact filter: their one listing, even for one user."""
    plan = choose(needed=1, total=None, costs=UNFILTERED)
    assert (plan.strategy, plan.requests) == (ReadStrategy.LISTING, 1)
    forced = choose(needed=1, total=None, costs=UNFILTERED, forced=ReadStrategy.BATCHES)
    assert forced.strategy is ReadStrategy.LISTING


def test_a_counted_panel_without_a_filter_reads_few_users_singly() -> None:
    """Remnawave says its total but filters by no name: 20 of 5,000 singly, 5,000 listed."""
    costs = ReadCosts(request_cost=2.0, page_size=1_000, reports_total=True)
    assert needs_total(0, costs)
    few = choose(needed=20, total=5_000, costs=costs)
    assert (few.strategy, few.requests, few.users) == (ReadStrategy.SINGLES, 20, 20)
    everyone = choose(needed=5_000, total=5_000, costs=costs)
    assert (everyone.strategy, everyone.requests) == (ReadStrategy.LISTING, 5)
    assert choose(needed=20, total=None, costs=costs).strategy is ReadStrategy.LISTING
    assert not needs_total(0, UNFILTERED)


def test_an_unknown_total_lists_unless_one_batch_holds_everyone() -> None:
    """A failed probe: one batch still wins; several batches fall back to the listing."""
    assert choose(needed=50, total=None, costs=MARZBAN).strategy is ReadStrategy.BATCHES
    assert choose(needed=51, total=None, costs=MARZBAN).strategy is ReadStrategy.LISTING


def test_forced_strategies_are_obeyed() -> None:
    """`extra` may force any strategy the panel can serve."""
    for strategy in ReadStrategy:
        assert choose(needed=20, total=5_000, costs=MARZBAN, forced=strategy).strategy is strategy


@given(
    needed=st.integers(1, 200_000),
    total=st.one_of(st.none(), st.integers(0, 200_000)),
    costs=costs_st,
)
def test_the_choice_is_never_more_work_than_the_alternatives(
    needed: int, total: int | None, costs: ReadCosts
) -> None:
    """With the total known, no strategy the panel offers costs less than the chosen one."""
    chosen = choose(needed=needed, total=total, costs=costs)
    if total is None or not (costs.batches or costs.reports_total):
        return
    offered = ReadStrategy if costs.batches else (ReadStrategy.LISTING, ReadStrategy.SINGLES)
    for strategy in offered:
        other = plan_for(strategy, needed=needed, total=total, costs=costs)
        assert chosen.work(costs) <= other.work(costs)


@given(
    needed=st.integers(1, 200_000),
    total=st.integers(0, 200_000),
    costs=costs_st,
)
def test_no_probe_is_needed_when_it_cannot_change_the_choice(
    needed: int, total: int, costs: ReadCosts
) -> None:
    """Where a probe would tell, but `needs_total` says no, the blind choice is already the best."""
    if not (costs.batches and costs.reports_total):
        return
    requests = plan_for(ReadStrategy.BATCHES, needed=needed, total=None, costs=costs).requests
    if needs_total(requests, costs):
        return
    blind = choose(needed=needed, total=None, costs=costs).strategy
    actual = plan_for(blind, needed=needed, total=total, costs=costs)
    for strategy in ReadStrategy:
        other = plan_for(strategy, needed=needed, total=total, costs=costs)
        assert actual.work(costs) <= other.work(costs)


@given(
    names=st.lists(st.text(min_size=1, max_size=40), max_size=300, unique=True),
    size=st.integers(1, 100),
    max_chars=st.integers(1, 4_000),
    least=st.integers(1, 3),
)
def test_batches_keep_every_name_once_within_their_bounds(
    names: list[str], size: int, max_chars: int, least: int
) -> None:
    """Each name lands in one batch, in order; batches keep their bounds, padded to `least`."""
    batches = batches_of(names, size=size, max_chars=max_chars, least=least)
    distinct = [list(dict.fromkeys(batch)) for batch in batches]
    assert [name for batch in distinct for name in batch] == names
    for batch, names_in in zip(batches, distinct, strict=True):
        assert len(batch) >= least
        assert len(names_in) <= size
        assert len(names_in) == 1 or sum(map(len, names_in)) <= max_chars


def test_a_lone_name_is_sent_twice_where_one_value_is_a_substring_match() -> None:
    """Marzneshin: a batch of one repeats the name, so the filter stays exact."""
    assert batches_of(["a", "b", "alice"], size=2, max_chars=100, least=2) == [
        ("a", "b"),
        ("alice", "alice"),
    ]


def test_strategy_names_parse() -> None:
    """`auto`/missing is no preference; the three names force; anything else is a problem."""
    assert parse_strategy(None) is None
    assert parse_strategy(" Auto ") is None
    assert parse_strategy("batches") is ReadStrategy.BATCHES
    assert parse_strategy("SINGLES") is ReadStrategy.SINGLES
    assert isinstance(parse_strategy("fast"), str)
    assert isinstance(parse_strategy(3), str)
