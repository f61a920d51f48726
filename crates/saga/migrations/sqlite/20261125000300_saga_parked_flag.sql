-- Set once an event has been parked for an existing instance (or left parked at its creation),
-- so that transitions of the many instances that never park skip looking for parked events.
ALTER TABLE saga_instances ADD COLUMN has_parked INTEGER NOT NULL DEFAULT 0;
UPDATE saga_instances SET has_parked = 1
WHERE EXISTS (SELECT 1 FROM saga_parked p
              WHERE p.saga = saga_instances.saga AND p.correlation_id = saga_instances.correlation_id);
