"""Guarded batch writes, one statement a chunk or an `executemany`, alone and beside busy threads.

Python's sqlite3 gives up the interpreter lock around each row of an `executemany`; while
other threads of the process are busy (a sync's panel threads decoding replies), each row
then waits its turn for the lock. A statement joined to a chunk's values waits once a chunk.
Run from the project root: `python bench/write_bench.py --rows 10000`. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from parts_bench import fill_configs
from usage_adapters.sql import configs, tables
from usage_core.ledger import LedgerState


def _busy(stop: threading.Event) -> None:
    """Decode listing pages until told to stop, as a sync's panel threads do.

    A page of 250 users with a Marzban user's 25 fields; `json.loads` holds the
    interpreter lock for the whole page.
    """
    user = {f"field_{k}": "x" * 24 for k in range(23)} | {"used_traffic": 1}
    text = json.dumps({"users": [{**user, "username": f"u{i}"} for i in range(250)]})
    while not stop.is_set():
        json.loads(text)


def main() -> None:
    """Write N rows each way, with and without busy threads; wall and thread CPU."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--busy-threads", type=int, default=2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="usage-sync-writes-"))
    try:
        engine = sa.create_engine(f"sqlite:///{workdir / 'writes.sqlite'}")
        fill_configs(engine, args.rows, synced=False)
        repo = configs.SqlConfigRepository(engine)
        query = sa.select(*configs._CONFIG_COLUMNS)
        with engine.connect() as conn:
            read = [configs._item(row, {}) for row in conn.execute(query)]
        print(f"{args.rows} guarded writes of new ledgers on SQLite")
        for busy in (0, args.busy_threads):
            stop = threading.Event()
            threads = [threading.Thread(target=_busy, args=(stop,)) for _ in range(busy)]
            for thread in threads:
                thread.start()
            for joined in (False, True):
                repo._joined = joined
                step = 1 if joined else 2  # a new counter each time, so that every row changes
                writes = [(item, LedgerState(step, 0, step, None)) for item in read]
                wall, cpu = time.perf_counter(), time.thread_time()
                written = repo.save_ledgers(writes)
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                how = "one statement a chunk" if joined else "executemany"
                print(
                    f"  {how:<22} beside {busy} busy threads: {len(written)} rows, "
                    f"{wall:7.3f} s wall, {cpu:6.3f} s CPU of the writing thread"
                )
                with engine.begin() as conn:  # back to the rows as read
                    conn.execute(
                        sa.update(tables.reseller_configs).values(usage_bytes=0, meta=None)
                    )
            stop.set()
            for thread in threads:
                thread.join()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
