-- Merge requests from forks: what a CI job does with them, and what a run runs.
ALTER TABLE ci_jobs ADD COLUMN fork_policy TEXT NOT NULL DEFAULT 'approval';
ALTER TABLE runs ADD COLUMN mode TEXT NOT NULL DEFAULT 'full';
ALTER TABLE runs ADD COLUMN approved_by TEXT NULL;
