"""The hub's one PostgreSQL connection (psycopg 3, autocommit) behind one lock, and its versioned migrations:
the ingest and request threads share it; every write that touches several rows is one transaction (`_tx`).

The connection is re-made when it is lost (a PostgreSQL restart, a network cut): a broken connection makes the
call raise StoreUnavailable (503), and the next call tries again, no sooner than the backoff allows (0.5 s,
doubling to 10 s). `problem` says what is wrong meanwhile; health and `fleet` read it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ..common.errors import AttendanceError, redact_credentials
from .migrations import MIGRATIONS, SCHEMA_VERSION

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0
CONNECT_TIMEOUT_S = 5


class StoreUnavailable(AttendanceError):
    """The database cannot be reached now (transient): box messages stay unacknowledged, requests are 503."""

    code = 503


Db = psycopg.Connection[dict[str, Any]]


class HubConnection:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._lock = threading.RLock()
        self._conn: Db | None = None
        self.problem: str | None = None  # why the database cannot be used now; None when it can
        self.down_since: float | None = None  # time.monotonic() of the first failure of this outage
        self._retry_at = 0.0
        self._delay = RETRY_MIN_S
        self._conn = self._connect()  # the first connection fails loudly: the service does not start without it
        self.migrate()

    def _connect(self) -> Db:
        return psycopg.connect(self._dsn, autocommit=True, row_factory=dict_row, connect_timeout=CONNECT_TIMEOUT_S)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()

    # ---- the connection, re-made when lost ---------------------------------------------------------

    def _live(self) -> Db:
        """The connection, reconnecting when it was lost (held under the lock)."""
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        now = time.monotonic()
        if now < self._retry_at:
            raise StoreUnavailable(f"database unavailable: {self.problem}; next attempt in "
                                   f"{self._retry_at - now:.1f} s")
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        try:
            self._conn = self._connect()
        except psycopg.Error as exc:
            self._failed(exc)
            raise StoreUnavailable(f"database unavailable: {self.problem}") from exc
        outage = now - self.down_since if self.down_since is not None else 0.0
        log.warning("database reachable again after %.1f s", outage)
        self.problem, self.down_since, self._delay = None, None, RETRY_MIN_S
        return self._conn

    def _failed(self, exc: BaseException) -> None:
        self.problem = redact_credentials(f"{type(exc).__name__}: {str(exc).strip()}")[:300]
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            log.error("database connection lost: %s; reconnecting with backoff", self.problem)
        self._retry_at = now + self._delay
        self._delay = min(RETRY_MAX_S, self._delay * 2)

    def _check_lost(self, db: Db, exc: psycopg.Error) -> None:
        """A connection-level failure becomes StoreUnavailable; any other error is the statement's own."""
        if db.closed or db.broken:
            self._failed(exc)
            raise StoreUnavailable(f"database unavailable: {self.problem}") from exc

    @contextmanager
    def _read(self) -> Iterator[Db]:
        """The connection for single statements (autocommit)."""
        with self._lock:
            db = self._live()
            try:
                yield db
            except psycopg.Error as exc:
                self._check_lost(db, exc)
                raise

    @contextmanager
    def _tx(self) -> Iterator[Db]:
        """One transaction (a savepoint when nested): committed when the block ends, rolled back on an error."""
        with self._lock:
            db = self._live()
            try:
                with db.transaction():
                    yield db
            except psycopg.Error as exc:
                self._check_lost(db, exc)
                raise

    def ping(self) -> bool:
        """True when the database answers now (reconnecting if it is time to)."""
        try:
            with self._read() as db:
                db.execute("SELECT 1")
        except StoreUnavailable:
            return False
        return True

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
        with self._read() as db:
            row = db.execute("SELECT version FROM schema_version").fetchone()
        return int(row["version"]) if row else 0
