-- gitlab.com Free has no project access tokens: a Maintainer may have a repository's statuses and
-- notes posted through their own linked GitLab account (issue 18 §5). Unlinking turns it off and
-- leaves the warning.
ALTER TABLE repositories ADD COLUMN post_as_user_id TEXT NULL;
ALTER TABLE repositories ADD COLUMN post_as_username TEXT NULL;
ALTER TABLE repositories ADD COLUMN post_as_warning TEXT NULL;
