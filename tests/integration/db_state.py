"""The part of a database's state a sync writes, for comparing two runs."""

import json
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text


def database_state(path: Path) -> dict[str, Any]:
    """Every config's usage and meta, and every reseller's total, of an SQLite file."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            configs = {
                row.id: (row.usage_bytes, json.loads(row.meta or "{}"))
                for row in conn.execute(text("SELECT id, usage_bytes, meta FROM reseller_configs"))
            }
            totals = dict(conn.execute(text("SELECT id, traffic_used_bytes FROM resellers")).all())
    finally:
        engine.dispose()
    return {"configs": configs, "totals": totals}
