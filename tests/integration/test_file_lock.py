"""The embedded mode's file lock, across threads and processes."""

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from multiprocessing.synchronize import Event
from pathlib import Path

from usage_adapters.file_lock import FileDispatchSlots, FileLock

# A process that takes the lock, says so, and holds it until its stdin closes.
_OWNER = """
import sys
from pathlib import Path
from usage_adapters.file_lock import FileLock
print(FileLock(Path(sys.argv[1])).acquire(300), flush=True)
sys.stdin.read()
"""


def _grab(path: str, results: "multiprocessing.Queue[bool]", done: Event) -> None:
    """Child process: try to take the lock once, report, and live until every child has."""
    results.put(FileLock(Path(path)).acquire(300) is not None)
    # An owner that exited would free the lock for the children still racing.
    done.wait(timeout=30)


def _owner(path: Path) -> subprocess.Popen[str]:
    """A child process holding the lock at `path`, once it has printed its token."""
    child = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    token = child.stdout.readline().strip()
    assert token not in ("", "None"), "the child did not get the lock"
    return child


def _dead_pid() -> int:
    """The id of a process of this machine that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


class TestFileLock:
    """`FileLock` has the Redis lock's semantics: TTL, owner-only release."""

    def test_one_owner_among_processes(self, tmp_path: Path) -> None:
        """Of 8 processes racing for the lock, exactly one gets it."""
        path = str(tmp_path / "lock.json")
        results: multiprocessing.Queue[bool] = multiprocessing.Queue()
        done = multiprocessing.Event()
        workers = [
            multiprocessing.Process(target=_grab, args=(path, results, done)) for _ in range(8)
        ]
        for worker in workers:
            worker.start()
        try:
            outcomes = [results.get(timeout=30) for _ in workers]
        finally:
            done.set()
            for worker in workers:
                worker.join(timeout=30)
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

    def test_file_names_the_owner(self, tmp_path: Path) -> None:
        """The lock file records the owner's token, process id and host name."""
        path = tmp_path / "lock.json"
        token = FileLock(path).acquire(300)
        state = json.loads(path.read_text())
        assert (state["token"], state["pid"], state["host"]) == (
            token,
            os.getpid(),
            socket.gethostname(),
        )

    def test_dead_owner_on_this_host_frees_the_lock_at_once(self, tmp_path: Path) -> None:
        """A lock whose owner exited on this machine is free long before its TTL."""
        path = tmp_path / "lock.json"
        child = _owner(path)
        lock = FileLock(path)
        try:
            # Alive, the owner is honoured.
            assert lock.acquire(300) is None
            assert lock.hold("someone-else", 300) is False
            remaining = lock.remaining_seconds()
            assert remaining is not None
            assert remaining > 290
        finally:
            child.communicate(timeout=30)
        assert child.returncode == 0
        assert lock.remaining_seconds() is None
        token = lock.acquire(300)
        assert token is not None
        assert json.loads(path.read_text())["pid"] == os.getpid()

    def test_a_dead_pid_frees_a_lock_written_by_hand(self, tmp_path: Path) -> None:
        """Any unexpired lock naming a reaped process of this host is free to take and hold."""
        path = tmp_path / "lock.json"
        state = {"token": "ghost", "expires_at": time.time() + 300}
        owner = {"pid": _dead_pid(), "host": socket.gethostname()}
        path.write_text(json.dumps(state | owner))
        assert FileLock(path).hold("mine", 300) is True
        assert json.loads(path.read_text())["token"] == "mine"

    def test_owner_on_another_host_is_honoured_until_its_ttl(self, tmp_path: Path) -> None:
        """A process id is only checked on its own host: elsewhere, the TTL decides."""
        path = tmp_path / "lock.json"
        now = [1000.0]
        # On this host this pid would be dead: only the host name keeps the lock held.
        owner = {"pid": _dead_pid(), "host": f"not-{socket.gethostname()}"}
        path.write_text(json.dumps({"token": "remote", "expires_at": 1300.0} | owner))
        lock = FileLock(path, clock=lambda: now[0])
        assert lock.acquire(300) is None
        assert lock.hold("mine", 300) is False
        assert lock.remaining_seconds() == 300
        now[0] = 1300.0
        assert lock.remaining_seconds() is None
        assert lock.acquire(300) is not None


class TestFileDispatchSlots:
    """`FileDispatchSlots` grants each minute once, across instances, for the claim's TTL."""

    def test_same_slot_twice_is_refused(self, tmp_path: Path) -> None:
        """A second claim of one minute is refused, also from another instance on the file."""
        path = tmp_path / "dispatched.json"
        assert FileDispatchSlots(path).claim("202611241000", 3600) is True
        assert FileDispatchSlots(path).claim("202611241000", 3600) is False

    def test_different_minutes_are_both_granted(self, tmp_path: Path) -> None:
        """Claims of two minutes both succeed, and both are recorded."""
        path = tmp_path / "dispatched.json"
        slots = FileDispatchSlots(path)
        assert slots.claim("202611241000", 3600) is True
        assert slots.claim("202611241001", 3600) is True
        assert sorted(json.loads(path.read_text())) == ["202611241000", "202611241001"]

    def test_a_claim_lasts_its_ttl(self, tmp_path: Path) -> None:
        """A minute is refused until its TTL runs out, then granted again; expired ones go."""
        path = tmp_path / "dispatched.json"
        now = [1000.0]
        slots = FileDispatchSlots(path, clock=lambda: now[0])
        assert slots.claim("202611241000", 3600) is True
        now[0] = 4599.0
        assert slots.claim("202611241000", 3600) is False
        now[0] = 4600.0
        assert slots.claim("202611241001", 3600) is True
        assert json.loads(path.read_text()) == {"202611241001": 8200.0}
        assert slots.claim("202611241000", 3600) is True

    def test_garbage_file_grants_the_claim(self, tmp_path: Path) -> None:
        """A corrupt slots file does not stop dispatching."""
        path = tmp_path / "dispatched.json"
        path.write_text("[not json")
        assert FileDispatchSlots(path).claim("202611241000", 3600) is True
        assert FileDispatchSlots(path).claim("202611241000", 3600) is False
