-- dbt commands run from a workspace's command box, against the user's development schema. One
-- at a time per workspace (the partial unique index); the replica running one appends its output
-- and beats `heartbeat_at`, so a command whose replica died is seen as lost, never as running
-- forever. Removed with the workspace.
CREATE TABLE workspace_commands (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    -- The command line as typed (parsed and checked before it is stored).
    command TEXT NOT NULL,
    -- The CI job whose warehouse settings the command used.
    job_id BIGINT NOT NULL,
    schema_name TEXT NOT NULL,
    -- running, succeeded, failed, cancelled, timed_out, stopped, lost
    state TEXT NOT NULL,
    -- Why it did not succeed, in words (empty otherwise).
    reason TEXT NOT NULL DEFAULT '',
    output TEXT NOT NULL DEFAULT '',
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE UNIQUE INDEX workspace_commands_one_running ON workspace_commands (workspace_id)
    WHERE finished_at IS NULL;
CREATE INDEX workspace_commands_latest ON workspace_commands (workspace_id, started_at);

-- What dbt wrote to its target path (manifest.json, run_results.json, compiled and run SQL), kept
-- for the workspace's latest finished command so any replica shows it.
CREATE TABLE workspace_command_files (
    command_id TEXT NOT NULL REFERENCES workspace_commands (id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    content BYTEA NOT NULL,
    PRIMARY KEY (command_id, path)
);
