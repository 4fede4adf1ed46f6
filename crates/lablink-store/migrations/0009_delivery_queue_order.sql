-- Processors claim the oldest received deliveries that are not leased. The queue index led with
-- `locked_until`, which every unclaimed delivery has at 0, so finding the oldest meant reading and
-- sorting the whole backlog on every claim (a quarter of a second per claim on PostgreSQL with
-- 250,000 waiting). In claim order, a claim reads only the deliveries it takes and the few leased
-- ones ahead of them; `locked_until` is in the index so that leased ones are skipped without
-- reading their rows.
DROP INDEX webhook_deliveries_queue;
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (received_at, id, locked_until)
    WHERE status = 'received';
