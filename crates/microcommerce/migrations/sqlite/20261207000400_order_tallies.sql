-- Counts kept current, so that the dashboard (orders and revenue by status, orders placed per
-- minute and today, failure reasons) costs the same at a million orders as at ten. Every
-- order placed and every change of its status or failure reason updates the tallies through
-- these triggers, in the same transaction as the change. SQLite has one writer, so no checkout
-- ever waits for another's tally row; on PostgreSQL, where many write at once, the triggers
-- leave pending rows instead, which the service folds into the tallies
-- (`ordering::fold_tallies`). Readers add the tallies and the pending rows, so the same code
-- reads both; here the pending table stays empty. Orders are never deleted.
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

-- Each trigger fires only when it has something to count (its WHEN is checked before any
-- statement runs): a failure reason is counted only for orders that fail.
CREATE TRIGGER orders_placed_tallied AFTER INSERT ON orders BEGIN
    INSERT INTO order_status_tally (status, orders, cents) VALUES (NEW.status, 1, NEW.total_cents)
    ON CONFLICT (status) DO UPDATE SET orders = orders + 1, cents = cents + excluded.cents;
    INSERT INTO order_placed_tally (minute, orders) VALUES (NEW.created_at / 60000000, 1)
    ON CONFLICT (minute) DO UPDATE SET orders = orders + 1;
END;

CREATE TRIGGER orders_placed_failed_tallied AFTER INSERT ON orders
WHEN NEW.status = 'Failed' BEGIN
    INSERT INTO order_failure_tally (reason, orders)
    VALUES (COALESCE(NEW.failure_reason, ''), 1)
    ON CONFLICT (reason) DO UPDATE SET orders = orders + 1;
END;

CREATE TRIGGER orders_moved_tallied AFTER UPDATE OF status ON orders
WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE order_status_tally SET orders = orders - 1, cents = cents - OLD.total_cents
    WHERE status = OLD.status;
    INSERT INTO order_status_tally (status, orders, cents) VALUES (NEW.status, 1, NEW.total_cents)
    ON CONFLICT (status) DO UPDATE SET orders = orders + 1, cents = cents + excluded.cents;
END;

CREATE TRIGGER orders_failure_tallied AFTER UPDATE OF status, failure_reason ON orders
WHEN (OLD.status = 'Failed' OR NEW.status = 'Failed')
 AND (OLD.status IS NOT NEW.status OR OLD.failure_reason IS NOT NEW.failure_reason) BEGIN
    UPDATE order_failure_tally SET orders = orders - 1
    WHERE OLD.status = 'Failed' AND reason = COALESCE(OLD.failure_reason, '');
    INSERT INTO order_failure_tally (reason, orders)
    SELECT COALESCE(NEW.failure_reason, ''), 1 WHERE NEW.status = 'Failed'
    ON CONFLICT (reason) DO UPDATE SET orders = orders + 1;
END;

INSERT INTO order_status_tally (status, orders, cents)
SELECT status, COUNT(*), COALESCE(SUM(total_cents), 0) FROM orders GROUP BY status;

INSERT INTO order_placed_tally (minute, orders)
SELECT created_at / 60000000, COUNT(*) FROM orders GROUP BY created_at / 60000000;

INSERT INTO order_failure_tally (reason, orders)
SELECT COALESCE(failure_reason, ''), COUNT(*) FROM orders WHERE status = 'Failed'
GROUP BY COALESCE(failure_reason, '');
