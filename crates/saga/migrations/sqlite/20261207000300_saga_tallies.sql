-- Counts kept current, so that the census (instances per state, moves per minute) costs the
-- same at a million instances as at ten. Every timeline row (one per transition) and every
-- pruned instance updates the tallies through these triggers, in the same transaction as the
-- change itself. SQLite has one writer, so no checkout ever waits for another's tally row; on
-- PostgreSQL, where many write at once, the triggers leave pending rows instead, which the
-- service folds into the tallies (`saga::fold_tallies`). Readers add the tallies and the
-- pending rows, so the same code reads both; here the pending table stays empty.
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

-- Moves taken per minute (minutes since the epoch; `from_state` '' for the start), kept as
-- long as finished instances are.
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
    UPDATE saga_state_tally SET instances = instances - 1
    WHERE saga = NEW.saga AND state = NEW.from_state;
    INSERT INTO saga_state_tally (saga, state, instances) VALUES (NEW.saga, NEW.to_state, 1)
    ON CONFLICT (saga, state) DO UPDATE SET instances = instances + 1;
    INSERT INTO saga_move_tally (saga, minute, from_state, event, to_state, moves)
    VALUES (NEW.saga, NEW.at / 60000000, COALESCE(NEW.from_state, ''), NEW.event,
            NEW.to_state, 1)
    ON CONFLICT (saga, minute, from_state, event, to_state) DO UPDATE SET moves = moves + 1;
END;

CREATE TRIGGER saga_instances_pruned_tallied AFTER DELETE ON saga_instances BEGIN
    UPDATE saga_state_tally SET instances = instances - 1
    WHERE saga = OLD.saga AND state = OLD.state;
END;

INSERT INTO saga_state_tally (saga, state, instances)
SELECT saga, state, COUNT(*) FROM saga_instances GROUP BY saga, state;

INSERT INTO saga_move_tally (saga, minute, from_state, event, to_state, moves)
SELECT saga, at / 60000000, COALESCE(from_state, ''), event, to_state, COUNT(*)
FROM saga_timeline
WHERE at >= (CAST(strftime('%s', 'now') AS INTEGER) - 86400) * 1000000
GROUP BY saga, at / 60000000, COALESCE(from_state, ''), event, to_state;
