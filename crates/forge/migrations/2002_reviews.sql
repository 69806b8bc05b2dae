-- Reviews of pull requests; `seq` orders them per pull request, comments are JSON text.
CREATE TABLE github_reviews (
    id TEXT PRIMARY KEY,
    pull_request_id TEXT NOT NULL REFERENCES github_pull_requests (id),
    seq BIGINT NOT NULL,
    action TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    comments_json TEXT NOT NULL,
    head_sha TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (pull_request_id, seq)
);
