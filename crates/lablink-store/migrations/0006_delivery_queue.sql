-- A webhook delivery is its own queue item: intake writes one row per delivery (no separate
-- processing job), and processors claim received deliveries in batches with a lease.
-- `locked_until` is the lease while a processor holds the delivery, and the earliest retry time
-- after a failed attempt.
ALTER TABLE webhook_deliveries ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE webhook_deliveries ADD COLUMN locked_by TEXT;
ALTER TABLE webhook_deliveries ADD COLUMN locked_until BIGINT NOT NULL DEFAULT 0;
-- Bodies are stored deflated (`deflate`); older rows stay as received (`identity`).
ALTER TABLE webhook_deliveries ADD COLUMN body_encoding TEXT NOT NULL DEFAULT 'identity';

-- Deliveries whose processing job had given up keep that outcome; the others are taken up by the
-- new queue. The job payload was exactly `{"delivery_id":"<id>"}`.
UPDATE webhook_deliveries SET status = 'failed', note = 'processing gave up',
    processed_at = received_at
WHERE status = 'received' AND EXISTS (
    SELECT 1 FROM jobs j WHERE j.kind = 'ci.process_delivery' AND j.status = 'failed'
      AND j.payload = '{"delivery_id":"' || webhook_deliveries.id || '"}');
DELETE FROM jobs WHERE kind = 'ci.process_delivery';

CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (locked_until, received_at)
    WHERE status = 'received';
