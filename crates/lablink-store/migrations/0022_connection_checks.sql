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

-- Whether a run had to wait for a Maintainer's approval when it was made (a fork's commit with a
-- job that runs forks with its secrets): running it again waits again, unless this commit was
-- approved. NULL for runs made before this was recorded: treated as waiting, the safe side.
ALTER TABLE runs ADD COLUMN needs_approval BOOLEAN;
UPDATE runs SET needs_approval = TRUE WHERE state = 'awaiting_approval' OR approved_by IS NOT NULL;
UPDATE runs SET needs_approval = FALSE WHERE needs_approval IS NULL
    AND (mr_iid IS NULL OR mode = 'without_secrets');
