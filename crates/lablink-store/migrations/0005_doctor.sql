-- Project access token rotation and the doctor.

-- Set (to the Unix ms time) just before lablink asks GitLab to rotate the project access token,
-- cleared in the same statement that stores the new token. Still set afterwards means the answer
-- to a rotation was lost (crash, timeout): the stored token is revoked and the new one unknown,
-- so recovery must re-create the token instead of rotating again (rotating a revoked token makes
-- GitLab revoke the whole token family).
ALTER TABLE repositories ADD COLUMN project_token_rotating_since BIGINT NULL;

-- The rotation schedule: connected repositories by token expiry, so finding the tokens due costs
-- work proportional to the tokens due, not to the number of repositories.
CREATE INDEX repositories_token_expiry ON repositories (status, project_token_expires_on);

-- "When did the last verified delivery arrive" for the doctor's panel and the test delivery.
CREATE INDEX webhook_deliveries_repository_received
    ON webhook_deliveries (repository_id, received_at);
