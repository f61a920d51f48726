-- A buyer's orders are found through the unique (buyer_id, idempotency_key) index: a second
-- index led by a random buyer id cost every new order a write to a random page.
DROP INDEX IF EXISTS ordering.orders_by_buyer;
