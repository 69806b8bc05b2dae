-- The supervisor's tables: tasks, their events and their checkpoints.
-- Portable SQL: the same file runs on SQLite and PostgreSQL.
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    repository_id TEXT NOT NULL,
    prompt TEXT NOT NULL,
    priority TEXT NOT NULL,
    request_json TEXT NOT NULL,
    status TEXT NOT NULL,
    current_node TEXT NOT NULL,
    current_agent TEXT NOT NULL,
    progress_percentage BIGINT NOT NULL,
    pull_request_id TEXT NOT NULL,
    branch TEXT NOT NULL,
    error_message TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS tasks_status ON tasks (status);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at_ms);

CREATE TABLE IF NOT EXISTS task_events (
    task_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event_json TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE IF NOT EXISTS checkpoints (
    task_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    state_json TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (task_id, seq)
);
