-- Saga instances live next to the bus in the `messaging` schema; see the SQLite migration.
CREATE SCHEMA IF NOT EXISTS messaging;

CREATE TABLE messaging.saga_instances (
    saga           TEXT   NOT NULL,
    correlation_id TEXT   NOT NULL,
    state          TEXT   NOT NULL,
    data           TEXT   NOT NULL,
    version        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    completed_at   BIGINT,
    ignored_events BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (saga, correlation_id)
);
CREATE INDEX saga_instances_by_state ON messaging.saga_instances (saga, state, updated_at);

CREATE TABLE messaging.saga_timeline (
    saga           TEXT   NOT NULL,
    correlation_id TEXT   NOT NULL,
    seq            BIGINT NOT NULL,
    at             BIGINT NOT NULL,
    event          TEXT   NOT NULL,
    message_id     TEXT   NOT NULL,
    from_state     TEXT,
    to_state       TEXT   NOT NULL,
    messages_sent  TEXT   NOT NULL,
    PRIMARY KEY (saga, correlation_id, seq)
);

CREATE TABLE messaging.saga_parked (
    saga           TEXT   NOT NULL,
    correlation_id TEXT   NOT NULL,
    message_id     TEXT   NOT NULL,
    message_type   TEXT   NOT NULL,
    causation_id   TEXT,
    headers        TEXT   NOT NULL,
    payload        TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    parked_at      BIGINT NOT NULL,
    PRIMARY KEY (saga, correlation_id, message_id)
);
