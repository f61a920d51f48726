-- The bus lives in the `messaging` schema; see the SQLite migration for what each table is for.
CREATE SCHEMA IF NOT EXISTS messaging;

CREATE TABLE messaging.bus_queue (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id     TEXT   NOT NULL,
    consumer       TEXT   NOT NULL,
    message_type   TEXT   NOT NULL,
    correlation_id TEXT   NOT NULL,
    causation_id   TEXT,
    headers        TEXT   NOT NULL,
    payload        TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    available_at   BIGINT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    last_error     TEXT,
    UNIQUE (message_id, consumer)
);
CREATE INDEX bus_queue_due ON messaging.bus_queue (available_at, id);
CREATE INDEX bus_queue_correlation ON messaging.bus_queue (consumer, correlation_id, id);

CREATE TABLE messaging.bus_inbox (
    consumer     TEXT   NOT NULL,
    message_id   TEXT   NOT NULL,
    processed_at BIGINT NOT NULL,
    PRIMARY KEY (consumer, message_id)
);
CREATE INDEX bus_inbox_age ON messaging.bus_inbox (processed_at);

CREATE TABLE messaging.bus_dead_letters (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id     TEXT   NOT NULL,
    consumer       TEXT   NOT NULL,
    message_type   TEXT   NOT NULL,
    correlation_id TEXT   NOT NULL,
    causation_id   TEXT,
    headers        TEXT   NOT NULL,
    payload        TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    attempts       BIGINT NOT NULL,
    error          TEXT   NOT NULL,
    failed_at      BIGINT NOT NULL,
    UNIQUE (message_id, consumer)
);
