-- An interrupt asked of a task through any replica: the replica running the task sees it
-- when it renews the task's lease. 1 = asked; cleared when the task is queued again.
ALTER TABLE tasks ADD COLUMN interrupt_requested BIGINT NOT NULL DEFAULT 0;
