-- Counts kept current, so that the census (instances per state, moves per minute) costs the
-- same at a million instances as at ten. Every timeline row (one per transition) and every
-- pruned instance leaves a pending row, written by these triggers in the same transaction as
-- the change itself; the service folds pending rows into the tallies every second
-- (`saga::fold_tallies`), and a reader adds the pending rows not folded yet, so counts are
-- exact at any moment. A pending row: `from_state` left (NULL: the start), `to_state` reached
-- (NULL: the instance was pruned), by `event` (NULL when pruned) in `minute`.
CREATE TABLE saga_moves_pending (
    id         INTEGER PRIMARY KEY,
    saga       TEXT    NOT NULL,
    minute     INTEGER NOT NULL,
    from_state TEXT,
    event      TEXT,
    to_state   TEXT,
    n          INTEGER NOT NULL
);

-- Instances per state, kept until they are pruned.
CREATE TABLE saga_state_tally (
    saga      TEXT    NOT NULL,
    state     TEXT    NOT NULL,
    instances INTEGER NOT NULL,
    PRIMARY KEY (saga, state)
) WITHOUT ROWID;

-- Moves taken per minute (minutes since the epoch; `from_state` '' for the start), kept for a
-- day.
CREATE TABLE saga_move_tally (
    saga       TEXT    NOT NULL,
    minute     INTEGER NOT NULL,
    from_state TEXT    NOT NULL,
    event      TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    moves      INTEGER NOT NULL,
    PRIMARY KEY (saga, minute, from_state, event, to_state)
) WITHOUT ROWID;

CREATE TRIGGER saga_timeline_tallied AFTER INSERT ON saga_timeline BEGIN
    INSERT INTO saga_moves_pending (saga, minute, from_state, event, to_state, n)
    VALUES (NEW.saga, NEW.at / 60000000, NEW.from_state, NEW.event, NEW.to_state, 1);
END;

CREATE TRIGGER saga_instances_pruned_tallied AFTER DELETE ON saga_instances BEGIN
    INSERT INTO saga_moves_pending (saga, minute, from_state, event, to_state, n)
    VALUES (OLD.saga, OLD.updated_at / 60000000, OLD.state, NULL, NULL, 1);
END;

INSERT INTO saga_state_tally (saga, state, instances)
SELECT saga, state, COUNT(*) FROM saga_instances GROUP BY saga, state;

INSERT INTO saga_move_tally (saga, minute, from_state, event, to_state, moves)
SELECT saga, at / 60000000, COALESCE(from_state, ''), event, to_state, COUNT(*)
FROM saga_timeline
WHERE at >= (CAST(strftime('%s', 'now') AS INTEGER) - 86400) * 1000000
GROUP BY saga, at / 60000000, COALESCE(from_state, ''), event, to_state;
