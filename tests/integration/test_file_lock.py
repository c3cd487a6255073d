"""The embedded mode's file lock, across threads and processes."""

import json
import multiprocessing
import time
from pathlib import Path

from usage_adapters.file_lock import FileLock


def _grab(path: str, results: "multiprocessing.Queue[bool]") -> None:
    """Child process: try to take the lock once and report."""
    results.put(FileLock(Path(path)).acquire(300) is not None)


class TestFileLock:
    """`FileLock` has the Redis lock's semantics: TTL, owner-only release."""

    def test_one_owner_among_processes(self, tmp_path: Path) -> None:
        """Of 8 processes racing for the lock, exactly one gets it."""
        path = str(tmp_path / "lock.json")
        results: multiprocessing.Queue[bool] = multiprocessing.Queue()
        workers = [multiprocessing.Process(target=_grab, args=(path, results)) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
        outcomes = [results.get(timeout=5) for _ in workers]
        assert outcomes.count(True) == 1

    def test_release_only_by_owner(self, tmp_path: Path) -> None:
        """A foreign token releases nothing; the owner's token releases."""
        lock = FileLock(tmp_path / "lock.json")
        token = lock.acquire(300)
        assert token is not None
        assert not lock.release("someone-else")
        assert lock.remaining_seconds() is not None
        assert lock.release(token)
        assert lock.remaining_seconds() is None

    def test_expiry(self, tmp_path: Path) -> None:
        """After its TTL the lock can be taken again, and the old token no longer releases."""
        now = [1000.0]
        lock = FileLock(tmp_path / "lock.json", clock=lambda: now[0])
        old = lock.acquire(300)
        assert old is not None
        assert lock.acquire(300) is None
        now[0] += 300
        new = lock.acquire(300)
        assert new is not None
        assert not lock.release(old)
        assert lock.remaining_seconds() == 300

    def test_garbage_file_is_a_free_lock(self, tmp_path: Path) -> None:
        """A corrupt lock file does not wedge the scheduler."""
        path = tmp_path / "lock.json"
        path.write_text("{not json")
        assert FileLock(path).acquire(300) is not None
        assert json.loads(path.read_text())["expires_at"] > time.time()
