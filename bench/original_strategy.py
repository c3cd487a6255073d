"""The original PHP job's strategy, re-enacted for comparison: one login and one GET
per config, one after another, and one UPDATE per config.

All requests share one HTTP client (its connections kept alive), as a fair implementation
of that strategy would; a fresh client per config would cost far more than the requests.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import Engine, text

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def _fetch(
    client: httpx.Client, kind: str, url: str, credentials: tuple[str, str, str], name: str
) -> int | None:
    username, password, api_key = credentials
    user = quote(name, safe="")
    base = url.rstrip("/")
    form = {"username": username, "password": password}
    if kind == "eylandoo":
        reply = client.get(f"{base}/api/v1/users/{user}", headers={"X-API-KEY": api_key})
        if not reply.is_success:
            return None
        body: dict[str, Any] = reply.json()
        return int(body.get("total_traffic_bytes") or 0)
    if kind in ("marzban", "marzneshin"):
        token_path = "/api/admin/token" if kind == "marzban" else "/api/admins/token"
        login = client.post(base + token_path, data=form)
        if not login.is_success:
            return None
        auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
        path = f"/api/user/{user}" if kind == "marzban" else f"/api/users/{user}"
        reply = client.get(base + path, headers=auth)
        return int(reply.json()["used_traffic"]) if reply.is_success else None
    login = client.post(f"{base}/login", data=form)
    if not login.is_success or not login.json().get("success"):
        return None
    reply = client.get(f"{base}/panel/api/inbounds/getClientTraffics/{user}")
    obj = reply.json().get("obj") if reply.is_success else None
    return int(obj["up"]) + int(obj["down"]) if obj else None


def run_original_strategy(
    engine: Engine, limit: int, credentials: tuple[str, str, str]
) -> dict[str, float | int]:
    """Sync the first `limit` configs as the original job did; its wall time and counts."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.id, c.reseller_id, c.panel_user_id, p.panel_type, p.url "
                "FROM reseller_configs c JOIN panels p ON p.id = c.panel_id "
                "ORDER BY c.id LIMIT :n"
            ),
            {"n": limit},
        ).all()
    started = time.perf_counter()
    synced = 0
    resellers: set[int] = set()
    with httpx.Client(timeout=TIMEOUT) as client:
        for row in rows:
            usage = _fetch(client, row.panel_type, row.url, credentials, row.panel_user_id)
            if usage is None:
                continue
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE reseller_configs SET usage_bytes = :u WHERE id = :i"),
                    {"u": usage, "i": row.id},
                )
            synced += 1
            resellers.add(row.reseller_id)
    # The aggregate: every config of each reseller loaded again and summed.
    with engine.begin() as conn:
        for reseller_id in resellers:
            total = sum(
                r.usage_bytes
                for r in conn.execute(
                    text("SELECT usage_bytes, meta FROM reseller_configs WHERE reseller_id = :r"),
                    {"r": reseller_id},
                )
            )
            conn.execute(
                text("UPDATE resellers SET traffic_used_bytes = :t WHERE id = :r"),
                {"t": total, "r": reseller_id},
            )
    return {"configs": len(rows), "synced": synced, "wall_s": time.perf_counter() - started}
