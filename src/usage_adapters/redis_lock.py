"""A Redis lock with a TTL and owner tokens, as Laravel's unique-job lock."""

from __future__ import annotations

import uuid
from typing import Any

from redis import Redis

# Compare-and-delete: only the token that took the lock may release it.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class RedisLock:
    """`SET key token NX EX ttl` to take, a Lua compare-and-delete to release."""

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self.key = key
        self._release: Any = redis.register_script(_RELEASE)

    def acquire(self, ttl_seconds: int) -> str | None:
        """Take the lock for `ttl_seconds`; a fresh owner token, or None when held."""
        token = uuid.uuid4().hex
        taken = self._redis.set(self.key, token, nx=True, ex=ttl_seconds)
        return token if taken else None

    def release(self, token: str) -> bool:
        """Delete the lock only if `token` still owns it."""
        return bool(self._release(keys=[self.key], args=[token]))

    def remaining_seconds(self) -> float | None:
        """Seconds until the lock expires, or None when it is free."""
        millis = int(self._redis.pttl(self.key))
        return millis / 1000 if millis > 0 else None
