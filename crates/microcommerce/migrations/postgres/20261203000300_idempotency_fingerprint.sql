-- What the request behind an Idempotency-Key asked for (a SHA-256 of the parsed checkout), so
-- that the key reused for a different request is refused instead of answered with this order.
-- Orders placed before it have none and are taken as the same request.
ALTER TABLE ordering.orders ADD COLUMN idempotency_fingerprint TEXT;
