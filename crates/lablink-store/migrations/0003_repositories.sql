-- dbt projects and their GitLab repository connections. A connection row is kept after
-- disconnecting (status 'disconnected') so runs keep pointing at the repository they ran on.
-- Every secret column is sealed with its row's identity as associated data:
-- `repositories.<column>:<id>` (see crypto.rs).

CREATE TABLE projects (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    -- The dbt project's directory inside the repository; '' is the repository root.
    subdirectory TEXT NOT NULL DEFAULT '',
    -- The branch CI targets; NULL means the repository's default branch.
    target_branch TEXT NULL,
    -- The currently connected repository (NULL when none).
    repository_id TEXT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE repositories (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    project_id TEXT NOT NULL REFERENCES projects (id),
    gitlab_instance_url TEXT NOT NULL,
    gitlab_project_id BIGINT NOT NULL,
    path_with_namespace TEXT NOT NULL,
    default_branch TEXT NOT NULL,
    http_url_to_repo TEXT NOT NULL,
    web_url TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('connecting', 'connected', 'disconnected', 'failed')),
    hook_id BIGINT NULL,
    hook_secret BYTEA NULL,
    hook_secret_previous BYTEA NULL,
    hook_secret_grace_until BIGINT NULL,
    signing_token BYTEA NULL,
    project_token_id BIGINT NULL,
    project_token BYTEA NULL,
    project_token_expires_on TEXT NULL,
    project_token_user_id BIGINT NULL,
    project_token_username TEXT NULL,
    status_reporting BOOLEAN NOT NULL DEFAULT FALSE,
    status_warning TEXT NULL,
    deploy_token_id BIGINT NULL,
    deploy_token_username TEXT NULL,
    deploy_token BYTEA NULL,
    deploy_key_id BIGINT NULL,
    deploy_key_public TEXT NULL,
    deploy_key_private BYTEA NULL,
    deploy_key_fingerprint TEXT NULL,
    connected_by TEXT NULL,
    connected_at BIGINT NULL,
    disconnected_at BIGINT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- At most one live connection per project.
CREATE UNIQUE INDEX repositories_one_live_per_project ON repositories (project_id)
    WHERE status IN ('connected', 'connecting');
CREATE INDEX repositories_account ON repositories (account_id);
CREATE INDEX repositories_gitlab_project ON repositories (gitlab_instance_url, gitlab_project_id);

-- The per-user cache of the import list (the GitLab projects a user could connect), filled by a
-- background job page by page. `complete` turns true when the last page was stored.
CREATE TABLE gitlab_project_lists (
    user_id TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    complete BOOLEAN NOT NULL,
    loaded BIGINT NOT NULL,
    error TEXT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NULL
);

CREATE TABLE gitlab_project_list_items (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    generation BIGINT NOT NULL,
    gitlab_project_id BIGINT NOT NULL,
    path_with_namespace TEXT NOT NULL,
    -- Lower-cased path, for search.
    search_key TEXT NOT NULL,
    default_branch TEXT NULL,
    visibility TEXT NULL,
    web_url TEXT NOT NULL,
    http_url_to_repo TEXT NOT NULL,
    -- The user's effective access level (members/all); NULL until checked.
    access_level BIGINT NULL,
    PRIMARY KEY (user_id, generation, gitlab_project_id)
);
