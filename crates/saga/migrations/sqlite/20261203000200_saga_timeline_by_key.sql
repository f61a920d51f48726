-- The timeline is written and read by its primary key only: stored in that key's order
-- (WITHOUT ROWID) each row keeps the saga name and the order id once instead of twice.
CREATE TABLE saga_timeline_by_key (
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
) WITHOUT ROWID;
INSERT INTO saga_timeline_by_key
SELECT saga, correlation_id, seq, at, event, message_id, from_state, to_state, messages_sent
FROM saga_timeline;
DROP TABLE saga_timeline;
ALTER TABLE saga_timeline_by_key RENAME TO saga_timeline;
