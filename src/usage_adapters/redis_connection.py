"""Opening the Redis connection, checked at start with a short connect timeout."""

from __future__ import annotations

from redis import Redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from usage_core.errors import BrokerUnavailableError, ConfigurationError

CONNECT_TIMEOUT_S = 3.0


def connect_redis(url: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> Redis:
    """A client for `url` that has answered a PING.

    ConfigurationError when the URL is not a Redis URL, BrokerUnavailableError
    when Redis cannot be reached or refuses us; neither message holds the URL,
    which may carry a password.
    """
    try:
        client = Redis.from_url(url, socket_connect_timeout=connect_timeout_s)
    except ValueError as exc:
        msg = (
            f"USAGE_SYNC_REDIS_URL is not a Redis URL ({exc}); "
            "write it as redis://[:password@]host:port/db"
        )
        raise ConfigurationError(msg) from None
    try:
        client.ping()
    except (AuthenticationError, ResponseError) as exc:
        client.close()
        msg = f"Redis refuses the connection: {_first_line(exc)}"
        raise BrokerUnavailableError(msg) from None
    except (RedisError, OSError) as exc:
        client.close()
        msg = f"Redis cannot be reached: {_first_line(exc)}"
        raise BrokerUnavailableError(msg) from None
    return client


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
