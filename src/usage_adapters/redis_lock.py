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


# Keep the lock for the token that holds it, or take it when it is free.
_HOLD = """
local owner = redis.call('get', KEYS[1])
if owner == ARGV[1] then
    return redis.call('expire', KEYS[1], ARGV[2])
end
if not owner then
    return redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) and 1 or 0
end
return 0
"""


class RedisLock:
    """`SET key token NX EX ttl` to take, a Lua compare-and-delete to release."""

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self.key = key
        self._release: Any = redis.register_script(_RELEASE)
        self._hold: Any = redis.register_script(_HOLD)

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

    def hold(self, token: str, ttl_seconds: int) -> bool:
        """Keep the lock for `token`, or retake it when free; False when another holds it."""
        return bool(self._hold(keys=[self.key], args=[token, ttl_seconds]))


class RedisDispatchSlots:
    """Claimed minutes as Redis keys: `SET key 1 NX EX ttl`."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self.prefix = prefix

    def claim(self, slot: str, ttl_seconds: int) -> bool:
        """True for the first claim of `slot`."""
        return bool(self._redis.set(f"{self.prefix}{slot}", 1, nx=True, ex=ttl_seconds))
