-- Pull requests of the local forge, owned by the GitHub service. Numbers count per repository.
CREATE TABLE github_pull_requests (
    id TEXT PRIMARY KEY,
    repository_id TEXT NOT NULL,
    number BIGINT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    head_branch TEXT NOT NULL,
    base_branch TEXT NOT NULL,
    head_sha TEXT NOT NULL,
    base_sha TEXT NOT NULL,
    merge_sha TEXT,
    state TEXT NOT NULL,
    task_id TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (repository_id, number)
);

CREATE INDEX github_pull_requests_task ON github_pull_requests (task_id);
