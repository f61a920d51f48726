-- Counts kept current (see the SQLite migration for what they count). Here many transactions
-- write at once, and a tally row updated by each would make every checkout wait for the one
-- before it; so the triggers leave pending rows instead, and the service folds them into the
-- tallies every second (`ordering::fold_tallies`). Readers add the tallies and the pending rows
-- not folded yet. A pending row: `orders` orders worth `cents` left `from_status` (NULL: they
-- were placed, in `placed_minute`) for `to_status`, their failure reason going from
-- `from_reason` to `to_reason`. The triggers run per row, and the one on updates only when the
-- status or the reason changes (checked before any function is called): orders are placed one
-- per statement, and an update's transition tables would be captured for every statement.
CREATE TABLE ordering.order_moves_pending (
    id            BIGSERIAL PRIMARY KEY,
    placed_minute BIGINT,
    from_status   TEXT,
    to_status     TEXT   NOT NULL,
    from_reason   TEXT,
    to_reason     TEXT,
    orders        BIGINT NOT NULL,
    cents         BIGINT NOT NULL
);

CREATE TABLE ordering.order_status_tally (
    status TEXT   PRIMARY KEY,
    orders BIGINT NOT NULL,
    cents  BIGINT NOT NULL
);

CREATE TABLE ordering.order_placed_tally (
    minute BIGINT PRIMARY KEY,
    orders BIGINT NOT NULL
);

CREATE TABLE ordering.order_failure_tally (
    reason TEXT   PRIMARY KEY,
    orders BIGINT NOT NULL
);

CREATE FUNCTION ordering.orders_placed_tallied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ordering.order_moves_pending
        (placed_minute, from_status, to_status, from_reason, to_reason, orders, cents)
    VALUES (NEW.created_at / 60000000, NULL, NEW.status, NULL, NEW.failure_reason, 1,
            NEW.total_cents);
    RETURN NULL;
END $$;
CREATE TRIGGER orders_placed_tallied AFTER INSERT ON ordering.orders
    FOR EACH ROW EXECUTE FUNCTION ordering.orders_placed_tallied();

CREATE FUNCTION ordering.orders_moved_tallied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ordering.order_moves_pending
        (placed_minute, from_status, to_status, from_reason, to_reason, orders, cents)
    VALUES (NULL, OLD.status, NEW.status, OLD.failure_reason, NEW.failure_reason, 1,
            NEW.total_cents);
    RETURN NULL;
END $$;
CREATE TRIGGER orders_moved_tallied AFTER UPDATE OF status, failure_reason ON ordering.orders
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.failure_reason IS DISTINCT FROM NEW.failure_reason)
    EXECUTE FUNCTION ordering.orders_moved_tallied();

INSERT INTO ordering.order_status_tally (status, orders, cents)
SELECT status, COUNT(*), COALESCE(SUM(total_cents), 0) FROM ordering.orders GROUP BY status;

INSERT INTO ordering.order_placed_tally (minute, orders)
SELECT created_at / 60000000, COUNT(*) FROM ordering.orders GROUP BY created_at / 60000000;

INSERT INTO ordering.order_failure_tally (reason, orders)
SELECT COALESCE(failure_reason, ''), COUNT(*) FROM ordering.orders WHERE status = 'Failed'
GROUP BY COALESCE(failure_reason, '');
