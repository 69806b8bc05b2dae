-- A pull request opened as a draft (1): a partial change handed to a human (a task that ran
-- out of time), not ready for review.
ALTER TABLE github_pull_requests ADD COLUMN draft BIGINT NOT NULL DEFAULT 0;
