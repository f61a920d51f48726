-- See the SQLite migration.
DROP INDEX ordering.orders_by_created;
CREATE INDEX orders_by_created ON ordering.orders (created_at, id);
DROP INDEX ordering.orders_by_status;
CREATE INDEX orders_by_status ON ordering.orders (status, created_at, id);
