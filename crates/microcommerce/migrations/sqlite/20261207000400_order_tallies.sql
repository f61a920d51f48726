-- Counts kept current, so that the dashboard (orders and revenue by status, orders placed per
-- minute and today, failure reasons) costs the same at a million orders as at ten. Every
-- order placed and every change of its status or failure reason leaves a pending row, written
-- by these triggers in the same transaction as the change; the service folds pending rows into
-- the tallies every second (`ordering::fold_tallies`), and a reader adds the pending rows not
-- folded yet, so the figures are exact at any moment. A pending row: `orders` orders worth
-- `cents` left `from_status` (NULL: they were placed, in `placed_minute`) for `to_status`,
-- their failure reason going from `from_reason` to `to_reason`. Orders are never deleted.
CREATE TABLE order_moves_pending (
    id            INTEGER PRIMARY KEY,
    placed_minute INTEGER,
    from_status   TEXT,
    to_status     TEXT    NOT NULL,
    from_reason   TEXT,
    to_reason     TEXT,
    orders        INTEGER NOT NULL,
    cents         INTEGER NOT NULL
);

-- Orders and their totals per status.
CREATE TABLE order_status_tally (
    status TEXT    PRIMARY KEY,
    orders INTEGER NOT NULL,
    cents  INTEGER NOT NULL
) WITHOUT ROWID;

-- Orders placed per minute (minutes since the epoch).
CREATE TABLE order_placed_tally (
    minute INTEGER PRIMARY KEY,
    orders INTEGER NOT NULL
);

-- Failed orders per failure reason ('' for none given).
CREATE TABLE order_failure_tally (
    reason TEXT    PRIMARY KEY,
    orders INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER orders_placed_tallied AFTER INSERT ON orders BEGIN
    INSERT INTO order_moves_pending
        (placed_minute, from_status, to_status, from_reason, to_reason, orders, cents)
    VALUES (NEW.created_at / 60000000, NULL, NEW.status, NULL, NEW.failure_reason, 1,
            NEW.total_cents);
END;

CREATE TRIGGER orders_moved_tallied AFTER UPDATE OF status, failure_reason ON orders
WHEN OLD.status IS NOT NEW.status OR OLD.failure_reason IS NOT NEW.failure_reason BEGIN
    INSERT INTO order_moves_pending
        (placed_minute, from_status, to_status, from_reason, to_reason, orders, cents)
    VALUES (NULL, OLD.status, NEW.status, OLD.failure_reason, NEW.failure_reason, 1,
            NEW.total_cents);
END;

INSERT INTO order_status_tally (status, orders, cents)
SELECT status, COUNT(*), COALESCE(SUM(total_cents), 0) FROM orders GROUP BY status;

INSERT INTO order_placed_tally (minute, orders)
SELECT created_at / 60000000, COUNT(*) FROM orders GROUP BY created_at / 60000000;

INSERT INTO order_failure_tally (reason, orders)
SELECT COALESCE(failure_reason, ''), COUNT(*) FROM orders WHERE status = 'Failed'
GROUP BY COALESCE(failure_reason, '');
