-- What a merge request changed (issue 18): the schema ledger, one note per merge request and
-- job, the paths a job watches, the comparison budget, and the target branch of a run.
CREATE TABLE warehouse_schemas (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    ci_job_id BIGINT NOT NULL,
    repository_id TEXT NOT NULL,
    mr_iid BIGINT NOT NULL,
    -- The schema as dbt created it (from the run's manifest), database '' when the adapter has none.
    database_name TEXT NOT NULL,
    schema_name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    mr_closed_at BIGINT NULL,
    dropped_at BIGINT NULL,
    drop_error TEXT NULL,
    UNIQUE (ci_job_id, mr_iid, database_name, schema_name)
);
CREATE INDEX warehouse_schemas_due ON warehouse_schemas (dropped_at, last_used_at);

CREATE TABLE mr_notes (
    repository_id TEXT NOT NULL,
    mr_iid BIGINT NOT NULL,
    ci_job_id BIGINT NOT NULL,
    note_id BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (repository_id, mr_iid, ci_job_id)
);

ALTER TABLE ci_jobs ADD COLUMN watch_paths TEXT NOT NULL DEFAULT '[]';
ALTER TABLE ci_jobs ADD COLUMN compare_max_models BIGINT NOT NULL DEFAULT 20;
ALTER TABLE ci_jobs ADD COLUMN compare_timeout_secs BIGINT NOT NULL DEFAULT 300;
ALTER TABLE runs ADD COLUMN target_branch TEXT NULL;
