-- CI: webhook deliveries, CI jobs, runs (steps, logs, artifacts) and the commit status outbox.
-- Repository and project ids refer to 0003's tables; no foreign keys to them so that a
-- disconnected repository's history (deliveries, runs) stays readable.

-- One row per accepted delivery, deduplicated per repository. The raw body is kept as received
-- (GitLab's max is 25 MiB) and parsed only by the processing job.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    repository_id TEXT NOT NULL,
    delivery_key TEXT NOT NULL,
    event TEXT,
    body BYTEA NOT NULL,
    received_at BIGINT NOT NULL,
    -- `received`, then `processed` or `ignored` (with `note` saying why)
    status TEXT NOT NULL,
    note TEXT,
    processed_at BIGINT,
    UNIQUE (repository_id, delivery_key)
);

-- A CI job of a dbt project. The id is a small integer because it is part of the CI schema name
-- `lablink_pr_<job_id>_<mr_iid>`; the application assigns MAX(id) + 1.
CREATE TABLE ci_jobs (
    id BIGINT PRIMARY KEY,
    account_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    -- `ci` (merge requests) or `merge` (pushes to the default branch)
    kind TEXT NOT NULL,
    -- JSON array of dbt command lines; empty means the default CI command
    commands TEXT NOT NULL,
    -- NULL: the project's target branch, else the repository's default branch
    target_branch_filter TEXT,
    run_on_draft BOOLEAN NOT NULL,
    enabled BOOLEAN NOT NULL,
    timeout_secs BIGINT NOT NULL,
    -- JSON object of variable names to values, sealed; AAD `ci_jobs.env:<id>`
    env_enc BYTEA,
    -- JSON of the warehouse's non-secret settings (`{"type":"duckdb","path":...}`)
    warehouse TEXT NOT NULL,
    -- The warehouse password when the adapter needs one; AAD `ci_jobs.warehouse_secret:<id>`
    warehouse_secret_enc BYTEA,
    mr_note BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

-- One run of a job at a commit; a commit runs at most once per job. Workers claim queued runs
-- with a lease (`locked_until`, renewed while the run is alive); `cancel_requested` is how any
-- replica asks the one holding the run to kill it.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    ci_job_id BIGINT NOT NULL REFERENCES ci_jobs (id) ON DELETE CASCADE,
    account_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    repository_id TEXT NOT NULL,
    sha TEXT NOT NULL,
    ref_name TEXT NOT NULL,
    mr_iid BIGINT,
    triggered_by TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    attempts BIGINT NOT NULL,
    locked_by TEXT,
    locked_until BIGINT,
    cancel_requested BOOLEAN NOT NULL,
    cancel_reason TEXT,
    status_note TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    updated_at BIGINT NOT NULL,
    UNIQUE (ci_job_id, sha)
);
CREATE INDEX runs_state ON runs (state, created_at);
CREATE INDEX runs_merge_request ON runs (repository_id, mr_iid);
CREATE INDEX runs_project ON runs (project_id, created_at);

CREATE TABLE run_steps (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    command TEXT NOT NULL,
    outcome TEXT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT,
    PRIMARY KEY (run_id, position)
);

-- Redacted output lines, in order.
CREATE TABLE run_logs (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    stream TEXT NOT NULL,
    line TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- `run_results.json` and `manifest.json` of a run.
CREATE TABLE run_artifacts (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);

-- The commit status a run should show in GitLab (`wanted_*`) and the last one GitLab confirmed
-- (`sent_state`). A worker posts while they differ; intermediate states may be skipped when
-- delivery lags, the final one never is. `version` guards against a change made meanwhile.
CREATE TABLE status_outbox (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    wanted_state TEXT NOT NULL,
    description TEXT NOT NULL,
    version BIGINT NOT NULL,
    sent_state TEXT,
    sent_version BIGINT,
    attempts BIGINT NOT NULL,
    run_after BIGINT NOT NULL,
    locked_by TEXT,
    locked_until BIGINT,
    last_error TEXT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX status_outbox_due ON status_outbox (run_after);

-- Warnings reconciliation raised about a repository's webhook (GitLab disabled it).
CREATE TABLE hook_warnings (
    repository_id TEXT PRIMARY KEY,
    alert_status TEXT NOT NULL,
    message TEXT NOT NULL,
    checked_at BIGINT NOT NULL
);
