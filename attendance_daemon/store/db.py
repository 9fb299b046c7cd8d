"""The Store: every durable read and write, serialised by one lock over one WAL connection. Its queries live in
one module per family (roster, sessions, the record, erasure, doomed files,
history, media) on the shared connection of
`connection.Database`."""

from __future__ import annotations

from .connection import MARKER, backup_file, copy_database, earlier_use
from .doomed_queries import DoomedQueries
from .erasure_queries import ErasureQueries
from .history_queries import HistoryQueries
from .media_queries import MediaQueries
from .record_queries import RecordQueries
from .roster_queries import RosterQueries
from .session_queries import SessionQueries

__all__ = ["MARKER", "Store", "backup_file", "copy_database", "earlier_use"]


class Store(RosterQueries, SessionQueries, RecordQueries, ErasureQueries, DoomedQueries, HistoryQueries,
            MediaQueries):
    """Thread-safe: the daemon's MQTT dispatcher and the session worker share one instance."""
