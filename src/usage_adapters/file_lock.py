"""A lock file with a TTL and owner tokens, for the embedded mode without Redis."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def _alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


class FileLock:
    """The same semantics as `RedisLock`, kept in a small JSON file.

    Every read-modify-write of the file happens under `flock`, so processes on
    one machine agree on the owner; the expiry is a wall-clock instant. The
    file also names the owner's process: a lock whose owner was killed hard
    on this machine is free at once, rather than when its TTL runs out.
    """

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock

    @contextmanager
    def _locked(self) -> Iterator[IO[str]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _read(handle: IO[str]) -> tuple[str | None, float]:
        """The owner's token and the expiry; no owner when its process is gone."""
        handle.seek(0)
        try:
            state = json.loads(handle.read() or "{}")
        except ValueError:
            state = {}
        if not isinstance(state, dict):
            return None, 0.0
        token = state.get("token")
        expires = state.get("expires_at", 0.0)
        pid, host = state.get("pid"), state.get("host")
        if isinstance(pid, int) and host == socket.gethostname() and not _alive(pid):
            return None, 0.0
        valid = isinstance(expires, int | float)
        return (token if isinstance(token, str) else None), float(expires) if valid else 0.0

    @staticmethod
    def _write(handle: IO[str], token: str | None, expires_at: float) -> None:
        handle.seek(0)
        handle.truncate()
        if token is not None:
            owner = {"pid": os.getpid(), "host": socket.gethostname()}
            handle.write(json.dumps({"token": token, "expires_at": expires_at, **owner}))
        handle.flush()
        os.fsync(handle.fileno())

    def acquire(self, ttl_seconds: int) -> str | None:
        """Take the lock for `ttl_seconds`; a fresh owner token, or None when held."""
        with self._locked() as handle:
            token, expires_at = self._read(handle)
            now = self._clock()
            if token is not None and now < expires_at:
                return None
            new = uuid.uuid4().hex
            self._write(handle, new, now + ttl_seconds)
            return new

    def release(self, token: str) -> bool:
        """Clear the lock only if `token` still owns it and it has not expired."""
        with self._locked() as handle:
            owner, expires_at = self._read(handle)
            if owner != token or self._clock() >= expires_at:
                return False
            self._write(handle, None, 0.0)
            return True

    def hold(self, token: str, ttl_seconds: int) -> bool:
        """Keep the lock for `token`, or retake it when free; False when another holds it."""
        with self._locked() as handle:
            owner, expires_at = self._read(handle)
            now = self._clock()
            if owner is not None and owner != token and now < expires_at:
                return False
            self._write(handle, token, now + ttl_seconds)
            return True

    def remaining_seconds(self) -> float | None:
        """Seconds until the lock expires, or None when it is free."""
        with self._locked() as handle:
            token, expires_at = self._read(handle)
        remaining = expires_at - self._clock()
        return remaining if token is not None and remaining > 0 else None


class FileDispatchSlots:
    """Claimed minutes in a small JSON file, each kept for its TTL, under `flock`."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock

    def claim(self, slot: str, ttl_seconds: int) -> bool:
        """True for the first claim of `slot`."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                try:
                    claimed = json.loads(handle.read() or "{}")
                except ValueError:
                    claimed = {}
                now = self._clock()
                if not isinstance(claimed, dict):
                    claimed = {}
                live = {k: v for k, v in claimed.items() if isinstance(v, int | float) and v > now}
                if slot in live:
                    return False
                live[slot] = now + ttl_seconds
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(live))
                handle.flush()
                os.fsync(handle.fileno())
                return True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
