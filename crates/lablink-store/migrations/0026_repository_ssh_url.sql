-- The repository's SSH address as GitLab gave it at connect (normalised to `ssh://`), for pushes
-- with the SSH deploy key where GitLab has no project access tokens (gitlab.com Free). NULL for
-- repositories connected before it was kept, and when GitLab gave none.
ALTER TABLE repositories ADD COLUMN ssh_url_to_repo TEXT;
