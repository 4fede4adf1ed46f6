-- Personal API tokens may carry an expiry (NULL: none).
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
