-- See the SQLite migration.
ALTER TABLE messaging.saga_instances ADD COLUMN has_parked INTEGER NOT NULL DEFAULT 0;
UPDATE messaging.saga_instances i SET has_parked = 1
WHERE EXISTS (SELECT 1 FROM messaging.saga_parked p
              WHERE p.saga = i.saga AND p.correlation_id = i.correlation_id);
