-- One row per saga instance. Finished instances stay as tombstones (completed_at set) so that
-- a late duplicate start cannot create the instance again.
CREATE TABLE saga_instances (
    saga           TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    data           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    completed_at   INTEGER,
    ignored_events INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (saga, correlation_id)
);
CREATE INDEX saga_instances_by_state ON saga_instances (saga, state, updated_at);

-- What happened to each instance, one row per applied event.
CREATE TABLE saga_timeline (
    saga           TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    at             INTEGER NOT NULL,
    event          TEXT    NOT NULL,
    message_id     TEXT    NOT NULL,
    from_state     TEXT,
    to_state       TEXT    NOT NULL,
    messages_sent  TEXT    NOT NULL,
    PRIMARY KEY (saga, correlation_id, seq)
);

-- Events that arrived before the instance could accept them, re-offered after each transition.
CREATE TABLE saga_parked (
    saga           TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    message_id     TEXT    NOT NULL,
    message_type   TEXT    NOT NULL,
    causation_id   TEXT,
    headers        TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    parked_at      INTEGER NOT NULL,
    PRIMARY KEY (saga, correlation_id, message_id)
);
