-- Where an account's webhook deliveries may come from. With `webhook_sources_enabled`, a delivery
-- whose address is outside `webhook_sources` (normalised CIDR ranges, one per line) is refused;
-- each refusal is counted per repository and address for the doctor's report (pruned with
-- handled deliveries, which have no foreign key either).
ALTER TABLE ip_restriction_sets ADD COLUMN webhook_sources_enabled BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE ip_restriction_sets ADD COLUMN webhook_sources TEXT NOT NULL DEFAULT '';

CREATE TABLE webhook_refusals (
    repository_id TEXT NOT NULL,
    address TEXT NOT NULL,
    refusals BIGINT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    PRIMARY KEY (repository_id, address)
);
