-- At most one setup link is open at a time: replicas starting together on an empty database
-- mint one between them, and a new link revokes the one before it.
UPDATE setup_tokens SET used_at = created_at
WHERE used_at IS NULL
  AND token_hash NOT IN (
      SELECT token_hash FROM setup_tokens WHERE used_at IS NULL
      ORDER BY created_at DESC LIMIT 1
  );
CREATE UNIQUE INDEX setup_tokens_one_open ON setup_tokens ((1)) WHERE used_at IS NULL;
