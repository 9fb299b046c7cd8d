"""The media library: videos uploaded over MQTT, each listed only once its bytes were checked and probed."""

from __future__ import annotations

from ..common.errors import NotFound
from .connection import Database
from .records import MediaRow


class MediaQueries(Database):
    """The media library. One family of the Store's queries."""

    def add_media(self, row: MediaRow) -> None:
        """Lists a verified video (a re-upload under the same name replaces its entry)."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO media (name, bytes, sha256, duration_s, frames, fps, width, height, "
                       "uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (row.name, row.bytes, row.sha256, row.duration_s, row.frames, row.fps, row.width, row.height,
                        row.uploaded_at))

    def media(self) -> list[MediaRow]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM media ORDER BY uploaded_at DESC, name").fetchall()
        return [MediaRow(**dict(r)) for r in rows]

    def media_named(self, name: str) -> MediaRow:
        with self._lock:
            r = self._db.execute("SELECT * FROM media WHERE name=?", (name,)).fetchone()
        if r is None:
            raise NotFound(f"name: no media '{name}' in the library")
        return MediaRow(**dict(r))

    def media_with_hash(self, sha256: str) -> MediaRow | None:
        with self._lock:
            r = self._db.execute("SELECT * FROM media WHERE sha256=? ORDER BY uploaded_at LIMIT 1",
                                 (sha256,)).fetchone()
        return MediaRow(**dict(r)) if r is not None else None

    def remove_media(self, name: str) -> None:
        with self._tx() as db:
            if db.execute("DELETE FROM media WHERE name=?", (name,)).rowcount == 0:
                raise NotFound(f"name: no media '{name}' in the library")
