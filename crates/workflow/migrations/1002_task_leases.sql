-- Which supervisor replica runs a task, until when: a replica claims a task before running it
-- and renews the lease while it does; another takes the task over once the lease has expired.
ALTER TABLE tasks ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN lease_until_ms BIGINT NOT NULL DEFAULT 0;
