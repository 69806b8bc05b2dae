-- Time travel: a task rolled back from another task's checkpoint names that task and the
-- checkpoint its run started from ('' for a task submitted). The parent is left as it was.
ALTER TABLE tasks ADD COLUMN parent_task_id TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN forked_from_checkpoint TEXT NOT NULL DEFAULT '';
