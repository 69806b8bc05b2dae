-- Constraints humans add to a task while it is queued, running or paused, oldest first: given
-- to every later agent call and, when added mid-flight, to the agent running then.
CREATE TABLE IF NOT EXISTS task_constraints (
    task_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    text TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (task_id, seq)
);
-- A human asked for the task to be aborted (1), and why: its run ends it as failed at its next
-- step instead of pausing it.
ALTER TABLE tasks ADD COLUMN abort_requested BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN abort_reason TEXT NOT NULL DEFAULT '';
