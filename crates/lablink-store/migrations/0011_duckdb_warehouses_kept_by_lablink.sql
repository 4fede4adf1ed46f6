-- A DuckDB warehouse is no longer any path on the host: lablink keeps one file per CI job (setting
-- `warehouse_root`), and a run's sandbox sees only that file's directory.
UPDATE ci_jobs SET warehouse = '{"type":"duckdb"}' WHERE warehouse LIKE '{"type":"duckdb"%';
