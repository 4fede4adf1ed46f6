-- IP restrictions: an account's allow and deny rules, and whether they are enforced. `version`
-- grows with every change, so each replica reloads an account's rules when it sees a new one.
CREATE TABLE ip_rules (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    -- allow | deny
    kind TEXT NOT NULL,
    -- Normalised CIDR ranges, one per line.
    ranges TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE ip_restriction_sets (
    account_id TEXT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    enabled BOOLEAN NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
