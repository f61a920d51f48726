-- Counts kept current; see the SQLite migration. Here the triggers run once per statement and
-- leave one pending row per distinct move of the statement, so a batch of transitions written
-- together adds a few rows, not one per transition.
CREATE TABLE messaging.saga_moves_pending (
    id         BIGSERIAL PRIMARY KEY,
    saga       TEXT   NOT NULL,
    minute     BIGINT NOT NULL,
    from_state TEXT,
    event      TEXT,
    to_state   TEXT,
    n          BIGINT NOT NULL
);

CREATE TABLE messaging.saga_state_tally (
    saga      TEXT   NOT NULL,
    state     TEXT   NOT NULL,
    instances BIGINT NOT NULL,
    PRIMARY KEY (saga, state)
);

CREATE TABLE messaging.saga_move_tally (
    saga       TEXT   NOT NULL,
    minute     BIGINT NOT NULL,
    from_state TEXT   NOT NULL,
    event      TEXT   NOT NULL,
    to_state   TEXT   NOT NULL,
    moves      BIGINT NOT NULL,
    PRIMARY KEY (saga, minute, from_state, event, to_state)
);

CREATE FUNCTION messaging.saga_timeline_tallied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO messaging.saga_moves_pending (saga, minute, from_state, event, to_state, n)
    SELECT saga, at / 60000000, from_state, event, to_state, COUNT(*) FROM added
    GROUP BY saga, at / 60000000, from_state, event, to_state;
    RETURN NULL;
END $$;
CREATE TRIGGER saga_timeline_tallied AFTER INSERT ON messaging.saga_timeline
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION messaging.saga_timeline_tallied();

CREATE FUNCTION messaging.saga_instances_pruned_tallied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO messaging.saga_moves_pending (saga, minute, from_state, event, to_state, n)
    SELECT saga, MAX(updated_at) / 60000000, state, NULL, NULL, COUNT(*) FROM removed
    GROUP BY saga, state;
    RETURN NULL;
END $$;
CREATE TRIGGER saga_instances_pruned_tallied AFTER DELETE ON messaging.saga_instances
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
    EXECUTE FUNCTION messaging.saga_instances_pruned_tallied();

INSERT INTO messaging.saga_state_tally (saga, state, instances)
SELECT saga, state, COUNT(*) FROM messaging.saga_instances GROUP BY saga, state;

INSERT INTO messaging.saga_move_tally (saga, minute, from_state, event, to_state, moves)
SELECT saga, at / 60000000, COALESCE(from_state, ''), event, to_state, COUNT(*)
FROM messaging.saga_timeline
WHERE at >= (CAST(EXTRACT(EPOCH FROM now()) AS BIGINT) - 86400) * 1000000
GROUP BY saga, at / 60000000, COALESCE(from_state, ''), event, to_state;
