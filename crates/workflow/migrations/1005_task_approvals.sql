-- A human's decision on a task waiting at a protected change (CI files, git attributes, install
-- scripts): '' none yet, 'approved' or 'rejected'; with the reason given.
ALTER TABLE tasks ADD COLUMN approval TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN approval_reason TEXT NOT NULL DEFAULT '';
