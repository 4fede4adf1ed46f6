-- The account's own GitLab OAuth application, OAuth `state` records of flows in progress, and the
-- GitLab accounts users linked. Secrets are sealed with the row's identity as associated data
-- (see crypto.rs); nothing here holds a plain token or secret.

-- One row per account that registered its own application (enterprise plans). Accounts without a
-- row use the operator's application for gitlab.com.
CREATE TABLE gitlab_integrations (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL UNIQUE REFERENCES accounts(id) ON DELETE CASCADE,
    instance_url TEXT NOT NULL,
    application_id TEXT NOT NULL,
    -- AAD `gitlab_integrations.secret:<id>`
    secret_enc BYTEA NOT NULL,
    ca_bundle_pem TEXT,
    -- `pending_authorization` until the admin came back from GitLab, then `ready`.
    status TEXT NOT NULL,
    saved_by TEXT NOT NULL,
    saved_at BIGINT NOT NULL,
    ready_at BIGINT
);

-- An authorization in progress. Only the SHA-256 of `state` is stored; the browser holds the
-- value, and the session id binds it to that browser.
CREATE TABLE gitlab_oauth_states (
    id TEXT PRIMARY KEY,
    state_hash TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- `link` or `admin_authorize`
    purpose TEXT NOT NULL,
    -- The application the authorize URL was made for, so the callback exchanges the code with it.
    instance_url TEXT NOT NULL,
    application_id TEXT NOT NULL,
    -- AAD `gitlab_oauth_states.verifier:<id>`
    verifier_enc BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    consumed_at BIGINT
);

CREATE INDEX gitlab_oauth_states_expires ON gitlab_oauth_states (expires_at);

-- A user's linked GitLab account. `token_version` increases with every stored token pair and is
-- the compare-and-swap guard of the refresh; the lease columns make one replica the refresher.
CREATE TABLE gitlab_links (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    instance_url TEXT NOT NULL,
    application_id TEXT NOT NULL,
    gitlab_user_id BIGINT NOT NULL,
    gitlab_username TEXT NOT NULL,
    -- AAD `gitlab_links.access_token:<id>` and `gitlab_links.refresh_token:<id>`
    access_token_enc BYTEA NOT NULL,
    refresh_token_enc BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    token_version BIGINT NOT NULL,
    refresh_lease_owner TEXT,
    refresh_lease_until BIGINT,
    -- `active` or `dead`
    status TEXT NOT NULL,
    dead_reason TEXT,
    linked_at BIGINT NOT NULL,
    refreshed_at BIGINT
);

CREATE INDEX gitlab_links_account ON gitlab_links (account_id);
