-- The gateway's own data: people, their sessions and API tokens, which repositories each
-- organisation may target, and the submissions the daily pull-request limit counts.
CREATE TABLE identity_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    organisation TEXT NOT NULL,
    -- Argon2id PHC string; NULL for accounts that sign in only through GitHub.
    password_hash TEXT,
    github_login TEXT,
    created_at_ms BIGINT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE identity_sessions (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);

CREATE TABLE identity_api_tokens (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    label TEXT NOT NULL,
    -- SHA-256 of the token: it is random and long, so a slow hash adds nothing.
    token_hash TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);

CREATE TABLE identity_organisations (
    name TEXT PRIMARY KEY,
    daily_pull_requests BIGINT NOT NULL
);

-- Repository-id globs an organisation's users may target, with that repository's review
-- policy.
CREATE TABLE identity_allowed_repositories (
    organisation TEXT NOT NULL,
    pattern TEXT NOT NULL,
    allow_self_approval BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (organisation, pattern)
);

CREATE TABLE identity_submissions (
    task_id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    submitted_at_ms BIGINT NOT NULL
);

CREATE INDEX identity_submissions_by_user ON identity_submissions (user_name, submitted_at_ms);
