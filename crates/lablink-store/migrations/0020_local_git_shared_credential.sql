-- Whether an account on a Developer or Starter plan lets its developers' local git (the
-- `lablink credential` helper) use a repository's shared credential, as its workspace does.
ALTER TABLE accounts ADD COLUMN local_git_shared_credential BOOLEAN NOT NULL DEFAULT FALSE;
