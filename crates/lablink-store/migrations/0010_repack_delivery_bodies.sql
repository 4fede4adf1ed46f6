-- Delivery bodies packed with zstd or deflate by earlier versions are repacked as LZ4 by a
-- one-time background task, queued here so that it exists exactly once.
INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_after, created_at, updated_at)
VALUES ('00000000-0000-7000-8000-000000000010', 'deliveries.repack_bodies', '{}', 'queued', 0, 10, 0, 0, 0);
