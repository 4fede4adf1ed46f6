-- A user's workspace of a project: the branch they work on, the commit it is at, and (in
-- workspace_changes) every file they saved but did not commit yet. The database holds the
-- workspace; each replica's checkout is a copy it rebuilds when `version` moved on.
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    repository_id TEXT NOT NULL,
    branch TEXT NOT NULL,
    head_sha TEXT NOT NULL,
    -- While a merge of the default branch waits for its conflicts to be resolved: the commit
    -- being merged (the next commit has it as second parent).
    merging_sha TEXT,
    version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT NOT NULL,
    UNIQUE (project_id, user_id)
);

CREATE TABLE workspace_changes (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    -- The file's saved content; NULL when the file was deleted.
    content BYTEA,
    saved_at BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, path)
);
