"""The app's own "reset usage" racing the sync: no byte counted twice, the app's keys kept.

`ConfigController::resetUsage` loads the config, later saves `usage_bytes = 0` and the
`meta` it loaded with `settled_usage_bytes` raised by the loaded usage and a new
`last_reset_at` (for Eylandoo also `used_traffic`/`data_used` = 0), then asks the panel
to reset the user's counter, which may fail. Eloquent takes no lock and sends only the
columns that changed, so the save is a read-modify-write from a copy: modelled here with
plain SQL, the whole `meta` document decoded and encoded in Python as PHP does.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fault_support import MIB, FaultWorld, fault_world
from original_rows import php_json_encode
from redis_support import restored_logging, sqlite_app_db
from sqlalchemy import Engine, text

from usage_adapters.sql.meta import LAST_COUNTER_KEY, SETTLED_KEY
from usage_entrypoints.container import Container, build_container

pytestmark = pytest.mark.timeout(120)

SEED_VARIABLE = "USAGE_SYNC_FAULT_SEED"
ROUNDS = 6
APP_KEYS = ("note", "last_reset_at", "used_traffic", "data_used")


# -- the app's reset, as Eloquent runs it ------------------------------------------


@dataclass(frozen=True)
class AppCopy:
    """The config as `resetUsage` loaded it: the model the app later saves from."""

    config_id: int
    panel_type: str
    usage_bytes: int
    meta: dict[str, Any]

    @property
    def last_counter(self) -> int:
        """The ledger's last counter in this copy; usage stands in for a missing one."""
        value = self.meta.get(LAST_COUNTER_KEY)
        return self.usage_bytes if value is None else int(value)


@dataclass(frozen=True)
class AppSave:
    """What the app's save wrote, and whether the row had moved on since the load."""

    meta: dict[str, Any]
    wrote_usage: bool
    # usage_bytes was no longer what the app loaded: the save overwrote a later write.
    overwrote: bool

    @property
    def keys(self) -> dict[str, Any]:
        """The app's own keys as this save left them."""
        return {key: self.meta.get(key) for key in APP_KEYS}


def decoded(meta: object) -> dict[str, Any]:
    """A `meta` value as the app's array cast gives it (NULL and `[]` are empty)."""
    value = meta if meta is None or isinstance(meta, dict | list) else json.loads(str(meta))
    return dict(value) if isinstance(value, dict) else {}


def app_load(engine: Engine, config_id: int) -> AppCopy:
    """Route-model binding: the config row, read without a lock."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT usage_bytes, meta, panel_type FROM reseller_configs WHERE id = :i"),
            {"i": config_id},
        ).one()
    return AppCopy(config_id, str(row.panel_type), int(row.usage_bytes), decoded(row.meta))


SAVE_WITH_USAGE = (
    "UPDATE reseller_configs SET usage_bytes = 0, meta = :meta, updated_at = :now WHERE id = :i"
)
SAVE_META = "UPDATE reseller_configs SET meta = :meta, updated_at = :now WHERE id = :i"


def app_save(engine: Engine, copy: AppCopy, now: datetime) -> AppSave:
    """`$config->update(['usage_bytes' => 0, 'meta' => $meta])` from the loaded copy."""
    meta = dict(copy.meta)
    meta[SETTLED_KEY] = int(meta.get(SETTLED_KEY) or 0) + copy.usage_bytes
    meta["last_reset_at"] = now.strftime("%Y-%m-%d %H:%M:%S")
    if copy.panel_type == "eylandoo":
        meta["used_traffic"] = 0
        meta["data_used"] = 0
    # Only dirty attributes are sent: usage_bytes is left out when it was loaded as 0.
    wrote_usage = copy.usage_bytes != 0
    statement = SAVE_WITH_USAGE if wrote_usage else SAVE_META
    params = {
        "meta": php_json_encode(meta),
        "now": meta["last_reset_at"],
        "i": copy.config_id,
        "loaded": copy.usage_bytes,
    }
    with engine.begin() as conn:
        # Eloquent sends the second, unconditional statement only. Trying the same change
        # on the row as loaded first, in one transaction, tells the test whether another
        # writer changed usage_bytes since the load; the row ends the same either way.
        as_loaded = conn.execute(text(statement + " AND usage_bytes = :loaded"), params).rowcount
        if as_loaded == 0:
            conn.execute(text(statement), params)
    return AppSave(meta, wrote_usage, overwrote=as_loaded == 0)


class AppClock:
    """`now()` for the app's saves: a new second for each, so every save is recognisable."""

    def __init__(self) -> None:
        self._now = datetime(2025, 11, 5, 12, 0, 0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=1)
            return self._now


def reverts_under_sync_usage(copy: AppCopy, save: AppSave) -> bool:
    """Whether the save put the copy's last counter back under a usage_bytes written since.

    A copy loaded with usage_bytes 0 is saved without that column; when a sync wrote
    usage in between, the row keeps the new usage_bytes under the old last counter. The
    stamp beside that counter (`usage_sync_counted_bytes`) shows that usage as not yet
    accounted for, so the next sync does not count it again.
    """
    return not save.wrote_usage and save.overwrote and LAST_COUNTER_KEY in copy.meta


# -- the world, read and changed ---------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One config as read from the database, and its panel user as read just after."""

    usage: int
    settled: int
    meta: dict[str, Any]
    lifetime: int
    counter: int

    @property
    def total(self) -> int:
        """Usage that counts toward the quota: current plus settled."""
        return self.usage + self.settled

    @property
    def deficit(self) -> int:
        """Bytes the user used that the ledger does not count."""
        return self.lifetime - self.total

    @property
    def last_counter(self) -> int:
        """The ledger's last counter; usage stands in for a missing one."""
        value = self.meta.get(LAST_COUNTER_KEY)
        return self.usage if value is None else int(value)


def look(world: FaultWorld) -> dict[int, Seen]:
    """Every config's ledger; the panels are read after the database, so lifetimes are later."""
    return {
        config_id: Seen(
            usage, settled, meta, world.lifetime(config_id), world.panel_counter(config_id)
        )
        for config_id, (usage, settled, meta) in world.ledgers().items()
    }


def total_of(engine: Engine, config_id: int) -> int:
    """usage_bytes + meta.settled_usage_bytes of one config."""
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT usage_bytes, meta FROM reseller_configs WHERE id = :i"), {"i": config_id}
        ).one()
    return int(row.usage_bytes) + int(decoded(row.meta).get(SETTLED_KEY) or 0)


def reseller_ids(world: FaultWorld) -> dict[int, int]:
    """config id -> reseller id."""
    with world.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, reseller_id FROM reseller_configs"))
        return {int(row.id): int(row.reseller_id) for row in rows}


def grow(world: FaultWorld, config_id: int, amount: int) -> None:
    """The config's user downloads `amount` bytes."""
    kind, name = world.configs[config_id]
    world.panels[kind].users.add_traffic(name, download=amount)


def reset_panel_counter(world: FaultWorld, config_id: int) -> int:
    """The panel resets the user's counter (the app's remote reset); the counter it had."""
    counter = world.panel_counter(config_id)
    kind, name = world.configs[config_id]
    world.panels[kind].users.reset_counter(name)
    return counter


@contextmanager
def in_process_sync(world: FaultWorld, tmp_path: Path) -> Iterator[Container]:
    """A container on the world; `sync(container)` is one full sync, as the job runs it."""
    with restored_logging():
        container = build_container(
            world.env(
                USAGE_SYNC_STATE_DIR=str(tmp_path / "state"),
                USAGE_SYNC_LOG_FILE=str(tmp_path / "sync.log"),
            )
        )
        try:
            yield container
        finally:
            container.shutdown_resources()


def sync(container: Container) -> None:
    """One full sync, in which every panel answered for every config."""
    summary = container.sync_all()()
    assert summary.total("failed") == 0, summary.as_dict()


def check_app_keys(config_id: int, meta: dict[str, Any], expected: dict[str, Any]) -> None:
    """The app's keys are what its last save wrote: no write of ours dropped or changed one."""
    for key in APP_KEYS:
        assert meta.get(key) == expected.get(key), (config_id, key, meta, expected)


# -- the race ----------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedReset:
    """One app reset: its think time between load and save, then the panel call."""

    config_id: int
    think_s: float
    panel_s: float
    panel_resets: bool


@dataclass(frozen=True)
class RoundPlan:
    """One round: traffic before the race, the app's resets, traffic during the race."""

    growth: dict[int, int]
    # One sequence of resets per app worker (concurrent requests).
    resets: tuple[tuple[PlannedReset, ...], ...]
    racing_growth: tuple[tuple[int, int], ...]


def plan_round(rng: random.Random, ids: list[int]) -> RoundPlan:
    """A third of the configs reset by three app workers; most users grow before the race."""
    growth = {i: rng.randrange(1, 4 * MIB) for i in ids if rng.random() < 0.7}
    chosen = rng.sample(ids, k=len(ids) // 3)
    workers: list[list[PlannedReset]] = [[], [], []]
    for n, config_id in enumerate(chosen):
        workers[n % 3].append(
            PlannedReset(
                config_id,
                think_s=rng.uniform(0, 0.1),
                panel_s=rng.uniform(0, 0.04),
                panel_resets=rng.random() < 0.6,
            )
        )
    # The configs being reset do not grow during the race, so that the counter each
    # panel reset forgets is known exactly; the others keep growing under the syncs.
    others = [i for i in ids if i not in chosen]
    racing = tuple((rng.choice(others), rng.randrange(1, MIB)) for _ in range(60))
    return RoundPlan(growth, tuple(tuple(w) for w in workers), racing)


@dataclass(frozen=True)
class DoneReset:
    """A reset that happened: what the app loaded and saved, and the counter the panel forgot."""

    copy: AppCopy
    save: AppSave
    forgotten_counter: int | None  # None: the panel reset failed


@dataclass
class Books:
    """What the app did, kept under one lock with the observations of the database."""

    app_keys: dict[int, dict[str, Any]]
    lock: threading.Lock = field(default_factory=threading.Lock)
    # config id -> the lowest usage+settled the next observation may show
    floor: dict[int, int] = field(default_factory=dict)
    # configs whose last counter an app save put back under a newer usage_bytes
    reverted: set[int] = field(default_factory=set)
    done: dict[int, DoneReset] = field(default_factory=dict)
    observations: int = 0


class Race:
    """Syncs back to back, traffic growing and the database watched, while the app resets."""

    def __init__(self, world: FaultWorld, container: Container, books: Books, seed: int) -> None:
        self.world, self.container, self.books, self.seed = world, container, books, seed
        self.clock = AppClock()
        self.syncs = 0
        self._stop = threading.Event()
        self._errors: list[BaseException] = []

    def observe(self) -> None:
        """Every config now: never over its user's lifetime, never below its floor, keys kept."""
        books = self.books
        with books.lock:
            books.observations += 1
            for config_id, now in look(self.world).items():
                context = (self.seed, config_id, now)
                check_app_keys(config_id, now.meta, books.app_keys[config_id])
                assert now.total <= now.lifetime, ("counted twice", *context)
                floor = books.floor.get(config_id, 0)
                assert now.total >= floor, ("usage went down", floor, *context)
                books.floor[config_id] = now.total

    def reset(self, step: PlannedReset) -> None:
        """One app reset: load, think, save, then the panel's reset (or its failure)."""
        books, world = self.books, self.world
        copy = app_load(world.engine, step.config_id)
        time.sleep(step.think_s)
        with books.lock:
            save = app_save(world.engine, copy, self.clock.now())
            books.app_keys[step.config_id] = save.keys
            # The app's save may lower usage+settled (it writes a copy back); only it may.
            books.floor[step.config_id] = total_of(world.engine, step.config_id)
            if reverts_under_sync_usage(copy, save):
                books.reverted.add(step.config_id)
        time.sleep(step.panel_s)
        forgotten = reset_panel_counter(world, step.config_id) if step.panel_resets else None
        books.done[step.config_id] = DoneReset(copy, save, forgotten)

    def run(self, plan: RoundPlan) -> None:
        """The round's resets, each worker's in turn, all racing the side threads."""
        self.books.done.clear()
        self._stop.clear()
        side = [self._thread(self._keep_syncing), self._thread(self._keep_observing)]
        side.append(self._thread(self._keep_growing, plan.racing_growth))
        workers = [self._thread(self._work, resets) for resets in plan.resets]
        try:
            for thread in side + workers:
                thread.start()
            for thread in workers:
                thread.join(60)
        finally:
            self._stop.set()
            for thread in side + workers:
                thread.join(60)
        assert not any(thread.is_alive() for thread in side + workers)
        if self._errors:
            raise self._errors[0]

    def _work(self, resets: tuple[PlannedReset, ...]) -> None:
        for step in resets:
            self.reset(step)

    def _keep_syncing(self) -> None:
        while not self._stop.is_set():
            sync(self.container)
            self.syncs += 1

    def _keep_observing(self) -> None:
        while not self._stop.is_set():
            self.observe()
            time.sleep(0.02)

    def _keep_growing(self, growth: tuple[tuple[int, int], ...]) -> None:
        for config_id, amount in growth:
            if self._stop.is_set():
                return
            grow(self.world, config_id, amount)
            time.sleep(0.005)

    def _thread(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        def body() -> None:
            try:
                target(*args)
            except BaseException as exc:  # noqa: BLE001 - raised by `run`
                self._errors.append(exc)
                self._stop.set()

        return threading.Thread(target=body, daemon=True)


def test_app_resets_race_the_sync(original_db: Any, tmp_path: Path) -> None:
    """App resets racing syncs and growing traffic: no byte counted twice, every loss explained."""
    seed = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(2**32))
    print(f"{SEED_VARIABLE}={seed}")  # replays the schedule
    rng = random.Random(seed)
    with (
        fault_world(original_db.engine, original_db.url, per_panel=6) as world,
        in_process_sync(world, tmp_path) as container,
    ):
        ids = sorted(world.configs)
        owner = reseller_ids(world)
        books = Books(app_keys={i: {"note": f"keep-{i}"} for i in ids})
        race = Race(world, container, books, seed)
        sync(container)
        before = look(world)
        assert all(seen.deficit == 0 for seen in before.values()), before
        explained = dict.fromkeys(ids, 0)
        resets = overwrote = 0
        for round_no in range(ROUNDS):
            plan = plan_round(rng, ids)
            for config_id, amount in plan.growth.items():
                grow(world, config_id, amount)
            race.run(plan)
            # The race is over and every panel reset done: one sync sees every counter.
            sync(container)
            race.observe()
            after = look(world)
            for config_id in ids:
                was, now = before[config_id], after[config_id]
                context = (seed, round_no, config_id, was, now)
                check_app_keys(config_id, now.meta, books.app_keys[config_id])
                assert now.last_counter == now.counter, context
                lost = now.deficit - was.deficit
                done = books.done.get(config_id)
                if config_id in books.reverted and done and done.forgotten_counter is not None:
                    # The save put an older meta over a sync's usage, which the stamp keeps
                    # counted; then the panel forgot its counter. Only the growth no sync saw
                    # before that reset is lost (a counter cannot tell): at most what grew
                    # past the copy's last counter, and never a byte counted twice.
                    forgotten = done.forgotten_counter - done.copy.last_counter
                    assert 0 <= lost <= forgotten, ("unexplained loss", *context, done)
                    explained[config_id] += lost
                    continue
                if done is None or done.forgotten_counter is None:
                    # No reset, or the panel's failed: whatever the app's save overwrote is
                    # counted again from the last counter the save wrote back.
                    assert lost == 0, ("bytes lost or counted twice", *context)
                    continue
                # The panel forgot its counter. The ledger has it whole when a sync recorded
                # it between the app's save and the panel reset; otherwise it keeps what the
                # save wrote, which ends at the copy's last counter, and the growth past it
                # is lost: either no sync saw it in time (a counter cannot tell), or the
                # save overwrote a sync's write of it (the app's own lost update).
                forgotten = done.forgotten_counter - done.copy.last_counter
                assert lost in {0, forgotten}, ("unexplained loss", *context, done)
                explained[config_id] += lost
            resets += len(books.done)
            overwrote += sum(done.save.overwrote for done in books.done.values())
            totals = world.reseller_totals()
            for reseller_id in world.resellers:
                owned = sum(after[i].total for i in ids if owner[i] == reseller_id)
                assert totals[reseller_id] == owned, (seed, round_no, reseller_id)
            before = after
        losing = sum(map(bool, explained.values()))
        print(
            f"{resets} resets, {overwrote} over a sync's write, {losing} configs lost bytes, "
            f"{len(books.reverted)} with an older meta over a sync's usage; "
            f"{race.syncs} syncs, {books.observations} observations"
        )
        # Converged: every byte is counted once, but for what a reset made the panel forget.
        for config_id in ids:
            assert before[config_id].deficit == explained[config_id], (seed, config_id)
        assert overwrote > 0, ("no app save raced a sync write", seed)


# -- interleavings, one at a time ----------------------------------------------------


def config_of(world: FaultWorld, name: str) -> int:
    """The id of the config of panel user `name`."""
    return next(i for i, (_, user) in world.configs.items() if user == name)


def reset_inside_next_listing(world: FaultWorld, kind: str, action: Callable[[], None]) -> None:
    """Run `action` once, in the panel's next listing: after the sync read the rows."""
    panel = world.panels[kind]
    fired = threading.Event()

    def hook(_page: int) -> None:
        if not fired.is_set():
            fired.set()
            action()

    panel.set_list_hook(hook)


def test_each_interleaving_of_a_reset_with_a_sync(original_db: Any, tmp_path: Path) -> None:
    """Every way an app reset meets a sync counts each byte once, a stale save's included."""
    clock = AppClock()
    with (
        fault_world(original_db.engine, original_db.url, per_panel=2) as world,
        in_process_sync(world, tmp_path) as container,
    ):
        engine = world.engine
        stale_reset = config_of(world, "marzban-0000")
        stale_failed = config_of(world, "marzban-0001")
        failed = config_of(world, "marzneshin-0000")
        inside_failed = config_of(world, "eylandoo-0000")
        inside_reset = config_of(world, "eylandoo-0001")
        sync(container)
        world.assert_converged()

        # Two copies loaded, a sync records growth, then the copies are saved over it.
        grown = {stale_reset: 3 * MIB, stale_failed: 2 * MIB}
        for config_id, amount in grown.items():
            grow(world, config_id, amount)
        copies = {config_id: app_load(engine, config_id) for config_id in grown}
        sync(container)
        saves = {i: app_save(engine, copy, clock.now()) for i, copy in copies.items()}
        assert all(save.overwrote and save.wrote_usage for save in saves.values())
        reset_panel_counter(world, stale_reset)
        # A reset whose panel call fails, with no sync in between: the original job
        # wrote the un-reset counter back over the settled bytes, counting them twice.
        failed_save = app_save(engine, app_load(engine, failed), clock.now())

        # Resets saved after the sync read the rows and before it asked the panel.
        inside: dict[int, AppSave] = {}

        def reset_both() -> None:
            for config_id in (inside_failed, inside_reset):
                inside[config_id] = app_save(engine, app_load(engine, config_id), clock.now())
            reset_panel_counter(world, inside_reset)
            grow(world, inside_reset, 1000)

        reset_inside_next_listing(world, "eylandoo", reset_both)
        for config_id in (stale_reset, stale_failed, failed, inside_failed):
            grow(world, config_id, 1000)
        sync(container)
        assert set(inside) == {inside_failed, inside_reset}

        seen = look(world)
        keys = {i: save.keys for i, save in (saves | inside | {failed: failed_save}).items()}
        for config_id, now in seen.items():
            check_app_keys(config_id, now.meta, keys.get(config_id, {"note": f"keep-{config_id}"}))
            assert now.last_counter == now.counter, (config_id, now)
        # The stale save put back the copy's usage, last counter and last lifetime,
        # dropping the growth the sync had recorded, and the panel then reset its counter;
        # Marzban's lifetime counter still holds that growth, so it is counted again.
        # Without the panel reset, what the stale save dropped is counted again from the
        # last counter it put back; a save inside a sync makes the sync's write miss, and
        # the sync re-reads the row and applies its reading again. All is exact.
        for config_id in seen:
            assert seen[config_id].deficit == 0, (config_id, seen[config_id])
        sync(container)
        assert look(world) == seen


def test_app_reset_of_zero_usage_over_a_sync_write_counts_once(tmp_path: Path) -> None:
    """An app reset of a config loaded with usage 0, saved over a sync's write, counts once."""
    clock = AppClock()
    # The ledger's arithmetic, not the database, is at stake: one backend shows it.
    with (
        sqlite_app_db(tmp_path / "app.sqlite") as db,
        fault_world(db.engine, db.url, per_panel=1) as world,
        in_process_sync(world, tmp_path) as container,
    ):
        engine = world.engine
        panel_failed = config_of(world, "marzban-0000")
        panel_late = config_of(world, "marzneshin-0000")
        sync(container)
        # An earlier reset whose panel call failed: usage 0, the counter unchanged.
        for config_id in (panel_failed, panel_late):
            app_save(engine, app_load(engine, config_id), clock.now())
            grow(world, config_id, 2 * MIB)
        copies = {i: app_load(engine, i) for i in (panel_failed, panel_late)}
        assert all(copy.usage_bytes == 0 for copy in copies.values())
        sync(container)
        for copy in copies.values():
            save = app_save(engine, copy, clock.now())
            # Saved without usage_bytes: the sync's usage stays under the copy's counter.
            assert reverts_under_sync_usage(copy, save)
        # The panel reset fails for one; for the other, a sync reads the counter first.
        grow(world, panel_failed, 1000)
        sync(container)
        reset_panel_counter(world, panel_late)
        grow(world, panel_late, 1000)
        sync(container)
        seen = look(world)
        assert {i: seen[i].deficit for i in copies} == dict.fromkeys(copies, 0), seen
