"""sqlite3 databases for the engine's metadata (image records, snapshots).

Every change is one transaction (BEGIN IMMEDIATE ... COMMIT) on a WAL-mode database with
synchronous=FULL, so a daemon killed at any instant leaves either the old or the new state.
Files written beside the database (blobs, snapshot directories) are made before the rows
that name them and removed after, so a crash can only leave orphans, which ``gc`` passes
remove, never rows pointing at nothing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class Database:
    """One connection shared by the threads of a process, with a schema of ``SCHEMA``."""

    SCHEMA: Sequence[str] = ()

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                     check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self.transaction() as db:
            for statement in self.SCHEMA:
                db.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of it is committed, or none (on any exception)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
