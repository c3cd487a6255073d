"""Hostile panels over real HTTP: errors, cut, slow and dripping replies, junk, huge, odd names.

Whatever a panel sends, a sync never crashes, fails only that panel's (or that user's) configs,
never counts a byte twice, never takes a junk reading for a counter reset, stops within its
deadlines, and converges once the panel behaves again.
"""

from __future__ import annotations

import json
import subprocess
import time
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest
from fault_support import KINDS, MIB, FaultWorld, fault_world
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from original_rows import insert_config, insert_panel, insert_reseller
from original_schema import OriginalDatabase
from redis_support import restored_logging, script, sqlite_app_db, subprocess_env
from sqlalchemy import Engine, text

from usage_adapters.sql.meta import LAST_COUNTER_KEY
from usage_entrypoints.container import build_container
from usage_sandbox.emulator import EmulatedUser, Fault, PanelEmulator

pytestmark = pytest.mark.timeout(180)

# Short enough that a hostile example costs about two seconds, long enough for loopback.
TIMEOUT_S = 1.0
BUDGET_S = 2.0
SLOW_S = TIMEOUT_S + 0.6
# One byte well within the per-read timeout: only an overall deadline ends the reply.
DRIP_S = 0.1
# How late a panel sees a dripping reply given up: its next two bytes, and a busy machine.
CUT_SEEN_S = 2 * DRIP_S + 0.75
# What a deadline may overrun by: the drip's last byte, the database writes, a busy machine.
SLACK_S = 1.5
PER_PANEL = 4
PAGE_SIZE = 2  # Marzban and Marzneshin list PER_PANEL users in two pages
PAGED: Final = ("marzban", "marzneshin")
DEEP_JSON: Final = "[" * 200_000 + "]" * 200_000
MAX_EXAMPLES = 30


# ------------------------------------------------------------------ running syncs


def env_of(world: FaultWorld, workdir: Path, **extra: str) -> dict[str, str]:
    """The world's settings with a state directory and log file under `workdir`."""
    return world.env(
        USAGE_SYNC_STATE_DIR=str(workdir / "state"),
        USAGE_SYNC_LOG_FILE=str(workdir / "sync.log"),
        **extra,
    )


def sync_in_process(env: Mapping[str, str]) -> tuple[dict[str, Any], float]:
    """One full sync built as the CLI's `sync` builds it; its summary and its seconds."""
    with restored_logging():
        container = build_container(env)
        try:
            began = time.monotonic()
            summary = container.sync_run().now()
            return dict(summary), time.monotonic() - began
        finally:
            container.shutdown_resources()


@dataclass(frozen=True)
class Finished:
    """A `usage-sync` process that ended: its exit code, output, wall time and peak memory."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mib: float

    def summary(self) -> dict[str, Any]:
        """The `--json` document it printed."""
        document = json.loads(self.stdout)
        assert isinstance(document, dict), self.stdout
        return document


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident memory so far (0 once it has exited).

    Read from /proc while it runs: the kernel's own high-water mark starts afresh at
    `exec`, whereas `wait4`'s counts the test process's pages the child shared before it.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


class Running:
    """A `usage-sync` process started now, timed from spawn to exit, with its peak memory."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self._out, self._err = workdir / "stdout", workdir / "stderr"
        with self._out.open("wb") as stdout, self._err.open("wb") as stderr:
            self._began = time.monotonic()
            self._process = subprocess.Popen(
                [script("usage-sync"), *args],
                env=subprocess_env(env),
                stdout=stdout,
                stderr=stderr,
            )
        self.ended = 0.0
        self._peak_kib = 0

    def poll(self) -> Finished | None:
        """The process's outcome once it has ended, else None."""
        process = self._process
        self._peak_kib = max(self._peak_kib, peak_rss_kib(process.pid))
        if process.poll() is None:
            return None
        if not self.ended:
            self.ended = time.monotonic()
        return Finished(
            process.returncode,
            self._out.read_text(),
            self._err.read_text(),
            self.ended - self._began,
            self._peak_kib / 1024,
        )

    def wait(self, timeout: float = 120) -> Finished:
        """Wait for the process to end (killing it after `timeout` seconds)."""
        while (done := self.poll()) is None:
            if time.monotonic() > self._began + timeout:
                self._process.kill()
            time.sleep(0.01)
        return done


def watch(
    runs: Mapping[str, Running], hostile: Mapping[str, tuple[PanelEmulator, Callable[[], bool]]]
) -> dict[str, tuple[Finished, float]]:
    """Wait for every run; for each, its outcome and how long its panel's hostile reply lasted.

    A run's hostile reply starts when its `asked()` turns true (the request reached the
    panel) and ends when the panel has no request in flight any more (the client gave up):
    the deadline at work, seen from the panel, without the process's start-up and exit.
    """
    finished: dict[str, Finished] = {}
    opened: dict[str, float] = {}
    closed: dict[str, float] = {}
    give_up = time.monotonic() + 120
    while len(finished) < len(runs):
        now = time.monotonic()
        for key, run in runs.items():
            panel, asked = hostile[key]
            if key not in opened:
                if asked():
                    opened[key] = now
            elif key not in closed and panel.stats().in_flight == 0:
                closed[key] = now
            if key not in finished and (done := run.poll()) is not None:
                finished[key] = done
        assert time.monotonic() < give_up, "a usage-sync process did not end"
        time.sleep(0.01)
    assert opened.keys() == runs.keys(), opened
    return {key: (finished[key], closed.get(key, runs[key].ended) - opened[key]) for key in runs}


def run_cli(args: Sequence[str], env: Mapping[str, str], workdir: Path) -> Finished:
    """`usage-sync ARGS` to completion."""
    return Running(args, env, workdir).wait()


# ------------------------------------------------------------ ledger invariants


def names_on(world: FaultWorld, kind: str) -> list[str]:
    """The usernames of `kind`'s configs, in username order (the order listings page in)."""
    return sorted(name for k, name in world.configs.values() if k == kind)


def config_of(world: FaultWorld, kind: str, name: str) -> int:
    """The id of the config of `name` on `kind`."""
    return next(cid for cid, (k, n) in world.configs.items() if (k, n) == (kind, name))


def is_exact(world: FaultWorld, config_id: int, ledger: tuple[int, int, dict[str, Any]]) -> bool:
    """Whether the config's ledger adds up to its user's lifetime use and current counter."""
    usage, settled, meta = ledger
    counted = usage + settled == world.lifetime(config_id)
    return counted and meta.get(LAST_COUNTER_KEY) == world.panel_counter(config_id)


def assert_totals_match(world: FaultWorld) -> None:
    """Each reseller's traffic_used_bytes is the sum of its configs' usage and settled bytes."""
    ledgers = world.ledgers()
    with world.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, reseller_id FROM reseller_configs")).all()
        owners = {int(row.id): int(row.reseller_id) for row in rows}
    expected = dict.fromkeys(world.resellers, 0)
    for config_id, (usage, settled, _) in ledgers.items():
        expected[owners[config_id]] += usage + settled
    assert world.reseller_totals() == expected


def set_page_size(engine: Engine, kinds: Sequence[str], size: int) -> None:
    """Give the panels of `kinds` an `extra.sync_page_size`, and a listing to page.

    The few users wanted here would otherwise be read by name, in one request,
    and a fault drawn for a later page would never be met.
    """
    extra = {"sync_page_size": size, "usage_sync_read_strategy": "listing"}
    with engine.begin() as conn:
        for kind in kinds:
            conn.execute(
                text("UPDATE panels SET extra = :extra WHERE panel_type = :kind"),
                {"extra": json.dumps(extra), "kind": kind},
            )


# ------------------------------------------------------------------ hostile replies

MISSING: Final = object()
# Counter values no panel counter can be (or that are not numbers at all).
JUNK_VALUES: Final[dict[str, object]] = {
    "negative": -5 * MIB,
    "int64-min": -(2**63),
    "above-int64": 2**63,
    "far-above-int64": 10**30,
    "float-1e20": 1e20,
    "non-numeric": "12 GB",
    "null-counter": None,
    "bool": True,
    "object-counter": {"bytes": 1},
    "missing-counter": MISSING,
}
STATUSES: Final = ("500", "502", "503", "401", "403")
TRANSPORT: Final = ("disconnect", "slow", "drip")
BODIES: Final = ("malformed", "deep", "list", "null-body")
PAGE_FAULTS: Final = (
    *STATUSES,
    *TRANSPORT,
    *BODIES,
    "empty-object",
    "strings",
    "empty-listing",
    "total-1e6",
    "total-int64-max",
    "total-1e30",
)
# A user's single read: everything but "digits" (its right counter as a string) is junk.
USER_FAULTS: Final = (*STATUSES, *TRANSPORT, *BODIES, *JUNK_VALUES, "digits")
ITEM_FAULTS: Final = (*JUNK_VALUES, "not-an-object")
# Faults after which a panel's other users may fail too: a listing that eats the budget,
# or a listing failed in transit whose first single read fails in transit too (the panel is
# then taken as down and its other users fail at once). Anything else, a refused credential
# included, fails only the users it touches.
PANEL_WIDE_PAGE: Final = frozenset({"drip"})
DOWN_PAGE: Final = frozenset({"disconnect", "slow"})
DOWN_USER: Final = frozenset(TRANSPORT)


def user_body(kind: str, name: str, value: object) -> object:
    """A single-user reply of `kind` whose counter is `value` (MISSING: no counter field)."""
    fields: dict[str, object]
    if kind == "xui":
        fields = {"email": name, "up": value, "down": 0}
        if value is MISSING:
            fields = {"email": name}
        return {"success": True, "msg": "", "obj": fields}
    key = "total_traffic_bytes" if kind == "eylandoo" else "used_traffic"
    fields = {"username": name} if value is MISSING else {"username": name, key: value}
    return {"success": True, **fields} if kind == "eylandoo" else fields


def list_item(kind: str, name: str, value: object) -> dict[str, object]:
    """A listed user of `kind` whose counter is `value` (MISSING: no counter field)."""
    if kind == "xui":
        return {"email": name} if value is MISSING else {"email": name, "up": value, "down": 0}
    key = "total_traffic_bytes" if kind == "eylandoo" else "used_traffic"
    return {"username": name} if value is MISSING else {"username": name, key: value}


def empty_listing(kind: str, total: int) -> object:
    """A well-formed listing page of `kind` holding nobody, claiming `total` users."""
    if kind == "xui":
        return {"success": True, "msg": "", "obj": [], "total": total}
    return {"items" if kind == "marzneshin" else "users": [], "total": total}


def transport_or_body(label: str) -> Fault | None:
    """The fault of a status, transport or body label common to pages and single reads."""
    faults = {
        "disconnect": Fault.disconnected(),
        "slow": Fault.slow(SLOW_S),
        "drip": Fault.dripping(DRIP_S),
        "malformed": Fault.malformed("<html>502 Bad Gateway"),
        "deep": Fault(raw_body=DEEP_JSON, content_type="application/json"),
        "list": Fault.reply([]),
        "null-body": Fault.reply(None),
    }
    if label in STATUSES:
        return Fault.http_status(int(label))
    return faults.get(label)


def page_fault(kind: str, label: str) -> Fault:
    """The listing-page fault called `label`."""
    common = transport_or_body(label)
    if common is not None:
        return common
    bodies: dict[str, object] = {
        "empty-object": {},
        "strings": {"success": True, "users": "many", "items": "many", "obj": "x", "total": "4"},
        "empty-listing": empty_listing(kind, 0),
        "total-1e6": empty_listing(kind, 10**6),
        "total-int64-max": empty_listing(kind, 2**63 - 1),
        "total-1e30": empty_listing(kind, 10**30),
    }
    return Fault.reply(bodies[label])


def user_fault(kind: str, name: str, label: str, counter: int) -> Fault:
    """The single-read fault called `label` for `name`, whose real counter is `counter`."""
    common = transport_or_body(label)
    if common is not None:
        return common
    value = str(counter) if label == "digits" else JUNK_VALUES[label]
    return Fault.reply(user_body(kind, name, value))


# -------------------------------------------------------------------- strategies


@dataclass(frozen=True)
class PanelFaults:
    """What one panel does wrong in an example (user indexes are in username order).

    Attributes:
        page: A listing page and the fault it answers with.
        users: Single-read faults; these users are left out of the listing so that
            their single read is the only way to them.
        items: Listed items replaced by junk (the user's single read is sound).
        duplicate: (x, y, delta): x's listed item names y with y's counter + delta,
            so that y is listed twice with different counters.
    """

    page: tuple[int, str] | None = None
    users: Mapping[int, str] = field(default_factory=dict)
    items: Mapping[int, str] = field(default_factory=dict)
    duplicate: tuple[int, int, int] | None = None

    def panel_wide(self) -> bool:
        """Whether the panel's unfaulted users may fail too."""
        page = None if self.page is None else self.page[1]
        users = set(self.users.values())
        return page in PANEL_WIDE_PAGE or (page in DOWN_PAGE and bool(users & DOWN_USER))

    def expected(self, index: int) -> str:
        """What the user at `index` ends as after a faulted sync: exact, unchanged or either."""
        label = self.users.get(index)
        if label is not None and label != "digits":
            return "unchanged"  # its one way in is junk: a failure, never a reading
        return "either" if self.panel_wide() else "exact"


@st.composite
def panel_faults(draw: st.DrawFn, kind: str) -> PanelFaults:
    """Faults for one panel of `kind`."""
    pages = 2 if kind in PAGED else 1
    indexes = st.integers(0, PER_PANEL - 1)
    page = draw(st.none() | st.tuples(st.integers(1, pages), st.sampled_from(PAGE_FAULTS)))
    users = draw(st.dictionaries(indexes, st.sampled_from(USER_FAULTS), max_size=2))
    items = draw(
        st.dictionaries(
            indexes.filter(lambda i: i not in users), st.sampled_from(ITEM_FAULTS), max_size=2
        )
    )
    duplicate = None
    free = [i for i in range(PER_PANEL) if i not in users and i not in items]
    # A user listed twice is detectable only when both of its listings arrive: no failed page.
    if page is None and len(free) >= 2 and draw(st.booleans()):
        x = draw(st.sampled_from(free))
        across = [i for i in free if i != x and i // PAGE_SIZE != x // PAGE_SIZE]
        y = draw(st.sampled_from(across or [i for i in free if i != x]))
        duplicate = (x, y, draw(st.sampled_from([-1, MIB])))
    return PanelFaults(page, users, items, duplicate)


def world_faults() -> st.SearchStrategy[dict[str, PanelFaults | None]]:
    """Faults for some of the four panels (None: the panel behaves)."""
    return st.fixed_dictionaries({kind: st.none() | panel_faults(kind) for kind in KINDS})


# Tried on every run, whatever hypothesis draws: listings claiming 10^6, 2^63 - 1 and 10^30
# users; junk counters on every route; users listed twice across pages with different
# counters; refused credentials; a dead panel; budgets eaten by dripping replies.
EXAMPLES: Final[tuple[dict[str, PanelFaults | None], ...]] = (
    {
        "eylandoo": PanelFaults(users={0: "negative", 1: "float-1e20"}, items={2: "above-int64"}),
        "marzban": PanelFaults(page=(1, "total-int64-max"), users={3: "non-numeric"}),
        "marzneshin": PanelFaults(page=(1, "total-1e30"), items={3: "negative"}),
        "xui": PanelFaults(users={0: "int64-min", 1: "digits"}, items={2: "null-counter"}),
    },
    {
        "eylandoo": PanelFaults(duplicate=(0, 3, MIB)),
        "marzban": PanelFaults(duplicate=(0, 3, -1), users={1: "401"}),
        "marzneshin": PanelFaults(duplicate=(3, 0, MIB), users={1: "deep"}),
        "xui": PanelFaults(page=(1, "total-1e6"), users={0: "403", 1: "malformed"}),
    },
    {
        "eylandoo": None,
        "marzban": PanelFaults(page=(2, "disconnect"), users={0: "slow"}),
        "marzneshin": PanelFaults(page=(1, "503"), users={2: "drip"}),
        "xui": PanelFaults(page=(1, "drip")),
    },
)


def apply_faults(world: FaultWorld, kind: str, faults: PanelFaults) -> None:
    """Make `kind`'s emulator misbehave as `faults` says."""
    panel = world.panels[kind]
    names = names_on(world, kind)
    if faults.page is not None:
        number, label = faults.page
        panel.set_list_fault(number, page_fault(kind, label))
    for index, label in faults.items.items():
        name = names[index]
        junk: object = ["not", "a", "user"]
        if label != "not-an-object":
            junk = list_item(kind, name, JUNK_VALUES[label])
        panel.set_list_item(name, junk)
    if faults.duplicate is not None:
        x, y, delta = faults.duplicate
        counter = world.panel_counter(config_of(world, kind, names[y]))
        panel.set_list_item(names[x], list_item(kind, names[y], counter + delta))
    for index, label in faults.users.items():
        name = names[index]
        counter = world.panel_counter(config_of(world, kind, name))
        panel.set_fault(name, user_fault(kind, name, label, counter))
    panel.omit_from_listing(names[index] for index in faults.users)


def assert_as_expected(
    world: FaultWorld,
    faults: Mapping[str, PanelFaults | None],
    before: Mapping[int, tuple[int, int, dict[str, Any]]],
    summary: Mapping[str, Any],
) -> None:
    """Each config is exact, unchanged, or one of the two, as its panel's faults allow."""
    after = world.ledgers()
    for kind, panel in faults.items():
        if panel is None:
            assert summary["per_panel_type"][kind]["failed"] == 0, (kind, summary)
        for index, name in enumerate(names_on(world, kind)):
            config_id = config_of(world, kind, name)
            was, now = before[config_id], after[config_id]
            # No counter is ever reset here: a junk reading must never settle usage.
            assert now[1] == was[1], (kind, name, was, now)
            exact = is_exact(world, config_id, now)
            unchanged = now[0] == was[0] and now[2] == was[2]
            wanted = "exact" if panel is None else panel.expected(index)
            outcomes = {"exact": exact, "unchanged": unchanged, "either": exact or unchanged}
            assert outcomes[wanted], (kind, name, wanted, panel, was, now)


# ------------------------------------------------------------------------- tests


def test_hostile_panels_fail_alone_and_converge(tmp_path: Path) -> None:
    """Any mix of hostile replies fails only its own panel's configs; the next sync converges."""
    # One world serves every example: starting four emulators and a database per example
    # would cost more than the syncs. Each example ends converged (asserted), which is the
    # clean state the next one starts from; only the counters keep growing.
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=PER_PANEL) as world,
    ):
        set_page_size(db.engine, PAGED, PAGE_SIZE)
        env = env_of(
            world,
            tmp_path,
            USAGE_SYNC_HTTP_TIMEOUT=str(TIMEOUT_S),
            USAGE_SYNC_PANEL_BUDGET=str(BUDGET_S),
        )
        sync_in_process(env)
        world.assert_converged()

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(faults=world_faults())
        @example(faults=EXAMPLES[0])
        @example(faults=EXAMPLES[1])
        @example(faults=EXAMPLES[2])
        def check(faults: dict[str, PanelFaults | None]) -> None:
            world.grow(1)
            before = world.ledgers()
            for kind, wrong in faults.items():
                if wrong is not None:
                    apply_faults(world, kind, wrong)
            try:
                summary, seconds = sync_in_process(env)
            finally:
                for panel in world.panels.values():
                    panel.clear_faults()
            # Panels are read side by side, each stopped at its budget.
            assert seconds <= BUDGET_S + SLACK_S, seconds
            world.assert_never_over()
            assert_totals_match(world)
            assert_as_expected(world, faults, before, summary)

            summary, _ = sync_in_process(env)
            assert summary["failed"] == 0, summary
            world.assert_converged()
            assert_totals_match(world)

        check()


def test_sync_one_stops_a_dripping_reply_at_twice_the_timeout(tmp_path: Path) -> None:
    """`sync-one` on a user whose reply drips ends after 2 x USAGE_SYNC_HTTP_TIMEOUT, failed."""
    timeout_s = 1.5
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=2) as world,
    ):
        env = env_of(world, tmp_path, USAGE_SYNC_HTTP_TIMEOUT=str(timeout_s))
        first = {kind: config_of(world, kind, names_on(world, kind)[0]) for kind in KINDS}
        # The process's own cost (start-up, imports, a healthy read), measured the same way:
        # one process per panel type, side by side.
        healthy = {
            kind: Running(["sync-one", "--config", str(cid)], env, tmp_path / f"healthy-{kind}")
            for kind, cid in first.items()
        }
        baseline = [run.wait() for run in healthy.values()]
        assert all(done.returncode == 0 for done in baseline), baseline
        overhead = max(done.seconds for done in baseline)
        world.grow()
        before = world.ledgers()
        for kind, cid in first.items():
            world.panels[kind].reset_counts()
            world.panels[kind].set_fault(world.configs[cid][1], Fault.dripping(DRIP_S))

        runs = {
            kind: Running(["sync-one", "--config", str(cid)], env, tmp_path / f"drip-{kind}")
            for kind, cid in first.items()
        }
        hostile = {
            kind: (panel, partial(asked_for_a_user, panel)) for kind, panel in world.panels.items()
        }
        for kind, (done, dripped_s) in watch(runs, hostile).items():
            assert done.returncode == 1, (kind, done.stdout, done.stderr)
            assert "the panel's time budget ran out" in done.stdout, (kind, done.stdout)
            # Spawn to exit: the deadline plus what a healthy run of the same processes cost
            # (measured side by side; doubled, as busy machines vary from run to run).
            assert done.seconds <= 2 * timeout_s + 2 * overhead + SLACK_S, (kind, done, overhead)
            # The whole reply would take minutes: the one-user deadline (its login included)
            # cut it, not the per-read timeout and not anything sooner.
            assert 2 * timeout_s - 1.0 <= dripped_s <= 2 * timeout_s + CUT_SEEN_S, (
                kind,
                dripped_s,
            )
            cid = first[kind]
            assert world.ledgers()[cid] == before[cid], kind


def asked_for_a_user(panel: PanelEmulator) -> bool:
    """Whether a single-user read has reached `panel` since its counts were reset."""
    return panel.counts.user_gets > 0


def asked_for_a_page(panel: PanelEmulator) -> bool:
    """Whether a listing page request has reached `panel` since its counts were reset."""
    return panel.counts.list_pages > 0


def test_full_sync_stops_a_dripping_panel_at_its_budget(tmp_path: Path) -> None:
    """A full sync whose Marzban drips every reply ends that panel at its budget; the rest sync."""
    budget_s = 3.0
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=3) as world,
    ):
        env = env_of(
            world,
            tmp_path,
            USAGE_SYNC_HTTP_TIMEOUT=str(TIMEOUT_S),
            USAGE_SYNC_PANEL_BUDGET=str(budget_s),
        )
        healthy = run_cli(["sync", "--json"], env, tmp_path / "healthy")
        assert healthy.returncode == 0, healthy.stderr
        world.assert_converged()

        world.grow()
        before = world.ledgers()
        marzban = world.panels["marzban"]
        marzban.reset_counts()
        marzban.set_list_fault(1, Fault.dripping(DRIP_S))
        for name in names_on(world, "marzban"):
            marzban.set_fault(name, Fault.dripping(DRIP_S))
        run = Running(["sync", "--json"], env, tmp_path / "drip")
        hostile = {"sync": (marzban, partial(asked_for_a_page, marzban))}
        done, dripped_s = watch({"sync": run}, hostile)["sync"]
        assert done.returncode == 1, done.stderr
        assert done.seconds <= budget_s + 2 * healthy.seconds + SLACK_S, (done, healthy.seconds)
        # From the dripping listing's request to its abandonment: the panel's budget.
        assert budget_s - 1.0 <= dripped_s <= budget_s + CUT_SEEN_S, dripped_s
        per_type = done.summary()["per_panel_type"]
        assert per_type["marzban"]["failed"] == 3, per_type
        for kind in ("eylandoo", "marzneshin", "xui"):
            assert per_type[kind]["updated"] == 3, per_type
        dripping = frozenset(cid for cid, (kind, _) in world.configs.items() if kind == "marzban")
        world.assert_converged(except_configs=dripping)
        assert {cid: world.ledgers()[cid] for cid in dripping} == {
            cid: before[cid] for cid in dripping
        }
        assert "the panel's time budget ran out" in (tmp_path / "sync.log").read_text()

        marzban.clear_faults()
        again = run_cli(["sync", "--json"], env, tmp_path / "after")
        assert again.returncode == 0, again.stderr
        world.assert_converged()


def test_huge_and_deeply_nested_replies_fail_their_panel_alone(tmp_path: Path) -> None:
    """A 50 MB listing and 200,000-deep JSON each fail their own panel, in bounded memory."""
    huge_listing = json.dumps({"rows": [{"n": i, "pad": "x" * 90} for i in range(500_000)]})
    assert len(huge_listing) >= 50 * 10**6
    huge_user = b'{"used_traffic": 1, "pad": "' + b"x" * (50 * 10**6) + b'"}'
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=3) as world,
    ):
        env = env_of(world, tmp_path)
        healthy = run_cli(["sync", "--json"], env, tmp_path / "healthy")
        assert healthy.returncode == 0, healthy.stderr
        world.grow()
        before = world.ledgers()

        marzban, marzneshin = world.panels["marzban"], world.panels["marzneshin"]
        marzban.set_list_fault(1, Fault(raw_body=huge_listing, content_type="application/json"))
        marzneshin.set_list_fault(1, Fault(raw_body=DEEP_JSON, content_type="application/json"))
        for name in names_on(world, "marzban"):
            marzban.set_fault(name, Fault(raw_body=huge_user, content_type="application/json"))
        for name in names_on(world, "marzneshin"):
            marzneshin.set_fault(name, Fault(raw_body=DEEP_JSON, content_type="application/json"))
        done = run_cli(["sync", "--json"], env, tmp_path / "hostile")
        assert done.returncode == 1, done.stderr

        per_type = done.summary()["per_panel_type"]
        assert per_type["marzban"]["failed"] == 3, per_type
        assert per_type["marzneshin"]["failed"] == 3, per_type
        faulted = frozenset(
            cid for cid, (kind, _) in world.configs.items() if kind in ("marzban", "marzneshin")
        )
        world.assert_converged(except_configs=faulted)
        assert {cid: world.ledgers()[cid] for cid in faulted} == {
            cid: before[cid] for cid in faulted
        }
        log = (tmp_path / "sync.log").read_text()
        # The listing (50 MB, under the 512 MB listing cap) is read and found not to be one;
        # the single replies stop at the 16 MB body cap.
        assert "the reply has no users list and total count" in log
        assert "the reply is larger than 16777216 bytes" in log
        assert "the reply is not JSON" in log
        # Reading and parsing the 50 MB listing costs memory in proportion to it (about six
        # times its size: the body, its chunks and the parsed objects), not without bound.
        assert done.peak_rss_mib < healthy.peak_rss_mib + 10 * len(huge_listing) / MIB, (
            done.peak_rss_mib,
            healthy.peak_rss_mib,
        )

        for panel in (marzban, marzneshin):
            panel.clear_faults()
        again = run_cli(["sync", "--json"], env, tmp_path / "after")
        assert again.returncode == 0, again.stderr
        world.assert_converged()


# The odd usernames every panel type must read, by listing and by single read.
_NFC = "ünïcödé"
ODD_NAMES: Final = (
    _NFC,
    unicodedata.normalize("NFD", _NFC),
    "with space",
    "100%",
    "a%2Fb",
    "slash/name",
    "what?",
    "hash#tag",
    "plus+sign",
    "it's",
    'say "hi"',
    "long-" + "L" * 180,
    "emoji-😀🚀",
    "مستخدم-١",  # right to left
    " leading",
    "trailing ",
    "CaseUser",
    "caseuser",
    "CASEUSER",
    "..",
    "back\\slash",
    "amp&eq=semi;",
)
# Every panel type, 3x-ui in both of its read routes (legacy and 3.1+).
ODD_PANELS: Final[dict[str, tuple[str, dict[str, Any]]]] = {
    "eylandoo": ("eylandoo", {}),
    "marzban": ("marzban", {}),
    "marzneshin": ("marzneshin", {}),
    "xui": ("xui", {"xui_version": 2}),
    "xui-v3": ("xui", {"xui_version": 3, "base_path": "/v3"}),
}


@contextmanager
def odd_world(db: OriginalDatabase) -> Iterator[FaultWorld]:
    """Every panel type holding the odd names, a config for each."""
    assert len(set(ODD_NAMES)) == 22
    panels: dict[str, PanelEmulator] = {}
    try:
        for key, (kind, options) in ODD_PANELS.items():
            users = [
                EmulatedUser(name, upload=i + 1, download=(i + 1) * MIB)
                for i, name in enumerate(ODD_NAMES)
            ]
            panels[key] = PanelEmulator(
                kind,  # type: ignore[arg-type]
                users=users,
                username="admin",
                password="odd-PASSWORD-5d2",
                api_key="odd-KEY-0e1",
                **options,
            ).start()
        world = FaultWorld(db.engine, db.url, panels)
        world.resellers = [insert_reseller(db.engine, traffic_total_bytes=10**15)]
        for key, panel in panels.items():
            kind = panel.kind
            panel_id = insert_panel(
                db.engine,
                panel_type=kind,
                url=panel.url,
                username=None if kind == "eylandoo" else "admin",
                password=None if kind == "eylandoo" else "odd-PASSWORD-5d2",
                api_token="odd-KEY-0e1" if kind == "eylandoo" else None,
            )
            for name in ODD_NAMES:
                config_id = insert_config(
                    db.engine,
                    reseller_id=world.resellers[0],
                    external_username=name,
                    panel_type=kind,
                    panel_id=panel_id,
                )
                with db.engine.begin() as conn:
                    conn.execute(
                        text("UPDATE reseller_configs SET meta = :m WHERE id = :i"),
                        {"m": json.dumps({"note": f"keep-{config_id}"}), "i": config_id},
                    )
                world.configs[config_id] = (key, name)
        yield world
    finally:
        for panel in panels.values():
            panel.close()


def test_odd_usernames_sync_exactly_on_every_panel_type(
    original_db: OriginalDatabase, tmp_path: Path
) -> None:
    """22 odd usernames are synced exactly by listing, by single read and by `sync-one`."""
    with odd_world(original_db) as world:
        env = env_of(world, tmp_path, USAGE_SYNC_HTTP_TIMEOUT="5")
        stored = {cid: name for cid, (_, name) in world.configs.items()}
        with world.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, external_username FROM reseller_configs"))
            assert {int(r.id): r.external_username for r in rows} == stored

        # The listings: every name is found there, none is read singly.
        summary, _ = sync_in_process(env)
        assert summary["failed"] == 0, summary
        world.assert_converged()
        assert {key: p.counts.user_gets for key, p in world.panels.items()} == dict.fromkeys(
            world.panels, 0
        )

        # Single reads: nobody is listed, so each name travels in a URL path.
        world.grow()
        for panel in world.panels.values():
            panel.omit_from_listing(ODD_NAMES)
            panel.reset_counts()
        summary, _ = sync_in_process(env)
        assert summary["failed"] == 0, summary
        world.assert_converged()
        for key, panel in world.panels.items():
            assert sorted(panel.seen_usernames) == sorted(ODD_NAMES), key

        # `sync-one`, one config at a time.
        world.grow()
        with restored_logging():
            container = build_container(env)
            try:
                sync_one = container.sync_one()
                for config_id in world.configs:
                    report = sync_one(config_id)
                    assert report.ok, (world.configs[config_id], report.failure)
            finally:
                container.shutdown_resources()
        world.assert_converged()
