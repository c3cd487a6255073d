"""Carrying queued state changes to the panels: the outbox worker.

Every transition that must reach a panel leaves a `RemoteOp` in its config's
outbox (written in the same transaction as the local change). This worker
works through the outbox, panel by panel and panels in parallel: at most
`rate` operations a second on one panel, a few tries with backoff for an
operation that fails in a way that may pass, and each panel within its time
budget. An operation that fails stays queued for the next run; one whose
config no longer wants it (a person, or a later transition, changed the
status) is cancelled, not replayed.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import attrs

from usage_core.enforcement.rules import EnforcedConfig, RemoteOp
from usage_core.log import ctx
from usage_core.model import Panel
from usage_core.ports import EnforcementStore, Pace, PanelClients, PanelLookup, PanelSession
from usage_core.readings import RemoteResult
from usage_core.targets import effective_panel_type, panel_username, resolve_panel

logger = logging.getLogger(__name__)

# Waits before the second and third tries, as the original provisioner's 0 s, 1 s, 3 s.
BACKOFF_S = (1.0, 3.0)


@attrs.define
class RemoteTally:
    """What one pass over the outbox did."""

    done: int = 0
    failed: int = 0
    cancelled: int = 0
    requests: int = 0

    def add(self, other: RemoteTally) -> None:
        """Add `other`'s counts to these."""
        self.done += other.done
        self.failed += other.failed
        self.cancelled += other.cancelled
        self.requests += other.requests


def wanted_by_config(config: EnforcedConfig, op: RemoteOp) -> str | None:
    """Why `op` is no longer wanted, or None when the config's status still asks for it."""
    connects = config.status == "active"
    if connects != op.connects:
        return f"superseded: the config is now {config.status}"
    return None


@attrs.define
class _Slots:
    """One panel's request slots: at most one every `interval` seconds, none past `deadline`.

    Shared by the panel's workers: each slot is taken under a lock, and waited
    for outside it.
    """

    pace: Pace
    interval: float
    deadline: float
    next_at: float
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def out_of_time(self) -> bool:
        """True once the panel's budget has run out."""
        return self.pace.monotonic() >= self.deadline

    def take(self, wait: float = 0.0) -> bool:
        """Wait for the next slot at least `wait` seconds from now; False past the deadline."""
        with self._lock:
            start = max(self.next_at, self.pace.monotonic() + wait)
            if start >= self.deadline:
                return False
            self.next_at = start + self.interval
        self.pace.sleep(max(0.0, start - self.pace.monotonic()))
        return True


@attrs.define
class RemoteOperations:
    """Works through the outbox of remote state changes."""

    store: EnforcementStore
    panels: PanelLookup
    clients: PanelClients
    pace: Pace
    max_parallel_panels: int = 8
    budget_s: float = 120.0
    # Operations in flight on one panel: the rate limit, not latency, should bound a pass.
    per_panel: int = 4

    def __call__(self, rate: float) -> RemoteTally:
        """One pass: every queued operation tried (or cancelled) at most `rate` a second a panel."""
        tally = RemoteTally()
        by_panel: dict[int, tuple[Panel, list[tuple[EnforcedConfig, RemoteOp]]]] = {}
        for config, op in self.store.pending_operations():
            why = wanted_by_config(config, op)
            if why is None:
                panel = resolve_panel(config.config, self.panels).panel
                if panel is None:
                    why = "the config no longer resolves to a panel"
                else:
                    by_panel.setdefault(panel.id, (panel, []))[1].append((config, op))
                    continue
            if self.store.finish_operation(config.id, op, success=False, cancelled=why):
                tally.cancelled += 1
                logger.info(
                    "Remote operation for config %s cancelled: %s",
                    config.id,
                    why,
                    extra=ctx(config_id=config.id),
                )
        if not by_panel:
            return tally
        workers = max(1, min(self.max_parallel_panels, len(by_panel)))
        with ThreadPoolExecutor(workers, thread_name_prefix="usage-sync-remote") as pool:
            futures = [
                pool.submit(self._panel, panel, ops, rate) for panel, ops in by_panel.values()
            ]
            for future in futures:
                tally.add(future.result())
        return tally

    def _panel(
        self, panel: Panel, ops: Sequence[tuple[EnforcedConfig, RemoteOp]], rate: float
    ) -> RemoteTally:
        tally = RemoteTally()
        now = self.pace.monotonic()
        slots = _Slots(self.pace, 1.0 / rate, now + self.budget_s, now)
        pending = iter(ops)
        lock = threading.Lock()
        session = self.clients.open(panel)

        def work() -> None:
            while not slots.out_of_time():
                with lock:
                    item = next(pending, None)
                if item is None:
                    return
                config, op = item
                kind = effective_panel_type(config.config, panel)
                result, attempts = self._tries(
                    session, panel_username(config.config, kind), op, slots
                )
                with lock:
                    tally.requests += attempts
                    self._record(config, op, result, attempts, tally)

        try:
            workers = max(1, min(self.per_panel, len(ops)))
            with ThreadPoolExecutor(workers, thread_name_prefix="usage-sync-remote-op") as pool:
                for future in [pool.submit(work) for _ in range(workers)]:
                    future.result()
        finally:
            session.close()
        left = len(ops) - (tally.done + tally.failed)
        if left:
            logger.warning(
                "Panel %s: time budget ran out; %d remote operations left for the next run",
                panel.id,
                left,
                extra=ctx(panel_id=panel.id),
            )
        return tally

    @staticmethod
    def _tries(
        session: PanelSession, username: str, op: RemoteOp, slots: _Slots
    ) -> tuple[RemoteResult, int]:
        """Up to 1 + len(BACKOFF_S) tries, paced; the last result and the tries made."""
        if not username:
            return RemoteResult(False, "the config has no panel username"), 0
        result = RemoteResult(False, "the panel's time budget ran out", retry=True)
        attempts = 0
        for wait in (0.0, *BACKOFF_S):
            if not slots.take(wait):
                break
            attempts += 1
            result = session.set_enabled(username, op.connects)
            if result.ok or not result.retry:
                break
        return result, attempts

    def _record(
        self,
        config: EnforcedConfig,
        op: RemoteOp,
        result: RemoteResult,
        attempts: int,
        tally: RemoteTally,
    ) -> None:
        after = attrs.evolve(
            op,
            attempts=op.attempts + attempts,
            last_error=None if result.ok else (result.detail or "failed"),
        )
        if not self.store.finish_operation(config.id, after, success=result.ok):
            return
        verb = "enabled" if op.connects else "disabled"
        if result.ok:
            tally.done += 1
            logger.info(
                "Config %s %s on its panel",
                config.id,
                verb,
                extra=ctx(config_id=config.id, attempts=after.attempts, detail=result.detail),
            )
        else:
            tally.failed += 1
            logger.warning(
                "Failed to have config %s %s on its panel after %s attempts: %s; "
                "it stays queued for the next run",
                config.id,
                verb,
                after.attempts,
                after.last_error,
                extra=ctx(config_id=config.id),
            )


def count_by_panel(ops: Sequence[tuple[EnforcedConfig, RemoteOp]]) -> dict[int | None, int]:
    """Queued operations per `panel_id` (None: configs without one)."""
    counts: dict[int | None, int] = defaultdict(int)
    for config, _ in ops:
        counts[config.config.panel_id] += 1
    return dict(counts)
