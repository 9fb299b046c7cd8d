"""Versioned PostgreSQL schema of the hub: MIGRATIONS[i] takes the database from version i to i + 1
(kept in schema_version, applied in one transaction each)."""

MIGRATIONS: list[str] = [
    """
    CREATE TABLE devices (
        device_id     TEXT PRIMARY KEY,
        availability  TEXT,
        bridge        TEXT,
        info          JSONB,
        state         JSONB,
        last_seen     TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    -- One row per (device_id, session_id): the results a box published; replays only count deliveries.
    CREATE TABLE sessions (
        device_id     TEXT NOT NULL,
        session_id    TEXT NOT NULL,
        name          TEXT NOT NULL,
        section       TEXT NOT NULL,
        status        TEXT NOT NULL,
        started_at    TIMESTAMPTZ NOT NULL,
        ended_at      TIMESTAMPTZ,
        present_count INTEGER NOT NULL,
        total         INTEGER NOT NULL,
        payload       JSONB NOT NULL,
        digest        TEXT NOT NULL,
        deliveries    INTEGER NOT NULL DEFAULT 1,
        revisions     INTEGER NOT NULL DEFAULT 0,
        stored_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (device_id, session_id)
    );
    CREATE INDEX sessions_section ON sessions(section, started_at);
    CREATE TABLE attendance (
        device_id   TEXT NOT NULL,
        session_id  TEXT NOT NULL,
        student_id  TEXT NOT NULL,
        name        TEXT NOT NULL,
        present     BOOLEAN NOT NULL,
        seen_s      DOUBLE PRECISION,
        late        BOOLEAN,
        left_early  BOOLEAN,
        arrived_at  TEXT,
        left_at     TEXT,
        PRIMARY KEY (device_id, session_id, student_id),
        FOREIGN KEY (device_id, session_id) REFERENCES sessions ON DELETE CASCADE
    );
    CREATE INDEX attendance_student ON attendance(student_id);
    CREATE TABLE events (
        device_id   TEXT NOT NULL,
        digest      TEXT NOT NULL,
        type        TEXT NOT NULL,
        at          TEXT,
        payload     JSONB NOT NULL,
        received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (device_id, digest)
    );
    CREATE TABLE roster_students (
        id          BIGSERIAL PRIMARY KEY,
        section     TEXT NOT NULL,
        student_id  TEXT NOT NULL,
        name        TEXT NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        UNIQUE (section, student_id)
    );
    CREATE TABLE roster_encodings (
        id          BIGSERIAL PRIMARY KEY,
        student     BIGINT NOT NULL REFERENCES roster_students(id) ON DELETE CASCADE,
        vector      BYTEA NOT NULL,
        source      TEXT NOT NULL
    );
    CREATE TABLE rosters (
        section      TEXT PRIMARY KEY,
        version      INTEGER NOT NULL,
        hash         TEXT NOT NULL,
        published_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    -- sha256 of forgotten student ids: results replayed later are scrubbed at ingest.
    CREATE TABLE forgotten (
        digest      TEXT PRIMARY KEY,
        mode        TEXT NOT NULL,
        at          TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    -- forget_student requests sent to boxes and their answers (re-sent when a box comes back online).
    CREATE TABLE forget_deliveries (
        digest      TEXT NOT NULL,
        device_id   TEXT NOT NULL,
        request     JSONB NOT NULL,
        sent_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
        answered_at TIMESTAMPTZ,
        answer      JSONB,
        PRIMARY KEY (digest, device_id)
    );
    """,
    # 2: a forget limited to one section is remembered too, so a later replay of that section's results is
    # scrubbed (it replaced the scrubbed row and the student's attendance was back); each forget's alias is kept,
    # so a replay scrubs to the stored payload
    """
    ALTER TABLE forgotten ADD COLUMN alias TEXT;
    CREATE TABLE forgotten_in (
        digest      TEXT NOT NULL,
        section     TEXT NOT NULL,
        mode        TEXT NOT NULL,
        alias       TEXT,
        at          TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (digest, section)
    );
    """,
    # 3: a forget applies to what was recorded before it, not to a student given the same id later: every forget
    # is kept with its time (and the section it was limited to, or NULL), and a replay is scrubbed by the first
    # forget after its session started. The two tables above become rows of it.
    """
    CREATE TABLE forgets (
        id          BIGSERIAL PRIMARY KEY,
        digest      TEXT NOT NULL,
        section     TEXT,
        mode        TEXT NOT NULL,
        alias       TEXT NOT NULL,
        at          TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX forgets_digest ON forgets(digest, at);
    INSERT INTO forgets (digest, section, mode, alias, at)
        SELECT digest, NULL, mode, COALESCE(alias, 'forgotten-' || substr(md5(random()::text), 1, 8)), at
        FROM forgotten;
    INSERT INTO forgets (digest, section, mode, alias, at)
        SELECT digest, section, mode, COALESCE(alias, 'forgotten-' || substr(md5(random()::text), 1, 8)), at
        FROM forgotten_in;
    DROP TABLE forgotten;
    DROP TABLE forgotten_in;
    CREATE INDEX events_student ON events ((payload->>'student_id'));
    """,
    # 4: the trust model. Which sections each box teaches (the hub sends a box only those rosters); results of a
    # box for a section it is not assigned are quarantined at insert (kept, listed by `quarantine`, never in a
    # report until released), decided again only if a revision moves the session to another section. The boxes'
    # pairs accepted so far are assigned (review them with `assignments`). Each encoding keeps the SHA-256 of its
    # photo (enrolling the same photo again adds nothing) and its date; each roster its last published message
    # (sent as it is to a box assigned later).
    """
    CREATE TABLE assignments (
        device_id   TEXT NOT NULL,
        section     TEXT NOT NULL,
        assigned_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (device_id, section)
    );
    INSERT INTO assignments (device_id, section) SELECT DISTINCT device_id, section FROM sessions;
    ALTER TABLE sessions ADD COLUMN quarantined BOOLEAN NOT NULL DEFAULT false;
    CREATE INDEX sessions_quarantined ON sessions(device_id) WHERE quarantined;
    CREATE FUNCTION sessions_quarantine() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' OR NEW.section IS DISTINCT FROM OLD.section THEN
            NEW.quarantined := NOT EXISTS (SELECT 1 FROM assignments a
                                           WHERE a.device_id = NEW.device_id AND a.section = NEW.section);
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER sessions_quarantine BEFORE INSERT OR UPDATE ON sessions
        FOR EACH ROW EXECUTE FUNCTION sessions_quarantine();
    ALTER TABLE roster_encodings ADD COLUMN photo_sha256 TEXT,
        ADD COLUMN created_at TIMESTAMPTZ NOT NULL DEFAULT now();
    CREATE UNIQUE INDEX roster_encodings_photo ON roster_encodings(student, photo_sha256);
    ALTER TABLE rosters ADD COLUMN message BYTEA;
    """,
    # 5: the record (issue 20). Each student's effective status (a teacher's correction applied), what recognition
    # saw and whether it was corrected; each session's record (live/draft/final) and revision, which orders
    # revisions of one session (a correction re-published late must not replace a newer one). Rows stored before
    # come from boxes without the record: the status follows from their facts as a box derives it (late wins over
    # left early), and their sessions are final (no one will finalise them; a box marks its own so on upgrade).
    # Payloads that carry the record already (stored by a hub of the record's first days) give their own.
    """
    ALTER TABLE attendance ADD COLUMN status TEXT, ADD COLUMN recognised_status TEXT,
        ADD COLUMN corrected BOOLEAN NOT NULL DEFAULT false;
    UPDATE attendance SET status = CASE WHEN NOT present THEN 'absent' WHEN late THEN 'late'
                                        WHEN left_early THEN 'left_early' ELSE 'present' END;
    UPDATE attendance SET recognised_status = status;
    UPDATE attendance a SET status = e->>'status', recognised_status = COALESCE(e->>'recognised_status', e->>'status'),
                            corrected = COALESCE(e->>'corrected' = 'true', false)
        FROM sessions s, jsonb_array_elements((s.payload->'present') || (s.payload->'absent')) e
        WHERE a.device_id = s.device_id AND a.session_id = s.session_id AND e->>'student_id' = a.student_id
          AND e->>'status' IN ('present', 'late', 'left_early', 'excused', 'absent');
    ALTER TABLE attendance ALTER COLUMN status SET NOT NULL, ALTER COLUMN recognised_status SET NOT NULL;
    ALTER TABLE sessions ADD COLUMN record TEXT NOT NULL DEFAULT 'final',
        ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    UPDATE sessions SET record = payload->>'record' WHERE payload->>'record' IN ('live', 'draft', 'final');
    UPDATE sessions SET revision = (payload->>'revision')::integer
        WHERE jsonb_typeof(payload->'revision') = 'number' AND payload->>'revision' ~ '^[0-9]{1,9}$';
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
