-- The console finds a buyer's orders by their email, newest first.
CREATE INDEX orders_by_email ON ordering.orders (buyer_email, created_at);
