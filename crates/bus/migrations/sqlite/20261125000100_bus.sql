-- Messages waiting for one consumer each: the outbox and the queue are one table, because a
-- publish is a row per subscribed consumer written in the publisher's own transaction.
CREATE TABLE bus_queue (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id     TEXT    NOT NULL,
    consumer       TEXT    NOT NULL,
    message_type   TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    causation_id   TEXT,
    headers        TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    available_at   INTEGER NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT,
    UNIQUE (message_id, consumer)
);
CREATE INDEX bus_queue_due ON bus_queue (available_at, id);
CREATE INDEX bus_queue_correlation ON bus_queue (consumer, correlation_id, id);

-- Messages each consumer has completed: a redelivered or re-published message id is skipped.
CREATE TABLE bus_inbox (
    consumer     TEXT    NOT NULL,
    message_id   TEXT    NOT NULL,
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, message_id)
) WITHOUT ROWID;
CREATE INDEX bus_inbox_age ON bus_inbox (processed_at);

-- Messages that exhausted their attempts or failed permanently, kept until retried or purged.
CREATE TABLE bus_dead_letters (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id     TEXT    NOT NULL,
    consumer       TEXT    NOT NULL,
    message_type   TEXT    NOT NULL,
    correlation_id TEXT    NOT NULL,
    causation_id   TEXT,
    headers        TEXT    NOT NULL,
    payload        TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    attempts       INTEGER NOT NULL,
    error          TEXT    NOT NULL,
    failed_at      INTEGER NOT NULL,
    UNIQUE (message_id, consumer)
);
