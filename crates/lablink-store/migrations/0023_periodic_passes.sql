-- The fleet's periodic passes (token rotation scheduling, reconciliation and schema sweeps,
-- pruning): each runs once per period across every replica with the `scheduler` role. A replica
-- takes a pass when it is due and nobody holds it (or the holder's lease ran out), and sets the
-- next due time when it is done. Rows are made by the first replica that asks for a pass.
CREATE TABLE periodic_passes (
    name TEXT PRIMARY KEY,
    due_at BIGINT NOT NULL,
    locked_by TEXT,
    locked_until BIGINT,
    -- How many times the fleet ran the pass to its end, and the last time: who ran it, from
    -- when to when (reconciliation reads GitLab's changes since the last start).
    times_run BIGINT NOT NULL DEFAULT 0,
    last_ran_by TEXT,
    last_started_at BIGINT,
    last_finished_at BIGINT
);
