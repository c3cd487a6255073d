"""Where kept panel logins live: Redis keys, or owner-only files in the state directory;
and where the key that seals them comes from.

Each store holds one sealed login per panel, prefixed by its credential's
fingerprint (`<fingerprint>\\n<sealed>`); a read under another fingerprint finds
nothing. See `usage_adapters.panels.kept_logins` for the sealing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

from redis import Redis

from usage_adapters.files import replace_file

_KEY_BYTES = 32


def _entry(fingerprint: str, sealed: bytes) -> bytes:
    return fingerprint.encode() + b"\n" + sealed


def _sealed(raw: bytes, fingerprint: str) -> bytes | None:
    stored, _, sealed = raw.partition(b"\n")
    if not sealed or not hmac.compare_digest(stored, fingerprint.encode()):
        return None
    return sealed


class RedisLoginStore:
    """One key per panel, `<prefix><panel_id>`, expiring with its login."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self.prefix = prefix

    def get(self, panel_id: int, fingerprint: str) -> bytes | None:
        """The sealed login under this fingerprint, or None."""
        raw = self._redis.get(f"{self.prefix}{panel_id}")
        return _sealed(raw, fingerprint) if isinstance(raw, bytes) else None

    def put(self, panel_id: int, fingerprint: str, sealed: bytes, ttl_s: int) -> None:
        """`SET ... EX ttl_s`, replacing the panel's previous login."""
        self._redis.set(f"{self.prefix}{panel_id}", _entry(fingerprint, sealed), ex=max(1, ttl_s))

    def drop(self, panel_id: int) -> None:
        """Delete the panel's key."""
        self._redis.delete(f"{self.prefix}{panel_id}")


class FileLoginStore:
    """One file per panel, `<directory>/panel-<id>`, readable by its owner only.

    Files are written to a temporary name (created 0600) and renamed over the
    old one, so a reader sees the old login or the new one, never half of
    either. Expiry is checked by the keeper from the sealed login itself.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, panel_id: int) -> Path:
        return self.directory / f"panel-{panel_id}"

    def get(self, panel_id: int, fingerprint: str) -> bytes | None:
        """The sealed login under this fingerprint, or None."""
        try:
            raw = self._path(panel_id).read_bytes()
        except FileNotFoundError:
            return None
        return _sealed(raw, fingerprint)

    def put(self, panel_id: int, fingerprint: str, sealed: bytes, ttl_s: int) -> None:
        """Replace the panel's file atomically."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        replace_file(self._path(panel_id), _entry(fingerprint, sealed))

    def drop(self, panel_id: int) -> None:
        """Delete the panel's file."""
        self._path(panel_id).unlink(missing_ok=True)


def app_key_secret(app_key: str) -> Callable[[], bytes]:
    """The sealing key derived from the app's `APP_KEY`."""
    return lambda: hashlib.sha256(b"usage-sync kept logins\0" + app_key.encode()).digest()


def file_secret(path: Path) -> Callable[[], bytes]:
    """A key generated once into `path` (mode 0600) and read from it afterwards."""

    def read_or_create() -> bytes:
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".login-key-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(_KEY_BYTES))
            try:
                os.link(tmp, path)  # fails if another process created it first
            except FileExistsError:
                pass
            finally:
                Path(tmp).unlink(missing_ok=True)
            key = path.read_bytes()
        if len(key) != _KEY_BYTES:
            msg = f"{path} is not a {_KEY_BYTES}-byte key"
            raise ValueError(msg)
        return key

    return read_or_create


def redis_secret(redis: Redis, key: str) -> Callable[[], bytes]:
    """A key generated once into Redis (`SET NX`), shared by every worker of the deployment."""

    def read_or_create() -> bytes:
        redis.set(key, secrets.token_bytes(_KEY_BYTES), nx=True)
        value = redis.get(key)
        if not isinstance(value, bytes) or len(value) != _KEY_BYTES:
            msg = f"the Redis key {key} is not a {_KEY_BYTES}-byte key"
            raise ValueError(msg)
        return value

    return read_or_create
