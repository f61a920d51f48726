-- Counts kept current; see the SQLite migration. Here the triggers run once per statement and
-- leave one pending row per distinct change of the statement, so a batch of orders moved
-- together adds a few rows, not one per order.
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
    SELECT created_at / 60000000, NULL, status, NULL, failure_reason, COUNT(*),
           SUM(total_cents)
    FROM added GROUP BY created_at / 60000000, status, failure_reason;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_placed_tallied AFTER INSERT ON ordering.orders
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION ordering.orders_placed_tallied();

CREATE FUNCTION ordering.orders_moved_tallied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ordering.order_moves_pending
        (placed_minute, from_status, to_status, from_reason, to_reason, orders, cents)
    SELECT NULL, o.status, n.status, o.failure_reason, n.failure_reason, COUNT(*),
           SUM(n.total_cents)
    FROM before_rows o JOIN after_rows n ON n.id = o.id
    WHERE o.status IS DISTINCT FROM n.status
       OR o.failure_reason IS DISTINCT FROM n.failure_reason
    GROUP BY o.status, n.status, o.failure_reason, n.failure_reason;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_moved_tallied AFTER UPDATE ON ordering.orders
    REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows FOR EACH STATEMENT
    EXECUTE FUNCTION ordering.orders_moved_tallied();

INSERT INTO ordering.order_status_tally (status, orders, cents)
SELECT status, COUNT(*), COALESCE(SUM(total_cents), 0) FROM ordering.orders GROUP BY status;

INSERT INTO ordering.order_placed_tally (minute, orders)
SELECT created_at / 60000000, COUNT(*) FROM ordering.orders GROUP BY created_at / 60000000;

INSERT INTO ordering.order_failure_tally (reason, orders)
SELECT COALESCE(failure_reason, ''), COUNT(*) FROM ordering.orders WHERE status = 'Failed'
GROUP BY COALESCE(failure_reason, '');
