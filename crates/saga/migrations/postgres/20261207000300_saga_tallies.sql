-- Counts kept current (see the SQLite migration for what they count). Here many transactions
-- write at once, and a tally row updated by each would make every checkout wait for the one
-- before it; so the triggers leave pending rows instead, once per statement (a batch of
-- transitions written together adds a few rows), and the service folds them into the tallies
-- every second (`saga::fold_tallies`). Readers add the tallies and the pending rows not folded
-- yet. A pending row: `from_state` left (NULL: the start), `to_state` reached (NULL: the
-- instance was pruned), by `event` (NULL when pruned) in `minute`.
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
