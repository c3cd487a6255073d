"""Where the last run's summary is kept: a Redis key or a JSON file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from redis import Redis


class RedisRunHistory:
    """The last summary under one Redis key."""

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self.key = key

    def record(self, summary: dict[str, object]) -> None:
        """Keep `summary` as the last run's."""
        self._redis.set(self.key, json.dumps(summary, default=str))

    def last(self) -> dict[str, object] | None:
        """The last run's summary, or None."""
        raw = self._redis.get(self.key)
        return _decode(raw)


class FileRunHistory:
    """The last summary in a JSON file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, summary: dict[str, object]) -> None:
        """Keep `summary` as the last run's."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".run-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(summary, handle, default=str)
        Path(tmp).replace(self.path)

    def last(self) -> dict[str, object] | None:
        """The last run's summary, or None."""
        try:
            return _decode(self.path.read_bytes())
        except FileNotFoundError:
            return None


def _decode(raw: object) -> dict[str, object] | None:
    if not isinstance(raw, bytes | str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
