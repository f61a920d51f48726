-- A buyer's orders are found through the unique (buyer_id, idempotency_key) index: a second
-- index led by a random buyer id cost every new order a write to a random page.
DROP INDEX IF EXISTS orders_by_buyer;

-- Order lines and reservations are read and written by their primary key only: stored in that
-- key's order (WITHOUT ROWID) they keep the key once instead of in the table and an index.
CREATE TABLE order_items_by_key (
    order_id         TEXT    NOT NULL REFERENCES orders (id),
    line             INTEGER NOT NULL,
    product_id       TEXT    NOT NULL,
    product_name     TEXT    NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 99),
    image_url        TEXT,
    PRIMARY KEY (order_id, line)
) WITHOUT ROWID;
INSERT INTO order_items_by_key
SELECT order_id, line, product_id, product_name, unit_price_cents, quantity, image_url
FROM order_items;
DROP TABLE order_items;
ALTER TABLE order_items_by_key RENAME TO order_items;

CREATE TABLE stock_reservations_by_key (
    order_id   TEXT    NOT NULL,
    product_id TEXT    NOT NULL REFERENCES stock_items (product_id),
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    status     TEXT    NOT NULL CHECK (status IN ('Held', 'Deducted', 'Released')),
    created_at INTEGER NOT NULL,
    ended_at   INTEGER,
    PRIMARY KEY (order_id, product_id)
) WITHOUT ROWID;
INSERT INTO stock_reservations_by_key
SELECT order_id, product_id, quantity, status, created_at, ended_at FROM stock_reservations;
DROP TABLE stock_reservations;
ALTER TABLE stock_reservations_by_key RENAME TO stock_reservations;
