-- Where each order was placed from (the client's address as the limits count clients), so that
-- the checkouts one address holds unpaid can be counted (`--max-unpaid-per-address`).
ALTER TABLE ordering.orders ADD COLUMN placed_from TEXT;
-- Only unpaid orders are in these indexes (the statuses are the checkout's up to and including
-- the one that awaits payment; a unit test holds them to the declaration): counting what one
-- buyer or one address holds unpaid reads a few entries, however many orders they placed.
CREATE INDEX orders_unpaid_by_buyer ON ordering.orders (buyer_id, created_at)
    WHERE status IN ('Submitted', 'StockReserved');
CREATE INDEX orders_unpaid_by_address ON ordering.orders (placed_from, created_at)
    WHERE status IN ('Submitted', 'StockReserved');
