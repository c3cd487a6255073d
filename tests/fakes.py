"""In-memory fakes of the core's ports, for unit tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import attrs

from usage_core.enforcement.rules import (
    ConfigAction,
    Decision,
    EnforcedConfig,
    Markers,
    Reason,
    RemoteOp,
    ResellerAction,
    ResellerState,
    Suspension,
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
from usage_core.ports import (
    Clock,
    ConfigRepository,
    DispatchSlots,
    EnforcementStore,
    JobQueue,
    Lock,
    NewLedger,
    Pace,
    PanelClients,
    PanelRepository,
    PanelSession,
    ReadLedger,
    ResellerRepository,
    SettingsRepository,
)
from usage_core.readings import HardFailure, RemoteResult, UsageResult


class InMemorySettings:
    """Settings kept in a dict."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})

    def get(self, key: str) -> str | None:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value


class InMemoryConfigs:
    """Configs kept in a dict, with a version counter per row for guarded writes.

    Which resellers are synced comes from the `InMemoryResellers` attached as
    `synced_resellers` (all of them when none is attached).
    """

    def __init__(self, configs: list[ResellerConfig] | None = None) -> None:
        self.rows: dict[int, ResellerConfig] = {c.id: c for c in configs or []}
        self.versions: dict[int, int] = dict.fromkeys(self.rows, 0)
        self.writes = 0
        self.batches: list[int] = []
        self.synced_resellers: InMemoryResellers | None = None
        # Called between a load and its save, to simulate a concurrent writer.
        self.before_save: Callable[[int], None] | None = None

    def get(self, config_id: int) -> ResellerConfig | None:
        return self.rows.get(config_id)

    def load_ledger(self, config_id: int) -> LedgerSnapshot | None:
        row = self.rows.get(config_id)
        if row is None:
            return None
        return LedgerSnapshot(config_id, row.ledger, self.versions[config_id])

    def save_ledgers(self, writes: Sequence[tuple[ReadLedger, NewLedger]]) -> set[int]:
        self.batches.append(len(writes))
        written = set()
        for snapshot, after in writes:
            if self.before_save is not None:
                self.before_save(snapshot.config_id)
            if self.versions.get(snapshot.config_id) != snapshot.version:
                continue
            self.writes += 1
            self.put_ledger(snapshot.config_id, after)
            written.add(snapshot.config_id)
        return written

    def _synced(self) -> list[ResellerConfig]:
        synced = self.synced_resellers
        ids = None if synced is None else set(synced.active_traffic)
        configs = sorted(self.rows.values(), key=lambda c: c.id)
        return [c for c in configs if ids is None or c.reseller_id in ids]

    def synced_items(self, only: ConfigFilter | None = None) -> list[SyncItem]:
        items = []
        for config in self._synced():
            if only is None or only.matches(config):
                snapshot = LedgerSnapshot(config.id, config.ledger, self.versions[config.id])
                items.append(SyncItem.of(config, snapshot))
        return items

    def active_panel_keys(self) -> set[tuple[int | None, str]]:
        return {(c.panel_id, c.panel_type) for c in self._synced() if c.status == "active"}

    def ledgers_of(self, reseller_id: int) -> list[LedgerState]:
        return [c.ledger for c in self.rows.values() if c.reseller_id == reseller_id]

    def put_ledger(self, config_id: int, state: NewLedger) -> None:
        """Change a row's usage fields as any writer would."""
        self.rows[config_id] = attrs.evolve(
            self.rows[config_id],
            usage_bytes=state.usage_bytes,
            settled_bytes=state.settled_bytes,
            last_counter=state.last_counter,
            last_lifetime=state.last_lifetime,
        )
        self.versions[config_id] += 1


class InMemoryPanels:
    """Panels kept in a dict."""

    def __init__(self, panels: list[Panel] | None = None) -> None:
        self.rows = {p.id: p for p in panels or []}

    def get(self, panel_id: int) -> Panel | None:
        return self.rows.get(panel_id)

    def first_of_type(self, panel_type: str) -> Panel | None:
        matching = sorted(p.id for p in self.rows.values() if p.type_name == panel_type)
        return self.rows[matching[0]] if matching else None

    def all(self) -> list[Panel]:
        return [self.rows[i] for i in sorted(self.rows)]


class InMemoryResellers:
    """Resellers' stored totals and forgiveness, kept in dicts.

    Attaches itself to `configs`, whose `synced_items` then returns only the
    configs of `active_traffic` resellers.
    """

    def __init__(
        self,
        configs: InMemoryConfigs,
        used: dict[int, int],
        forgiven: dict[int, int],
        active_traffic: list[int] | None = None,
    ) -> None:
        self.configs = configs
        self.used = dict(used)
        self.forgiven = dict(forgiven)
        self.active_traffic = list(active_traffic or [])
        configs.synced_resellers = self

    def synced(self) -> list[ResellerUsage]:
        return [
            ResellerUsage(rid, self.used[rid], self.forgiven.get(rid, 0))
            for rid in sorted(self.active_traffic)
        ]

    def usage_of(self, reseller_id: int) -> ResellerUsage | None:
        if reseller_id not in self.used:
            return None
        return ResellerUsage(reseller_id, self.used[reseller_id], self.forgiven.get(reseller_id, 0))

    def set_used_bytes(self, totals: Mapping[int, int]) -> None:
        self.used.update(totals)


@attrs.define
class ScriptedSession:
    """A panel session answering from a dict of results by username."""

    results: dict[str, UsageResult]
    asked: list[str] = attrs.field(factory=list)
    closed: bool = False
    # Results of `set_enabled` by username, consumed in order (then success).
    write_results: dict[str, list[RemoteResult]] = attrs.field(factory=dict)
    writes: list[tuple[str, bool]] = attrs.field(factory=list)

    def fetch_usage(self, username: str) -> UsageResult:
        self.asked.append(username)
        return self.results.get(username, HardFailure("user not found on panel"))

    def fetch_many(self, usernames: Sequence[str]) -> dict[str, UsageResult]:
        return {name: self.fetch_usage(name) for name in usernames}

    def set_enabled(self, username: str, enabled: bool) -> RemoteResult:
        self.writes.append((username, enabled))
        planned = self.write_results.get(username)
        if planned:
            return planned.pop(0)
        return RemoteResult(True, "enabled" if enabled else "disabled", verified=True)

    def close(self) -> None:
        self.closed = True


class ScriptedPanelClients:
    """Opens `ScriptedSession`s with per-panel results."""

    def __init__(
        self,
        results: dict[int, dict[str, UsageResult]],
        write_results: dict[str, list[RemoteResult]] | None = None,
    ) -> None:
        self.results = results
        self.write_results = write_results if write_results is not None else {}
        self.sessions: list[tuple[int, ScriptedSession]] = []

    def open(self, panel: Panel) -> PanelSession:
        session = ScriptedSession(self.results.get(panel.id, {}), write_results=self.write_results)
        self.sessions.append((panel.id, session))
        return session


@attrs.define
class FixedClock:
    """A clock that says what it is told."""

    instant: datetime

    def now(self) -> datetime:
        return self.instant


class InMemoryLock:
    """A lock with a TTL measured on an injected clock, released only by its owner."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.token: str | None = None
        self.expires_at = 0.0
        self.issued = 0

    def acquire(self, ttl_seconds: int) -> str | None:
        if self.token is not None and self.clock() < self.expires_at:
            return None
        self.issued += 1
        self.token = f"token-{self.issued}"
        self.expires_at = self.clock() + ttl_seconds
        return self.token

    def release(self, token: str) -> bool:
        if token != self.token or self.clock() >= self.expires_at:
            return False
        self.token = None
        return True

    def remaining_seconds(self) -> float | None:
        if self.token is None or self.clock() >= self.expires_at:
            return None
        return self.expires_at - self.clock()

    def hold(self, token: str, ttl_seconds: int) -> bool:
        held = self.token is not None and self.clock() < self.expires_at
        if held and self.token != token:
            return False
        self.token, self.expires_at = token, self.clock() + ttl_seconds
        return True


class InMemorySlots:
    """Claimed minutes in a set (they never expire here)."""

    def __init__(self) -> None:
        self.claimed: set[str] = set()

    def claim(self, slot: str, ttl_seconds: int) -> bool:
        if slot in self.claimed:
            return False
        self.claimed.add(slot)
        return True


class RecordingQueue:
    """A job queue that records what was queued, or fails when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.tokens: list[str] = []
        self.fail = fail

    def enqueue_sync(self, lock_token: str) -> str:
        if self.fail:
            msg = "queue unavailable"
            raise ConnectionError(msg)
        self.tokens.append(lock_token)
        return f"job-{len(self.tokens)}"


# Type-checked conformance of the fakes to the ports.
_settings: SettingsRepository = InMemorySettings()
_configs: ConfigRepository = InMemoryConfigs()
_panels: PanelRepository = InMemoryPanels()
_resellers: ResellerRepository = InMemoryResellers(InMemoryConfigs(), {}, {})
_clients: PanelClients = ScriptedPanelClients({})
_clock: Clock = FixedClock(datetime.now().astimezone())
_lock: Lock = InMemoryLock(lambda: 0.0)
_queue: JobQueue = RecordingQueue()


class InMemoryEnforcement:
    """The `EnforcementStore` port over dicts: statuses, markers, records and the outbox."""

    def __init__(
        self, resellers: list[ResellerState], configs: list[EnforcedConfig] | None = None
    ) -> None:
        self.resellers = {r.id: r for r in resellers}
        self.configs = {c.id: c for c in configs or []}
        self.events: list[dict[str, object]] = []
        self.audits: list[dict[str, object]] = []
        # Called at the start of `apply`, to simulate a writer racing it.
        self.before_apply: Callable[[], None] | None = None

    def enforced_resellers(self) -> list[ResellerState]:
        return [
            r
            for r in sorted(self.resellers.values(), key=lambda r: r.id)
            if r.type == "traffic" and r.status in ("active", "suspended")
        ]

    def configs_of(
        self, reseller_ids: Sequence[int], status: str | None = None
    ) -> dict[int, list[EnforcedConfig]]:
        found: dict[int, list[EnforcedConfig]] = {}
        for config in sorted(self.configs.values(), key=lambda c: c.id):
            wanted = status is None or config.status == status
            if config.config.reseller_id in reseller_ids and wanted:
                found.setdefault(config.config.reseller_id, []).append(config)
        return found

    def apply(
        self, decision: Decision, operations: Mapping[int, RemoteOp | None], now: datetime
    ) -> bool:
        if self.before_apply is not None:
            self.before_apply()
        reseller = decision.reseller
        if self.resellers[reseller.id].status != reseller.status:
            return False
        if any(self.configs[c.config.id].status != c.config.status for c in decision.configs):
            return False
        if decision.action is not None:
            suspend = decision.action is ResellerAction.SUSPEND
            self.resellers[reseller.id] = attrs.evolve(
                reseller,
                status="suspended" if suspend else "active",
                suspension=Suspension.AUTOMATIC if suspend else None,
            )
            self.audits.append(
                {"action": f"reseller_{'suspended' if suspend else 'activated'}", "id": reseller.id}
            )
        for change in decision.configs:
            enabling = change.action is ConfigAction.ENABLE
            op = operations.get(change.config.id)
            self.events.append(
                {
                    "config_id": change.config.id,
                    "type": "auto_enabled" if enabling else "auto_disabled",
                }
            )
            self.audits.append({"action": "config_auto_" + ("enabled" if enabling else "disabled")})
            event_id = len(self.events)
            markers = Markers()
            if change.reason is Reason.QUOTA:
                markers = Markers(by_quota=True, reseller_id=reseller.id)
            elif change.reason is Reason.WINDOW:
                markers = Markers(by_window=True, reseller_id=reseller.id)
            current = self.configs[change.config.id]
            self.configs[change.config.id] = attrs.evolve(
                current,
                config=attrs.evolve(current.config, status=change.action.status),
                markers=Markers() if enabling else markers,
                pending=None if op is None else attrs.evolve(op, event_id=event_id),
            )
        return True

    def pending_operations(self) -> list[tuple[EnforcedConfig, RemoteOp]]:
        return [(c, c.pending) for c in self.configs.values() if c.pending is not None]

    def finish_operation(
        self, config_id: int, op: RemoteOp, *, success: bool, cancelled: str | None = None
    ) -> bool:
        current = self.configs[config_id]
        if current.pending is None or current.pending.event_id != op.event_id:
            return False
        done = success or cancelled is not None
        self.configs[config_id] = attrs.evolve(current, pending=None if done else op)
        if op.event_id is not None:
            self.events[op.event_id - 1] |= {
                "remote_success": success,
                "attempts": op.attempts,
                "last_error": cancelled or op.last_error,
            }
        return True


@attrs.define
class FakePace:
    """A clock that moves only when slept on."""

    now: float = 0.0
    slept: list[float] = attrs.field(factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


_enforcement: EnforcementStore = InMemoryEnforcement([])
_pace: Pace = FakePace()
_slots: DispatchSlots = InMemorySlots()
