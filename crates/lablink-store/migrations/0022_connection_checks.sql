-- The last time the doctor checked each project's connection and what it found, so the project
-- page and the dashboard show a broken connection without anyone opening Check connection.
-- One row per project, replaced by every full check; removed with the project.
CREATE TABLE connection_checks (
    project_id TEXT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
    checked_at BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    warnings BIGINT NOT NULL,
    -- The most serious finding's words (what is wrong, what to do), empty when healthy.
    headline TEXT NOT NULL,
    remedy TEXT NOT NULL
);

-- The dashboard lists the account's latest runs across its projects.
CREATE INDEX runs_account ON runs (account_id, created_at);
