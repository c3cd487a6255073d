"""A small world for fault tests: four emulated panels, an app database, the invariants."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from original_rows import TEST_APP_KEY, insert_config, insert_panel, insert_reseller
from sqlalchemy import Engine, text

from usage_adapters.sql.meta import LAST_COUNTER_KEY, SETTLED_KEY
from usage_sandbox.emulator import EmulatedUser, PanelEmulator

KINDS = ("eylandoo", "marzban", "marzneshin", "xui")
ADMIN, PASSWORD, KEY = "admin", "fault-PASSWORD-7c1", "fault-KEY-93ab"
MIB = 1024**2


@dataclass
class FaultWorld:
    """Panels, the configs on them, and what each config's ledger must add up to."""

    engine: Engine
    url: str
    panels: dict[str, PanelEmulator]
    # config id -> (panel kind, username)
    configs: dict[int, tuple[str, str]] = field(default_factory=dict)
    resellers: list[int] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        """The `USAGE_SYNC_*` variables of a process on this world."""
        return {
            "USAGE_SYNC_DATABASE_URL": self.url,
            "USAGE_SYNC_APP_KEY": TEST_APP_KEY,
            "USAGE_SYNC_TIMEZONE": "UTC",
            **extra,
        }

    def ledgers(self) -> dict[int, tuple[int, int, dict[str, Any]]]:
        """config id -> (usage_bytes, settled, meta)."""
        found = {}
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, usage_bytes, meta FROM reseller_configs"))
            for row in rows:
                meta = row.meta if isinstance(row.meta, dict) else json.loads(row.meta or "{}")
                found[row.id] = (int(row.usage_bytes), int(meta.get(SETTLED_KEY, 0)), meta)
        return found

    def lifetime(self, config_id: int) -> int:
        """Everything the config's panel user has used, across resets."""
        kind, name = self.configs[config_id]
        user = self.panels[kind].users.get(name)
        assert user is not None
        return user.lifetime

    def assert_converged(self, *, except_configs: frozenset[int] = frozenset()) -> None:
        """Every config's usage + settled is its user's lifetime use; the app's keys are kept."""
        for config_id, (usage, settled, meta) in self.ledgers().items():
            assert meta.get("note") == f"keep-{config_id}", (config_id, meta)
            if config_id in except_configs:
                continue
            assert usage + settled == self.lifetime(config_id), (config_id, usage, settled, meta)
            assert meta.get(LAST_COUNTER_KEY) == self.panel_counter(config_id), config_id

    def assert_never_over(self) -> None:
        """No config counts more than its user used: nothing was counted twice."""
        for config_id, (usage, settled, _) in self.ledgers().items():
            assert usage + settled <= self.lifetime(config_id), (config_id, usage, settled)

    def panel_counter(self, config_id: int) -> int:
        """The panel's current counter of the config's user."""
        kind, name = self.configs[config_id]
        user = self.panels[kind].users.get(name)
        assert user is not None
        return user.used

    def reseller_totals(self) -> dict[int, int]:
        """reseller id -> traffic_used_bytes."""
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, traffic_used_bytes FROM resellers"))
            return {int(r.id): int(r.traffic_used_bytes) for r in rows}

    def grow(self, mib: int = 3) -> None:
        """Every user downloads `mib` MiB more."""
        for kind, name in self.configs.values():
            self.panels[kind].users.add_traffic(name, download=mib * MIB)


@contextmanager
def fault_world(
    engine: Engine, url: str, *, per_panel: int = 50, latency_s: float = 0.0
) -> Iterator[FaultWorld]:
    """`per_panel` users on each of four emulated panels, and a config for each in the app DB."""
    with ExitStack() as stack:
        panels = {}
        for kind in KINDS:
            users = [
                EmulatedUser(f"{kind}-{i:04d}", upload=(i + 1) * 1000, download=(i + 1) * MIB)
                for i in range(per_panel)
            ]
            panels[kind] = stack.enter_context(
                PanelEmulator(
                    kind,
                    users=users,
                    username=ADMIN,
                    password=PASSWORD,
                    api_key=KEY,
                    latency_s=latency_s,
                )
            )
        world = FaultWorld(engine, url, panels)
        world.resellers = [insert_reseller(engine, traffic_total_bytes=10**15) for _ in range(4)]
        for kind, panel in panels.items():
            panel_id = insert_panel(
                engine,
                panel_type=kind,
                url=panel.url,
                username=None if kind == "eylandoo" else ADMIN,
                password=None if kind == "eylandoo" else PASSWORD,
                api_token=KEY if kind == "eylandoo" else None,
            )
            for i in range(per_panel):
                name = f"{kind}-{i:04d}"
                config_id = insert_config(
                    engine,
                    reseller_id=world.resellers[i % 4],
                    external_username=name,
                    panel_type=kind,
                    panel_id=panel_id,
                    meta={"note": "pending"},
                )
                with engine.begin() as conn:
                    conn.execute(
                        text("UPDATE reseller_configs SET meta = :m WHERE id = :i"),
                        {"m": json.dumps({"note": f"keep-{config_id}"}), "i": config_id},
                    )
                world.configs[config_id] = (kind, name)
        yield world
