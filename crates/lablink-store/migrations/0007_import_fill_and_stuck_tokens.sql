-- The import list's background fill runs as jobs (`repositories.fill_import_list`) that resume
-- from the database: the keyset link of the next page of GitLab's project list still to fetch,
-- NULL when no page is pending. A fill stores a page only if this still names the page it
-- fetched, so two fills of one list (a retried job, a lease taken over) never store a page twice.
ALTER TABLE gitlab_project_lists ADD COLUMN next_page TEXT NULL;

-- Set to the row's `updated_at` when a rotation found that the project access token needs a
-- person (lablink cannot replace it alone). While `updated_at` still equals it nothing changed,
-- so the rotation schedule skips the token instead of enqueuing a job that can only fail again;
-- any change to the row (a repair, a new token, a reconnect) makes it due again.
ALTER TABLE repositories ADD COLUMN project_token_needs_action_at BIGINT NULL;
