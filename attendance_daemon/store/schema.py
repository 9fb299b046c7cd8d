"""Versioned schema: MIGRATIONS[i] takes a database from user_version i to i + 1."""

MIGRATIONS: list[str] = [
    """
    CREATE TABLE sections (
        name        TEXT PRIMARY KEY,
        created_at  TEXT NOT NULL
    );
    CREATE TABLE students (
        id          INTEGER PRIMARY KEY,
        section     TEXT NOT NULL REFERENCES sections(name) ON DELETE CASCADE,
        student_id  TEXT NOT NULL,
        name        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        UNIQUE (section, student_id)
    );
    CREATE TABLE encodings (
        id          INTEGER PRIMARY KEY,
        student     INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
        vector      BLOB NOT NULL,
        source      TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    CREATE INDEX encodings_student ON encodings(student);
    CREATE TABLE sessions (
        id               TEXT PRIMARY KEY,
        name             TEXT NOT NULL UNIQUE,
        section          TEXT NOT NULL,
        mode             TEXT NOT NULL CHECK (mode IN ('webcam', 'mp4')),
        source           TEXT NOT NULL,
        export           INTEGER NOT NULL DEFAULT 0,
        status           TEXT NOT NULL,
        started_at       TEXT NOT NULL,
        ended_at         TEXT,
        frames_processed INTEGER NOT NULL DEFAULT 0,
        total_frames     INTEGER,
        roster_total     INTEGER NOT NULL DEFAULT 0,
        export_path      TEXT,
        error            TEXT
    );
    CREATE INDEX sessions_started ON sessions(started_at);
    CREATE TABLE attendance (
        session_id   TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        student_id   TEXT NOT NULL,
        name         TEXT NOT NULL,
        first_seen_s REAL NOT NULL,
        last_seen_s  REAL NOT NULL,
        seen_s       REAL NOT NULL,
        intervals    TEXT NOT NULL,
        PRIMARY KEY (session_id, student_id)
    );
    CREATE TABLE unknown_faces (
        id          INTEGER PRIMARY KEY,
        session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        track_id    INTEGER NOT NULL,
        crop_path   TEXT NOT NULL,
        at_s        REAL NOT NULL,
        created_at  TEXT NOT NULL
    );
    """,
    # 2: warnings about the source (e.g. a truncated file); the time of the last attendance flush, which is when
    # a session that the daemon did not live to finish really ended; the video position a session reached (its
    # end in video time, for `left_early`)
    """
    ALTER TABLE sessions ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE sessions ADD COLUMN flushed_at TEXT;
    ALTER TABLE sessions ADD COLUMN video_s REAL;
    """,
    # 3 (remote operations): the photo kept on the box for an encoding enrolled over MQTT (a file name under
    # <data>/photos, so it can be listed and removed one by one); an unknown face's mean track encoding (so it
    # can be assigned to a student later) and the encoding it became when it was
    """
    ALTER TABLE encodings ADD COLUMN photo TEXT;
    ALTER TABLE unknown_faces ADD COLUMN vector BLOB;
    ALTER TABLE unknown_faces ADD COLUMN assigned_to INTEGER REFERENCES encodings(id) ON DELETE SET NULL;
    """,
    # 4: the hub's roster applied to each hub-managed section (version and content hash; see roster_sync.py)
    """
    CREATE TABLE roster_versions (
        section     TEXT PRIMARY KEY,
        version     INTEGER NOT NULL,
        hash        TEXT NOT NULL,
        applied_at  TEXT NOT NULL
    );
    """,
    # 5 (timetable): the weekly lessons the scheduler starts (times of day in the box's zone); a session started for
    # a lesson records which (`<lesson_id>@<date>`) and when the lesson began (UTC), from which `late` counts
    """
    CREATE TABLE timetable (
        lesson_id  TEXT PRIMARY KEY,
        weekday    INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),
        start      TEXT NOT NULL,
        end        TEXT NOT NULL,
        section    TEXT NOT NULL,
        camera     TEXT,
        name       TEXT
    );
    ALTER TABLE sessions ADD COLUMN lesson TEXT;
    ALTER TABLE sessions ADD COLUMN lesson_start TEXT;
    CREATE INDEX sessions_lesson ON sessions(lesson);
    """,
    # 6 (media library): videos uploaded over MQTT, checked (sha256) and probed (frames, fps, size) before listed
    """
    CREATE TABLE media (
        name         TEXT PRIMARY KEY,
        bytes        INTEGER NOT NULL,
        sha256       TEXT NOT NULL,
        duration_s   REAL NOT NULL,
        frames       INTEGER NOT NULL,
        fps          REAL NOT NULL,
        width        INTEGER NOT NULL,
        height       INTEGER NOT NULL,
        uploaded_at  TEXT NOT NULL
    );
    CREATE INDEX media_sha256 ON media(sha256);
    """,
    # 7 (the console): an unknown face a teacher dismissed (not one of theirs; hidden from the gallery, kept)
    """
    ALTER TABLE unknown_faces ADD COLUMN dismissed INTEGER NOT NULL DEFAULT 0;
    """,
    # 8 (erasure that finishes): an unknown face assigned to a student stays tied to that student (id and section),
    # not to the encoding it became, which a roster or remove_photo may replace (assigned_to was then set to NULL
    # and a later forget missed the crop); backfilled from the encoding's student. Files to delete are recorded in
    # the transaction that deletes their rows (doomed_files) and removed by a sweep after the commit, at start-up
    # and in housekeeping, so a crash between the two leaves nothing behind.
    """
    ALTER TABLE unknown_faces ADD COLUMN assigned_student TEXT;
    ALTER TABLE unknown_faces ADD COLUMN assigned_section TEXT;
    UPDATE unknown_faces SET
        assigned_student = (SELECT st.student_id FROM encodings e JOIN students st ON st.id = e.student
                            WHERE e.id = unknown_faces.assigned_to),
        assigned_section = (SELECT st.section FROM encodings e JOIN students st ON st.id = e.student
                            WHERE e.id = unknown_faces.assigned_to)
        WHERE assigned_to IS NOT NULL;
    CREATE INDEX unknown_faces_assigned ON unknown_faces(assigned_student);
    CREATE TABLE doomed_files (
        id          INTEGER PRIMARY KEY,
        root        TEXT NOT NULL,
        path        TEXT NOT NULL,
        created_at  TEXT NOT NULL
    );
    """,
    # 9 (the record): a teacher's corrections, undos, finalisations and reopenings, one audited row each (the
    # recognised observation in `attendance` is never overwritten); each session's record state (`draft` until
    # finalised), its revision (bumped by every change) and the revision last handed to the broker, and whether its
    # absence notice is still to be sent: the outbox that makes the results and the notice survive a crash.
    # Sessions that ended before corrections existed are final (nothing can have been corrected in them).
    """
    CREATE TABLE record_log (
        id          INTEGER PRIMARY KEY,
        session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        action      TEXT NOT NULL CHECK (action IN ('correct', 'undo', 'finalize', 'reopen')),
        student_id  TEXT,
        status      TEXT,
        undoes      INTEGER,
        note        TEXT NOT NULL DEFAULT '',
        client      TEXT,
        mqtt_user   TEXT,
        at          TEXT NOT NULL
    );
    CREATE INDEX record_log_session ON record_log(session_id, student_id);
    CREATE INDEX record_log_student ON record_log(student_id);
    CREATE INDEX record_log_undoes ON record_log(undoes);
    ALTER TABLE sessions ADD COLUMN record TEXT NOT NULL DEFAULT 'draft' CHECK (record IN ('draft', 'final'));
    ALTER TABLE sessions ADD COLUMN finalized_at TEXT;
    ALTER TABLE sessions ADD COLUMN finalized_by TEXT;
    ALTER TABLE sessions ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN published_revision INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN notice_pending INTEGER NOT NULL DEFAULT 0;
    UPDATE sessions SET record = 'final', finalized_at = COALESCE(ended_at, started_at), finalized_by = 'upgrade'
        WHERE status NOT IN ('running', 'paused');
    """,
    # 10 (a final record keeps its roster): the section's roster as it was when the record was first finalised,
    # so removing a student from the section later does not take their absence out of a signed record (a draft
    # follows the roster as it is). Records final before this version keep the roster of now (of a removed
    # section: its size at the start, as before).
    """
    CREATE TABLE session_roster (
        session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        student_id  TEXT NOT NULL,
        name        TEXT NOT NULL,
        PRIMARY KEY (session_id, student_id)
    ) WITHOUT ROWID;
    CREATE INDEX session_roster_student ON session_roster(student_id);
    ALTER TABLE sessions ADD COLUMN roster_frozen INTEGER NOT NULL DEFAULT 0;
    INSERT INTO session_roster(session_id, student_id, name)
        SELECT s.id, st.student_id, st.name FROM sessions s JOIN students st ON st.section = s.section
        WHERE s.record = 'final';
    UPDATE sessions SET roster_frozen = 1 WHERE record = 'final' AND section IN (SELECT name FROM sections);
    """,
]


SCHEMA_VERSION = len(MIGRATIONS)
