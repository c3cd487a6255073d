"""Where the last run's summary and the run statistics are kept: Redis keys or JSON files."""

from __future__ import annotations

import json
from pathlib import Path

from redis import Redis

from usage_adapters.files import replace_file


class RedisDocument:
    """One JSON document under one Redis key."""

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self.key = key

    def save(self, document: dict[str, object]) -> None:
        """Replace the document."""
        self._redis.set(self.key, json.dumps(document, default=str))

    def load(self) -> dict[str, object] | None:
        """The document, or None."""
        return _decode(self._redis.get(self.key))


class FileDocument:
    """One JSON document in a file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, document: dict[str, object]) -> None:
        """Replace the document."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(self.path, json.dumps(document, default=str).encode())

    def load(self) -> dict[str, object] | None:
        """The document, or None."""
        try:
            return _decode(self.path.read_bytes())
        except FileNotFoundError:
            return None


class RedisRunHistory(RedisDocument):
    """The last summary under one Redis key."""

    def record(self, summary: dict[str, object]) -> None:
        """Keep `summary` as the last run's."""
        self.save(summary)

    def last(self) -> dict[str, object] | None:
        """The last run's summary, or None."""
        return self.load()


class FileRunHistory(FileDocument):
    """The last summary in a JSON file, replaced atomically."""

    def record(self, summary: dict[str, object]) -> None:
        """Keep `summary` as the last run's."""
        self.save(summary)

    def last(self) -> dict[str, object] | None:
        """The last run's summary, or None."""
        return self.load()


def _decode(raw: object) -> dict[str, object] | None:
    if not isinstance(raw, bytes | str):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
