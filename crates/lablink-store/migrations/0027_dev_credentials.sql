-- A developer's own warehouse credentials for a project's workspace dbt commands (PostgreSQL
-- jobs): the job's host, port and database with this user and password instead of the job's.
-- The password is sealed (AAD `dev_credentials.password:<id>`). Removed with the user or project.
CREATE TABLE dev_credentials (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    password_enc BYTEA NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, project_id)
);
