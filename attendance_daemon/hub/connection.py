"""The hub's one PostgreSQL connection (psycopg 3, autocommit) behind one lock, and its versioned migrations:
the ingest and request threads share it; every write that touches several rows is one transaction (`_tx`)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from .migrations import MIGRATIONS, SCHEMA_VERSION


class HubConnection:
    def __init__(self, dsn: str) -> None:
        self._lock = threading.RLock()
        self._db = psycopg.connect(dsn, autocommit=True, row_factory=dict_row)
        self.migrate()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[dict[str, Any]]]:
        with self._lock, self._db.transaction():
            yield self._db

    def migrate(self) -> None:
        """Applies the missing migrations, each in its own transaction; a newer database is refused."""
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            db.execute("LOCK TABLE schema_version")  # two hubs starting at once migrate one after the other
            row = db.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (0)")
            version = int(row["version"]) if row else 0
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"hub database has schema {version}, newer than this build ({SCHEMA_VERSION})")
            for i in range(version, SCHEMA_VERSION):
                db.execute(MIGRATIONS[i].encode())
                db.execute("UPDATE schema_version SET version = %s", (i + 1,))

    def schema_version(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
        return int(row["version"]) if row else 0
