-- How much disk a workspace's checkout took when it was last measured (bytes; 0 while no replica
-- holds one), and each account's cap on the sum over its workspaces (megabytes; NULL: lablink's
-- default).
ALTER TABLE workspaces ADD COLUMN disk_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN workspace_disk_cap_mb BIGINT;
