"""Ports: what the use cases need from the outside world, as Protocols."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from usage_core.enforcement.rules import (
    Decision,
    EnforcedConfig,
    RemoteOp,
    ResellerState,
)
from usage_core.ledger import LedgerState
from usage_core.model import (
    ConfigFilter,
    LedgerSnapshot,
    Panel,
    ResellerConfig,
    ResellerUsage,
    SyncItem,
)
from usage_core.readings import RemoteResult, UsageResult


class ReadLedger(Protocol):
    """A ledger as it was read: what a guarded write of it needs.

    A `LedgerSnapshot`, or the `ReadRow` a full sync read it as.
    """

    @property
    def config_id(self) -> int:
        """The config's id."""
        ...

    @property
    def usage_bytes(self) -> int:
        """`usage_bytes` as read."""
        ...

    @property
    def settled_bytes(self) -> int:
        """`settled_usage_bytes` as read."""
        ...

    @property
    def version(self) -> object:
        """The store's token for the guarded write."""
        ...


class NewLedger(Protocol):
    """The fields a guarded write stores: a `LedgerState`, or a full sync's pending write."""

    @property
    def usage_bytes(self) -> int:
        """The new `usage_bytes`."""
        ...

    @property
    def settled_bytes(self) -> int:
        """The new `settled_usage_bytes`."""
        ...

    @property
    def last_counter(self) -> int | None:
        """The panel counter the ledger applied."""
        ...

    @property
    def last_lifetime(self) -> int | None:
        """The lifetime counter read with it, or None."""
        ...


class SettingsRepository(Protocol):
    """The `settings` table: string values by key."""

    def get(self, key: str) -> str | None:
        """The raw value stored under `key`, or None when there is no row."""
        ...

    def set(self, key: str, value: str) -> None:
        """Store `value` under `key`, inserting or replacing the row."""
        ...


class ConfigRepository(Protocol):
    """The `reseller_configs` table (soft-deleted rows are invisible)."""

    def get(self, config_id: int) -> ResellerConfig | None:
        """The config with this id, or None."""
        ...

    def load_ledger(self, config_id: int) -> LedgerSnapshot | None:
        """The config's ledger with a version token, or None when it is gone."""
        ...

    def save_ledgers(self, writes: Sequence[tuple[ReadLedger, NewLedger]]) -> set[int]:
        """Write each ledger unless its row changed since it was read; the ids written.

        Only `usage_bytes` and the ledger's own keys in `meta` are touched.
        """
        ...

    def synced_items(self, only: ConfigFilter | None = None) -> Iterable[SyncItem]:
        """Every config of the synced resellers, any status, with its ledger as read.

        With `only`, just the configs it selects (one job of a fan-out by panel).
        Iterated once: a store may read the rows as they are taken, so that a
        caller need not hold them all.
        """
        ...

    def active_panel_keys(self) -> set[tuple[int | None, str]]:
        """The distinct `(panel_id, panel_type)` of the synced resellers' active configs.

        What a fan-out needs to know which panels have work, without reading the rows.
        """
        ...

    def ledgers_of(self, reseller_id: int) -> list[LedgerState]:
        """The ledgers of all the reseller's configs, any status."""
        ...


class ResellerRepository(Protocol):
    """The `resellers` table."""

    def synced(self) -> list[ResellerUsage]:
        """The resellers whose usage is synced (status `active`, type `traffic`), in id order."""
        ...

    def usage_of(self, reseller_id: int) -> ResellerUsage | None:
        """One reseller's stored total and forgiveness, or None when it is missing."""
        ...

    def set_used_bytes(self, totals: Mapping[int, int]) -> None:
        """Store `traffic_used_bytes` for each reseller in `totals`."""
        ...


class PanelLookup(Protocol):
    """Panels by id, and the first of a type: what resolving a config's panel needs."""

    def get(self, panel_id: int) -> Panel | None:
        """The panel with this id, or None."""
        ...

    def first_of_type(self, panel_type: str) -> Panel | None:
        """The panel of this type with the lowest id, or None."""
        ...


class PanelRepository(PanelLookup, Protocol):
    """The `panels` table."""

    def all(self) -> list[Panel]:
        """Every panel in id order; one whose credentials cannot be read has `problem` set."""
        ...


class PanelSession(Protocol):
    """An authenticated conversation with one panel, reused for every user."""

    def fetch_usage(self, username: str) -> UsageResult:
        """The user's usage counter, or a hard failure; never raises for panel errors."""
        ...

    def fetch_many(self, usernames: Sequence[str]) -> dict[str, UsageResult]:
        """A result for every name: the panel's listing where it has one, else single reads.

        Users the listing did not return, list items without a usage field, and
        every user of a listing that failed are read one by one. Requests run
        with the panel's own concurrency limit and time budget; never raises
        for panel errors.
        """
        ...

    def set_enabled(self, username: str, enabled: bool) -> RemoteResult:
        """Make the user able (or unable) to connect, touching nothing else; never raises.

        Sets the state rather than toggling it, and reads it back where the
        panel allows; a user already in that state is a success.
        """
        ...

    def close(self) -> None:
        """Release the session's connections."""
        ...


class PanelClients(Protocol):
    """Opens sessions with panels of every supported type."""

    def open(self, panel: Panel) -> PanelSession:
        """A session with `panel`; logging in happens lazily, on first use."""
        ...


class EnforcementStore(Protocol):
    """What quota enforcement reads and writes: statuses, markers, records, the outbox."""

    def enforced_resellers(self) -> list[ResellerState]:
        """Every `traffic` reseller that is active or suspended, in id order."""
        ...

    def configs_of(
        self, reseller_ids: Sequence[int], status: str | None = None
    ) -> dict[int, list[EnforcedConfig]]:
        """The non-deleted configs of these resellers (only those in `status` when given)."""
        ...

    def apply(
        self, decision: Decision, operations: Mapping[int, RemoteOp | None], now: datetime
    ) -> bool:
        """Carry out one reseller's decision in one transaction; False when a row moved under it.

        Statuses and markers change, one event and audit row per transition are
        written, and each config's remote operation (None: no panel to tell) is
        queued in its outbox; a pending one is replaced. `now` is naive app time.
        """
        ...

    def pending_operations(self) -> list[tuple[EnforcedConfig, RemoteOp]]:
        """Every config with a queued remote operation, with the config as it is now."""
        ...

    def finish_operation(
        self, config_id: int, op: RemoteOp, *, success: bool, cancelled: str | None = None
    ) -> bool:
        """Record `op`'s outcome: done (or cancelled) leaves the outbox; failed stays queued.

        The transition's event and audit rows get the remote outcome. False when
        the outbox entry changed meanwhile (nothing written).
        """
        ...


class Pace(Protocol):
    """Time for pacing requests: a monotonic reading and a way to wait."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""
        ...


class Lock(Protocol):
    """A named lock with a time-to-live, released only by its owner."""

    def acquire(self, ttl_seconds: int) -> str | None:
        """Take the lock for `ttl_seconds`; an owner token, or None when it is held."""
        ...

    def release(self, token: str) -> bool:
        """Release the lock if `token` still owns it; True when released."""
        ...

    def remaining_seconds(self) -> float | None:
        """Seconds until the lock expires, or None when it is free."""
        ...

    def hold(self, token: str, ttl_seconds: int) -> bool:
        """Keep (or, when it is free, retake) the lock for `token`; False when another holds it."""
        ...


class DispatchSlots(Protocol):
    """One claim per scheduled minute, however many ticks decide for it."""

    def claim(self, slot: str, ttl_seconds: int) -> bool:
        """True for the first claim of `slot` within `ttl_seconds`; False for every later one."""
        ...


class JobQueue(Protocol):
    """Where the sync job is sent to run."""

    def enqueue_sync(self, lock_token: str) -> str:
        """Queue one full sync that releases the lock owned by `lock_token`; its id."""
        ...


class RunHistory(Protocol):
    """Where the last full sync's summary is kept, for `usage-sync schedule`."""

    def record(self, summary: dict[str, object]) -> None:
        """Keep `summary` as the last run's."""
        ...

    def last(self) -> dict[str, object] | None:
        """The last run's summary, or None before the first run."""
        ...


class RunStatsStore(Protocol):
    """Where the statistics folded from every run are kept (see `usage_core.run_stats`)."""

    def load(self) -> dict[str, object] | None:
        """The statistics document, or None before the first run."""
        ...

    def save(self, document: dict[str, object]) -> None:
        """Replace the statistics document."""
        ...


class Clock(Protocol):
    """The current time."""

    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...
