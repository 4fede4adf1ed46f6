-- The audit trail: what each entry acted on, from which browser or client, and how it ended.
ALTER TABLE audit_log ADD COLUMN target TEXT;
ALTER TABLE audit_log ADD COLUMN user_agent TEXT;
-- success | failure | denied
ALTER TABLE audit_log ADD COLUMN outcome TEXT NOT NULL DEFAULT 'success';
UPDATE audit_log SET outcome = 'failure' WHERE action = 'login.failed';
CREATE INDEX audit_log_account_action ON audit_log (account_id, action, created_at);
